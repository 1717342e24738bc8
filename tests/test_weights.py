"""ImageNet weights, without network: weight files made here are put in a temporary Keras cache
under the names Keras uses and registered under test hashes; every download is a fake."""

import hashlib
import shutil
import urllib.error
import warnings

import h5py
import keras
import numpy as np
import pytest
import yaml
from keras.src.applications import mobilenet_v3 as keras_mobilenet_v3
from keras.src.backend import config as keras_config
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from zoo import weights as zoo_weights
from zoo.backbones import BACKBONES, build_backbone
from zoo.cli import run
from zoo.errors import ConfigError
from zoo.train.cli import train_command

V1_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"

# keras.applications constructor and the preprocessing its ImageNet weights expect.
KERAS_APPS = {
    "mobilenet_v1": (keras.applications.MobileNet, keras.applications.mobilenet.preprocess_input),
    "mobilenet_v2": (keras.applications.MobileNetV2,
                     keras.applications.mobilenet_v2.preprocess_input),
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large,
                           keras.applications.mobilenet_v3.preprocess_input),
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small,
                           keras.applications.mobilenet_v3.preprocess_input),
}
PUBLISHED = [name for name in BACKBONES.list() if BACKBONES.get(name).imagenet is not None]


class NetworkAccess(BaseException):
    """Raised by the fake `urlretrieve`: not an Exception, so no error handler can swallow it."""


@pytest.fixture(autouse=True)
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache for the zoo and for keras.applications, and no network."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))  # Keras reads it at import

    def no_network(url, *args, **kwargs):
        raise NetworkAccess(url)

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return home


def test_published_backbones_are_the_keras_applications_ones():
    assert set(PUBLISHED) == set(KERAS_APPS)
    assert BACKBONES.get("mobilenet_edgetpu").imagenet is None


def smallest(name):
    """(alpha, input size, options, file name) of the smallest published combination."""
    table = BACKBONES.get(name).imagenet
    key = min(table.files)
    alpha, resolution, *variant = key
    # v3 files are 224 px only: any input size loads them, so build small.
    size = resolution if resolution <= 128 else 96
    return alpha, size, dict(zip(table.options, variant, strict=True)), table.files[key]


def write_published_file(name, alpha, size, options, path):
    """The keras.applications network (include_top=False) with weights drawn here, saved in the
    legacy HDF5 layout of Keras' published files; returns the network."""
    keras.utils.set_random_seed(1)
    app = KERAS_APPS[name][0](input_shape=(size, size, 3), alpha=alpha, include_top=False,
                              weights=None, **options)
    rng = np.random.default_rng(1)
    for layer in app.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.uniform(-0.2, 0.2, channels),
                               rng.uniform(-0.2, 0.2, channels), rng.uniform(0.5, 1.5, channels)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, app)
    return app


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_weights(backbone, app):
    with_weights = [layer for layer in app.layers if layer.weights]
    assert len(with_weights) == len([layer for layer in backbone.layers if layer.weights])
    for layer in with_weights:
        ours = backbone.get_layer(layer.name).get_weights()
        for theirs, mine in zip(layer.get_weights(), ours, strict=True):
            np.testing.assert_array_equal(mine, theirs, err_msg=layer.name)


@pytest.mark.parametrize("name", PUBLISHED)
def test_imagenet_loads_the_published_file_into_the_backbone_layers(name, keras_home,
                                                                    monkeypatch):
    alpha, size, options, file_name = smallest(name)
    path = keras_home / "models" / file_name
    app = write_published_file(name, alpha, size, options, path)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, file_name, sha256(path))

    random = build_backbone(name, size, alpha, **options)
    with pytest.raises(AssertionError):  # the check below can fail: random weights differ
        assert_same_weights(random, app)
    backbone = build_backbone(name, size, alpha, weights="imagenet", **options)
    assert_same_weights(backbone, app)


