"""The two halves of a cut of the trained run, exported and validated as a pair: what split.json
lists, the ONNX server half's inputs in the transfer precision, the pair's labels against Keras,
checksums that refuse a tampered file, and bad arguments that write nothing (`zoo.split.halves`,
`split.py export`)."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import load_checkpoint, validation_data
from zoo.models import build_model
from zoo.split.cuts import candidate_cuts, device_model, find_cut, server_model
from zoo.split.halves import (
    DeviceHalf,
    PairRunner,
    ServerHalf,
    SplitSpecError,
    export_halves,
    pair_checksum,
    read_spec,
    server_proto,
    wires_of,
)

REPO = Path(__file__).resolve().parents[2]
CUT = "conv_pw_7_relu"  # in the encoder: the skip taps P1..P3 and the cut's own output cross
LAYERS = ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", CUT]
SHAPES = [[1, 32, 32, 16], [1, 16, 16, 32], [1, 8, 8, 64], [1, 4, 4, 128]]
ONNX_INT8, ONNX_UINT8, ONNX_FLOAT16 = 3, 2, 10  # onnx.TensorProto codes


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def exports(split_pairs):
    """The folder the session's pairs were exported into (tests/split/conftest.py)."""
    return split_pairs[0]


@pytest.fixture(scope="module")
def int8_pair(split_pairs):
    """(facts returned, folder) of the int8-transfer export at `CUT` (float device half,
    validated on 4 images, one thread): the session's pair, shared with test_client and
    test_experiment, read only."""
    root, pairs = split_pairs
    return pairs[CUT], root / CUT


@pytest.fixture(scope="module")
def keras_run(trained_run):
    """(the trained Keras model, 4 validation images uint8 (N, H, W, 3))."""
    _, run_dir = trained_run
    _, images, _ = validation_data(load_config(run_dir / "config.yaml"), 4)
    return load_checkpoint(run_dir / "best.keras"), images


def keras_labels(model, image):
    return np.asarray(model(image[None].astype(np.float32), training=False)).argmax(-1)


