"""Artifact sizes (download, Huffman-coded weights), sparse TFLite weights, XNNPACK's sparse rules.

Hand-made arrays for the size arithmetic; one tiny MobileUNet (alpha 0.25, 64 px) with 75 %
of every kernel exactly zero, converted for real to TFLite (float32 sparse and dense, float16,
dynamic) and ONNX, for what the artifacts keep; tiny Keras graphs for the XNNPACK rules.
"""

import heapq
import json
import math

import keras
import numpy as np
import pytest

from zoo.export import FORMATS, ExportContext, parse_options
from zoo.export import tflite_convert as tflite_convert_module
from zoo.export.manifest import artifact_entry, report_table, write_manifest
from zoo.export.runtimes.litert import LiteRTRunner
from zoo.export.tflite_convert import read_weights, sparse_kernels
from zoo.export.validate import reference, validate
from zoo.export.weight_size import (
    compressed_sizes,
    download_bytes,
    huffman_bits,
    huffman_bytes,
    size_report,
    tensor_huffman,
    weight_figures,
)
from zoo.export.xnnpack_sparse import check


def pairwise_huffman_bits(counts):
    """Huffman's algorithm one pair at a time: the reference for the grouped version."""
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def test_huffman_size_of_hand_made_arrays():
    # Counts 4, 2, 1, 1 -> code lengths 1, 2, 3, 3: 4 + 4 + 3 + 3 = 14 bits; codebook 4 x 8.
    a = np.array([0, 0, 0, 0, 1, 1, 2, 3], np.int8)
    assert tensor_huffman(a) == {"values": 8, "distinct": 4, "bit_width": 8, "stream_bits": 14,
                                 "codebook_bits": 32}
    # One distinct value: 1 bit per value; codebook one float32.
    b = np.full((3,), 5.0, np.float32)
    assert tensor_huffman(b)["stream_bits"] == 3 and tensor_huffman(b)["codebook_bits"] == 32
    assert huffman_bytes({"a": a, "b": b}) == math.ceil((14 + 32 + 3 + 32) / 8) == 11
    # Values as stored: -0.0 and 0.0 are two symbols of a float16 tensor (2 x 16-bit codebook).
    c = np.array([0.0, -0.0, 0.0, 0.0], np.float16)
    assert tensor_huffman(c)["distinct"] == 2 and tensor_huffman(c)["stream_bits"] == 4
    assert tensor_huffman(c)["codebook_bits"] == 32
    figures = weight_figures([a, b])
    assert figures["tensors"] == 2 and figures["values"] == 11
    assert figures["stored_bytes"] == 8 + 12 and figures["huffman_bytes"] == 11
    assert figures["zero_values"] == 4
    assert huffman_bytes([]) == 0


def test_grouped_huffman_equals_pairwise_huffman():
    rng = np.random.default_rng(0)
    for _ in range(500):
        counts = rng.integers(1, int(rng.integers(2, 300)), int(rng.integers(1, 80)))
        assert huffman_bits(counts) == pairwise_huffman_bits(counts), counts
    assert huffman_bits([7]) == 7 and huffman_bits([]) == 0


def test_kernel_of_16_distinct_values_codes_to_about_4_bits():
    rng = np.random.default_rng(1)
    centroids = np.sort(rng.normal(size=16)).astype(np.float32)
    kernel = centroids[rng.integers(0, 16, (3, 3, 64, 64))]  # 36864 weights, as clustered
    figures = tensor_huffman(kernel)
    assert figures["distinct"] == 16
    per_weight = (figures["stream_bits"] + figures["codebook_bits"]) / kernel.size
    assert 3.98 < figures["stream_bits"] / kernel.size <= 4.0
    assert per_weight < 4.02  # the codebook (16 x 32 bits) is small beside 36864 weights
    assert huffman_bytes([kernel]) < kernel.nbytes / 7.9  # float32 -> ~4 bits
    # A skewed use of the 16 values (most weights near zero) codes below 4 bits.
    skewed = centroids[np.minimum(rng.geometric(0.35, kernel.shape) - 1, 15)]
    assert tensor_huffman(skewed)["stream_bits"] / kernel.size < 3.2


