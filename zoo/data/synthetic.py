"""The embedded default dataset `shapes`: textured shapes on cluttered backgrounds.

Generated on first use, deterministically (the same bytes on every machine with the same
Pillow/zlib), into the plain folder layout `images/{train,val}/*.png`,
`masks/{train,val}/*.png`. Classes: background, circle, rectangle, triangle, star.

Colours and textures lean towards the class (a hue family and a texture per class, 70 % and
60 % of the time) without deciding it, so a small model learns quickly from colour and must
still learn the outline (round, four corners, three corners, spikes). Shapes vary in
scale (radius 10..42 px at 160 px), overlap (later ones occlude earlier ones) and run off
the image edge; backgrounds are gradients with low-frequency blotches, thin clutter lines
of background class, and pixel noise.

Example:
    >>> root = ensure_shapes(Path("datasets/shapes"))   # generates once, ~5 s
    >>> sorted(p.name for p in root.iterdir())
    ['VERSION', 'images', 'masks']
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from zoo.errors import DataError

CLASSES = ["background", "circle", "rectangle", "triangle", "star"]
VERSION = 2
DEFAULTS = {"n_train": 512, "n_val": 96, "size": 160, "seed": 20261123}
_MARKER = "VERSION"
# Hue (degrees) each class leans towards, and how often colour / texture follow the class.
_CLASS_HUES = {1: 0.0, 2: 120.0, 3: 220.0, 4: 55.0}
_TYPICAL_COLOR_P = 0.7
_TYPICAL_TEXTURE_P = 0.6
# Mask palette: only for people looking at the files; readers use the indices.
_PALETTE = [0, 0, 0, 230, 25, 75, 60, 180, 75, 255, 225, 25, 0, 130, 200]


def ensure_shapes(root: Path, **params) -> Path:
    """Generate the shapes dataset into `root` unless an identical one is already there.

    Generation goes to a temporary sibling folder that is renamed into place, so `root` is
    either absent or complete; a `VERSION` file records generator version and parameters.
    A `root` that exists without that file is not ours and is never touched.

    Example:
        >>> ensure_shapes(Path("/tmp/shapes"), n_train=16, n_val=4, size=96)
        PosixPath('/tmp/shapes')
    """
    root = Path(root)
    params = {**DEFAULTS, **params}
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise DataError(f"shapes generator: unknown parameter(s) {', '.join(sorted(unknown))}; "
                        f"expected {', '.join(DEFAULTS)}")
    marker = {"generator": "zoo.data.synthetic", "version": VERSION, **params}
    current = _read_marker(root)
    if current == marker:
        return root
    if root.exists() and current is None:
        raise DataError(f"{root}: exists but has no {_MARKER} file from the shapes generator; "
                        "move it away to let the generator write there")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        generate_shapes(tmp, **params)
        (tmp / _MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        _swap_in(tmp, root, marker)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def generate_shapes(out_dir: Path, n_train: int = 512, n_val: int = 96, size: int = 160,
                    seed: int = DEFAULTS["seed"]) -> None:
    """Write the images and masks of both splits into `out_dir` (not atomic: see ensure_shapes).

    Example:
        >>> generate_shapes(Path("/tmp/s"), n_train=8, n_val=2, size=96)
    """
    out_dir = Path(out_dir)
    for split, count, split_id in (("train", n_train, 0), ("val", n_val, 1)):
        image_dir, mask_dir = out_dir / "images" / split, out_dir / "masks" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)

        def write(index: int, split=split, split_id=split_id, image_dir=image_dir,
                  mask_dir=mask_dir) -> None:
            # Each sample has its own seed, so threads cannot change what is drawn.
            image, mask = draw_sample(np.random.default_rng([seed, split_id, index]), size)
            name = f"{split}_{index:04d}.png"
            Image.fromarray(image).save(image_dir / name)
            mask_img = Image.fromarray(mask, mode="L").convert("P")
            mask_img.putpalette(_PALETTE)
            mask_img.save(mask_dir / name)

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(write, range(count)))


def draw_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (S, S, 3), mask uint8 (S, S)) sample from a seeded generator.

    Example:
        >>> image, mask = draw_sample(np.random.default_rng(0), 160)
        >>> sorted(np.unique(mask))
        [0, 1, 3, 4]
    """
    image = _background(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    base_color = image.reshape(-1, 3).mean(axis=0)
    for _ in range(int(rng.integers(2, 7))):
        cls = int(rng.integers(1, len(CLASSES)))
        region = _shape_region(rng, cls, size)
        if not region.any():
            continue
        texture = _texture(rng, size, _shape_color(rng, cls, base_color), cls)
        image[region] = texture[region]
        mask[region] = cls
    noise = rng.normal(0.0, rng.uniform(3.0, 10.0), size=image.shape)
    image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        # A slight blur now and then, so edges are not always one-pixel sharp.
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.7)))
    return image, mask


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    # Muted background colours, so saturated shapes tend to stand out (not always: the
    # blotches, clutter and off-class shape colours keep it from being a threshold).
    grey = (c0 + c1).mean() / 2
    c0, c1 = (grey + (c - grey) * rng.uniform(0.2, 0.7) for c in (c0, c1))
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.0) / 2.0
    image = c0 * (1 - t[..., None]) + c1 * t[..., None]
    # Low-frequency blotches: a coarse random grid upsampled smoothly.
    cells = int(rng.integers(3, 7))
    blotch = rng.uniform(-1, 1, size=(cells, cells, 3)).astype(np.float32)
    blotch = np.stack([np.asarray(Image.fromarray(blotch[..., c], mode="F").resize(
        (size, size), Image.BICUBIC)) for c in range(3)], axis=-1)
    image = np.clip(image + blotch * rng.uniform(15, 50), 0, 255).astype(np.uint8)
    # Clutter: thin lines and arcs of background class, so not every edge is a shape edge.
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(2, 9))):
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(-0.2 * size, 1.2 * size, size=4))
        width = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=color, width=width)
        else:
            box = (min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)
            start = float(rng.uniform(0, 360))
            draw.arc(box, start, start + float(rng.uniform(40, 200)), fill=color, width=width)
    return np.array(pil)


