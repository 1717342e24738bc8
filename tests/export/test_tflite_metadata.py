"""The standard TFLite segmenter metadata in every TFLite artifact, read back, and each logits
artifact run in MediaPipe Tasks' ImageSegmenter against Keras at the format's tolerance."""

import numpy as np
import pytest

from zoo.export import FORMATS
from zoo.export.runtimes.mediapipe import MediaPipeRunner
from zoo.export.tflite_metadata import read_segmenter_metadata, with_segmenter_metadata
from zoo.export.validate import validate

TFLITE = ["tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8", "edgetpu"]


@pytest.mark.parametrize("name", TFLITE)
def test_every_tflite_artifact_runs_in_mediapipe_with_its_labels(name, format_contract):
    calibrates = "calibration_images" in FORMATS.get(name).option_names()
    contract = format_contract(name, **({"calibration_images": 8} if calibrates else {}))
    artifact, context = contract.artifact, contract.context
    meta = read_segmenter_metadata(artifact.path)
    assert meta["labels"] == context.class_names
    assert meta["mean"] == [0.0] and meta["std"] == [1.0]  # raw pixels: scaling is in the graph
    assert meta["name"] == context.arch and meta["min_parser_version"] == "1.0.0"
    assert meta["license"].startswith("Apache-2.0") and meta["description"]
    # The exporter's gate ran MediaPipe as a second runtime, at the format's tolerance.
    mediapipe = contract.result.other_runtimes["mediapipe"]
    assert mediapipe["status"] == "passed", mediapipe
    runner = MediaPipeRunner(artifact.path)
    assert runner.labels == context.class_names
    keras_labels = contract.keras_logits.argmax(-1)
    images = contract.images
    masks = np.concatenate([runner.run(images[i:i + 1]) for i in range(len(images))])
    runner.close()
    agreement = float((masks == keras_labels).mean() * 100)
    assert agreement == pytest.approx(mediapipe["agreement_pct"])
    # MediaPipe runs the same file as LiteRT: the same predictions, up to argmax ties.
    litert = artifact.runner()
    own = np.concatenate([litert.run(images[i:i + 1]).argmax(-1) for i in range(len(images))])
    assert (masks == own).mean() >= 0.99


def test_label_map_artifacts_carry_the_metadata_but_are_not_for_mediapipe(format_contract):
    contract = format_contract("tflite", output="labels")
    meta = read_segmenter_metadata(contract.artifact.path)
    assert meta["labels"] == contract.context.class_names and meta["std"] == [1.0]
    # ImageSegmenter takes per-class scores and computes its own argmax: not run there.
    assert contract.artifact.also_runs_in == []
    assert "mediapipe" not in contract.result.other_runtimes


def test_metadata_is_replaced_not_stacked(tmp_path, format_contract):
    artifact = format_contract("tflite").artifact
    data = artifact.path.read_bytes()
    again = with_segmenter_metadata(data, name="other", description="d", version="2",
                                    author="a", license="l", labels=["x", "y"])
    path = tmp_path / "again.tflite"
    path.write_bytes(again)
    meta = read_segmenter_metadata(path)
    assert meta["name"] == "other" and meta["labels"] == ["x", "y"] and meta["version"] == "2"


def test_a_broken_mediapipe_result_fails_the_artifact(format_contract, run_reference,
                                                      monkeypatch):
    artifact = format_contract("tflite").artifact
    *_, ref = run_reference

    def wrong(self, images):  # every pixel the wrong class
        return (ref.logits.argmax(-1)[:1] + 1).astype(np.uint8) % ref.num_classes

    monkeypatch.setattr(MediaPipeRunner, "run", wrong)
    result = validate(artifact, ref, FORMATS.get("tflite").tolerance)
    assert not result.passed and result.reason.startswith("in mediapipe: ")
    assert result.other_runtimes["mediapipe"]["status"] == "failed"