def test_download_size_of_a_file_with_many_zeros(tmp_path):
    rng = np.random.default_rng(2)
    weights = rng.normal(size=250_000).astype(np.float32)
    weights[rng.random(weights.size) < 0.9] = 0.0
    sparse, dense = tmp_path / "sparse.bin", tmp_path / "dense.bin"
    sparse.write_bytes(weights.tobytes())
    dense.write_bytes(rng.normal(size=250_000).astype(np.float32).tobytes())
    raw = sparse.stat().st_size
    assert download_bytes(sparse) < 0.25 * raw
    assert download_bytes(dense) > 0.85 * raw  # random float32 barely compresses
    # A package folder: a deterministic tar (names, not times or owners, count), gzipped.
    folder = tmp_path / "model.mlpackage"
    (folder / "Data").mkdir(parents=True)
    (folder / "Data" / "weights.bin").write_bytes(weights.tobytes())
    (folder / "Manifest.json").write_text("{}")
    first = compressed_sizes(folder)
    (folder / "Manifest.json").touch()
    assert compressed_sizes(folder) == first and "gzip-9" in first
    assert first["gzip-9"] < 0.25 * raw
    with pytest.raises(FileNotFoundError):
        download_bytes(tmp_path / "missing.tflite")


# --- a pruned tiny model, converted for real ---------------------------------------------


def prune(model, sparsity: float = 0.75) -> None:
    """Zero the smallest `sparsity` of every conv kernel, as magnitude pruning leaves them."""
    for variable in model.weights:
        if len(variable.shape) == 4:
            w = variable.numpy()
            w[np.abs(w) <= np.quantile(np.abs(w), sparsity)] = 0.0
            variable.assign(w)


def zero_counts(arrays) -> list[tuple[int, int]]:
    """Sorted (size, zeros) of the rank-4 tensors holding zeros: comparable across layouts
    (HWIO, OHWI, OIHW) and with BatchNorm scales left beside the kernels (tf2onnx)."""
    counts = ((a.size, int(np.count_nonzero(a == 0))) for a in arrays if a.ndim == 4)
    return sorted(c for c in counts if c[1])


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """(model, context, reference) of a MobileUNet 0.25 at 64 px with 75 % zero kernels; the
    reference's masks are Keras' own predictions (only agreement with Keras matters here)."""
    import zoo

    model = zoo.build_model("mobileunet", alpha=0.25, input_size=64, num_classes=2)
    rng = np.random.default_rng(3)
    for variable in model.weights:  # non-trivial BatchNorm, folded into the kernels
        if "moving_variance" in variable.path or "gamma" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))
    prune(model)
    images = rng.integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    masks = np.asarray(model(images.astype(np.float32))).argmax(-1).astype(np.uint8)
    ref = reference(model, images, masks, 2, None)
    context = ExportContext(run_id="pruned", arch="mobileunet", alpha=0.25, input_size=(64, 64),
                            class_names=["background", "square"],
                            load_calibration=lambda n: images[:n], threads=1,
                            scratch=tmp_path_factory.mktemp("pruned-scratch"))
    return model, context, ref


@pytest.fixture(scope="module")
def converted(pruned, tmp_path_factory):
    """name -> (artifact, validation result) of the pruned model in tflite (sparse, and dense
    for comparison), tflite-fp16, tflite-dynamic and onnx."""
    model, context, ref = pruned
    folder = tmp_path_factory.mktemp("pruned-artifacts")
    out = {}
    for name in ("tflite", "tflite-fp16", "tflite-dynamic", "onnx"):
        fmt = FORMATS.get(name)
        artifact = fmt.convert(model, folder / f"model{fmt.suffix}", parse_options(fmt, {}),
                               context)
        out[name] = (artifact, validate(artifact, ref, fmt.tolerance, threads=1))
    fmt = FORMATS.get("tflite")
    saved = tflite_convert_module.SPARSE_WEIGHTS
    tflite_convert_module.SPARSE_WEIGHTS = ()  # the same conversion without the sparse pass
    try:
        dense = fmt.convert(model, folder / "dense.tflite", parse_options(fmt, {}), context)
    finally:
        tflite_convert_module.SPARSE_WEIGHTS = saved
    out["dense"] = (dense, validate(dense, ref, fmt.tolerance, threads=1))
    return out


def test_sparse_kernels_are_decided_from_the_weights(pruned):
    model = pruned[0]
    kernels = [v for v in model.weights if len(v.shape) in (2, 4)]
    assert len(sparse_kernels(model)) == len(kernels) > 30
    assert sparse_kernels(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])) == []


