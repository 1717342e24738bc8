"""The ML-program reference interpreter's ops against TensorFlow / NumPy ground truth."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.export.mil_reference import OPS, UnsupportedOpError, bilinear_resize

rng = np.random.default_rng(0)


def nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))



@pytest.mark.parametrize("size", [(9, 7), (8, 8), (13, 16)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pad_type", ["valid", "same"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_matches_tensorflow(size, stride, pad_type, kernel):
    x = rng.normal(size=(1, *size, 6)).astype(np.float32)
    w = rng.normal(size=(kernel, kernel, 6, 4)).astype(np.float32)  # TF HWIO
    b = rng.normal(size=4).astype(np.float32)
    want = tf.nn.conv2d(x, w, stride, pad_type.upper()).numpy() + b
    got = OPS["conv"](nchw(x), np.transpose(w, (3, 2, 0, 1)), b, strides=(stride, stride),
                      pad_type=pad_type)
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv_with_dilation_matches_tensorflow(dilation, multiplier):
    x = rng.normal(size=(1, 11, 10, 5)).astype(np.float32)
    w = rng.normal(size=(3, 3, 5, multiplier)).astype(np.float32)
    want = tf.nn.depthwise_conv2d(x, w, (1, 1, 1, 1), "SAME", dilations=(dilation, dilation))
    # MIL depthwise: groups = C_in, weight (C_in * multiplier, 1, kH, kW)
    mil_w = np.transpose(w, (2, 3, 0, 1)).reshape(5 * multiplier, 1, 3, 3)
    got = OPS["conv"](nchw(x), mil_w, strides=(1, 1), pad_type="same", dilations=(dilation,) * 2,
                      groups=5)
    np.testing.assert_allclose(nhwc(got), want.numpy(), rtol=1e-4, atol=1e-4)


def test_depthwise_stride_2_same_on_odd_size():
    x = rng.normal(size=(1, 15, 9, 4)).astype(np.float32)
    w = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    want = tf.nn.depthwise_conv2d(x, w, (1, 2, 2, 1), "SAME").numpy()
    got = OPS["conv"](nchw(x), np.transpose(w, (2, 3, 0, 1)).reshape(4, 1, 3, 3),
                      strides=(2, 2), pad_type="same", groups=4)
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-4, atol=1e-4)


def test_grouped_conv_and_custom_pads():
    x = rng.normal(size=(1, 7, 7, 8)).astype(np.float32)
    w = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)  # 2 groups of 4 -> 3
    xp = np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)))
    want = np.concatenate([tf.nn.conv2d(xp[..., :4], w[..., :3], 1, "VALID"),
                           tf.nn.conv2d(xp[..., 4:], w[..., 3:], 1, "VALID")], -1)
    got = OPS["conv"](nchw(x), np.transpose(w, (3, 2, 0, 1)), pad_type="custom",
                      pad=(1, 2, 0, 1), groups=2)
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kernel", "stride", "pad_type"),
                         [(2, 2, "same"), (3, 2, "same"), (4, 2, "same"), (3, 1, "same"),
                          (2, 2, "valid"), (3, 2, "valid")])
def test_conv_transpose_matches_tensorflow(kernel, stride, pad_type):
    x = rng.normal(size=(1, 5, 6, 4)).astype(np.float32)
    w = rng.normal(size=(kernel, kernel, 3, 4)).astype(np.float32)  # TF: H, W, out, in
    if pad_type == "same":
        out_hw = (5 * stride, 6 * stride)
    else:
        out_hw = ((5 - 1) * stride + kernel, (6 - 1) * stride + kernel)
    want = tf.nn.conv2d_transpose(x, w, (1, *out_hw, 3), stride, pad_type.upper()).numpy()
    got = OPS["conv_transpose"](nchw(x), np.transpose(w, (3, 2, 0, 1)), strides=(stride,) * 2,
                                pad_type=pad_type, output_shape=(1, 3, *out_hw))
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_upsample_bilinear_half_pixel_matches_tf_resize(scale):
    x = rng.normal(size=(1, 5, 3, 2)).astype(np.float32)
    want = tf.image.resize(x, (5 * scale, 3 * scale), "bilinear").numpy()
    got = OPS["upsample_bilinear"](nchw(x), scale, scale, align_corners=False)
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-5, atol=1e-5)


def test_upsample_bilinear_align_corners_matches_tf_v1():
    x = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    want = tf.compat.v1.image.resize_bilinear(x, (10, 13), align_corners=True).numpy()
    got = bilinear_resize(nchw(x), 10, 13, align_corners=True, half_pixel=False)
    np.testing.assert_allclose(nhwc(got), want, rtol=1e-5, atol=1e-5)
    legacy = tf.compat.v1.image.resize_bilinear(x, (8, 10), align_corners=False).numpy()
    got = OPS["upsample_bilinear"](nchw(x), 2, 2, align_corners=False, half_pixel_centers=False)
    np.testing.assert_allclose(nhwc(got), legacy, rtol=1e-5, atol=1e-5)


def test_elementwise_activations_and_shapes():
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) * 4
    y = rng.normal(size=(1, 3, 1, 1)).astype(np.float32)
    for name, fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                     "maximum": np.maximum, "minimum": np.minimum}.items():
        np.testing.assert_array_equal(OPS[name](x, y), fn(x, y))
    np.testing.assert_allclose(OPS["real_div"](x, y + 5), x / (y + 5))
    np.testing.assert_array_equal(OPS["relu6"](x), np.clip(x, 0, 6))
    np.testing.assert_array_equal(OPS["relu"](x), np.maximum(x, 0))
    np.testing.assert_allclose(OPS["sigmoid"](x), tf.sigmoid(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(OPS["sigmoid_hard"](x, 1 / 6, 0.5),
                               tf.nn.relu6(x + 3).numpy() / 6, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(OPS["clip"](x, -1.0, 2.0), np.clip(x, -1, 2))
    np.testing.assert_allclose(OPS["softmax"](x, axis=1), tf.nn.softmax(x, 1).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(OPS["reduce_argmax"](x, axis=1), np.argmax(x, 1))
    np.testing.assert_allclose(OPS["reduce_mean"](x, axes=(2, 3), keep_dims=True),
                               x.mean((2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(OPS["transpose"](x, (0, 2, 3, 1)), np.transpose(x, (0, 2, 3, 1)))
    np.testing.assert_array_equal(OPS["concat"]([x, x[:, :1]], axis=1),
                                  np.concatenate([x, x[:, :1]], 1))
    np.testing.assert_array_equal(OPS["reshape"](x, (2, 3, -1)), x.reshape(2, 3, 20))
    np.testing.assert_array_equal(OPS["reshape"](x, (0, 3, -1, 5)), x)  # 0 keeps that axis
    np.testing.assert_array_equal(OPS["pad"](x, (1, 0, 2, 1)),
                                  np.pad(x, ((0, 0), (0, 0), (1, 0), (2, 1))))
    np.testing.assert_array_equal(OPS["tile"](y, (1, 1, 2, 3)), np.tile(y, (1, 1, 2, 3)))
    np.testing.assert_array_equal(OPS["expand_dims"](y, (0,)).shape, (1, 1, 3, 1, 1))
    assert OPS["cast"](x, "fp16").dtype == np.float16


def test_an_unimplemented_op_is_named_with_its_layer():
    class FakeOp:
        op_type = "einsum"
        name = "decoder_einsum_1"
        outputs = ()

    class FakeFunction:
        operations = [FakeOp()]
        inputs = {}
        outputs = []

    from zoo.export.mil_reference import MilProgram

    program = MilProgram.__new__(MilProgram)
    program.function = FakeFunction()
    assert program.unsupported() == [("einsum", "decoder_einsum_1")]
    with pytest.raises(UnsupportedOpError, match="MIL op 'einsum' \\(layer decoder_einsum_1\\)"):
        program.run({})


def test_label_map_ops_match_numpy_and_tensorflow():
    """What a label output runs in an ML program: reduce_argmax (the first class wins a tie, as
    in Keras, LiteRT and onnxruntime), the nearest upsample as reshape + tile + reshape on int32,
    casts; and upsample_nearest_neighbor against TF's nearest resize."""
    x = rng.normal(size=(1, 3, 4, 5)).astype(np.float32)  # NCHW logits, 3 classes
    x[0, :, 0, 0] = 1.0  # a three-way tie
    labels = OPS["reduce_argmax"](x, axis=1)
    assert labels.dtype == np.int32 and labels[0, 0, 0] == 0
    np.testing.assert_array_equal(labels, x.argmax(1))
    blocks = OPS["tile"](OPS["reshape"](labels, (1, 4, 1, 5, 1)), (1, 1, 2, 1, 3))
    up = OPS["reshape"](blocks, (1, 8, 15))
    assert up.dtype == np.int32
    np.testing.assert_array_equal(up, np.repeat(np.repeat(labels, 2, 1), 3, 2))
    assert OPS["cast"](up, "uint8").dtype == np.uint8
    np.testing.assert_array_equal(OPS["cast"](OPS["cast"](up, "fp32"), "int32"), up)
    image = rng.normal(size=(1, 3, 5, 2)).astype(np.float32)
    want = tf.image.resize(image, (12, 20), "nearest").numpy()
    np.testing.assert_array_equal(nhwc(OPS["upsample_nearest_neighbor"](nchw(image), 4, 4)), want)


