"""Fetch a dataset's archives, check their sha256 and unpack them safely: the project's only
network access, run on request by `python datasets/download.py NAME`.

Archives are streamed to `datasets/.downloads/` (a `.part` file renamed once its checksum
matches), then unpacked into a temporary folder that is renamed to `datasets/NAME/` when every
archive is in: an interrupted download never leaves a half dataset behind. Archive members
with absolute paths, `..` components, links pointing outside the target, or device files are
refused before anything is written.

A dataset whose yaml lists no archive but a `manual_download` (CamVid: no archive with a
checksum to verify) is never fetched: the error says where to get it and where to put it.

Example:
    >>> download_dataset("oxford_pets")      # ~800 MB, progress bar on stderr
    PosixPath('.../datasets/oxford_pets')
    >>> download_dataset("camvid")
    ConfigError: dataset 'camvid' is not downloaded by this tool: get it by hand from https://...
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm import tqdm

from zoo.data.spec import DATASETS_DIR, Download, resolve_dataset
from zoo.errors import ConfigError, DataError

CHUNK = 1 << 20


def download_dataset(data: str, datasets_dir: Path = DATASETS_DIR, verify: bool = True,
                     keep_archives: bool = False, progress: bool = True,
                     opener=urllib.request.urlopen) -> Path:
    """Download, verify and unpack the archives listed in a dataset yaml into datasets/NAME/.

    Returns the dataset folder; when it already exists nothing is fetched. A dataset to get
    by hand (`manual_download` in its yaml) is never fetched: its root is returned when it is
    there, else ConfigError says where to get the data and where to put it.
    `verify=False` accepts archives without (or with a different) sha256: use it only for a
    yaml that has no checksum yet.

    Example:
        >>> download_dataset("voc2012", verify=True)
        PosixPath('.../datasets/voc2012')
    """
    datasets_dir = Path(datasets_dir)
    spec = resolve_dataset(data, datasets_dir, generate=False)
    if not spec.downloads and spec.manual_download:
        if spec.root.is_dir() and any(not p.name.startswith(".") for p in spec.root.iterdir()):
            return spec.root
        raise ConfigError(f"dataset {spec.name!r} is not downloaded by this tool: "
                          f"{spec.how_to_get}")
    if not spec.downloads:
        raise ConfigError(f"dataset {spec.name!r}: its yaml lists no downloads (url/sha256); "
                          "nothing to fetch")
    missing = [d.url for d in spec.downloads if not d.sha256]
    if verify and missing:
        raise ConfigError(f"{spec.source or spec.name}: no sha256 for {missing[0]}; add it to "
                          "the yaml, or pass --no-verify to download without a checksum")
    target = datasets_dir / spec.name
    if target.exists():
        return target
    cache = datasets_dir / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    archives = [fetch(d, cache, verify=verify, progress=progress, opener=opener)
                for d in spec.downloads]
    tmp = datasets_dir / f".{spec.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for archive in archives:
            safe_extract(archive, tmp)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archives:
        for archive in archives:
            archive.unlink(missing_ok=True)
    return target


def fetch(download: Download, cache: Path, verify: bool = True, progress: bool = True,
          opener=urllib.request.urlopen) -> Path:
    """Stream one URL into `cache`, checking its sha256; reuse a verified earlier copy.

    Example:
        >>> fetch(Download("file:///tmp/a.tar", sha256="ab12..."), Path("/tmp/cache"))
        PosixPath('/tmp/cache/a.tar')
    """
    name = PurePosixPath(urlparse(download.url).path).name or "download"
    archive = Path(cache) / name
    if archive.is_file() and (not download.sha256 or sha256_file(archive) == download.sha256):
        return archive
    part = archive.with_name(f"{name}.part-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        try:
            response = opener(download.url, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DataError(f"{download.url}: download failed ({e})") from None
        with response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                      disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if download.sha256 and got != download.sha256:
            if verify:
                raise DataError(f"{download.url}: sha256 mismatch, got {got}, expected "
                                f"{download.sha256}; the download was discarded")
            print(f"warning: {download.url}: sha256 {got} differs from the yaml's "
                  f"{download.sha256}; kept because of --no-verify")
        os.replace(part, archive)
    finally:
        part.unlink(missing_ok=True)
    return archive


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> sha256_file(Path("empty"))
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a tar (any compression) or zip into `dest`, refusing members that escape it.

    Every member is checked before the first one is written.

    Example:
        >>> safe_extract(Path("images.tar.gz"), Path("datasets/.oxford_pets.tmp"))
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_tar_member(member, dest, archive)
            # The "data" filter repeats these checks inside tarfile and drops odd permissions.
            tar.extractall(dest, members=members, filter="data")
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_path(info.filename, dest, archive)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DataError(f"{archive}: member {info.filename!r} is a symlink; "
                                    "expected regular files only")
            zf.extractall(dest)
    else:
        raise DataError(f"{archive}: not a tar or zip archive")


_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_member_path(name: str, dest: Path, archive: Path) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise DataError(f"{archive}: member {name!r} has an absolute path; expected paths "
                        "inside the archive's folder")
    if ".." in parts:
        raise DataError(f"{archive}: member {name!r} contains '..'; expected paths inside the "
                        "archive's folder")
    root = dest.resolve()
    if not (root / name).resolve().is_relative_to(root):
        raise DataError(f"{archive}: member {name!r} would be written outside {dest}")


def _check_tar_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    _check_member_path(member.name, dest, archive)
    if member.issym() or member.islnk():
        link = member.linkname
        if link.startswith(("/", "\\")) or _DRIVE.match(link):
            raise DataError(f"{archive}: link {member.name!r} points to absolute path {link!r}; "
                            "expected a target inside the archive")
        base = dest / PurePosixPath(member.name).parent if member.issym() else dest
        root = dest.resolve()
        if not (base / link).resolve().is_relative_to(root):
            raise DataError(f"{archive}: link {member.name!r} -> {link!r} points outside the "
                            "archive's folder")
    elif not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: member {member.name!r} is a device or fifo; expected "
                        "regular files and folders")
