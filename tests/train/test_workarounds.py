"""The Keras bugs `zoo.train.workarounds` works around, still there upstream: two worker
processes on loopback run Keras' own code paths under MultiWorkerMirroredStrategy and must
hit each bug, then pass with its workaround. **When this test fails because a bug is gone,
remove that workaround** (and this check)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from zoo.train.launch import free_ports, tf_config

REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import json
import numpy as np
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: collectives at start-up
import keras
from keras.src.backend.tensorflow import trainer

from zoo.train import workarounds

found = {}


def model_and_iterator():
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"),
                                               np.ones((8, 2), "float32"))).batch(4)
    return model, trainer.TFEpochIterator(x=data, distribute_strategy=strategy,
                                          steps_per_execution=model.steps_per_execution)


# keras-team/keras#20585: the symbolic build reduces a PerReplica batch.
model, iterator = model_and_iterator()
try:
    model._maybe_symbolic_build(iterator=iterator)
    found["20585"] = "fixed"
except ValueError as exc:
    found["20585"] = "bug" if "PerReplica" in str(exc) else f"other: {exc}"
model, iterator = model_and_iterator()
workarounds.symbolic_build_from_local_batch(model)
model._maybe_symbolic_build(iterator=iterator)
found["20585 workaround"] = "ok" if model.built and model.optimizer.built else "not built"

# tensorflow/tensorflow#72388: scalar logs reduced along axis 0.
scalar = strategy.run(lambda: tf.constant(2.0))
try:
    trainer.reduce_per_replica({"loss": scalar}, strategy, "auto")
    found["72388"] = "fixed"
except Exception as exc:  # InvalidArgumentError eagerly, ValueError when traced
    found["72388"] = "bug" if "reduction dimension 0" in str(exc) else f"other: {exc}"
workarounds.reduce_scalars_with_axis_none()
reduced = trainer.reduce_per_replica({"loss": scalar}, strategy, "auto")["loss"]
found["72388 workaround"] = "ok" if float(reduced) == 2.0 else f"got {float(reduced)}"
print("FOUND " + json.dumps(found), flush=True)
"""


def test_the_keras_bugs_are_still_there_and_worked_around():
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = [subprocess.Popen(
        [sys.executable, "-c", WORKER], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CONFIG": tf_config(addresses, i), "TF_CPP_MIN_LOG_LEVEL": "2",
             "TF_NUM_INTRAOP_THREADS": "1"}) for i in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
        found = json.loads(out.split("FOUND ", 1)[1])
        assert found["20585"] == "bug", (
            "keras-team/keras#20585 looks fixed: remove workarounds.symbolic_build_from_local_"
            f"batch ({found['20585']})")
        assert found["72388"] == "bug", (
            "tensorflow/tensorflow#72388 looks fixed: remove workarounds.reduce_scalars_with_"
            f"axis_none ({found['72388']})")
        assert found["20585 workaround"] == "ok" and found["72388 workaround"] == "ok", found
