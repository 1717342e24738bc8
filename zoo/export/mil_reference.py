"""A NumPy reference interpreter for Core ML ML programs, so Core ML numerics are checked on
every platform (`MLModel.predict` exists only on macOS).

It loads a saved ``.mlpackage`` back into a MIL program (coremltools' milproto loader) and runs
its operations in order with NumPy. Where the program computes in fp16, every op's output is
rounded to fp16, as Core ML stores fp16 activations (compare dtypes with
`types.builtin_to_string`: a MIL dtype prints as a class, so ``"fp16" in str(dtype)`` is never
true, and an interpreter testing that runs fp16 programs with fp32 activations). An op it does
not implement raises `UnsupportedOpError` naming the op and the layer: a program that cannot
be run is "not run", never "passed".

Compressed weights are executed as stored: the ``constexpr_*`` ops of coremltools' weight
compression (palettes, sparse masks, int8 / int4 dequantization, their iOS 18 block-wise and
joint forms) are decoded here from the file's own data, once per program, so a check covers
what ships rather than a decompressed copy.

Example::

    program = MilProgram.load("model.mlpackage")
    outputs = program.run({"image": image_nchw_float32})   # {"logits": (1, H, W, C) array}
    program.op_types()                                      # {"conv", "relu6", ...}
    program.weights()                                       # {"conv_0_weight": array, ...}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from zoo.export.runtimes.base import NotRunnableError


class UnsupportedOpError(NotRunnableError, NotImplementedError):
    """A MIL op the reference interpreter does not implement."""


OPS: dict[str, Callable[..., Any]] = {}


def op(*names: str) -> Callable:
    """Register an implementation ``fn(**inputs) -> array or tuple`` for MIL op `names`."""

    def decorator(fn: Callable) -> Callable:
        for name in names:
            OPS[name] = fn
        return fn

    return decorator


def supported_ops() -> list[str]:
    """The MIL op types this interpreter executes."""
    return sorted(OPS)


# ---------------------------------------------------------------------------- elementwise
for _name, _fn in {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "pow": np.power,
}.items():
    OPS[_name] = (lambda f: lambda x, y: f(x, y))(_fn)


@op("relu")
def _relu(x):
    return np.maximum(x, 0)


@op("relu6")
def _relu6(x):
    return np.clip(x, 0, 6)


@op("sigmoid")
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float32)))


@op("sigmoid_hard")
def _sigmoid_hard(x, alpha=0.2, beta=0.5):
    return np.clip(alpha * x + beta, 0.0, 1.0)


@op("clip")
def _clip(x, alpha, beta):
    return np.clip(x, alpha, beta)


@op("tanh")
def _tanh(x):
    return np.tanh(x)


@op("leaky_relu")
def _leaky_relu(x, alpha=0.01):
    return np.where(x >= 0, x, alpha * x)


@op("linear_activation")
def _linear_activation(x, alpha=1.0, beta=0.0):
    return alpha * x + beta


@op("identity")
def _identity(x):
    return x


@op("softmax")
def _softmax(x, axis=-1):
    shifted = x.astype(np.float32) - x.max(axis=int(axis), keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=int(axis), keepdims=True)


@op("cast")
def _cast(x, dtype):
    target = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16,
              "uint8": np.uint8, "int8": np.int8, "bool": np.bool_}[str(dtype)]
    return np.asarray(x).astype(target)


# ---------------------------------------------------------------------------- reductions
def _axes(axes, x):
    return None if axes is None else tuple(int(a) % x.ndim for a in np.atleast_1d(axes))


@op("reduce_mean")
def _reduce_mean(x, axes=None, keep_dims=False):
    return x.astype(np.float32).mean(axis=_axes(axes, x), keepdims=bool(keep_dims))


@op("reduce_max")
def _reduce_max(x, axes=None, keep_dims=False):
    return x.max(axis=_axes(axes, x), keepdims=bool(keep_dims))


@op("reduce_sum")
def _reduce_sum(x, axes=None, keep_dims=False):
    return x.astype(np.float32).sum(axis=_axes(axes, x), keepdims=bool(keep_dims))


@op("reduce_argmax")
def _reduce_argmax(x, axis=-1, keep_dims=False):
    out = np.argmax(x, axis=int(axis)).astype(np.int32)
    return np.expand_dims(out, int(axis)) if keep_dims else out


# ---------------------------------------------------------------------------- shapes
@op("transpose")
def _transpose(x, perm):
    return np.transpose(x, [int(p) for p in perm])


@op("reshape")
def _reshape(x, shape):
    shape = [int(s) for s in shape]
    if len(shape) == x.ndim:  # 0 inherits the input's dimension
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(x, shape)


@op("expand_dims")
def _expand_dims(x, axes):
    out = x
    rank = x.ndim + len(np.atleast_1d(axes))
    for axis in sorted(int(a) % rank for a in np.atleast_1d(axes)):
        out = np.expand_dims(out, axis)
    return out


@op("squeeze")
def _squeeze(x, axes=None):
    return np.squeeze(x, axis=_axes(axes, x))


@op("tile")
def _tile(x, reps):
    return np.tile(x, [int(r) for r in reps])


@op("concat")
def _concat(values, axis, interleave=False):
    if interleave:
        raise UnsupportedOpError("concat with interleave=True")
    return np.concatenate(values, axis=int(axis))


@op("pad")
def _pad(x, pad, mode="constant", constant_val=0.0):
    pad = [int(p) for p in pad]
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [
        (pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=constant_val)
    if mode in ("reflect", "replicate"):
        return np.pad(x, widths, mode="reflect" if mode == "reflect" else "edge")
    raise UnsupportedOpError(f"pad mode {mode!r}")


@op("depth_to_space")
def _depth_to_space(x, block_size):
    """NCHW depth-to-space in TensorFlow's order (DCR, what the TF frontend maps its
    ``DepthToSpace`` to): output channel c of block offset (i, j) is input channel
    ``(i * b + j) * C_out + c``."""
    b = int(block_size)
    n, c, h, w = x.shape
    out = x.reshape((n, b, b, c // (b * b), h, w)).transpose((0, 3, 4, 1, 5, 2))
    return out.reshape(n, c // (b * b), h * b, w * b)


# ---------------------------------------------------------------------------- convolutions
def _same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool = False):
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def _conv_pads(x, kernel, strides, dilations, pad_type, pad):
    if pad_type == "valid":
        return [(0, 0), (0, 0)]
    if pad_type in ("same", "same_lower"):
        return [_same_pads(x.shape[2 + i], kernel[i], strides[i], dilations[i],
                           pad_type == "same_lower") for i in range(2)]
    if pad_type == "custom":
        pad = [int(p) for p in pad]
        return [(pad[0], pad[1]), (pad[2], pad[3])]
    raise UnsupportedOpError(f"conv pad_type {pad_type!r}")


@op("conv")
def _conv(x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0),
          dilations=(1, 1), groups=1):
    """2-D convolution, NCHW input, weight (C_out, C_in / groups, kH, kW)."""
    if x.ndim != 4:
        raise UnsupportedOpError(f"conv on a rank-{x.ndim} input")
    strides, dilations = [int(s) for s in strides], [int(d) for d in dilations]
    groups = int(groups)
    w = weight.astype(np.float32)
    c_out, c_in_g, kh, kw = w.shape
    (pt, pb), (pl, pr) = _conv_pads(x, (kh, kw), strides=strides, dilations=dilations,
                                    pad_type=pad_type, pad=pad)
    xp = np.pad(x.astype(np.float32), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c = xp.shape[:2]
    eh, ew = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    if (kh, kw) == (1, 1) and groups == 1:
        sub = xp[:, :, ::strides[0], ::strides[1]]
        out = np.einsum("nchw,oc->nohw", sub, w[:, :, 0, 0], optimize=True)
    else:
        win = sliding_window_view(xp, (eh, ew), axis=(2, 3))
        win = win[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]
        ho, wo = win.shape[2:4]
        if groups == c and c_in_g == 1:  # depthwise (channel multiplier c_out / c)
            mult = c_out // c
            out = np.einsum("nchwij,cmij->ncmhw", win, w.reshape(c, mult, kh, kw),
                            optimize=True).reshape(n, c_out, ho, wo)
        else:
            win = win.reshape((n, groups, c_in_g, ho, wo, kh, kw))
            wg = w.reshape(groups, c_out // groups, c_in_g, kh, kw)
            out = np.einsum("ngchwij,gocij->ngohw", win, wg,
                            optimize=True).reshape(n, c_out, ho, wo)
    if bias is not None:
        out = out + bias.astype(np.float32).reshape(1, -1, 1, 1)
    return out


@op("conv_transpose")
def _conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid",
                    strides=(1, 1), dilations=(1, 1), groups=1):
    """Transposed conv, NCHW input, weight (C_in, C_out / groups, kH, kW); TF's crop rules."""
    strides, dilations = [int(s) for s in strides], [int(d) for d in dilations]
    groups = int(groups)
    w = weight.astype(np.float32)
    c_in, c_out_g, kh, kw = w.shape
    n, _, h, wd = x.shape
    full = [(h - 1) * strides[0] + (kh - 1) * dilations[0] + 1,
            (wd - 1) * strides[1] + (kw - 1) * dilations[1] + 1]
    out = np.zeros((n, c_out_g * groups, *full), np.float32)
    xg = x.astype(np.float32).reshape(n, groups, c_in // groups, h, wd)
    wg = w.reshape(groups, c_in // groups, c_out_g, kh, kw)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("ngchw,gco->ngohw", xg, wg[:, :, :, i, j], optimize=True)
            oi, oj = i * dilations[0], j * dilations[1]
            out[:, :, oi:oi + (h - 1) * strides[0] + 1:strides[0],
                oj:oj + (wd - 1) * strides[1] + 1:strides[1]] += contrib.reshape(n, -1, h, wd)
    if output_shape is not None:
        target = [int(s) for s in output_shape][2:]
    elif pad_type == "same":
        target = [h * strides[0], wd * strides[1]]
    elif pad_type == "custom":
        p = [int(v) for v in pad]
        target = [full[0] - p[0] - p[1], full[1] - p[2] - p[3]]
    else:
        target = full
    if pad_type == "custom" and pad is not None:
        top, left = int(pad[0]), int(pad[2])
    else:  # TF 'same': the forward conv padded total // 2 before
        top, left = (full[0] - target[0]) // 2, (full[1] - target[1]) // 2
    out = out[:, :, top:top + target[0], left:left + target[1]]
    if bias is not None:
        out = out + bias.astype(np.float32).reshape(1, -1, 1, 1)
    return out


@op("batch_norm")
def _batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = (gamma if gamma is not None else 1.0) / np.sqrt(variance + epsilon)
    out = (x - mean.reshape(shape)) * np.reshape(scale, shape)
    return out + (beta.reshape(shape) if beta is not None else 0.0)


# ---------------------------------------------------------------------------- resizing
def _source_coords(size_in: int, size_out: int, align_corners: bool, half_pixel: bool):
    i = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = i * ((size_in - 1) / (size_out - 1)) if size_out > 1 else np.zeros_like(i)
    elif half_pixel:
        src = (i + 0.5) * (size_in / size_out) - 0.5
    else:
        src = i * (size_in / size_out)
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (src - low).astype(np.float32)


def bilinear_resize(x, out_h: int, out_w: int, align_corners: bool, half_pixel: bool):
    """Bilinear resize of the last two axes."""
    lo_h, hi_h, fh = _source_coords(x.shape[-2], out_h, align_corners, half_pixel)
    lo_w, hi_w, fw = _source_coords(x.shape[-1], out_w, align_corners, half_pixel)
    x = x.astype(np.float32)
    rows = x[..., lo_h, :] * (1 - fh)[:, None] + x[..., hi_h, :] * fh[:, None]
    return rows[..., lo_w] * (1 - fw) + rows[..., hi_w] * fw


@op("upsample_bilinear")
def _upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True,
                       half_pixel_centers=None):
    half = (not align_corners) if half_pixel_centers is None else bool(half_pixel_centers)
    out_h = int(math.floor(x.shape[-2] * float(scale_factor_height)))
    out_w = int(math.floor(x.shape[-1] * float(scale_factor_width)))
    return bilinear_resize(x, out_h, out_w, bool(align_corners), half)


@op("resize_bilinear")
def _resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    modes = {"ALIGN_CORNERS": (True, False), "STRICT_ALIGN_CORNERS": (True, False),
             "DEFAULT": (False, False), "OFFSET_CORNERS": (False, True),
             "UNALIGN_CORNERS": (False, True)}
    if sampling_mode not in modes:
        raise UnsupportedOpError(f"resize_bilinear sampling_mode {sampling_mode!r}")
    return bilinear_resize(x, int(target_size_height), int(target_size_width),
                           *modes[sampling_mode])


@op("upsample_nearest_neighbor")
def _upsample_nearest(x, scale_factor_height=1, scale_factor_width=1):
    sh, sw = int(scale_factor_height), int(scale_factor_width)
    return np.repeat(np.repeat(x, sh, axis=-2), sw, axis=-1)


# ---------------------------------------------------------------------------- compressed weights
# coremltools' compressed-weight ops (coremltools 9.0: converters/mil/mil/ops/defs/iOS16/
# constexpr_ops.py and iOS18/compression.py), decoded here from what the file stores, not by
# coremltools' own `decompress` (the tests compare the two). Their inputs are constants, so a
# `MilProgram` decodes each once. The iOS 16 forms pack n-bit fields into bytes, least
# significant bit first; in the iOS 18 forms the milproto loader gives each element of a
# sub-byte type (uint1 .. uint6, int4) its own array element.


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """The first `count` unsigned `nbits`-bit fields of `packed` (bytes, filled from the least
    significant bit up; a field may span two bytes)."""
    bits = np.unpackbits(np.asarray(packed).view(np.uint8), bitorder="little")
    fields = bits[:count * nbits].reshape(count, nbits).astype(np.uint16)
    return (fields << np.arange(nbits, dtype=np.uint16)).sum(axis=1).astype(np.uint8)


def _along(param, rank: int, axis: int) -> np.ndarray:
    """A scalar, or a vector laid along `axis` of a rank-`rank` tensor."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return param.reshape(shape)


def _blocks(param, shape) -> np.ndarray:
    """`param` repeated block-wise up to `shape` (block size ``shape / param.shape`` per axis)."""
    param = np.asarray(param)
    for axis, (size, count) in enumerate(zip(shape, param.shape, strict=True)):
        if size != count:
            param = np.repeat(param, size // count, axis=axis)
    return param


def shift_scale(data, scale, offset=None) -> np.ndarray:
    """iOS 18 block-wise dequantization ``scale * (data - offset)``, computed in the scale's
    dtype (the op's output type) as the op defines it."""
    dtype = np.asarray(scale).dtype
    values = np.asarray(data).astype(dtype)
    if offset is not None:
        values = values - _blocks(np.asarray(offset).astype(dtype), values.shape)
    return values * _blocks(scale, values.shape)


def lut_to_dense(indices, lut, vector_axis=None) -> np.ndarray:
    """iOS 18 palette look-up: `lut` is ``(*blocks, entries, vector)``, one palette per block
    of `indices` (block size ``indices.shape / blocks`` per axis); a vector entry fills
    `vector` consecutive elements along `vector_axis`."""
    indices = np.asarray(indices)
    lut = np.asarray(lut)
    rank = indices.ndim
    steps = [size // count for size, count in zip(indices.shape, lut.shape[:rank], strict=True)]
    grid = np.indices(indices.shape, sparse=True)
    values = lut[tuple(g // s for g, s in zip(grid, steps, strict=True))
                 + (indices.astype(np.intp),)]  # indices.shape + (vector,)
    vector = lut.shape[-1]
    if vector == 1:
        return values[..., 0]
    axis = int(vector_axis) % rank
    shape = list(indices.shape)
    shape[axis] *= vector
    return np.moveaxis(values, -1, axis + 1).reshape(shape)


def sparse_to_dense(nonzero_data, mask) -> np.ndarray:
    """Zeros shaped like `mask`, with `nonzero_data` where `mask` is set, in row-major order."""
    mask = np.asarray(mask)
    out = np.zeros(mask.shape, np.asarray(nonzero_data).dtype)
    out[mask != 0] = nonzero_data
    return out


@op("constexpr_affine_dequantize")
def _affine_dequantize(quantized_data, zero_point, scale, axis):
    """iOS 16 ``scale * (quantized_data - zero_point)``, scale and zero point per tensor or per
    slice of `axis`; computed in fp32 and stored as the scale's dtype."""
    rank = quantized_data.ndim
    axis = int(axis) % rank
    shifted = (quantized_data.astype(np.float32)
               - _along(zero_point, rank, axis).astype(np.float32))
    return (shifted * _along(scale, rank, axis).astype(np.float32)).astype(
        np.asarray(scale).dtype)


@op("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale(data, scale, offset=None):
    return shift_scale(data, scale, offset)


@op("constexpr_lut_to_dense")
def _lut_to_dense(indices, lut, shape=None, vector_axis=None):
    """iOS 16 (`indices` packed into bytes, a vector `lut` of 2, 4, 16, 64 or 256 entries, the
    output `shape`) or iOS 18 (see `lut_to_dense`)."""
    if shape is None:
        return lut_to_dense(indices, lut, vector_axis)
    shape = [int(s) for s in shape]
    nbits = int(np.asarray(lut).size).bit_length() - 1
    return np.asarray(lut)[unpack_bits(indices, nbits, math.prod(shape))].reshape(shape)


@op("constexpr_sparse_to_dense")
def _sparse_to_dense(nonzero_data, mask, shape=None):
    """iOS 16 (`mask` one bit per output value, packed into bytes, and the output `shape`) or
    iOS 18 (`mask` shaped like the output)."""
    if shape is None:
        return sparse_to_dense(nonzero_data, mask)
    shape = [int(s) for s in shape]
    bits = np.unpackbits(np.asarray(mask).view(np.uint8), bitorder="little")
    return sparse_to_dense(nonzero_data, bits[:math.prod(shape)].reshape(shape))


@op("constexpr_lut_to_sparse")
def _lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """iOS 18 palette look-up of the set entries only: ``(mask, values)`` for a following
    `constexpr_sparse_to_dense` (the mask widened along `vector_axis` for vector palettes)."""
    mask = np.asarray(indices_mask)
    dense = lut_to_dense(sparse_to_dense(indices_nonzero_data, mask), lut, vector_axis)
    vector = np.asarray(lut).shape[-1]
    if vector > 1:
        mask = np.repeat(mask, vector, axis=int(vector_axis))
    return mask, dense[mask != 0]


@op("constexpr_sparse_blockwise_shift_scale")
def _sparse_shift_scale(data_mask, nonzero_data, scale, offset=None):
    """iOS 18 block-wise dequantization of the set entries only: ``(mask, values)``."""
    mask = np.asarray(data_mask)
    dense = shift_scale(sparse_to_dense(nonzero_data, mask), scale, offset)
    return mask, dense[mask != 0]


@op("constexpr_cast")
def _constexpr_cast(source_val, output_dtype):
    return _cast(source_val, output_dtype)


# ---------------------------------------------------------------------------- the program
class MilProgram:
    """A loaded ML program and its NumPy execution."""

    def __init__(self, program: Any, function: str = "main"):
        self.program = program
        self.function = program.functions[function]
        self._constants: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | Path, function: str = "main") -> MilProgram:
        """Load a saved ``.mlpackage`` (weights included) as a MIL program."""
        import coremltools as ct

        return cls.of(ct.models.MLModel(str(path), skip_model_load=True), function)

    @classmethod
    def of(cls, mlmodel: Any, function: str = "main") -> MilProgram:
        """The program of an ML program `MLModel`, saved or not."""
        from coremltools.converters.mil.frontend.milproto.load import load

        spec = mlmodel.get_spec()
        return cls(load(spec, spec.specificationVersion, mlmodel.weights_dir), function)

    def op_types(self) -> set[str]:
        return {o.op_type for o in self.function.operations}

    def unsupported(self) -> list[tuple[str, str]]:
        """(op type, op name) of every op this interpreter cannot run."""
        return [(o.op_type, o.name) for o in self.function.operations
                if o.op_type != "const" and o.op_type not in OPS]

    @property
    def input_names(self) -> list[str]:
        return list(self.function.inputs)

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.function.outputs]

    def constants(self) -> dict[str, Any]:
        """Every value computed from constants alone, by variable name: the ``const`` ops and
        the ``constexpr_*`` ops (compressed weights), decoded once by this interpreter."""
        if self._constants is None:
            env: dict[str, Any] = {}
            for operation in self.function.operations:
                if operation.op_type == "const":
                    env[operation.outputs[0].name] = operation.outputs[0].val
                elif _is_constexpr(operation):
                    _execute(operation, env)
            self._constants = env
        return self._constants

    def weights(self) -> dict[str, np.ndarray]:
        """The weight tensors the computing ops read, by variable name, as the runtime
        computes with them (palettes looked up, sparse tensors filled, quantized tensors
        scaled): every constant float tensor of rank >= 1 (kernels, biases)."""
        constants = self.constants()
        weights = {}
        for operation in self.function.operations:
            if operation.op_type == "const" or _is_constexpr(operation):
                continue
            for arg in operation.inputs.values():
                for var in arg if isinstance(arg, list | tuple) else [arg]:
                    value = constants.get(var.name)
                    if (isinstance(value, np.ndarray) and value.ndim >= 1
                            and np.issubdtype(value.dtype, np.floating)):
                        weights[var.name] = value
        return weights

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Execute the program on `inputs` (name -> array); returns outputs by name."""
        from coremltools.converters.mil.mil.types import builtin_to_string

        missing = self.unsupported()
        if missing:
            kind, name = missing[0]
            raise UnsupportedOpError(f"MIL op {kind!r} (layer {name}) is not implemented by the "
                                     "reference interpreter")
        env = dict(self.constants())
        for name, var in self.function.inputs.items():
            if name not in inputs:
                raise KeyError(f"missing input {name!r}")
            env[name] = _round(np.asarray(inputs[name]), builtin_to_string(var.dtype))
        for operation in self.function.operations:
            if operation.op_type != "const" and not _is_constexpr(operation):
                _execute(operation, env)
        return {name: np.asarray(env[name]) for name in self.output_names}


def _is_constexpr(operation: Any) -> bool:
    return operation.op_type.startswith("constexpr_")


def _execute(operation: Any, env: dict[str, Any]) -> None:
    """Run one op on the values in `env` and store its outputs there, in their MIL dtypes."""
    from coremltools.converters.mil.mil.types import builtin_to_string

    if operation.op_type not in OPS:
        raise UnsupportedOpError(f"MIL op {operation.op_type!r} (layer {operation.name}) is not "
                                 "implemented by the reference interpreter")
    kwargs = {key: _value(arg, env) for key, arg in operation.inputs.items()}
    result = OPS[operation.op_type](**kwargs)
    results = result if isinstance(result, tuple) else (result,)
    for var, value in zip(operation.outputs, results, strict=True):
        env[var.name] = _round(np.asarray(value), builtin_to_string(var.dtype))


def _value(arg: Any, env: dict[str, Any]) -> Any:
    """The value of an op argument: a variable, a tuple of variables, or a constant."""
    if isinstance(arg, list | tuple):
        return [_value(a, env) for a in arg]
    if arg.name in env:
        return env[arg.name]
    if arg.val is not None:
        return arg.val
    raise KeyError(f"variable {arg.name!r} used before it is computed")


def _round(value: np.ndarray, dtype: str) -> np.ndarray:
    """Store `value` as the program's dtype: fp16 outputs are rounded to fp16 and computed on
    in fp32 by the next op (Core ML keeps fp16 activations)."""
    if dtype == "fp16":
        return value.astype(np.float16)
    if dtype == "fp32":
        return value.astype(np.float32)
    return value