@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space_matches_tensorflow(block):
    """A QAT or weight-shared U-Net's decoder (the TFLite graph's 1x1 conv + DEPTH_TO_SPACE)."""
    x = rng.normal(size=(1, 3, 4, 2 * block * block)).astype(np.float32)
    want = tf.nn.depth_to_space(x, block).numpy()
    np.testing.assert_array_equal(nhwc(OPS["depth_to_space"](nchw(x), block)), want)


def test_unpack_bits_reads_fields_from_the_least_significant_bit():
    from coremltools.optimize._utils import pack_elements_into_bits

    from zoo.export.mil_reference import unpack_bits

    # constexpr_lut_to_dense's own example: 2-bit fields i0..i4 = 0, 3, 2, 1, 3 in two bytes.
    packed = np.array([0b01_10_11_00, 0b00_00_00_11], np.uint8)
    np.testing.assert_array_equal(unpack_bits(packed, 2, 5), [0, 3, 2, 1, 3])
    for nbits in (1, 2, 3, 4, 6, 8):
        values = rng.integers(0, 1 << nbits, 37).astype(np.uint8)
        np.testing.assert_array_equal(
            unpack_bits(pack_elements_into_bits(values, nbits), nbits, 37), values)


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
def test_ios16_palette_and_sparse_decoders_match_coremltools(nbits):
    """The iOS 16 forms: packed indices into a vector LUT; a packed bit mask and the non-zero
    values (coremltools' own `decompress` as the reference)."""
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
        constexpr_lut_to_dense,
        constexpr_sparse_to_dense,
    )
    from coremltools.optimize._utils import pack_elements_into_bits

    shape = np.array([5, 3, 3, 3], np.uint32)
    lut = rng.normal(size=1 << nbits).astype(np.float16)
    indices = pack_elements_into_bits(rng.integers(0, 1 << nbits, 135).astype(np.uint8), nbits)
    np.testing.assert_array_equal(OPS["constexpr_lut_to_dense"](indices, lut, shape),
                                  constexpr_lut_to_dense.decompress(lut, indices, shape))
    dense = rng.normal(size=shape).astype(np.float32) * (rng.random(shape) < 0.3)
    mask = np.packbits(dense.reshape(-1) != 0, bitorder="little")
    nonzero = dense[dense != 0]
    got = OPS["constexpr_sparse_to_dense"](nonzero, mask, shape)
    np.testing.assert_array_equal(got, constexpr_sparse_to_dense.decompress(nonzero, mask, shape))
    np.testing.assert_array_equal(got, dense)
