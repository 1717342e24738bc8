"""ImageNet weights of the `keras.applications` backbones: the published files, Keras' cache.

The MobileNet v1, v2 and v3 backbones are `keras.applications` networks, so the ImageNet weights
Keras publishes for them load into the zoo's backbones as they are: the ``include_top=False``
("no_top") files, named and fetched as ``keras/src/applications/mobilenet.py``,
``mobilenet_v2.py`` and ``mobilenet_v3.py`` do. Each backbone family declares its files as a
`PublishedWeights` table; this module finds a file where `keras.utils.get_file` caches it
(``$KERAS_HOME/models``, else ``~/.keras/models``), checks the hash Keras gives for it, and
downloads only on request (``train.py --weights imagenet --download-weights``). Example::

    table = PublishedWeights(KERAS_WEIGHTS_URL + "mobilenet/",
                             {(0.25, 128): "mobilenet_2_5_128_tf_no_top.h5", ...})
    name = table.file_for(0.25, (128, 128))        # "mobilenet_2_5_128_tf_no_top.h5"
    path = imagenet_file_path(name, table.url + name, download=False)

What is checked: Keras publishes hashes only for the MobileNetV3 files (md5, ``WEIGHTS_HASHES``
in ``keras/src/applications/mobilenet_v3.py``); `WEIGHT_HASHES` takes them from the installed
Keras, and a cached file that does not match is refused (a download is checked by `get_file`).
``mobilenet.py`` and ``mobilenet_v2.py`` call `get_file` without a hash, so for v1 and v2 files
nothing checks the bytes: only loading them does (every layer's weights must have the shapes of
the backbone's, or the load fails).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
from keras.src.applications.mobilenet_v3 import WEIGHTS_HASHES as _KERAS_V3_HASHES

# Keras' own cache folder and hash check (what `get_file` uses); `keras.utils` exports neither.
from keras.src.backend.config import keras_home
from keras.src.utils.file_utils import validate_file

from zoo.errors import ConfigError

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# File name -> the hash Keras checks it against (md5, or sha256 when 64 hex digits). Keras
# names the MobileNetV3 no-top files "weights_mobilenet_v3_{model}_no_top_v2.h5" and keeps
# (top, no-top) hashes per model; the v1 and v2 files have none.
WEIGHT_HASHES: dict[str, str] = {
    f"weights_mobilenet_v3_{model}_no_top_v2.h5": hashes[1]
    for model, hashes in _KERAS_V3_HASHES.items()
}

# keras.applications loads the file trained at the input's resolution when the input is square
# and of a published resolution, else the 224 px one (mobilenet.py, mobilenet_v2.py; v3 has only
# 224 px files). Every file fits any input size: the no-top networks are fully convolutional.
DEFAULT_RESOLUTION = 224


@dataclass(frozen=True)
class PublishedWeights:
    """The ImageNet files Keras publishes for one backbone, as ``{key: file name}`` under `url`.

    A key is ``(alpha, resolution)`` followed by the values of the backbone options named in
    `options` (whose values are their defaults), e.g. ``(1.0, 224, True)`` with
    ``options={"minimalistic": False}``.
    """

    url: str
    files: Mapping[tuple, str]
    options: Mapping[str, Any] = field(default_factory=dict)

    def _variant(self, options: Mapping[str, Any]) -> tuple:
        return tuple(options.get(name, default) for name, default in self.options.items())

    def file_for(self, alpha: float, input_size: tuple[int, int], **options: Any) -> str | None:
        """The file keras.applications would load for this alpha, input size and options, or
        `None` when none is published."""
        variant = self._variant(options)
        sizes = {key[1] for key in self.files
                 if abs(key[0] - alpha) < 1e-9 and tuple(key[2:]) == variant}
        height, width = input_size
        resolution = height if height == width and height in sizes else DEFAULT_RESOLUTION
        for key, name in self.files.items():
            if abs(key[0] - alpha) < 1e-9 and key[1] == resolution and tuple(key[2:]) == variant:
                return name
        return None

    def describe(self) -> str:
        """The published combinations in one line, e.g. ``alpha 0.75, 1.0 at 224 px;
        minimalistic=True: alpha 1.0 at 224 px``."""
        groups: dict[tuple, dict[float, list[int]]] = {}
        for key in self.files:
            groups.setdefault(tuple(key[2:]), {}).setdefault(key[0], []).append(key[1])
        parts = []
        for variant, by_alpha in groups.items():
            runs: list[tuple[list[float], list[int]]] = []
            for alpha in sorted(by_alpha):
                sizes = sorted(by_alpha[alpha])
                if runs and runs[-1][1] == sizes:
                    runs[-1][0].append(alpha)
                else:
                    runs.append(([alpha], sizes))
            text = " and ".join(
                f"alpha {', '.join(str(float(a)) for a in alphas)} at "
                f"{', '.join(str(s) for s in sizes)} px" for alphas, sizes in runs
            )
            changed = [f"{name}={value}" for (name, default), value
                       in zip(self.options.items(), variant, strict=True) if value != default]
            parts.append(f"{' '.join(changed)}: {text}" if changed else text)
        return "; ".join(parts)


def keras_cache_dir() -> Path:
    """The folder where ``keras.utils.get_file(..., cache_subdir="models")`` keeps files.

    As Keras decides it (``keras/src/backend/config.py``, ``keras/src/utils/file_utils.py``):
    ``$KERAS_HOME``, else ``~/.keras``; ``/tmp/.keras`` when that folder is not writable.
    `KERAS_HOME` is read on each call (Keras reads it once, at import).
    """
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def imagenet_file_path(file_name: str, url: str, download: bool = False) -> str:
    """Path of the published file `file_name` in Keras' cache, hash-checked when Keras has a hash
    for it; with `download`, `keras.utils.get_file` fetches it from `url` first if it is missing
    or does not match. Otherwise a one-line `ConfigError` names the file and the folder."""
    cache = keras_cache_dir()
    file_hash = WEIGHT_HASHES.get(file_name)
    if download:
        try:
            return keras.utils.get_file(file_name, url, cache_dir=str(cache.parent),
                                        cache_subdir=cache.name, file_hash=file_hash)
        except Exception as exc:  # get_file raises Exception for a failed fetch
            reason = " ".join(str(exc).split())
            raise ConfigError(f"could not download ImageNet weights {file_name} from {url} "
                              f"({reason}); put the file in {cache}") from None
    path = cache / file_name
    if not path.is_file():
        raise ConfigError(f"ImageNet weights {file_name} are not in Keras' cache {cache}: pass "
                          f"--download-weights to fetch them from {url}, or put the file there")
    if file_hash is not None and not validate_file(str(path), file_hash):
        raise ConfigError(f"{path} does not match the hash Keras publishes for it ({file_hash}); "
                          "delete it and pass --download-weights, or put the published file there")
    return str(path)