@pytest.mark.parametrize("name", PUBLISHED)
def test_keras_applications_loads_the_same_file_and_sees_the_same_inputs(name, keras_home,
                                                                         monkeypatch):
    """keras.applications(weights="imagenet") finds the file under the name the zoo used (any
    other name would try a download), and the zoo's in-graph scaling of raw RGB gives what
    Keras' own preprocess_input gives: the weights see the inputs they were trained on."""
    alpha, size, options, file_name = smallest(name)
    path = keras_home / "models" / file_name
    write_published_file(name, alpha, size, options, path)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, file_name, sha256(path))
    if file_name.startswith("weights_mobilenet_v3_"):  # Keras checks these against its md5
        model = file_name.removeprefix("weights_mobilenet_v3_").removesuffix("_no_top_v2.h5")
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        monkeypatch.setitem(keras_mobilenet_v3.WEIGHTS_HASHES, model,
                            (keras_mobilenet_v3.WEIGHTS_HASHES[model][0], md5))

    backbone = build_backbone(name, size, alpha, weights="imagenet", **options)
    constructor, preprocess_input = KERAS_APPS[name]
    with warnings.catch_warnings():  # v3 at 96 px: "Weights for input shape (224, 224) ..."
        warnings.simplefilter("ignore")
        app = constructor(input_shape=(size, size, 3), alpha=alpha, include_top=False,
                          weights="imagenet", **options)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    ours = backbone(images)["P5"].numpy()
    theirs = app(preprocess_input(images.copy())).numpy()
    scale = np.abs(theirs).max()
    assert scale > 0
    np.testing.assert_allclose(ours / scale, theirs / scale, atol=1e-4)


@pytest.mark.slow
def test_every_published_file_name_is_the_one_keras_applications_asks_for(monkeypatch):
    """For each backbone: every alpha at its smallest resolution and the smallest alpha at every
    resolution (building every combination would take a minute)."""

    class Asked(BaseException):
        pass

    def asked(fname, origin, **kwargs):
        raise Asked(fname, origin)

    monkeypatch.setattr(file_utils, "get_file", asked)
    for name, (constructor, _) in KERAS_APPS.items():
        table = BACKBONES.get(name).imagenet
        lowest = min(key[0] for key in table.files)
        for key, file_name in table.files.items():
            alpha, resolution, *variant = key
            if alpha != lowest and resolution != min(k[1] for k in table.files if k[0] == alpha):
                continue
            options = dict(zip(table.options, variant, strict=True))
            assert table.file_for(alpha, (resolution, resolution), **options) == file_name
            keras.backend.clear_session(free_memory=False)  # names only: no full gc each time
            size = resolution if "v3" not in name else 32  # v3 always loads its 224 px file
            with pytest.raises(Asked) as got, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                constructor(input_shape=(size, size, 3), alpha=alpha, include_top=False,
                            weights="imagenet", **options)
            assert got.value.args == (file_name, table.url + file_name), key


@pytest.mark.parametrize(
    ("name", "alpha", "size", "options", "expected"),
    [
        ("mobilenet_v1", 0.5, (160, 160), {}, "mobilenet_5_0_160_tf_no_top.h5"),
        # Not square, or no file trained at that size: the 224 px file, as keras.applications.
        ("mobilenet_v1", 0.5, (224, 288), {}, "mobilenet_5_0_224_tf_no_top.h5"),
        ("mobilenet_v1", 0.25, (96, 96), {}, "mobilenet_2_5_224_tf_no_top.h5"),
        ("mobilenet_v2", 0.35, (96, 96), {},
         "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"),
        ("mobilenet_v2", 1.3, (96, 96), {},  # TF-slim released 1.3 and 1.4 at 224 px only
         "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_224_no_top.h5"),
        ("mobilenet_v3_large", 1.0, (512, 512), {"minimalistic": True},
         "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5"),
        ("mobilenet_v3_small", 0.75, (96, 128), {"minimalistic": False},
         "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"),
        ("mobilenet_v2", 0.6, (96, 96), {}, None),
        ("mobilenet_v3_small", 0.75, (224, 224), {"minimalistic": True}, None),
    ],
)
def test_file_for_alpha_size_and_options(name, alpha, size, options, expected):
    assert BACKBONES.get(name).imagenet.file_for(alpha, size, **options) == expected


