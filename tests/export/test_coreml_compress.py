"""Core ML compressed weights: each compressed op decoded by the reference interpreter as
coremltools decodes it; a compressed run's kernels carried exactly (palettes of their own
values, sparse zeros, both on iOS 18); ``--compress int8|palettize:N|prune:S`` on the kernels
left dense, facing the validation gate, recorded in the manifest and report; `read_weights`;
bad settings."""

import logging

import keras
import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.export import FORMATS, ExportContext, parse_options
from zoo.export.coreml_compress import (
    Plan,
    describe_weights,
    exact_encoding,
    kernels,
    kmeans_1d,
    kmeans_lut,
)
from zoo.export.exporter import export
from zoo.export.formats.coreml import read_coreml_weights
from zoo.export.mil_reference import MilProgram

SIZE = (32, 32)
rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _quiet_coremltools():
    """coremltools warns for every const a pass skips (the small ones, by design)."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# ---------------------------------------------------------------------------- each op
def conv_program(target: str, precision: str = "fp32"):
    """An ML program of one 3x3 conv whose kernel is half exact zeros."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    weight = rng.normal(size=(32, 16, 3, 3)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.5] = 0

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, 8, 8))],
                opset_version=getattr(ct.target, target))
    def program(x):
        return mb.conv(x=x, weight=weight, pad_type="same")

    return ct.convert(program, convert_to="mlprogram",
                      minimum_deployment_target=getattr(ct.target, target),
                      compute_precision=getattr(ct.precision, "FLOAT16" if precision == "fp16"
                                                else "FLOAT32"))