def test_an_int8_pair_passes_and_lists_its_tensors(int8_pair, exports):
    facts, folder = int8_pair
    spec = read_spec(folder)
    assert {k: v for k, v in json.loads(json.dumps(facts)).items() if k != "folder"} == spec
    assert facts["folder"] == str(folder)
    assert (spec["cut"], spec["cut_index"], spec["op"]) == (CUT, 16, "CONV_2D 1x1")
    assert (spec["transfer"], spec["device"], spec["arch"]) == ("int8", "tflite", "mobileunet")
    tensors = spec["tensors"]
    assert [t["name"] for t in tensors] == ["cut_0", "cut_1", "cut_2", "cut_3"]
    assert [t["layer"] for t in tensors] == LAYERS
    assert [t["shape"] for t in tensors] == SHAPES
    for t in tensors:
        assert (t["dtype"], t["datatype"]) == ("int8", "INT8")
        assert isinstance(t["scale"], float) and t["scale"] > 0
        assert t["zero_point"] == -128  # ReLU outputs: the range starts at 0
    assert spec["transfer_bytes"] == 16384 + 8192 + 4096 + 2048
    assert spec["result_bytes"] == 64 * 64
    assert spec["output"] == {"name": "labels", "shape": [1, 64, 64], "dtype": "uint8",
                              "datatype": "UINT8"}
    v = spec["validation"]
    assert v["passed"] and v["status"] == "passed" and v["images"] == 4
    assert v["miou_drop_pt"] <= 0.5
    files = {p.name for p in folder.iterdir()}
    assert {"device.tflite", "server.onnx", "split.json"} <= files
    assert set(spec["sha256"]) == files - {"split.json"}
    for name, digest in spec["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert spec["pair_sha256"] == pair_checksum(spec["sha256"])
    assert spec["model_name"] == f"mobileunet-{CUT}-int8-{spec['pair_sha256'][:10]}"
    leftovers = [p.name for p in exports.iterdir() if p.name.startswith(".") or "FAILED" in p.name]
    assert leftovers == []


def test_the_server_half_takes_the_tensors_as_sent(int8_pair):
    import onnx

    _, folder = int8_pair
    spec = read_spec(folder)
    proto = onnx.load(str(folder / "server.onnx"))

    def described(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    assert described(proto.graph.input) == [(f"cut_{i}", ONNX_INT8, shape)
                                            for i, shape in enumerate(SHAPES)]
    assert described(proto.graph.output) == [("labels", ONNX_UINT8, [1, 64, 64])]
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    dequantize = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert [n.input[0] for n in dequantize] == ["cut_0", "cut_1", "cut_2", "cut_3"]
    for node, tensor in zip(dequantize, spec["tensors"], strict=True):
        assert float(constants[node.input[1]]) == pytest.approx(tensor["scale"], rel=1e-6)
        assert constants[node.input[2]].dtype == np.int8
        assert int(constants[node.input[2]]) == tensor["zero_point"]


def test_the_device_half_sends_the_keras_tensors_encoded(int8_pair, keras_run):
    _, folder = int8_pair
    model, images = keras_run
    device = DeviceHalf(folder)
    front = device_model(model, find_cut(candidate_cuts(model), CUT))
    for image in images[:2]:
        expected = [np.asarray(t) for t in front(image[None].astype(np.float32), training=False)]
        outputs = device.outputs(image[None])
        assert [o.shape for o in outputs] == [tuple(s) for s in SHAPES]
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3)
        sent = device.run(image[None])
        assert list(sent) == ["cut_0", "cut_1", "cut_2", "cut_3"]
        for wire, (name, q), value in zip(device.spec["tensors"], sent.items(), outputs,
                                          strict=True):
            assert q.dtype == np.int8 and q.shape == tuple(wire["shape"]), name
            decoded = (q.astype(np.float32) - wire["zero_point"]) * wire["scale"]
            inside = value <= wire["scale"] * (127 - wire["zero_point"])  # not clipped
            assert inside.mean() > 0.9
            assert np.abs(decoded - value)[inside].max() <= wire["scale"] / 2 + 1e-6


def test_the_pair_labels_are_the_keras_labels(int8_pair, keras_run):
    _, folder = int8_pair
    model, images = keras_run
    pair, device, server = PairRunner(folder), DeviceHalf(folder), ServerHalf(folder)
    agree = []
    for image in images:
        labels = pair.run(image[None])
        assert labels.shape == (1, 64, 64) and labels.dtype == np.uint8
        np.testing.assert_array_equal(server.run(device.run(image[None])), labels)
        agree.append((labels == keras_labels(model, image)).mean())
    assert np.mean(agree) >= 0.95


@pytest.mark.parametrize("name", ["device.tflite", "server.onnx"])
def test_a_tampered_file_is_refused(int8_pair, tmp_path, name):
    _, folder = int8_pair
    copy = shutil.copytree(folder, tmp_path / "pair")
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    message = (f"{copy / name}: sha256 does not match {copy / 'split.json'} (the files of two "
               "different exports?)")
    for refuse in (read_spec, DeviceHalf, PairRunner):
        with pytest.raises(SplitSpecError) as info:
            refuse(copy)
        assert str(info.value) == message, refuse.__name__
    assert isinstance(info.value, ConfigError)


def test_a_missing_or_unreadable_spec_is_refused(int8_pair, tmp_path):
    _, folder = int8_pair
    copy = shutil.copytree(folder, tmp_path / "pair")
    (copy / "split.json").write_text("{not json")
    with pytest.raises(SplitSpecError, match=rf"^{re.escape(str(copy / 'split.json'))}: not "
                                             r"readable JSON \(.*\)$"):
        DeviceHalf(copy)
    (copy / "split.json").unlink()
    with pytest.raises(SplitSpecError, match=rf"^{re.escape(str(copy / 'split.json'))}: not "
                                             r"found \(a folder written by `split.py export`\)$"):
        read_spec(copy)


def test_an_existing_folder_is_not_overwritten(int8_pair, trained_run):
    _, run_dir = trained_run
    _, folder = int8_pair
    before = tree_digest(folder)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(folder))}: exists "
                                          r"\(--overwrite replaces it\)$"):
        export_halves(str(run_dir), CUT, transfer="int8", out=str(folder), val_images=4)
    assert tree_digest(folder) == before


@pytest.mark.parametrize("kwargs, message", [
    ({"cut": "conv_pw_7_rel"}, r"^--cut 'conv_pw_7_rel' is not a cut of this model \(47 cuts: "
                               r"`split.py plan` lists them\); did you mean conv_pw_7_relu"),
    ({"cut": None}, r"^--cut is required: a layer name `split.py plan` lists, or input / output$"),
    ({"cut": CUT, "transfer": "int4"},
     r"^--transfer must be one of float32, float16, int8, got 'int4'$"),
    ({"cut": CUT, "device": "gpu"}, r"^--device must be one of tflite, tflite-int8, got 'gpu'$"),
    ({"cut": CUT, "val_images": 0}, r"^--val-images"),
], ids=["cut", "no-cut", "transfer", "device", "val-images"])
def test_bad_arguments_are_one_line_and_write_nothing(trained_run, tmp_path, kwargs, message):
    _, run_dir = trained_run
    with pytest.raises(ConfigError, match=message) as info:
        export_halves(str(run_dir), out=str(tmp_path / "out"), **kwargs)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_cut_writes_nothing_into_the_run(trained_run, tmp_path):
    _, run_dir = trained_run
    run_copy = shutil.copytree(run_dir, tmp_path / run_dir.name,
                               ignore=shutil.ignore_patterns("split", "tensorboard", "last.keras"))
    before = tree_digest(run_copy)
    with pytest.raises(ConfigError, match="is not a cut"):
        export_halves(str(run_copy), "nope", transfer="int8")  # default out: <run>/split/...
    assert tree_digest(run_copy) == before and not (run_copy / "split").exists()