def one_line_error(match, **kwargs):
    with pytest.raises(ConfigError, match=match) as err:
        build_backbone(**kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_file_without_download_names_the_file_and_the_folder(keras_home):
    message = one_line_error("not in Keras' cache", name="mobilenet_v1", input_size=128,
                             alpha=0.25, weights="imagenet")
    assert message == (
        f"ImageNet weights mobilenet_2_5_128_tf_no_top.h5 are not in Keras' cache "
        f"{keras_home / 'models'}: pass --download-weights to fetch them from "
        f"{V1_URL}mobilenet_2_5_128_tf_no_top.h5, or put the file there")
    assert list(keras_home.iterdir()) == []


def test_a_file_that_fails_its_hash_is_refused(keras_home, monkeypatch):
    path = keras_home / "models" / "mobilenet_2_5_128_tf_no_top.h5"
    write_published_file("mobilenet_v1", 0.25, 128, {}, path)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, path.name, "0" * 64)
    before = path.read_bytes()
    one_line_error(f"{path} does not match the hash Keras publishes for it \\(0{{64}}\\)",
                   name="mobilenet_v1", input_size=128, alpha=0.25, weights="imagenet")
    assert path.read_bytes() == before
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, path.name, sha256(path))
    build_backbone("mobilenet_v1", 128, 0.25, weights="imagenet")


def test_mobilenet_v3_files_are_checked_against_keras_own_md5(keras_home):
    """No test hash here: the hash is the one in keras/src/applications/mobilenet_v3.py."""
    name = "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"
    assert zoo_weights.WEIGHT_HASHES[name] == keras_mobilenet_v3.WEIGHTS_HASHES[
        "small_224_0.75_float"][1]
    write_published_file("mobilenet_v3_small", 0.75, 96, {}, keras_home / "models" / name)
    one_line_error("does not match the hash Keras publishes", name="mobilenet_v3_small",
                   input_size=96, alpha=0.75, weights="imagenet")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mobilenet_edgetpu", "alpha": 0.5},
         "no published ImageNet weights for mobilenet_edgetpu; Keras publishes them for "
         "mobilenet_v1 (alpha 0.25, 0.5, 0.75, 1.0 at 128, 160, 192, 224 px), mobilenet_v2 "
         "(alpha 0.35, 0.5, 0.75, 1.0 at 96, 128, 160, 192, 224 px and alpha 1.3, 1.4 at 224 "
         "px), mobilenet_v3_large (alpha 0.75, 1.0 at 224 px; minimalistic=True: alpha 1.0 at "
         "224 px), mobilenet_v3_small (alpha 0.75, 1.0 at 224 px; minimalistic=True: alpha 1.0 "
         "at 224 px)"),
        ({"name": "mobilenet_v2", "alpha": 0.6},
         "no published ImageNet weights for mobilenet_v2 at alpha 0.6; published: alpha 0.35, "
         "0.5, 0.75, 1.0 at 96, 128, 160, 192, 224 px and alpha 1.3, 1.4 at 224 px"),
        ({"name": "mobilenet_v3_large", "alpha": 0.75, "minimalistic": True},
         "no published ImageNet weights for mobilenet_v3_large at alpha 0.75, minimalistic=True; "
         "published: alpha 0.75, 1.0 at 224 px; minimalistic=True: alpha 1.0 at 224 px"),
        ({"name": "mobilenet_v1", "alpha": 0.3},  # refused as an alpha before any file
         "alpha 0.3 is not supported by backbone 'mobilenet_v1'; allowed: 0.25, 0.5, 0.75, 1.0"),
    ],
)
def test_unpublished_combination_lists_the_published_ones(kwargs, message, keras_home):
    with pytest.raises(ConfigError) as err:
        build_backbone(input_size=96, weights="imagenet", download_weights=True, **kwargs)
    assert str(err.value) == message
    assert list(keras_home.iterdir()) == []


def serve(monkeypatch, files):
    """A fake `urlretrieve` serving local files by URL; returns the list of URLs fetched."""
    fetched = []

    def urlretrieve(url, target, reporthook=None):
        fetched.append(url)
        if url not in files:
            raise urllib.error.URLError("no network here")
        shutil.copyfile(files[url], target)

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)
    return fetched


def test_download_weights_fetches_with_keras_get_file_and_checks_the_hash(
        keras_home, tmp_path, monkeypatch):
    served = tmp_path / "server" / "mobilenet_2_5_128_tf_no_top.h5"
    app = write_published_file("mobilenet_v1", 0.25, 128, {}, served)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, served.name, sha256(served))
    url = V1_URL + served.name
    fetched = serve(monkeypatch, {url: served})

    backbone = build_backbone("mobilenet_v1", 128, 0.25, weights="imagenet",
                              download_weights=True)
    assert fetched == [url]
    assert (keras_home / "models" / served.name).read_bytes() == served.read_bytes()
    assert_same_weights(backbone, app)
    # Cached and matching: no second fetch, with or without the flag.
    build_backbone("mobilenet_v1", 128, 0.25, weights="imagenet", download_weights=True)
    build_backbone("mobilenet_v1", 128, 0.25, weights="imagenet")
    assert fetched == [url]
    # A cached file that fails the hash is fetched again (Keras' get_file).
    (keras_home / "models" / served.name).write_bytes(b"truncated")
    build_backbone("mobilenet_v1", 128, 0.25, weights="imagenet", download_weights=True)
    assert fetched == [url, url]
    assert sha256(keras_home / "models" / served.name) == sha256(served)