def _shape_region(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    radius = float(size * rng.uniform(0.065, 0.26))
    cx, cy = (float(v) for v in rng.uniform(-0.05 * size, 1.05 * size, size=2))
    theta = float(rng.uniform(0, 2 * math.pi))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if CLASSES[cls] == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=1)
    elif CLASSES[cls] == "rectangle":
        aspect = float(rng.uniform(0.45, 1.0))
        half_w, half_h = radius, radius * aspect
        corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
        draw.polygon(_rotate(corners, theta, cx, cy), fill=1)
    elif CLASSES[cls] == "triangle":
        angles = [theta + k * 2 * math.pi / 3 + float(rng.uniform(-0.35, 0.35)) for k in range(3)]
        draw.polygon([(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles],
                     fill=1)
    else:  # star
        inner = radius * float(rng.uniform(0.38, 0.55))
        points = [(cx + (radius if k % 2 == 0 else inner) * math.cos(theta + k * math.pi / 5),
                   cy + (radius if k % 2 == 0 else inner) * math.sin(theta + k * math.pi / 5))
                  for k in range(10)]
        draw.polygon(points, fill=1)
    return np.asarray(canvas, dtype=bool)


def _rotate(points, theta: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _shape_color(rng: np.random.Generator, cls: int, base: np.ndarray) -> np.ndarray:
    """Mostly the class's hue family (jittered), sometimes any colour: colour is a hint that
    gets a small model going within minutes, never enough to find the outline."""
    if rng.random() < _TYPICAL_COLOR_P:
        hue = (_CLASS_HUES[cls] + float(rng.uniform(-20, 20))) % 360
        sat, val = float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.55, 1.0))
        color = np.array(colorsys.hsv_to_rgb(hue / 360, sat, val)) * 255
        if np.abs(color - base).sum() > 120:
            return color
    return _contrasting_color(rng, base)


def _contrasting_color(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    # Resample a few times for a colour visibly different from the background's mean.
    color = rng.uniform(0, 255, size=3)
    for _ in range(8):
        if np.abs(color - base).sum() > 120:
            break
        color = rng.uniform(0, 255, size=3)
    return color


def _texture(rng: np.random.Generator, size: int, color: np.ndarray, cls: int) -> np.ndarray:
    # Like colour, texture leans towards the class (circle flat, rectangle stripes, triangle
    # checker, star speckle) without deciding it.
    kind = cls - 1 if rng.random() < _TYPICAL_TEXTURE_P else int(rng.integers(0, 4))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:  # flat
        pattern = np.zeros((size, size), dtype=np.float32)
    elif kind == 1:  # stripes at a random angle
        angle = float(rng.uniform(0, math.pi))
        period = float(rng.uniform(4, 12))
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) * 2 * math.pi / period
        pattern = np.sign(np.sin(phase)).astype(np.float32)
    elif kind == 2:  # checker
        cell = int(rng.integers(3, 9))
        pattern = (((xx // cell) + (yy // cell)) % 2 * 2 - 1).astype(np.float32)
    else:  # speckle
        pattern = rng.uniform(-1, 1, size=(size, size)).astype(np.float32)
    amplitude = float(rng.uniform(10, 40))
    out = color[None, None, :] + pattern[..., None] * amplitude
    return np.clip(out, 0, 255).astype(np.uint8)


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _swap_in(tmp: Path, root: Path, marker: dict) -> None:
    """Move the finished `tmp` to `root`, replacing only an older generated version."""
    if _read_marker(root) == marker:
        return  # another process generated the same data meanwhile: keep theirs
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(root, old)
    try:
        os.rename(tmp, root)
    except OSError:
        # Another process finished first: keep its copy if it is the one we wanted.
        if _read_marker(root) != marker:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
