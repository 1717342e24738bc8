"""Trained ternary quantization (TTQ; Zhu et al. 2016, "Trained Ternary Quantization",
arXiv:1612.01064): each ternarised conv's kernel takes three values, {-Wn, 0, +Wp}, with Wp and
Wn learned per layer.

Example::

    ternary, record = ternarize(model, threshold=0.05)   # BN folded, kernels ternary
    ternary.fit(...)                                      # latent weights and Wp, Wn learn
    python compress.py --run checkpoints/<run> --method ternary:0.05

What is rewritten:

1. Every BatchNorm after a conv is folded into it first (`zoo.compress.fold`), so the kernel
   the model trains is the kernel the file ships: a BatchNorm folded by a converter would scale
   each output channel and make three values per channel, not per layer.
2. Each Conv2D and 1x1 conv of a `DepthToSpaceUpsample` (a 2x2 stride-2 transposed conv)
   becomes its `Ternary*` twin, except the first conv (the one that reads the image) and the
   classifier (each conv whose output reaches the logits without another conv: both of
   LR-ASPP's), which stay full precision as in the paper (its first and last layers stay
   float). Depthwise convs stay float too (`DEPTHWISE`, below).
3. The latent kernel is the float kernel normalised to [-1, 1] (divided by its max |w|, kept as
   the layer's `scale`); with ``delta = t * max|latent|`` the kernel used is
   ``scale * (Wp * [latent > delta] - Wn * [latent < -delta])``, Wp and Wn starting at the mean
   |latent| of their set (the least-squares fit of the float kernel with those masks).

Gradients (the paper's rules): Wp gets the sum of the kernel's gradient over the positive set,
Wn the sum over the negative set with the sign of the chain rule (the value there is ``-Wn``),
and the latent weights the scaled straight-through gradient: Wp times the kernel's gradient
where positive, Wn where negative, 1 where zero (all times the layer's fixed `scale`, which
Adam normalises away). In inference the kernel is the plain ternary expression of three
variables, which the converters (TFLite from the SavedModel, tf2onnx, coremltools) fold into
one constant kernel of exactly those three values.

Measured on mobileunet 0.25 at 64 px on `shapes` (parent val mIoU 0.413; 3 fine-tuning epochs
of 64 steps; a float fine-tune of the folded model at a tenth of the rate: 0.418):

- depthwise kept float: 0.240 before fine-tuning, 0.368 after; ternary: 0.210, 0.358. A 3x3
  depthwise kernel has 9 weights per channel, and its channels, scaled apart by the folded
  BatchNorm, would share one Wp and Wn; it holds 3.6 % of the conv weights (1.8 % at alpha
  0.5), so keeping it float costs almost no size. The paper's networks had none.
- learning rate: the parent's (`LR_SCALE` 1): 0.368, against 0.292 at a tenth (QAT's scale),
  where Adam moves a latent weight by ~1e-4 a step, too little to cross the threshold in a
  short fine-tune.
- what remains lost is the price of folding: BatchNorm gave each output channel its own scale,
  which one Wp, Wn per layer cannot carry (the paper's ternary convs keep their BatchNorm).

Stage 2 (after pruning, before QAT; weight sharing is the other stage-2 method): nothing needs a
constraint, since the ternary values are what the layers compute. QAT after ternary is allowed
and leaves the ternary layers as they are (it fake-quantizes Keras' own convs only).

The layers are registered with Keras, so a ternary checkpoint loads wherever this module has
been imported (`zoo.compress` imports every method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from zoo.compress import register_method
from zoo.compress.fold import fold_batchnorm, graph_links, operations
from zoo.errors import ConfigError
from zoo.export.tflite_graph import DepthToSpaceUpsample

DEFAULT_THRESHOLD = 0.05  # the paper's t for CIFAR-10 and ImageNet
DEPTHWISE = False  # depthwise kernels stay float (see the module docstring)
LR_SCALE = 1.0  # the parent's learning rate, not QAT's tenth (see the module docstring)
CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, DepthToSpaceUpsample,
         keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D)


class _Ternary:
    """What the ternary convs share: the weights `wp`, `wn` (trainable, in units of `scale`)
    and `scale` (the float kernel's max |w|, fixed), and the kernel they make; the threshold
    option, built after the conv's own weights."""

    def __init__(self, *args, threshold: float = DEFAULT_THRESHOLD, **kwargs):
        super().__init__(*args, **kwargs)
        self.threshold = _check_threshold(threshold)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_ternary()

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}

    def _build_ternary(self) -> None:
        self.wp = self.add_weight(name="wp", shape=(), initializer="ones")
        self.wn = self.add_weight(name="wn", shape=(), initializer="ones")
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones",
                                     trainable=False)

    # Every variable in order (kernel, bias, wp, wn, scale): Keras' convs save kernel and bias
    # only.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def ternary_kernel(self, training=None):
        latent = self.kernel
        delta = ops.stop_gradient(self.threshold * ops.max(ops.abs(latent)))
        positive, negative = latent > delta, latent < -delta
        wp, wn = self.scale * self.wp, self.scale * self.wn  # scalars: each value is exact
        kernel = ops.where(positive, wp, ops.where(negative, -wn, ops.zeros_like(latent)))
        if training:
            # Straight-through: d kernel / d latent = scale * (Wp | 1 | Wn); the difference is
            # exactly 0 in the forward pass.
            step = ops.stop_gradient(self.scale * ops.where(
                positive, self.wp, ops.where(negative, self.wn, ops.ones_like(latent))))
            surrogate = step * latent
            kernel = kernel + (surrogate - ops.stop_gradient(surrogate))
        return kernel

    def set_ternary(self, kernel: np.ndarray, bias: np.ndarray | None) -> None:
        """Start from the float `kernel`: latent = kernel / max|kernel|, Wp and Wn the mean
        |latent| of the positive and negative sets."""
        scale = float(np.max(np.abs(kernel))) or 1.0
        latent = (kernel / scale).astype(np.float32)
        delta = self.threshold * float(np.max(np.abs(latent)))
        fit = [np.abs(latent[latent > delta]), np.abs(latent[latent < -delta])]
        wp, wn = (float(v.mean()) if v.size else delta for v in fit)
        self.kernel.assign(latent)
        if bias is not None:
            self.bias.assign(bias)
        self.wp.assign(wp)
        self.wn.assign(wn)
        self.scale.assign(scale)

    def ternary_values(self) -> tuple[float, float]:
        """(-Wn, +Wp) in kernel units."""
        scale = float(self.scale.numpy())
        return -scale * float(self.wn.numpy()), scale * float(self.wp.numpy())


