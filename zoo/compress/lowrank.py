"""Low-rank factorisation (`--method lowrank:R`, `lowrank:macs=F`): each large 1x1 or full k x k
convolution becomes a k x k convolution with d' filters followed by a 1x1 convolution, of a rank
d' chosen per layer, initialised from the SVD of the kernel and refined on the layer's responses
to training images, then fine-tuned.

Zhang, Zou, He & Sun 2015, "Efficient and accurate approximations of nonlinear convolutional
networks" (CVPR), and "Accelerating very deep convolutional networks for classification and
detection" (TPAMI 2016).

Example::

    convs, kept = candidates(model)                        # the convs worth factorising
    ranks = choose_ranks(convs, Target(energy=0.9), count_macs(model))
    factorised, layers = factorize(model, ranks, images)   # conv -> conv_lowrank_a, _b

What is done, per convolution W (n filters of k x k x c, reshaped to an n x kkc matrix):

1. **Candidates**: `Conv2D` layers that are not grouped, called once, with at least
   `MIN_WEIGHTS` kernel weights and `MIN_MAC_SHARE` of the model's MACs (a small layer saves
   little and costs an op). Depthwise and transposed convolutions are left as they are.
2. **Rank**: the kernel is taken as the converters ship it, with a BatchNorm that follows it
   folded in (`fold.py`): the BatchNorm rescales each output channel, so the raw kernel's
   per-channel scale says nothing. `lowrank:R`: the smallest d' whose singular values keep a
   fraction R of the kernel's energy (sum of squared singular values). `lowrank:macs=F`: ranks
   lowered greedily to maximise the product of the layers' kept energy fractions (Zhang et al.
   2016, eq. 14), the step that loses the least log energy kept per MAC saved first, until
   the model's MACs are at most F of the original's. Either way a layer is factorised only
   where it saves MACs, ``d' (kkc + n) < kkc n``.
3. **SVD initialisation**: ``W ~ U_d S_d V_d^T``; the k x k conv gets ``S_d^1/2 V_d^T``, the
   1x1 conv ``U_d S_d^1/2`` with the original bias and activation (balanced factors: int8
   later quantizes each per channel).
4. **Asymmetric refinement** (Zhang et al. 2015, section 3.3, the linear case): layers in
   topological order; for each, `SAMPLES` output positions of the training images give pairs
   (``y``: the original network's response; ``y^ = W x^``: the original kernel on the input the
   *factorised* network gives the layer, earlier layers already refined), and
   ``min_{rank M <= d'} sum ||y - M y^ - b||^2`` is solved in closed form (reduced-rank
   regression, the paper's GSVD-like solution): ``M_ols = Y Z^T (Z Z^T)^-1`` with ``Y``, ``Z``
   the centred ``y``, ``y^`` as columns, then ``M = U U^T M_ols`` with ``U`` the top d'
   eigenvectors of the fitted responses' covariance ``M_ols Z Z^T M_ols^T``. The pair becomes
   ``W_a = U^T M_ols W`` and ``W_b = U`` (re-balanced through an SVD) with bias ``b``: the
   errors of earlier layers are corrected, not accumulated. Responses are linear (before the
   activation) and BatchNorm-scaled (what the next layer sees). A ridge toward ``M = I`` (the
   original layer), worth n samples of average energy, keeps the solve well posed where few
   positions are fitted (a 7 x 9 map of 64 images: 4032 for 512 channels) and is negligible
   where many are. The paper's nonlinear refinement (the ReLU inside the objective, solved by
   alternating relaxation) is not done; fine-tuning follows instead. The refinement runs the
   factorised network op by op on all the images at once (one pass, each pair fitted when its
   input is ready), holding the activations still to be read: about 0.5 GB for mobileunet 0.5
   at 224x288 and 64 images, less than the fine-tuning that follows.

Each factorised layer records its rank, the energy kept, its MACs before and after, and the
relative response error (``||y - y_pred||^2 / ||y - mean y||^2`` on the fitted positions) of
plain SVD and of the refined pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from zoo import checks
from zoo.compress import register_method
from zoo.compress.fold import conv_weights, fold, plan_folding
from zoo.errors import ConfigError
from zoo.stats import count_macs, count_params, layer_macs

MIN_WEIGHTS = 1024  # kernel weights of a layer worth a second op (a 32 x 32 1x1 conv)
MIN_MAC_SHARE = 0.005  # and its share of the model's MACs (skips squeeze-excite convs)
SAMPLES = 8192  # output positions per layer the refinement fits (spread over the images)
USAGE = ("lowrank:R (the energy each layer keeps, 0 < R <= 1) or lowrank:macs=F (the model's "
         "MACs at most F of the original's, 0 < F < 1)")


@dataclass(frozen=True)
class Target:
    """What `lowrank` keeps: a fraction `energy` of each layer's, or the model within a
    fraction `macs` of its MACs."""

    energy: float | None = None
    macs: float | None = None

    def __str__(self) -> str:
        if self.energy is not None:
            return f"energy {self.energy:g} per layer"
        return f"macs {self.macs:g} of the model's"


def check_argument(argument: str | None) -> Target:
    """``"0.9"`` -> Target(energy=0.9), ``"macs=0.7"`` -> Target(macs=0.7); else a one-line
    ConfigError."""
    if argument is None or not argument.strip():
        raise ConfigError(f"--method lowrank needs an argument: {USAGE}")
    key, equals, value = argument.partition("=")
    key = key.strip() if equals else "energy"
    value = value if equals else argument
    if key == "energy":
        return Target(energy=checks.number(f"--method lowrank:{argument}: R", value, 0, 1,
                                           low_open=True))
    if key == "macs":
        return Target(macs=checks.number(f"--method lowrank:{argument}: F", value, 0, 1,
                                         low_open=True, high_open=True))
    raise ConfigError(f"--method lowrank:{argument}: expected {USAGE}")


@dataclass
class Conv:
    """A convolution as the refinement sees it: its kernel as shipped (n x kkc, a following
    BatchNorm's scale folded in), that scale, its singular values, output positions per image."""

    layer: keras.layers.Conv2D
    kernel: np.ndarray  # (n, kkc) float64, BatchNorm-scaled
    bias: np.ndarray  # (n,) float64, BatchNorm-scaled (the BN's shift left out: a constant)
    scale: np.ndarray  # (n,) the BatchNorm's per-channel scale (ones without a BatchNorm)
    singular: np.ndarray  # descending
    left: np.ndarray  # (n, full rank) left singular vectors
    right: np.ndarray  # (full rank, kkc) right singular vectors
    positions: int

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def n(self) -> int:
        return self.kernel.shape[0]

    @property
    def kkc(self) -> int:
        return self.kernel.shape[1]

    @property
    def full_rank(self) -> int:
        return min(self.kernel.shape)

    @property
    def max_rank(self) -> int:
        """The largest rank that saves MACs: ``d (kkc + n) < kkc n``."""
        return math.ceil(self.kkc * self.n / (self.kkc + self.n)) - 1

    def macs(self, rank) -> np.ndarray | int:
        """MACs per image at `rank` (0: the layer kept whole)."""
        per_position = np.where(np.asarray(rank) > 0, np.asarray(rank) * (self.kkc + self.n),
                                self.kkc * self.n)
        return self.positions * per_position

    def energy(self, rank) -> np.ndarray | float:
        """Fraction of the kernel's energy kept at `rank` (0: the layer kept whole, 1)."""
        power = self.singular ** 2
        total = power.sum()
        cumulative = np.concatenate([[1.0], np.cumsum(power) / total]) if total > 0 else \
            np.ones(len(power) + 1)
        kept = cumulative[np.minimum(np.asarray(rank), len(power))]
        return np.where(np.asarray(rank) > 0, kept, 1.0)

    def rank_for(self, energy: float) -> int:
        """The smallest rank keeping `energy` of the kernel's energy."""
        kept = self.energy(np.arange(1, self.full_rank + 1))
        return int(np.argmax(kept >= energy - 1e-9)) + 1


def _nodes(model, layer) -> list:
    return [node for nodes in model._nodes_by_depth.values() for node in nodes
            if node.operation is layer]


def describe(model, layer, plan=None) -> Conv:
    """`layer` (a Conv2D of `model`) as a `Conv`."""
    plan = plan_folding(model) if plan is None else plan
    kernel, bias = conv_weights(layer)
    n = kernel.shape[-1]
    scale = np.ones(n, np.float32)
    if layer.name in plan.into:
        bn, _ = plan.into[layer.name]
        # fold() of a kernel of ones is the BatchNorm's scale, exactly as the converters fold it.
        scale = fold(np.ones((1, n), np.float32), np.zeros(n, np.float32), bn, shift=False,
                     depthwise=False, repeat=1)[0][0]
    matrix = kernel.reshape(-1, n).T.astype(np.float64) * scale[:, None]
    left, singular, right = np.linalg.svd(matrix, full_matrices=False)
    positions = math.prod(int(s) for s in _nodes(model, layer)[0].output_tensors[0].shape[1:3])
    return Conv(layer, matrix, bias=bias.astype(np.float64) * scale,
                scale=scale.astype(np.float64), singular=singular, left=left, right=right,
                positions=positions)


def candidates(model) -> tuple[list[Conv], dict[str, str]]:
    """The convolutions `lowrank` may factorise (module docstring, 1.), and every other Conv2D
    with the reason it is left whole."""
    total = count_macs(model)
    plan = plan_folding(model)
    convs, skipped = [], {}
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D:
            continue
        weights = math.prod(layer.kernel.shape)
        if layer.groups != 1:
            skipped[layer.name] = "grouped"
        elif layer.data_format != "channels_last":
            skipped[layer.name] = "channels_first"
        elif len(_nodes(model, layer)) != 1:
            skipped[layer.name] = "called more than once"
        elif weights < MIN_WEIGHTS:
            skipped[layer.name] = f"{weights} weights < {MIN_WEIGHTS}"
        elif layer_macs(layer) < MIN_MAC_SHARE * total:
            skipped[layer.name] = f"{layer_macs(layer) / total:.2%} of the MACs"
        else:
            conv = describe(model, layer, plan)
            if not conv.singular.any():
                skipped[layer.name] = "zero kernel"
            else:
                convs.append(conv)
    return convs, skipped


def choose_ranks(convs: list[Conv], target: Target, total_macs: int) -> dict[str, int]:
    """Rank per layer for `target` (module docstring, 2.); 0 keeps the layer whole."""
    if target.energy is not None:
        ranks = {c.name: c.rank_for(target.energy) for c in convs}
        return {c.name: ranks[c.name] if ranks[c.name] <= c.max_rank else 0 for c in convs}
    budget = target.macs * total_macs
    floor = total_macs - sum(int(c.macs(0) - c.macs(1)) for c in convs)
    if floor > budget:
        raise ConfigError(f"--method lowrank:macs={target.macs:g}: factorising every "
                          f"convolution it may ({len(convs)}) at rank 1 leaves "
                          f"{floor / total_macs:.3f} of the model's MACs")
    ranks = {c.name: 0 for c in convs}
    macs = total_macs
    while macs > budget:
        # (log energy kept lost per MAC saved, conv, candidate ranks, MACs saved): the product
        # objective; a plain fraction lost per MAC let the decoder's full-resolution 1x1 convs,
        # worth many MACs per rank, fall to rank 1 at macs=0.55 (the model did not recover).
        best = None
        for c in convs:
            now = ranks[c.name]
            top = c.max_rank if now == 0 else now - 1
            if top < 1:
                continue
            lower = np.arange(1, top + 1)
            saved = c.macs(now) - c.macs(lower)
            ratio = (np.log(c.energy(now)) - np.log(np.maximum(c.energy(lower), 1e-12))) / saved
            i = int(np.argmin(ratio))  # the best step on the layer's lower convex hull
            if best is None or ratio[i] < best[0]:
                best = (ratio[i], c, lower, saved, i)
        _, c, lower, saved, i = best
        if macs - saved[i] <= budget:  # the last step: only as far as the budget needs
            i = int(np.nonzero(macs - saved <= budget)[0][-1])
        ranks[c.name] = int(lower[i])
        macs -= int(saved[i])
    return ranks


def _pair(layer: keras.layers.Conv2D, rank: int) -> tuple[keras.layers.Conv2D, ...]:
    """The k x k conv with `rank` filters and the 1x1 conv that replace `layer`."""
    config = layer.get_config()
    first = keras.layers.Conv2D.from_config({
        **config, "name": f"{layer.name}_lowrank_a", "filters": rank, "use_bias": False,
        "activation": "linear", "activity_regularizer": None})
    second = keras.layers.Conv2D.from_config({
        **config, "name": f"{layer.name}_lowrank_b", "kernel_size": (1, 1), "strides": (1, 1),
        "padding": "valid", "dilation_rate": (1, 1), "use_bias": True})
    return first, second


def _set_pair(first, second, conv: Conv, b_factor: np.ndarray, a_factor: np.ndarray,
              bias: np.ndarray, balanced: bool = False) -> None:
    """Weights of the pair from ``kernel ~ b_factor @ a_factor`` and `bias`, all BatchNorm-scaled
    (n x d, d x kkc, n): balanced through an SVD of the product (`b_factor` has orthonormal
    columns) unless `balanced`, unscaled on the 1x1 conv."""
    if not balanced:
        u, s, vt = np.linalg.svd(a_factor, full_matrices=False)
        root = np.sqrt(s)
        a_factor, b_factor = root[:, None] * vt, (b_factor @ u) * root
    scale = np.where(conv.scale == 0, 1.0, conv.scale)
    kh, kw = conv.layer.kernel_size
    c = conv.kkc // (kh * kw)
    first.set_weights([a_factor.T.reshape(kh, kw, c, -1).astype(np.float32)])
    second.set_weights([(b_factor / scale[:, None]).T.reshape(1, 1, -1, conv.n).astype(
        np.float32), (bias / scale).astype(np.float32)])


def _svd(conv: Conv, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(U_d S_d^1/2, S_d^1/2 V_d^T): the truncated SVD of the scaled kernel, balanced."""
    root = np.sqrt(conv.singular[:rank])
    return conv.left[:, :rank] * root, root[:, None] * conv.right[:rank]


def reduced_rank_fit(y: np.ndarray, y_hat: np.ndarray, rank: int, ridge: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, Q, b) minimising ``||y - y_hat (P Q)^T - b||^2 + lambda ||P Q - I||^2`` over n x d P
    and d x n Q (rows of `y`, `y_hat` are samples): reduced-rank regression in closed form, the
    ridge written as n extra samples ``sqrt(lambda) I -> sqrt(lambda) I``, each with `ridge`
    times the mean energy of a sample of `y_hat` (so the prior weighs n / N of the data)."""
    y, y_hat = y.astype(np.float64), y_hat.astype(np.float64)
    mean_y, mean_hat = y.mean(0), y_hat.mean(0)
    y, y_hat = y - mean_y, y_hat - mean_hat
    n = y.shape[1]
    gram = y_hat.T @ y_hat
    lam = ridge * max(np.trace(gram) / len(y), 1e-30)
    eye = np.eye(n)
    gram += lam * eye
    cross = y.T @ y_hat + lam * eye
    m_ols = np.linalg.solve(gram, cross.T).T  # cross @ gram^-1 (gram is symmetric)
    fitted = m_ols @ gram @ m_ols.T  # covariance of the fitted responses
    _, vectors = np.linalg.eigh((fitted + fitted.T) / 2)
    p = vectors[:, ::-1][:, :rank]
    q = p.T @ m_ols
    return p, q, mean_y - p @ (q @ mean_hat)


def relative_error(y: np.ndarray, prediction: np.ndarray) -> float:
    """``||y - prediction||^2 / ||y - mean y||^2``."""
    y = y.astype(np.float64)
    return float(((y - prediction) ** 2).sum() / max(((y - y.mean(0)) ** 2).sum(), 1e-30))


def _conv(x, conv: Conv) -> np.ndarray:
    """The scaled original kernel (no bias) applied to `x`."""
    layer = conv.layer
    kh, kw = layer.kernel_size
    kernel = conv.kernel.T.reshape(kh, kw, -1, conv.n).astype(np.float32)
    return keras.ops.convert_to_numpy(keras.ops.conv(
        keras.ops.convert_to_tensor(x, "float32"), kernel, strides=layer.strides,
        padding=layer.padding, data_format="channels_last", dilation_rate=layer.dilation_rate))


def _sampled(x, conv: Conv, where: np.ndarray) -> np.ndarray:
    """Responses of `conv` to the batch `x` at output positions `where` (batch x per image)."""
    out = _conv(x, conv)
    out = out.reshape(out.shape[0], -1, conv.n)
    return np.take_along_axis(out, where[:, :, None], axis=1).reshape(-1, conv.n)


def factorize(model, ranks: dict[str, int], images: np.ndarray | None = None, *,
              convs: list[Conv] | None = None, samples: int = SAMPLES, batch_size: int = 8,
              seed: int = 0) -> tuple[keras.Model, list[dict]]:
    """`model` with each Conv2D named in `ranks` (rank > 0) replaced by its low-rank pair,
    ``<name>_lowrank_a`` (k x k, rank filters) and ``<name>_lowrank_b`` (1x1, the original's
    bias and activation): the truncated SVD, refined on `images` when given (module docstring,
    3. and 4.). `convs`: `candidates`' descriptions, not computed again. Other layers are
    shared with `model`. Returns the model and a record per factorised layer, in topological
    order."""
    ranks = {name: int(r) for name, r in ranks.items() if r}
    known = {conv.name: conv for conv in convs or []}
    plan = None
    convs = {}
    for name in ranks:
        layer = model.get_layer(name)
        if type(layer) is not keras.layers.Conv2D or layer.groups != 1:
            raise ConfigError(f"lowrank: {name} is not a full Conv2D")
        if name not in known:
            plan = plan_folding(model) if plan is None else plan
        convs[name] = known.get(name) or describe(model, layer, plan)
        if not 1 <= ranks[name] <= convs[name].full_rank:
            raise ConfigError(f"lowrank: rank of {name} must be between 1 and "
                              f"{convs[name].full_rank}, got {ranks[name]}")
    pairs = {}

    def call(op, *args, **kwargs):
        if op.name not in ranks:
            return op(*args, **kwargs)
        pairs[op.name] = _pair(op, ranks[op.name])
        first, second = pairs[op.name]
        return second(first(*args, **kwargs))

    inputs = keras.Input(batch_shape=model.input.shape, dtype=model.input.dtype,
                         name=model.input.name)
    outputs = model._run_through_graph([inputs], call_fn=call)
    result = keras.Model(inputs, outputs, name=model.name)
    records = {}
    for name, (first, second) in pairs.items():  # topological order
        conv, rank = convs[name], ranks[name]
        records[name] = {
            "layer": name, "kernel": list(conv.layer.kernel.shape), "rank": rank,
            "full_rank": conv.full_rank, "energy_kept": round(float(conv.energy(rank)), 4),
            "macs_before": layer_macs(conv.layer),
            "macs_after": layer_macs(first) + layer_macs(second)}
    if pairs and images is not None and len(images):
        _refine(model, result, [convs[name] for name in pairs], ranks, pairs, images=images,
                records=records, samples=samples, batch_size=batch_size, seed=seed)
    else:
        for name, pair in pairs.items():
            _set_pair(*pair, convs[name], *_svd(convs[name], ranks[name]), convs[name].bias,
                      balanced=True)
    return result, list(records.values())


def _refine(model, result, convs: list[Conv], ranks, pairs, *, images, records,
            samples: int, batch_size: int, seed: int) -> None:
    """Asymmetric refinement of every pair, in topological order (module docstring, 4.)."""
    rng = np.random.default_rng(seed)
    batches = [np.asarray(images[s:s + batch_size], np.float32)
               for s in range(0, len(images), batch_size)]
    where = {}  # output positions sampled per layer, per batch: (images, positions)
    for conv in convs:
        per_image = min(conv.positions, max(1, math.ceil(samples / len(images))))
        where[conv.name] = [np.stack([rng.choice(conv.positions, per_image, replace=False)
                                      for _ in batch]) for batch in batches]
    # The original network's responses, from the original inputs of every layer at once.
    probe = keras.Model(model.input, [_nodes(model, c.layer)[0].input_tensors[0] for c in convs])
    targets = {conv.name: [] for conv in convs}
    for i, batch in enumerate(batches):
        xs = probe(batch, training=False)
        for conv, x in zip(convs, xs if len(convs) > 1 else [xs], strict=True):
            y = _sampled(x, conv, where[conv.name][i])
            targets[conv.name].append(y + conv.bias.astype(y.dtype))
    by_first = {pairs[conv.name][0]: conv for conv in convs}

    def fit(op, xs) -> bool:
        """Before `op` runs on `xs` (its input, per batch): fit it if it is a pair's first."""
        conv = by_first.pop(op, None)
        if conv is None:
            return bool(by_first)
        y = np.concatenate(targets.pop(conv.name))
        y_hat = np.concatenate([_sampled(x, conv, w) for x, w in zip(xs, where[conv.name],
                                                                     strict=True)])
        rank = ranks[conv.name]
        u = conv.left[:, :rank]
        before = relative_error(y, y_hat @ u @ u.T + conv.bias)
        p, q, bias = reduced_rank_fit(y, y_hat, rank)
        after = relative_error(y, y_hat @ (p @ q).T + bias)
        _set_pair(*pairs[conv.name], conv, p, q @ conv.kernel, bias)
        records[conv.name].update(response_error_svd=round(before, 5),
                                  response_error_refined=round(after, 5), samples=len(y))
        return bool(by_first)

    _walk(result, batches, fit)


def _walk(model, batches: list[np.ndarray], before) -> None:
    """Run `model` op by op on all `batches` at once, calling ``before(op, inputs)`` (the op's
    first input, per batch) before each op, until it returns False. Holds every tensor still to
    be read, for all batches."""
    readers = {}
    nodes = [node for depth in sorted(model._nodes_by_depth, reverse=True)
             for node in model._nodes_by_depth[depth] if not node.is_input]
    for node in nodes:
        for x in node.input_tensors:
            readers[id(x)] = readers.get(id(x), 0) + 1
    values = {id(model.input): [keras.ops.convert_to_tensor(b) for b in batches]}
    for node in nodes:
        first = values[id(node.input_tensors[0])] if node.input_tensors else None
        if not before(node.operation, first):
            return
        outputs = []
        for i in range(len(batches)):
            args, kwargs = node.arguments.fill_in({k: v[i] for k, v in values.items()})
            outputs.append(keras.tree.flatten(node.operation(*args, **kwargs)))
        for j, x in enumerate(node.outputs):
            values[id(x)] = [out[j] for out in outputs]
        for x in node.input_tensors:
            readers[id(x)] -= 1
            if not readers[id(x)]:
                values.pop(id(x), None)


def _mean(layers: list[dict], key: str) -> float | None:
    values = [r[key] for r in layers if key in r]
    return round(float(np.mean(values)), 5) if values else None


# Stage 0: the structure changes before pruning, clustering or QAT see the weights. lr_scale
# 0.1, as QAT: the refined pairs start close to the parent (mobileunet 0.5 on CamVid at R = 0.7:
# 0.69 of the MACs, held-out mIoU 0.398 against 0.399 before any fine-tuning), so fine-tuning
# corrects the model rather than retraining it.
@register_method("lowrank", lr_scale=0.1, check=check_argument, stage=0)
def lowrank_method(model, data, value: Target):
    """Low-rank factorisation: large convs as k x k (rank d') + 1x1, refined on responses."""
    total = count_macs(model)
    convs, skipped = candidates(model)
    ranks = choose_ranks(convs, value, total)
    result, layers = factorize(model, ranks, data.train_images, convs=convs,
                               batch_size=data.batch_size)
    after = count_macs(result)
    kept = {c.name: (f"rank {c.rank_for(value.energy)} of {c.full_rank} saves no MACs (at "
                     f"most {c.max_rank})" if value.energy else "not needed for the budget")
            for c in convs if not ranks[c.name]}
    return result, {
        "target": str(value),
        "factorised": f"{len(layers)} of {len(convs) + len(skipped)} Conv2D",
        "macs_before": total, "macs_after": after, "macs_ratio": round(after / total, 4),
        "params_before": count_params(model), "params_after": count_params(result),
        "response_error_svd": _mean(layers, "response_error_svd"),
        "response_error_refined": _mean(layers, "response_error_refined"),
        "refinement": f"linear asymmetric reduced-rank least squares on {len(data.train_images)} "
                      "training images (Zhang et al. 2015, 3.3)",
        "layers": layers, "kept": {**kept, **skipped}}
