"""Writing files so that a crash never leaves half of one, and the small file facts around it.

Example::

    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics))
    write_bytes_atomic(out / "model.tflite", data)
    save_model_atomic(model, run_dir / "last.keras")
    save_figure_atomic(fig, out / "curves.png")
    sha256_file(out / "model.mlpackage"), size_bytes(out / "model.mlpackage")
    error_line(exc)      # "ValueError: first line of the message"

Every writer puts the data in a temporary file in the destination folder (so the rename stays
on one file system, where it is atomic) and renames it over the destination; on any failure
the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def _atomic(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path`; renamed to `path` when the block ends without error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        # mkstemp makes 0600 files; give the final file the mode open() would (0666 - umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    with _atomic(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode())


def write_with_atomic(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call `write(tmp_path)` on a temporary path beside `path`, then rename it to `path`; for
    libraries that write files themselves (`suffix` when they insist on one)."""
    with _atomic(path, suffix) as tmp:
        write(tmp)


def save_model_atomic(model, path: Path) -> None:
    """`model.save` under a temporary ``.keras`` name in the same folder, then a rename."""
    write_with_atomic(path, lambda tmp: model.save(tmp), suffix=".keras")


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temporary file and a rename."""
    write_with_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


def save_figure_atomic(fig, path: Path, **savefig_kwargs) -> None:
    """A matplotlib figure rendered in memory, then written atomically (PNG unless `path` says
    otherwise)."""
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **savefig_kwargs)
    write_bytes_atomic(path, buf.getvalue())


def files_of(path: Path) -> list[Path]:
    """The file itself, or every file of a package folder (.mlpackage) in a stable order."""
    path = Path(path)
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def sha256_file(path: Path) -> str:
    """sha256 of a file; of a folder, over each file's relative path and bytes in order."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in files_of(path):
        if file != path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    """Bytes of a file, or of every file in a package folder."""
    return sum(f.stat().st_size for f in files_of(path))


def remove_path(path: Path) -> None:
    """Remove a file or a package folder (.mlpackage) if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def error_line(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` (at most `limit` characters of it)."""
    first = (str(exc).strip().splitlines() or [""])[0][:limit]
    return f"{type(exc).__name__}: {first}"