def _check_threshold(threshold) -> float:
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return threshold


@keras.saving.register_keras_serializable(package="zoo")
class TernaryConv2D(_Ternary, keras.layers.Conv2D):
    """`Conv2D` whose kernel is ternary: {-Wn, 0, +Wp} (see the module docstring)."""

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.ternary_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

@keras.saving.register_keras_serializable(package="zoo")
class TernaryDepthwiseConv2D(_Ternary, keras.layers.DepthwiseConv2D):
    """`DepthwiseConv2D` whose kernel is ternary: {-Wn, 0, +Wp} (see the module docstring)."""

    def call(self, inputs, training=None):
        outputs = ops.depthwise_conv(inputs, self.ternary_kernel(training),
                                     strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

@keras.saving.register_keras_serializable(package="zoo")
class TernaryDepthToSpaceUpsample(DepthToSpaceUpsample):
    """`DepthToSpaceUpsample` whose 1x1 conv is a `TernaryConv2D`."""

    def __init__(self, filters: int, activation=None, threshold: float = DEFAULT_THRESHOLD,
                 **kwargs):
        super().__init__(filters, activation, **kwargs)
        self.threshold = _check_threshold(threshold)
        self.conv = TernaryConv2D(4 * self.filters, 1, threshold=self.threshold,
                                  name="pointwise")

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


TERNARY_LAYERS = (TernaryConv2D, TernaryDepthwiseConv2D, TernaryDepthToSpaceUpsample)


def ternary_convs(model) -> dict:
    """The ternary convs of `model` by layer name (the 1x1 conv of a depth-to-space
    upsample under the upsample's name)."""
    return {layer.name: layer.conv if isinstance(layer, TernaryDepthToSpaceUpsample) else layer
            for layer in model.layers if isinstance(layer, TERNARY_LAYERS)}


@dataclass
class Ternarization:
    """What `ternarize` did, for the run's record."""

    ternary: list[str] = field(default_factory=list)    # layers ternarised
    kept: dict[str, str] = field(default_factory=dict)  # layer kept float -> why
    folded: list[str] = field(default_factory=list)     # BatchNorm layers folded
    unfolded: list[str] = field(default_factory=list)   # BatchNorm layers kept


def _nearest_convs(start: list[str], links: dict[str, list[str]], by_name: dict) -> set[str]:
    """The convs reached from `start` along `links` before any other conv."""
    found, seen, todo = set(), set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if isinstance(by_name[name], CONVS):
            found.add(name)
        else:
            todo += links.get(name, [])
    return found


def _ternary_twin(layer, threshold: float):
    if type(layer) is keras.layers.Conv2D:
        return TernaryConv2D.from_config({**layer.get_config(), "threshold": threshold})
    if type(layer) is keras.layers.DepthwiseConv2D and DEPTHWISE:
        return TernaryDepthwiseConv2D.from_config({**layer.get_config(),
                                                   "threshold": threshold})
    if type(layer) is DepthToSpaceUpsample:
        return TernaryDepthToSpaceUpsample(layer.filters, layer.activation,
                                           threshold=threshold, name=layer.name,
                                           dtype=layer.dtype_policy)
    return None


def ternarize(model, threshold: float = DEFAULT_THRESHOLD
              ) -> tuple[keras.Model, Ternarization]:
    """The ternary model of `model` (see the module docstring) and what was rewritten."""
    folded, plan = fold_batchnorm(model)
    result = Ternarization(folded=plan.folded, unfolded=plan.unfolded)
    parents, readers = graph_links(folded)
    by_name = operations(folded)
    sources = [name for name, op in by_name.items() if not parents.get(name)]
    sinks = [t._keras_history.operation.name for t in folded.outputs]
    first = _nearest_convs(sources, readers, by_name)
    last = _nearest_convs(sinks, parents, by_name)
    made = {}

    def clone(layer):
        if isinstance(layer, CONVS):
            if layer.name in first:
                result.kept[layer.name] = "first conv"
            elif layer.name in last:
                result.kept[layer.name] = "classifier"
            else:
                new = _ternary_twin(layer, threshold)
                if new is not None:
                    made[new] = layer
                    result.ternary.append(layer.name)
                    return new
                result.kept[layer.name] = ("depthwise" if isinstance(
                    layer, keras.layers.DepthwiseConv2D) else type(layer).__name__)
        return layer

    ternary = keras.models.clone_model(folded, clone_function=clone)
    for new, old in made.items():
        inner_new = new.conv if isinstance(new, DepthToSpaceUpsample) else new
        inner_old = old.conv if isinstance(old, DepthToSpaceUpsample) else old
        kernel, *bias = inner_old.get_weights()
        inner_new.set_ternary(kernel, bias[0] if bias else None)
    return ternary, result


def parse_threshold(argument: str | None) -> float:
    """``ternary`` -> 0.05, ``ternary:0.1`` -> 0.1; a one-line `ConfigError` outside (0, 1)."""
    if argument is None:
        return DEFAULT_THRESHOLD
    try:
        value = float(argument)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise ConfigError(f"--method ternary:{argument}: the threshold t (a fraction of each "
                          f"layer's max |w|) must be a number in (0, 1), e.g. ternary:0.05")
    return value


@register_method("ternary", lr_scale=LR_SCALE, check=parse_threshold, stage=2)
def ternary_method(model, data, value=DEFAULT_THRESHOLD):
    """Trained ternary quantization: conv kernels in {-Wn, 0, +Wp} per layer, BN folded; the
    first conv, the classifier and the depthwise convs stay float."""
    ternary, result = ternarize(model, value)
    return ternary, {"threshold": value, "ternary_layers": result.ternary,
                     "float_layers": result.kept, "folded_batchnorm": len(result.folded),
                     "unfolded_batchnorm": result.unfolded}