def test_download_of_a_file_that_fails_the_hash_is_a_one_line_error(tmp_path, monkeypatch):
    served = tmp_path / "server" / "mobilenet_2_5_128_tf_no_top.h5"
    write_published_file("mobilenet_v1", 0.25, 128, {}, served)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, served.name, "0" * 64)
    serve(monkeypatch, {V1_URL + served.name: served})
    one_line_error("could not download ImageNet weights mobilenet_2_5_128_tf_no_top.h5 .*"
                   "hash does not match", name="mobilenet_v1", input_size=128, alpha=0.25,
                   weights="imagenet", download_weights=True)


def test_download_offline_names_the_file_and_the_folder(keras_home, monkeypatch):
    fetched = serve(monkeypatch, {})
    message = one_line_error("could not download", name="mobilenet_v2", input_size=96,
                             alpha=0.35, weights="imagenet", download_weights=True)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    assert name in message and message.endswith(f"put the file in {keras_home / 'models'}")
    assert len(fetched) == 1 and fetched[0].endswith("/mobilenet_v2/" + name)
    assert not (keras_home / "models" / name).exists()


def test_download_weights_needs_imagenet():
    one_line_error("needs weights='imagenet'", name="mobilenet_v2", input_size=96, alpha=0.35,
                   download_weights=True)


def train_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr("sys.argv", ["train.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        run(train_command, name="train.py")
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_train_without_the_cached_file_is_one_line_exit_2_and_no_run_folder(
        tiny_data, tmp_path, keras_home, monkeypatch, capsys):
    code, err = train_cli(monkeypatch, capsys, "--alpha", "0.25", "--input-size", "64",
                          "--weights", "imagenet", "--data", str(tiny_data),
                          "--checkpoints", str(tmp_path / "ck"))
    assert code == 2
    assert err[-1] == (f"error: ImageNet weights mobilenet_2_5_224_tf_no_top.h5 are not in Keras' "
                       f"cache {keras_home / 'models'}: pass --download-weights to fetch them "
                       f"from {V1_URL}mobilenet_2_5_224_tf_no_top.h5, or put the file there")
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


@pytest.mark.parametrize("args", [["--download-weights"],
                                  ["--download-weights", "--weights", "some.h5"],
                                  ["--download-weights", "--weights", "imagenet", "--resume", "x"]])
def test_download_weights_flag_needs_weights_imagenet_of_a_new_run(
        args, tmp_path, monkeypatch, capsys):
    (tmp_path / "some.h5").write_bytes(b"")  # a local file exists: only the flag is wrong
    args = [str(tmp_path / a) if a == "some.h5" else a for a in args]
    code, err = train_cli(monkeypatch, capsys, *args, "--checkpoints", str(tmp_path / "ck"))
    assert code == 2
    assert err[-1] == ("error: --download-weights fetches the ImageNet weights a new run starts "
                       "from: it needs --weights imagenet, and no --resume")
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_train_download_weights_then_the_run_config_records_imagenet(
        tiny_data, tmp_path, keras_home, monkeypatch, capsys):
    served = tmp_path / "server" / "mobilenet_2_5_224_tf_no_top.h5"
    write_published_file("mobilenet_v1", 0.25, 224, {}, served)
    monkeypatch.setitem(zoo_weights.WEIGHT_HASHES, served.name, sha256(served))
    fetched = serve(monkeypatch, {V1_URL + served.name: served})
    monkeypatch.setattr("sys.argv", [
        "train.py", "--alpha", "0.25", "--input-size", "64", "--weights", "imagenet",
        "--download-weights", "--data", str(tiny_data), "--epochs", "1", "--batch-size", "4",
        "--precise-bn-images", "8", "--warmup-epochs", "0", "--checkpoints",
        str(tmp_path / "ck")])
    run(train_command, name="train.py")
    assert fetched == [V1_URL + served.name]
    (run_dir,) = (tmp_path / "ck").iterdir()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["weights"] == "imagenet"