def direct_program():
    """iOS 18 forms coremltools' passes only emit for other models: a vector palette (2
    values per entry) per block of output channels, int4 with offsets per block, and a vector
    palette over the non-zero entries only."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    uint4, int4, uint1, uint2 = (types.nptype_from_builtin(types.string_to_builtin(t))
                                 for t in ("uint4", "int4", "uint1", "uint2"))
    mask = rng.random((8, 8, 1, 1)) < 0.4

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 6, 6))],
                opset_version=ct.target.iOS18)
    def program(x):
        vector = mb.constexpr_lut_to_dense(
            indices=rng.integers(0, 16, (16, 4, 3, 3)).astype(uint4),
            lut=rng.normal(size=(2, 1, 1, 1, 16, 2)).astype(np.float16), vector_axis=1)
        x = mb.conv(x=mb.cast(x=x, dtype="fp16"), weight=vector)
        blocks = mb.constexpr_blockwise_shift_scale(
            data=rng.integers(-8, 8, (8, 16, 1, 1)).astype(int4),
            scale=rng.random((8, 4, 1, 1)).astype(np.float16),
            offset=rng.integers(-8, 8, (8, 4, 1, 1)).astype(int4))
        x = mb.conv(x=x, weight=blocks)
        sparse_mask, nonzero = mb.constexpr_lut_to_sparse(
            indices_mask=mask.astype(uint1),
            indices_nonzero_data=rng.integers(0, 4, int(mask.sum())).astype(uint2),
            lut=rng.normal(size=(1, 1, 1, 1, 4, 2)).astype(np.float16), vector_axis=0)
        sparse = mb.constexpr_sparse_to_dense(nonzero_data=nonzero, mask=sparse_mask)
        return mb.cast(x=mb.conv(x=x, weight=sparse), dtype="fp32")

    return ct.convert(program, convert_to="mlprogram",
                      minimum_deployment_target=ct.target.iOS18)


def compressed(case: str):
    """(program, the constexpr ops it must hold) for a case of `test_every_compressed_op`."""
    import coremltools.optimize.coreml as cto

    target, how = case.split("/")
    if how == "direct":
        return direct_program(), {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale",
                                  "constexpr_lut_to_sparse", "constexpr_sparse_to_dense"}
    model = conv_program(target, "fp16" if "fp16" in how else "fp32")

    def config(op_config):
        return cto.OptimizationConfig(global_config=op_config)

    uniform = cto.OpPalettizerConfig(mode="uniform", nbits=3 if target == "iOS18" else 4,
                                     weight_threshold=0)
    int8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
    zeros = cto.OpThresholdPrunerConfig(threshold=0.0, weight_threshold=0)
    dequantize = ("constexpr_blockwise_shift_scale" if target == "iOS18"
                  else "constexpr_affine_dequantize")
    if how.startswith("int8"):
        return cto.linear_quantize_weights(model, config(int8)), {dequantize}
    if how == "uint8":  # asymmetric: a zero point
        return cto.linear_quantize_weights(model, config(cto.OpLinearQuantizerConfig(
            mode="linear", dtype="uint8", weight_threshold=0))), {dequantize}
    if how == "int4-blocks":
        return cto.linear_quantize_weights(model, config(cto.OpLinearQuantizerConfig(
            mode="linear", dtype="int4", granularity="per_block", block_size=8,
            weight_threshold=0))), {dequantize}
    if how == "palette-groups":
        return cto.palettize_weights(model, config(cto.OpPalettizerConfig(
            mode="uniform", nbits=2, granularity="per_grouped_channel", group_size=8,
            weight_threshold=0))), {"constexpr_lut_to_dense"}
    if how in ("palette", "palette-fp16"):
        return cto.palettize_weights(model, config(uniform)), {"constexpr_lut_to_dense"}
    if how in ("sparse", "sparse-fp16"):
        return cto.prune_weights(model, config(cto.OpMagnitudePrunerConfig(
            target_sparsity=0.6, weight_threshold=0))), {"constexpr_sparse_to_dense"}
    pruned = cto.prune_weights(model, config(zeros))
    if how == "sparse+int8":
        return (cto.linear_quantize_weights(pruned, config(int8), joint_compression=True),
                {"constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense"})
    assert how == "sparse+palette"
    return (cto.palettize_weights(pruned, config(uniform), joint_compression=True),
            {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"})


@pytest.mark.parametrize("case", [
    "iOS16/int8", "iOS16/int8-fp16", "iOS16/uint8", "iOS16/palette", "iOS16/palette-fp16",
    "iOS16/sparse", "iOS16/sparse-fp16",
    "iOS18/int8", "iOS18/int4-blocks", "iOS18/palette", "iOS18/palette-groups",
    "iOS18/sparse", "iOS18/sparse+int8", "iOS18/sparse+palette", "iOS18/direct"])
def test_every_compressed_op_decodes_as_coremltools_does(case, tmp_path):
    """Each constexpr op of a saved program, decoded by the interpreter from what the file
    stores, equals coremltools' own decoding (`materialized_val_inference`) bit for bit and
    dtype for dtype; the program runs on the decoded weights (its output equals that of the
    same program with the weights decompressed by coremltools)."""
    import coremltools.optimize.coreml as cto

    model, expected_ops = compressed(case)
    model.save(str(tmp_path / "c.mlpackage"))
    program = MilProgram.load(tmp_path / "c.mlpackage")
    constexpr = [o for o in program.function.operations if o.op_type.startswith("constexpr_")]
    assert {o.op_type for o in constexpr} == expected_ops, case
    assert not program.unsupported()
    decoded = program.constants()
    for operation in constexpr:
        want = operation.materialized_val_inference()
        for var, value in zip(operation.outputs, want if isinstance(want, tuple) else (want,),
                              strict=True):
            got = decoded[var.name]
            assert got.dtype == np.asarray(value).dtype, (case, operation.op_type)
            np.testing.assert_array_equal(got, value, err_msg=f"{case} {operation.op_type}")

    cto.decompress_weights(model).save(str(tmp_path / "d.mlpackage"))
    dense = MilProgram.load(tmp_path / "d.mlpackage")
    assert not any(o.op_type.startswith("constexpr_") for o in dense.function.operations)
    shape = (1, 8, 6, 6) if case.endswith("direct") else (1, 16, 8, 8)
    x = {program.input_names[0]: rng.normal(size=shape).astype(np.float32)}
    np.testing.assert_array_equal(program.run(x)[program.output_names[0]],
                                  dense.run(x)[dense.output_names[0]])


def test_kmeans_palette_finds_clusters_and_keeps_few_values_exactly():
    values = np.sort(np.concatenate([rng.normal(c, 0.01, 300) for c in (-1.0, 0.2, 3.0)]))
    centroids, cluster = kmeans_1d(values, np.ones_like(values), 3)
    np.testing.assert_allclose(centroids, [-1.0, 0.2, 3.0], atol=0.01)
    assert (np.diff(cluster) >= 0).all() and len(set(cluster)) == 3
    weight = rng.normal(size=(8, 4, 3, 3)).astype(np.float16)
    lut, indices = kmeans_lut(16)(weight)
    assert lut.dtype == np.float16 and lut.shape == (16,) and indices.shape == (weight.size,)
    flat = weight.reshape(-1).astype(np.float32)
    grid = np.linspace(flat.min(), flat.max(), 16)
    uniform = grid[np.abs(flat[:, None] - grid).argmin(1)]
    # Lloyd's iterations from the linear grid only lower the squared error
    assert ((lut[indices] - flat) ** 2).mean() < 0.9 * ((uniform - flat) ** 2).mean()
    few = rng.choice(np.float32([-0.5, 0.25, 0.75]), (8, 8))
    lut, indices = kmeans_lut(4)(few)
    np.testing.assert_array_equal(lut[indices].reshape(few.shape), few)  # not re-clustered


def test_exact_encoding_picks_the_smallest_exact_form():
    shape = (64, 64, 1, 1)
    levels = rng.choice(np.linspace(-1, 1, 16).astype(np.float16), shape)
    assert exact_encoding(levels, "iOS16") == "palettized"
    pruned = rng.normal(size=shape).astype(np.float16) * (rng.random(shape) < 0.3)
    assert exact_encoding(pruned, "iOS16") == "sparse"
    assert exact_encoding(rng.normal(size=shape).astype(np.float16), "iOS16") == "dense"
    # Deep Compression's kernel: zero and 15 shared values, three quarters zeros.
    shared = np.r_[0, np.linspace(0.1, 1, 15)].astype(np.float16)
    both = rng.choice(shared, shape) * (rng.random(shape) < 0.25)
    assert exact_encoding(both, "iOS16") == "palettized"  # 4 bits < 1 + 0.25 * 16
    assert exact_encoding(both, "iOS18") == "palettized+sparse"  # 1 + 0.25 * 4 bits
    assert exact_encoding(both, "iOS15") == "dense"  # no compressed weights before iOS 16
    # 17 values (zero and 16 shared): a 6-bit palette, larger than sparse fp16 before iOS 18
    wide = np.r_[shared, np.float16(-1)][rng.integers(0, 17, shape)] * (rng.random(shape) < 0.25)
    assert len(np.unique(wide)) == 17 and exact_encoding(wide, "iOS16") == "sparse"
    tiny = rng.normal(size=(8, 1, 3, 3)).astype(np.float16)  # 72 values: no smaller palette
    assert exact_encoding(tiny, "iOS18") == "dense"


# ---------------------------------------------------------------------------- exact carry
def levels(r, shape, values, zeros=0.0):
    """A kernel of `shape` drawing each weight from `values`, a share `zeros` of it zeroed."""
    kernel = r.choice(np.asarray(values, np.float32), size=shape)
    kernel[r.random(shape) < zeros] = 0
    return kernel.astype(np.float32)


# Keras layer -> (its kernel, the encoding expected on iOS 16 and on iOS 18, palette bits)
CLUSTERED = {
    "k16": (lambda r: levels(r, (3, 3, 3, 16), np.linspace(-1, 1, 16)), "palettized", 4, 4),
    "dw_k4": (lambda r: levels(r, (3, 3, 16, 1), [-0.5, -0.1, 0.2, 0.6]), "palettized", 2, 2),
    "ternary": (lambda r: levels(r, (1, 1, 16, 64), [-0.3, 0.0, 0.4]), "palettized", 2, 2),
    "pruned": (lambda r: levels(r, (1, 1, 64, 64), r.normal(size=999), zeros=0.75), "sparse",
               None, None),
    "k8": (lambda r: levels(r, (1, 1, 64, 64), np.linspace(-0.2, 0.2, 8)), "palettized", 4, 3),
    "k256": (lambda r: levels(r, (3, 3, 64, 64), np.linspace(-0.05, 0.05, 256)), "palettized", 8,
             8),
    # Deep Compression: pruned, then zero and 15 shared values (zoo.compress.cluster's form).
    "deep": (lambda r: levels(r, (1, 1, 64, 64), np.r_[np.linspace(-0.3, -0.05, 7),
                                                  np.linspace(0.05, 0.3, 8)], zeros=0.75),
             "palettized", 4, 4),
    "up_k4": (lambda r: levels(r, (2, 2, 32, 64), [-0.2, -0.05, 0.05, 0.2]), "palettized", 2, 2),
    # 16 values, but a BatchNorm after it: coremltools scales each output channel (dense).
    "bn_fused": (lambda r: levels(r, (3, 3, 32, 32), np.linspace(-0.3, 0.3, 16)), "dense", None,
                 None),
}


def clustered_model() -> keras.Model:
    """A model whose kernels are what compress.py leaves: shared values, pruned zeros, ternary
    levels, both; one kernel a BatchNorm will scale; a float classifier."""
    layers = keras.layers
    image = keras.Input((*SIZE, 3), name="image")
    x = layers.Rescaling(1 / 127.5, -1)(image)
    x = layers.Conv2D(16, 3, padding="same", activation="relu6", name="k16")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw_k4")(x)
    x = layers.Conv2D(64, 1, name="ternary")(x)
    x = layers.Conv2D(64, 1, activation="relu", name="pruned")(x)
    x = layers.Conv2D(64, 1, name="k8")(x)
    x = layers.Conv2D(64, 3, padding="same", name="k256")(x)
    x = layers.Conv2D(64, 1, activation="relu", name="deep")(x)
    x = layers.Conv2DTranspose(32, 2, strides=2, padding="same", name="up_k4")(x)
    x = layers.Conv2D(32, 3, padding="same", use_bias=False, name="bn_fused")(x)
    x = layers.BatchNormalization(name="bn")(x)
    model = keras.Model(image, layers.Conv2D(3, 1, name="classifier")(x))
    r = np.random.default_rng(1)
    for name, (kernel, *_) in CLUSTERED.items():
        layer = model.get_layer(name)
        bias = [r.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()[1:]]
        layer.set_weights([kernel(r), *bias])
    model.get_layer("bn").set_weights([np.linspace(0.5, 2, 32, dtype=np.float32),
                                       np.full(32, 0.1, np.float32), np.zeros(32, np.float32),
                                       np.full(32, 2.0, np.float32)])
    return model


# Each conversion also asks for a lossy --compress: it takes only the kernel left dense that
# is big enough (bn_fused, 9216 values); the classifier (96) stays float.
CONVERSIONS = {"fp32-iOS16": dict(precision="fp32", compress="int8"),
               "fp16-iOS16": dict(precision="fp16", compress="palettize:4"),
               "fp16-iOS18": dict(precision="fp16", minimum_deployment_target="iOS18",
                                  compress="prune:0.5")}


@pytest.fixture(scope="module")
def carried(tmp_path_factory):
    """``carried(key) -> (model, artifact)``, each of `CONVERSIONS` converted once."""
    model, cache = clustered_model(), {}
    context = ExportContext("test-run", "clustered", 0.25, SIZE, ["a", "b", "c"],
                            load_calibration=lambda n: np.zeros((0, *SIZE, 3), np.uint8))

    def get(key):
        if key not in cache:
            fmt = FORMATS.get("coreml")
            path = tmp_path_factory.mktemp(key) / "model.mlpackage"
            cache[key] = model, fmt.convert(model, path, parse_options(fmt, CONVERSIONS[key]),
                                            context)
        return cache[key]

    return get


def layer_of(name: str, layers: dict) -> str:
    (found,) = [layer for layer in layers if f"_{name}_" in layer]
    return found


@pytest.mark.parametrize("key", list(CONVERSIONS))
def test_clustered_kernels_are_carried_exactly(key, carried):
    """Every kernel with few values decodes to the Keras kernel exactly (fp16-rounded in an fp16
    program) from a palette of its own values, in the form and bits the target has; pruned
    zeros stay zeros; the BatchNorm-scaled kernel is dense (or --compress's)."""
    model, artifact = carried(key)
    precision, target = key.split("-")
    dtype = np.float16 if precision == "fp16" else np.float32
    program = MilProgram.load(artifact.path)
    layers = kernels(program)
    decoded = program.constants()
    records = {r["layer"]: r for r in artifact.details["weights"]["kernels"]}
    for name, (_, ios16, bits16, bits18) in CLUSTERED.items():
        # A conv with a BatchNorm fused into it takes the BatchNorm's name.
        layer = layer_of("bn" if name == "bn_fused" else name, layers)
        kernel = np.asarray(model.get_layer(name).get_weights()[0]).astype(dtype)
        value = decoded[layers[layer].name]
        kind, bits = (ios16, bits16) if target == "iOS16" else (ios16, bits18)
        if name == "deep" and target == "iOS18":
            kind = "palettized+sparse"
        record = records[layer]
        if name == "bn_fused":
            assert record["how"] == CONVERSIONS[key]["compress"], record
            continue
        assert (record["kind"], record.get("bits"), record["how"]) == (kind, bits, "exact"), name
        assert value.dtype == dtype
        # Same values, same counts (layouts differ: MIL is OIHW, Keras HWIO).
        np.testing.assert_array_equal(np.sort(value, axis=None), np.sort(kernel, axis=None))
        if name in ("k16", "k256", "deep"):  # plain convs: the layout too
            np.testing.assert_array_equal(value, np.transpose(kernel, (3, 2, 0, 1)))
        if kind.startswith("palettized"):
            producer = layers[layer].op
            if kind == "palettized+sparse":
                producer = producer.inputs["nonzero_data"].op
            lut = np.asarray(producer.inputs["lut"].val).reshape(-1)
            assert lut.dtype == dtype and lut.size == 1 << bits
            assert set(np.unique(kernel)) <= set(lut)  # the kernel's own values, looked up
    weights = artifact.details["weights"]
    assert weights["exact"]["verified"] and not artifact.defects
    exact = {k: v for k, v in weights["exact"].items() if k != "verified"}
    assert sum(exact.values()) == len(CLUSTERED) - 1
    assert weights["kinds"]["dense"]["kernels"] == 1  # the classifier


def test_compress_takes_only_the_kernels_left_dense(carried):
    """bn_fused (BatchNorm-scaled, many values) gets each --compress setting; the kernels
    carried exactly are untouched by it (previous test)."""
    expected_fused = None
    for key, options in CONVERSIONS.items():
        model, artifact = carried(key)
        program = MilProgram.load(artifact.path)
        layers = kernels(program)
        layer = layer_of("bn", layers)  # the conv takes the name of the BatchNorm fused into it
        value = program.constants()[layers[layer].name].astype(np.float32)
        kernel = model.get_layer("bn_fused").get_weights()[0]
        bn = model.get_layer("bn")
        gamma, _, _, variance = bn.get_weights()
        expected_fused = np.transpose(kernel * gamma / np.sqrt(variance + bn.epsilon),
                                      (3, 2, 0, 1))
        record = {r["layer"]: r for r in artifact.details["weights"]["kernels"]}[layer]
        setting = options["compress"]
        scale = np.abs(expected_fused).reshape(32, -1).max(1) / 127
        if setting == "int8":  # per-channel symmetric: within half a step of each channel's
            assert (record["kind"], record["bits"]) == ("quantized", 8)
            step = np.abs(value - expected_fused).reshape(32, -1).max(1)
            assert (step <= 0.5 * scale + 1e-6).all() and (step > 0).any()
        elif setting == "palettize:4":
            assert (record["kind"], record["bits"], record["values"]) == ("palettized", 2, 4)
            assert np.abs(value - expected_fused).max() < 0.5 * np.abs(expected_fused).max()
        else:  # prune:0.5: the smaller half of the magnitudes zeroed, the others kept
            assert record["kind"] == "sparse" and record["sparsity"] >= 0.5
            kept = value != 0
            smallest_kept = np.abs(expected_fused[kept]).min()
            assert smallest_kept >= np.abs(expected_fused[~kept]).max() * (1 - 1e-3)
            np.testing.assert_allclose(value[kept], expected_fused[kept], rtol=2e-3)
    assert expected_fused is not None


@pytest.mark.parametrize("key", ["fp32-iOS16", "fp16-iOS18"])
def test_carried_model_matches_keras_and_read_weights(key, carried):
    model, artifact = carried(key)
    images = rng.integers(0, 256, (2, *SIZE, 3), dtype=np.uint8)
    want = np.asarray(model(images.astype(np.float32)))
    runner = artifact.runner()
    got = np.concatenate([runner.run(images[i:i + 1]) for i in range(2)])
    scale = np.abs(want).max()
    if key == "fp32-iOS16":  # exact weights, but --compress int8 took bn_fused
        assert np.abs(got - want).max() < 0.02 * scale
    else:
        assert np.percentile(np.abs(got - want), 99) < 0.2 * scale
    # read_weights: every kernel and bias, decoded; a quantized kernel as its stored int8.
    weights = read_coreml_weights(artifact.path)
    program = MilProgram.load(artifact.path)
    decoded = program.constants()
    assert weights.keys() == program.weights().keys()
    records = {r["layer"]: r for r in artifact.details["weights"]["kernels"]}
    for layer, var in kernels(program).items():
        if records[layer]["kind"] == "quantized":  # times its per-channel scales: the kernel
            assert weights[var.name].dtype == np.int8 and key == "fp32-iOS16"
            scale = var.op.inputs["scale"].val.reshape(-1, 1, 1, 1)
            np.testing.assert_allclose(weights[var.name] * scale, decoded[var.name], rtol=1e-6)
        else:
            np.testing.assert_array_equal(weights[var.name], decoded[var.name])
    biases = [v for k, v in weights.items() if v.ndim == 1]
    assert len(biases) >= len(CLUSTERED) - 1
    assert FORMATS.get("coreml").read_weights is read_coreml_weights


def test_a_carried_kernel_that_decodes_otherwise_is_a_defect(carried):
    _, artifact = carried("fp32-iOS16")
    program = MilProgram.load(artifact.path)
    layers = kernels(program)
    layer = layer_of("k16", layers)
    value = program.constants()[layers[layer].name]
    plan = Plan(target="iOS16", exact={"x": "palettized"}, reference={layer: value})
    details, defects = describe_weights(program, plan)
    assert details["exact"]["verified"] and not defects
    plan.reference[layer] = value.copy()
    plan.reference[layer].flat[0] += 1
    details, defects = describe_weights(program, plan)
    assert not details["exact"]["verified"] and len(defects) == 1 and layer in defects[0]


# ---------------------------------------------------------------------------- the gate
def test_a_lossy_setting_faces_the_validation_gate(carried, tmp_path):
    """The same gate as any Core ML artifact (the format's tolerance): --compress int8 of the
    kernel left dense passes; pruning 97 % of it does not."""
    from zoo.export.validate import reference, validate

    model, passing = carried("fp32-iOS16")
    images = np.random.default_rng(2).integers(0, 256, (3, *SIZE, 3), dtype=np.uint8)
    # Keras' own labels (it scores 1.0), the near-ties of this random net ignored: any
    # rounding flips them.
    logits = np.asarray(model(images.astype(np.float32)))
    top2 = np.sort(logits, -1)[..., -2:]
    masks = logits.argmax(-1).astype(np.uint8)
    masks[top2[..., 1] - top2[..., 0] < 0.05 * np.abs(logits).max()] = 255
    assert (masks != 255).mean() > 0.5
    ref = reference(model, images, masks, 3, 255)
    tolerance = FORMATS.get("coreml").tolerance
    assert validate(passing, ref, tolerance).passed
    fmt = FORMATS.get("coreml")
    context = ExportContext("test-run", "clustered", 0.25, SIZE, ["a", "b", "c"],
                            load_calibration=lambda n: np.zeros((0, *SIZE, 3), np.uint8))
    failing = fmt.convert(model, tmp_path / "m.mlpackage",
                          parse_options(fmt, {"precision": "fp32", "compress": "prune:0.97"}),
                          context)
    result = validate(failing, ref, tolerance)
    assert not result.passed and "mIoU" in result.reason and result.miou_drop_pt > 1


def test_export_records_how_weights_are_stored(trained_run, tmp_path):
    """Through export.py's path: a trained run's kernels are BatchNorm-scaled (nothing to carry
    exactly), --compress int8 takes them, and the manifest and report.md say so."""
    _, run_dir = trained_run
    out = tmp_path / "int8"
    result = export(run=str(run_dir), format="coreml", out=str(out), val_images=4,
                    compress="int8")
    assert result.ok
    entry = result.manifest["artifacts"][0]
    assert entry["options"]["compress"] == "int8" and entry["passed"]
    weights = entry["details"]["weights"]
    assert weights["compress"] == "int8" and weights["exact"] == {"verified": True}
    assert weights["kinds"]["quantized"]["kernels"] >= 5
    assert weights["kinds"]["quantized"]["bits"] == {"8": weights["kinds"]["quantized"][
        "kernels"]}
    assert "constexpr_affine_dequantize" in entry["ops"]
    stored = read_coreml_weights(out / "model.mlpackage")
    assert sum(w.dtype == np.int8 for w in stored.values()) == weights["kinds"]["quantized"][
        "kernels"]
    report = (out / "report.md").read_text()
    assert "Core ML weights: kernels: " in report and " quantized (8-bit x" in report


@pytest.mark.parametrize(("options", "message"), [
    ({"compress": "int4"}, "coreml: --compress must be none, int8, palettize:N"),
    ({"compress": "palettize:3"}, "--compress must be .*got 'palettize:3'"),
    ({"compress": "palettize:32"}, "N = 2, 4, 8, 16, 64 or 256"),
    ({"compress": "prune:1"}, r"prune:S \(0 < S < 1\), got 'prune:1'"),
    ({"compress": "prune:0"}, "got 'prune:0'"),
    ({"compress": "prune:nan"}, "got 'prune:nan'"),
    ({"compress": "palettize:8"}, "--compress palettize:8 needs --minimum-deployment-target "
                                  "iOS18 or macOS15"),
    ({"compress": "int8", "minimum_deployment_target": "iOS15"},
     "--compress int8 needs --minimum-deployment-target iOS16/macOS13 or later"),
])
def test_bad_compress_settings(options, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_options(FORMATS.get("coreml"), options)
    assert "\n" not in str(info.value)


def test_good_compress_settings_are_normalised():
    fmt = FORMATS.get("coreml")
    assert parse_options(fmt, {}).compress == "none"
    assert parse_options(fmt, {"compress": "prune:0.50"}).compress == "prune:0.5"
    assert parse_options(fmt, {"compress": "palettize:8", "minimum_deployment_target": "iOS18"}
                         ).compress == "palettize:8"
    assert parse_options(fmt, {"compress": "INT8"}).compress == "int8"


def test_a_bad_setting_is_refused_before_anything_is_read_or_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="coreml: --compress must be"):
        export(run=str(tmp_path / "no-such-run"), format="coreml", out=str(out),
               compress="prune:2")
    assert not out.exists()