def test_tflite_keeps_pruned_zeros_stored_sparse_and_lossless(pruned, converted):
    model = pruned[0]
    artifact, result = converted["tflite"]
    dense, dense_result = converted["dense"]
    facts = artifact.details["sparse_weights"]
    # Every kernel (conv, depthwise, the decoder's 1x1 + depth-to-space) is stored sparse.
    assert facts["converter_sparsity"] and facts["sparse_tensors"] == facts["weight_tensors"]
    assert facts["weight_tensors"] == len([v for v in model.weights if len(v.shape) == 4])
    assert facts["densify_ops"] == facts["sparse_tensors"]
    assert dense.details["sparse_weights"]["sparse_tensors"] == 0
    assert "DENSIFY" in artifact.ops and "DENSIFY" not in dense.ops
    # The zeros are read back where Keras has them (BatchNorm folding scales, never fills).
    weights = read_weights(artifact.path)
    kernels = [v.numpy() for v in model.weights if len(v.shape) == 4]
    assert zero_counts(weights.values()) == zero_counts(kernels)
    assert len(zero_counts(kernels)) == len(kernels)
    dense_weights = read_weights(dense.path)
    assert sorted(a.tobytes() for a in weights.values()) == sorted(
        a.tobytes() for a in dense_weights.values())
    # Lossless: the usual float32 gate, and the very outputs of the dense file.
    assert result.passed and dense_result.passed, (result.reason, dense_result.reason)
    assert result.max_abs_logit_diff < 1e-4
    image = pruned[2].images[:1]
    assert np.array_equal(LiteRTRunner(artifact.path).run(image),
                          LiteRTRunner(dense.path).run(image))
    # XNNPACK still takes the whole graph (it unpacks the DENSIFY ops at load).
    assert artifact.details["xnnpack_partitions"] == 1
    assert artifact.details["outside_delegate"] == {}
    # 3x smaller on disk; the gzip download is no larger than the dense file's.
    size, dense_size = artifact.path.stat().st_size, dense.path.stat().st_size
    assert size < 0.45 * dense_size
    assert download_bytes(artifact.path) <= download_bytes(dense.path)


def test_float16_is_sparse_and_dynamic_stays_dense_and_loads(converted):
    fp16, result = converted["tflite-fp16"]
    facts = fp16.details["sparse_weights"]
    assert facts["sparse_tensors"] == facts["weight_tensors"] > 0
    # fp16 rounding only (an untrained model's near-ties decide its few flipped pixels).
    assert result.status != "could not run" and result.agreement_pct > 99.0, result.reason
    assert {a.dtype for a in read_weights(fp16.path).values() if a.ndim == 4} == {
        np.dtype(np.float16)}
    assert fp16.details["xnnpack_sparse"]["sparse_weights"]  # DENSIFY -> DEQUANTIZE, unpacked
    # Sparse dynamic-range weights make XNNPACK fail to prepare the model: kept dense.
    dynamic, result = converted["tflite-dynamic"]
    facts = dynamic.details["sparse_weights"]
    assert facts["sparse_tensors"] == 0 and not facts["converter_sparsity"]
    assert result.status == "passed", result.reason


def test_xnnpack_sparse_verdict_of_the_unet(converted):
    verdict = converted["tflite"][0].details["xnnpack_sparse"]
    # 75 % zeros in the 1x1 convs is enough; the U-Net's graph is not.
    assert not verdict["meets"] and verdict["sparse_weights"] and verdict["float"]
    assert verdict["conv1x1_zeros"]["fraction"] >= 0.75
    assert "SAME padding at stride 2" in verdict["entry"]
    assert verdict["breaks_total"] > 0 and "ARM only" in verdict["summary"]
    assert not any(s["sparse"] for s in verdict["subgraphs"])
    dense = converted["dense"][0].details["xnnpack_sparse"]
    assert not dense["sparse_weights"] and "no DENSIFY" in dense["summary"]


def test_onnx_read_weights_returns_the_initializers(pruned, converted):
    import onnx
    from onnx import numpy_helper

    artifact, result = converted["onnx"]
    assert result.passed, result.reason
    weights = FORMATS.get("onnx").read_weights(artifact.path)
    proto = onnx.load(str(artifact.path))
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    kept = {n for n, a in initializers.items() if a.dtype != np.int64}
    assert set(weights) == kept and kept
    for name in kept:
        assert np.array_equal(weights[name], initializers[name]), name
    # ONNX keeps the pruned zeros (as zeros, in OIHW).
    model = pruned[0]
    assert zero_counts(weights.values()) == zero_counts(
        v.numpy() for v in model.weights if len(v.shape) == 4)


