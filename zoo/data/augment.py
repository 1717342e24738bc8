"""Augmentation: one albumentations `Compose` built from a config dict.

Image and mask go through the same geometric transforms; masks always use nearest
interpolation, and pixels that come from outside the image (padding, rotation corners) get
the ignore index in the mask, so the model is never taught that padding is background.

Config keys (each: a probability, or a dict with `p` and limits; 0 / false / null = off):
- `random_resized_crop`: `scale` (area fraction), `ratio` (aspect) -> output size. Default.
- `scale_crop`: `scale` (resize factor range); resize to the input size, rescale, pad with
  the ignore index, random crop. Use instead of random_resized_crop (not both).
- `hflip`, `vflip`: probability.
- `affine`: `scale`, `translate` (fraction of the size), `rotate` (degrees), `shear`.
- `brightness_contrast`: `brightness`, `contrast`.
- `hue_saturation`: `hue`, `saturation`, `value`.
- `blur`: `limit` (odd kernel sizes).
- `noise`: `std` (fraction of 255).

Example:
    >>> aug = build_augment({"hflip": 0.5, "affine": {"p": 0.5, "rotate": 15}}, (224, 288))
    >>> out = aug(image=image, mask=mask)
    >>> out["image"].shape, out["mask"].shape
    ((224, 288, 3), (224, 288))
    >>> build_augment("none", (128, 128))   # resize only
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # it calls the network otherwise

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from zoo.errors import ConfigError  # noqa: E402

DEFAULT_AUGMENT: dict[str, dict] = {
    "random_resized_crop": {"p": 1.0, "scale": (0.35, 1.0), "ratio": (0.75, 1.333)},
    "scale_crop": {"p": 0.0, "scale": (0.5, 2.0)},
    "hflip": {"p": 0.5},
    "vflip": {"p": 0.0},
    "affine": {"p": 0.3, "scale": (0.9, 1.1), "translate": 0.05, "rotate": 10.0, "shear": 0.0},
    "brightness_contrast": {"p": 0.5, "brightness": 0.2, "contrast": 0.2},
    "hue_saturation": {"p": 0.3, "hue": 10, "saturation": 20, "value": 10},
    "blur": {"p": 0.1, "limit": (3, 5)},
    "noise": {"p": 0.1, "std": (0.02, 0.06)},
}


def resolve_augment(cfg: dict | str | None) -> dict[str, dict] | None:
    """Fill a partial augmentation config with the defaults; `None` / "none" -> None.

    Keys given replace the default's fields; a number sets only the probability.
    Unknown keys are errors, not ignored.

    Example:
        >>> resolve_augment({"hflip": 0})["hflip"]
        {'p': 0.0}
        >>> resolve_augment({"affine": {"rotate": 30}})["affine"]["rotate"]
        30
    """
    if cfg is None or (isinstance(cfg, str) and cfg.lower() == "none") or cfg is False:
        return None
    if isinstance(cfg, str) and cfg.lower() == "default":
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"augment: expected a dict, 'default' or 'none', got {cfg!r}")
    unknown = sorted(set(cfg) - set(DEFAULT_AUGMENT))
    if unknown:
        raise ConfigError(f"augment: unknown key(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(DEFAULT_AUGMENT)}")
    out = copy.deepcopy(DEFAULT_AUGMENT)
    for key, value in cfg.items():
        if value is None or value is False:
            out[key] = {**out[key], "p": 0.0}
        elif value is True:
            out[key] = {**out[key], "p": out[key]["p"] or 1.0}
        elif isinstance(value, int | float):
            out[key] = {**out[key], "p": float(value)}
        elif isinstance(value, dict):
            bad = sorted(set(value) - set(DEFAULT_AUGMENT[key]))
            if bad:
                raise ConfigError(f"augment.{key}: unknown field(s) {', '.join(bad)}; expected "
                                  f"some of {', '.join(DEFAULT_AUGMENT[key])}")
            merged = {**out[key], **value}
            if "p" not in value:
                merged["p"] = out[key]["p"] or 1.0  # giving limits switches a step on
            out[key] = merged
        else:
            raise ConfigError(f"augment.{key}: expected a probability or a dict, got {value!r}")
        p = out[key]["p"]
        if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"augment.{key}.p: expected a probability in [0, 1], got {p!r}")
    if "scale_crop" in cfg and out["scale_crop"]["p"] > 0 and "random_resized_crop" not in cfg:
        out["random_resized_crop"]["p"] = 0.0  # asking for scale_crop replaces the default
    if out["scale_crop"]["p"] > 0 and out["random_resized_crop"]["p"] > 0:
        raise ConfigError("augment: random_resized_crop and scale_crop both on; choose one")
    return out


def build_augment(cfg: dict | str | None, input_size: tuple[int, int], fill_mask: int = 255
                  ) -> A.Compose:
    """The training transform: augmentations from `cfg`, output exactly `input_size` (h, w).

    `fill_mask` is the mask value of padded pixels: pass the dataset's ignore index.

    Example:
        >>> build_augment({}, (128, 128), fill_mask=spec.fill_mask)   # the defaults
    """
    height, width = check_input_size(input_size)
    steps = resolve_augment(cfg)
    if steps is None:
        return build_val_transform(input_size)
    border = {"border_mode": cv2.BORDER_CONSTANT, "fill": 0, "fill_mask": fill_mask}
    # cv2's INTER_NEAREST resize is shifted by half a pixel against INTER_LINEAR; the EXACT
    # variant samples pixel centres, so resized masks stay on their images. Warps (Affine)
    # round the same coordinates for both and need no such care.
    linear = {"interpolation": cv2.INTER_LINEAR, "mask_interpolation": cv2.INTER_NEAREST_EXACT}
    warp = {"interpolation": cv2.INTER_LINEAR, "mask_interpolation": cv2.INTER_NEAREST}
    transforms: list = []
    rrc, sc = steps["random_resized_crop"], steps["scale_crop"]
    if rrc["p"] > 0:
        crop = A.RandomResizedCrop(size=(height, width), scale=_pair(rrc["scale"]),
                                   ratio=_pair(rrc["ratio"]), p=min(rrc["p"], 1.0), **linear)
        if rrc["p"] >= 1.0:
            transforms.append(crop)
        else:
            # Crop from the full-resolution image or resize it whole (OneOf weighs by p):
            # the output size is the same either way.
            plain = A.Resize(height, width, p=1.0 - rrc["p"], **linear)
            transforms.append(A.OneOf([crop, plain], p=1.0))
    elif sc["p"] > 0:
        low, high = _pair(sc["scale"])
        transforms += [
            A.Resize(height, width, **linear),
            A.RandomScale(scale_limit=(low - 1.0, high - 1.0), p=sc["p"], **linear),
            A.PadIfNeeded(min_height=height, min_width=width, position="random", **border),
            A.RandomCrop(height, width),
        ]
    else:
        transforms.append(A.Resize(height, width, **linear))
    if steps["hflip"]["p"] > 0:
        transforms.append(A.HorizontalFlip(p=steps["hflip"]["p"]))
    if steps["vflip"]["p"] > 0:
        transforms.append(A.VerticalFlip(p=steps["vflip"]["p"]))
    aff = steps["affine"]
    if aff["p"] > 0:
        transforms.append(A.Affine(
            scale=_pair(aff["scale"], around=1.0), translate_percent=_pair(aff["translate"]),
            rotate=_pair(aff["rotate"]), shear=_pair(aff["shear"]), p=aff["p"],
            **warp, **border))
    bc = steps["brightness_contrast"]
    if bc["p"] > 0:
        transforms.append(A.RandomBrightnessContrast(
            brightness_limit=_pair(bc["brightness"]), contrast_limit=_pair(bc["contrast"]),
            p=bc["p"]))
    hs = steps["hue_saturation"]
    if hs["p"] > 0:
        transforms.append(A.HueSaturationValue(
            hue_shift_limit=_pair(hs["hue"]), sat_shift_limit=_pair(hs["saturation"]),
            val_shift_limit=_pair(hs["value"]), p=hs["p"]))
    blur = steps["blur"]
    if blur["p"] > 0:
        transforms.append(A.GaussianBlur(blur_limit=_odd_pair(blur["limit"]), p=blur["p"]))
    noise = steps["noise"]
    if noise["p"] > 0:
        transforms.append(A.GaussNoise(std_range=_pair(noise["std"], low=0.0), p=noise["p"]))
    return A.Compose(transforms, strict=True)


def build_val_transform(input_size: tuple[int, int]) -> A.Compose:
    """Validation / export preprocessing: resize only (image bilinear, mask nearest, centred).

    Example:
        >>> build_val_transform((224, 288))(image=image, mask=mask)["image"].shape
        (224, 288, 3)
    """
    height, width = check_input_size(input_size)
    return A.Compose([A.Resize(height, width, interpolation=cv2.INTER_LINEAR,
                               mask_interpolation=cv2.INTER_NEAREST_EXACT)], strict=True)


def check_input_size(input_size) -> tuple[int, int]:
    """(height, width) as ints, or ConfigError.

    Example:
        >>> check_input_size([224, 288])
        (224, 288)
    """
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size: expected (height, width), got {input_size!r}") from None
    if height < 8 or width < 8:
        raise ConfigError(f"input_size: expected at least 8x8, got {height}x{width}")
    return height, width


def _pair(value, around: float = 0.0, low: float | None = None) -> tuple[float, float]:
    """A limit `v` means [around - v, around + v]; a pair is taken as it is."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ConfigError(f"augment: expected a number or a [low, high] pair, got {value!r}")
        return float(value[0]), float(value[1])
    value = float(value)
    if low is not None:
        return low, value
    return around - value, around + value


def _odd_pair(value) -> tuple[int, int]:
    low, high = (int(v) for v in (value if isinstance(value, list | tuple) else (3, value)))
    return low | 1, high | 1
