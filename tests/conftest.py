"""Shared test setup: quiet TensorFlow, no network from albumentations, a fresh Keras session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a clean Keras name scope and seed; graphs do not pile up."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
