"""Decode one image or one mask file into arrays the pipeline can use.

Images become uint8 RGB (H, W, 3) whatever their mode (grayscale, RGBA, palette, CMYK,
16-bit). Masks become uint8 class indices (H, W): a palette PNG gives its palette indices
(never its colours), a binary 0/255 mask gives 0/1, an Oxford-IIIT Pet trimap gives
background 0, pet 1 and border = the ignore index.

Example:
    >>> read_image(Path("a.jpg")).shape
    (360, 480, 3)
    >>> read_mask(Path("a.png"), spec).dtype
    dtype('uint8')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from zoo.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Masks must be lossless: a JPEG mask would invent classes at every boundary.
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); alpha is dropped, gray is repeated.

    EXIF orientation is deliberately not applied: masks carry no EXIF, so rotating only the
    image would misalign the pair.

    Example:
        >>> read_image(Path("gray.png")).shape
        (64, 80, 3)
    """
    try:
        with Image.open(path) as img:
            if img.mode in _SIXTEEN_BIT:
                arr = np.asarray(img, dtype=np.float64)
                arr = np.clip(arr / 256.0, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=-1)
            if img.mode == "RGB":
                return np.asarray(img, dtype=np.uint8).copy()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt image ({e})") from None


def raw_mask_values(path: Path) -> np.ndarray:
    """The distinct raw values (or palette indices) of a mask file, before any mapping.

    Example:
        >>> raw_mask_values(Path("voc.png"))
        array([  0,  15, 255], dtype=uint8)
    """
    return np.unique(_read_mask_raw(path))


def read_mask(path: Path, spec) -> np.ndarray:
    """Read a mask file as uint8 class indices (H, W), mapped per `spec.mask_mode`.

    Values outside the classes are returned as they are: `checks.scan` reports them.

    Example:
        >>> read_mask(Path("trimap.png"), pets_spec)  # 1 pet, 2 background, 3 border
        array([[0, 0, 255], [1, 1, 255]], dtype=uint8)
    """
    raw = _read_mask_raw(path)
    if spec.mask_mode == "index":
        return raw
    if spec.mask_mode == "binary":
        lut = np.full(256, 0, dtype=np.uint8)
        lut[1] = lut[255] = 1
        bad = ~np.isin(raw, (0, 1, 255))
        if bad.any():
            raise DataError(f"{path}: binary mask has value {int(raw[bad][0])}, "
                            "expected only 0 and 255 (or 0 and 1)")
        return lut[raw]
    if spec.mask_mode == "trimap":
        ignore = spec.fill_mask
        lut = np.full(256, 0, dtype=np.uint8)
        lut[1], lut[2], lut[3] = 1, 0, ignore
        bad = ~np.isin(raw, (1, 2, 3))
        if bad.any():
            raise DataError(f"{path}: trimap has value {int(raw[bad][0])}, expected 1 (pet), "
                            "2 (background) or 3 (border)")
        return lut[raw]
    raise DataError(f"{path}: unknown mask_mode {spec.mask_mode!r}")


def image_size(path: Path, full_decode: bool = True) -> tuple[int, int]:
    """(height, width) of an image, checking that it decodes.

    JPEGs are decoded at 1/8 scale (libjpeg's draft mode): every byte is still read, so a
    truncated file fails, at a fraction of the cost of a full decode.

    Example:
        >>> image_size(Path("a.jpg"))
        (360, 480)
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            if full_decode:
                if img.format == "JPEG":
                    img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt image ({e})") from None
    return height, width


def _read_mask_raw(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("P", "L"):
                # Palette PNG: np.asarray gives the indices, which are the classes.
                return np.asarray(img, dtype=np.uint8).copy()
            if mode == "1":
                return np.asarray(img, dtype=np.uint8)
            if mode in _SIXTEEN_BIT:
                arr = np.asarray(img)
                if arr.max(initial=0) > 255:
                    raise DataError(f"{path}: 16-bit mask with value {int(arr.max())}, "
                                    "expected class indices 0..255")
                return arr.astype(np.uint8)
            if mode in ("LA", "PA"):
                return np.asarray(img, dtype=np.uint8)[..., 0].copy()
            if mode in ("RGB", "RGBA"):
                arr = np.asarray(img, dtype=np.uint8)
                r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
                if np.array_equal(r, g) and np.array_equal(r, b):
                    return r.copy()  # a gray mask saved as RGB
                raise DataError(f"{path}: colour {mode} mask, expected a single-channel index "
                                "or palette PNG")
            raise DataError(f"{path}: mask mode {mode}, expected a single-channel index or "
                            "palette PNG")
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt mask ({e})") from None
