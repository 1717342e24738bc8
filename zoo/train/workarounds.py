"""Workarounds for Keras bugs under MultiWorkerMirroredStrategy, in one place.

Each is applied to one model (`for_multiworker`) and has a test in
tests/train/test_workarounds.py that runs the unpatched Keras path and expects the bug: once
upstream fixes it, that test fails, and the workaround can go.

1. **The symbolic build reduces a distributed batch** (keras-team/keras#20585): before the
   first step, ``Trainer._maybe_symbolic_build`` takes one batch of the distributed dataset
   and, when it is made of ``PerReplica`` values, passes it to
   ``strategy.reduce("MEAN", batch, axis=None)`` to get one batch to build the model from.
   Under MultiWorkerMirroredStrategy that fails ("Attempt to convert a value (PerReplica:
   ...) to a Tensor"). Building needs only the batch's shapes and dtypes: the workaround
   builds from this worker's first replica's part of the batch.
2. **Scalar logs reduced along axis 0** (tensorflow/tensorflow#72388): each train and test
   step's logs (the loss, the metrics: scalars) go through ``reduce_per_replica(...,
   "auto")``, which under MultiWorkerMirroredStrategy calls ``strategy.reduce("MEAN", v,
   axis=0)``; a scalar has no axis 0 ("Invalid reduction dimension 0 for input with 0
   dimensions"). The workaround reduces scalars with ``axis=None`` (the mean over replicas,
   what "auto" means on every other strategy) and leaves everything else to Keras. It
   replaces the module function Keras' train and test functions call, for every model: it
   is applied once, only when a multi-worker run starts.
"""

from __future__ import annotations

from typing import Any


def local_batch(strategy, batch: Any) -> Any:
    """`batch` with every distributed value replaced by its first local replica's."""
    import tensorflow as tf
    from keras.src import tree

    return tree.map_structure(
        lambda x: strategy.experimental_local_results(x)[0]
        if isinstance(x, tf.distribute.DistributedValues) else x, batch)


def symbolic_build_from_local_batch(model) -> None:
    """Workaround 1 (keras-team/keras#20585), on `model` only: its symbolic build takes this
    worker's part of the first batch instead of reducing the distributed batch."""

    def maybe_symbolic_build(iterator=None, data_batch=None):
        strategy = model.distribute_strategy
        if iterator is not None:
            for _, _, it in iterator:  # as Keras does: the epoch iterator's first batch
                data_batch = local_batch(strategy, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build


def reduce_scalars_with_axis_none() -> None:
    """Workaround 2 (tensorflow/tensorflow#72388): see the module docstring. Idempotent."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "zoo_workaround", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(
                strategy):
            return keras_reduce(values, strategy, reduction)

        def reduce(v):
            local = (strategy.experimental_local_results(v)[0]
                     if isinstance(v, tf.distribute.DistributedValues) else v)
            if local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return keras_reduce(v, strategy, reduction)

        return tree.map_structure(reduce, values)

    reduce_per_replica.zoo_workaround = True
    reduce_per_replica.keras = keras_reduce
    trainer.reduce_per_replica = reduce_per_replica


def for_multiworker(model) -> None:
    """Every workaround above, applied to `model` (and, for 2, to Keras' trainer)."""
    symbolic_build_from_local_batch(model)
    reduce_scalars_with_axis_none()