def test_manifest_and_report_carry_the_sizes(converted, tmp_path):
    artifact, result = converted["tflite"]
    entry = artifact_entry(artifact, artifact.path, result)
    assert entry["bytes"] == artifact.path.stat().st_size
    assert entry["download_bytes"] == download_bytes(artifact.path) < entry["bytes"]
    assert entry["compressed"]["gzip-9"] == entry["download_bytes"]
    weights = entry["weights"]
    assert entry["huffman_bytes"] == weights["huffman_bytes"]
    # 75 % zeros: the Huffman code spends about 1 bit on each zero.
    assert weights["huffman_bytes"] < 0.5 * weights["stored_bytes"]
    assert weights["zero_values"] > 0.7 * weights["values"]
    assert entry["details"]["xnnpack_sparse"]["summary"].startswith("no: ")
    # A format without the hook gets sizes but no Huffman figure.
    assert size_report(artifact.path, None)["huffman_bytes"] is None
    write_manifest(tmp_path, [entry], run={"run_id": "pruned"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifacts"][0]["download_bytes"] == entry["download_bytes"]
    report = (tmp_path / "report.md").read_text()
    assert "| download | weights (Huffman) |" in report and "Huffman-coded" in report
    assert "weight tensors stored sparse (EXPERIMENTAL_SPARSITY)" in report
    # An entry listed before sizes existed still reports.
    old = {k: v for k, v in entry.items()
           if k not in ("download_bytes", "compressed", "weights", "huffman_bytes")}
    assert "| n/a | n/a |" in report_table({"artifacts": [old]})


# --- XNNPACK's sparse-inference rules on tiny graphs ---------------------------------------


def tiny_graph(zeros: float = 0.75, concat: bool = False, same: bool = False,
               mean: bool = True):
    """A graph in the shape of Fast Sparse ConvNets: 3x3 stride-2 conv (3 channels, padding 1
    each side), depthwise 3x3, two 1x1 convs, global mean; its 1x1 kernels `zeros` zero.
    Without `mean`, the mean feeds a squeeze-and-excitation gate and the gated feature map is
    the output (as LR-ASPP's attention branch)."""
    inp = keras.Input((32, 32, 3))
    if same:  # TensorFlow SAME at stride 2: pads (0, 1), which XNNPACK keeps as a flag
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    else:
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(
            keras.layers.ZeroPadding2D(1)(inp))
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = keras.layers.Conv2D(32, 1, activation="relu")(x)
    if concat:
        y = keras.layers.Concatenate()([y, x])
    y = keras.layers.Conv2D(32, 1, activation="relu")(y)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    if not mean:
        gate = keras.layers.Conv2D(32, 1, activation="sigmoid")(pooled)
        pooled = keras.layers.Multiply()([y, gate])
    model = keras.Model(inp, pooled)
    rng = np.random.default_rng(4)
    for variable in model.weights:
        if len(variable.shape) == 4 and tuple(variable.shape[:2]) == (1, 1):
            w = variable.numpy()
            w.reshape(-1)[rng.permutation(w.size)[:round(zeros * w.size)]] = 0.0
            variable.assign(w)
    return model


def test_xnnpack_sparse_rules_on_tiny_graphs():
    verdict = check(tiny_graph())
    assert verdict["meets"], verdict["summary"]
    assert verdict["summary"].startswith("yes: 5 ops from CONV_2D") and "MEAN" in \
        verdict["summary"]
    assert verdict["conv1x1_zeros"]["fraction"] == pytest.approx(0.75, abs=0.005)

    half = check(tiny_graph(zeros=0.5))
    assert not half["meets"] and "50.0 % zero (needs > 66.7 %)" in half["summary"]

    concat = check(tiny_graph(concat=True))
    assert not concat["meets"] and [b["op"] for b in concat["breaks"]] == ["CONCATENATION"]
    assert "CONCATENATION #5 breaks the NCHW subgraph" in concat["summary"]
    assert "CONCATENATION" in concat["subgraphs"][0]["why"]

    same = check(tiny_graph(same=True))
    assert not same["meets"] and "SAME padding at stride 2" in same["entry"]

    # The MEAN feeds the gate: the subgraph's last op is the MUL, which writes the (NHWC) graph
    # output itself.
    open_end = check(tiny_graph(mean=False))
    assert not open_end["meets"] and not open_end["breaks"]
    assert "MUL" in open_end["summary"]
    assert "a sparse subgraph ends with MEAN or DEPTH_TO_SPACE" in open_end["summary"]