def test_split_py_export_with_a_bad_cut_exits_2(trained_run, tmp_path):
    _, run_dir = trained_run
    result = subprocess.run([sys.executable, "split.py", "export", "--run", str(run_dir), "--cut",
                             "conv_pw_7_rel", "--out", str(tmp_path / "out")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: --cut 'conv_pw_7_rel' is not a cut of this model (47 cuts: `split.py plan` "
        "lists them); did you mean conv_pw_7_relu, conv_pw_9_relu, conv_pw_8_relu?"]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return build_model("mobileunet", alpha=0.25, input_size=64, num_classes=3)


def test_wires_of_each_transfer(tiny_model):
    cuts = candidate_cuts(tiny_model)
    [frame] = wires_of(cuts[0], "int8")
    assert (frame.name, frame.dtype, frame.shape, frame.scale) == ("image", "uint8",
                                                                   (1, 64, 64, 3), None)
    cut = find_cut(cuts, CUT)
    half = wires_of(cut, "float16")
    assert [(w.name, w.layer, w.dtype, w.scale) for w in half] == [
        (f"cut_{i}", layer, "float16", None) for i, layer in enumerate(LAYERS)]
    assert half[0].encode(np.array([1.5, -2.0], np.float32)).dtype == np.float16
    ranges = [(-1.0, 3.0), (0.5, 2.0), (0.0, 0.0), (-4.0, -2.0)]
    int8 = wires_of(cut, "int8", ranges)
    assert [w.scale for w in int8] == pytest.approx([4 / 255, 2 / 255, 1.0, 4 / 255])
    assert [w.zero_point for w in int8] == [-64, -128, -128, 127]
    for wire, (low, high) in zip(int8, ranges, strict=True):
        low, high = min(low, 0.0), max(high, 0.0)
        x = np.linspace(low, high, 101, dtype=np.float32)
        q = wire.encode(x)
        assert q.dtype == np.int8
        assert wire.encode(np.zeros(1, np.float32))[0] == wire.zero_point  # 0 is exact
        decoded = (q.astype(np.float32) - wire.zero_point) * wire.scale
        assert np.abs(decoded - x).max() <= wire.scale / 2 + 1e-6
    assert wire.to_dict()["datatype"] == "INT8" and int8[0].to_dict()["shape"] == SHAPES[0]


def test_server_proto_of_a_float16_transfer(tiny_model):
    import onnxruntime as ort

    cut = find_cut(candidate_cuts(tiny_model), "unet_up4_fuse_pw_relu")  # a small server half
    wires = wires_of(cut, "float16")
    proto = server_proto(server_model(tiny_model, cut), wires)
    [given] = proto.graph.input
    assert (given.name, given.type.tensor_type.elem_type) == ("cut_0", ONNX_FLOAT16)
    assert [d.dim_value for d in given.type.tensor_type.shape.dim] == [1, 32, 32, 16]
    assert any(n.op_type == "Cast" and n.input[0] == "cut_0" for n in proto.graph.node)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
    sent = np.asarray(device_model(tiny_model, cut)(image, training=False))
    [labels] = session.run(["labels"], {"cut_0": wires[0].encode(sent)})
    assert labels.shape == (1, 64, 64) and labels.dtype == np.uint8
    expected = np.asarray(tiny_model(image, training=False)).argmax(-1)
    assert (labels == expected).mean() >= 0.99


def test_the_input_cut_sends_the_frame(tiny_model, tmp_path):
    """At ``input`` nothing runs on the device: the uint8 frame goes to a server half that
    takes UINT8 (a folder written here as export_halves writes it, without its conversions)."""
    import onnx

    cut = candidate_cuts(tiny_model)[0]
    wires = wires_of(cut, "float16")  # the frame is sent as uint8 whatever the precision
    proto = server_proto(server_model(tiny_model, cut), wires)
    [given] = proto.graph.input
    assert (given.name, given.type.tensor_type.elem_type) == ("image", ONNX_UINT8)
    assert [d.dim_value for d in given.type.tensor_type.shape.dim] == [1, 64, 64, 3]
    (tmp_path / "server.onnx").write_bytes(proto.SerializeToString())
    digest = hashlib.sha256((tmp_path / "server.onnx").read_bytes()).hexdigest()
    (tmp_path / "split.json").write_text(json.dumps({
        "cut": "input", "tensors": [w.to_dict() for w in wires],
        "sha256": {"server.onnx": digest}}))
    assert onnx.load(str(tmp_path / "server.onnx")).graph.output[0].name == "labels"
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    sent = DeviceHalf(tmp_path).run(images[:1])
    assert list(sent) == ["image"] and sent["image"].dtype == np.uint8
    np.testing.assert_array_equal(sent["image"], images[:1])
    pair = PairRunner(tmp_path)
    for image in images:
        assert (pair.run(image[None]) == keras_labels(tiny_model, image)).mean() >= 0.999
