"""The server half of split computing: ONNX models served over the Open Inference Protocol.

Example::

    serve(["split_out/mobileunet-cut5", "split_out/mobileunet-cut11"], port=8000, max_queue=8)
    # prints "serving mobileunet-cut5, mobileunet-cut11 on http://127.0.0.1:8000";
    # SIGTERM or Ctrl-C stops it

    python -m zoo.split.server --artifacts split_out/mobileunet-cut5,split_out/mobileunet-cut11

    import tritonclient.http as httpclient                   # unchanged, as against Triton
    client = httpclient.InferenceServerClient("127.0.0.1:8000")
    x = httpclient.InferInput("P3", [1, 28, 28, 32], "INT8").set_data_from_numpy(p3)
    result = client.infer("mobileunet-cut5", [x])            # binary tensors both ways
    labels = result.as_numpy("labels")
    load = read_load(result.get_response()["parameters"])   # or read_load(response.headers)
    client.get_model_repository_index()    # [{"name": "mobileunet-cut5", "version": "1",
                                           #   "state": "READY", "reason": ""}, ...]

One process serves several artifacts folders at once, each its own model, as Triton serves a
model repository: a split client switches between cuts at run time (re-planning when the
bandwidth or the server's load changes) by naming another model, on the same server.

The protocol is the Open Inference Protocol (KServe v2, as Triton speaks it over HTTP/REST;
github.com/kserve/open-inference-protocol) with Triton's binary tensor data extension
(triton-inference-server/server, docs/protocol/extension_binary_data.md), so Triton could serve
the same ``server.onnx`` (platform ``onnxruntime_onnx``) with no change on the client:

- ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2`` (server metadata),
- ``GET /v2/models/NAME[/versions/V]`` (model metadata), ``.../ready``, ``.../stats``
  (Triton's statistics extension, plus a ``zoo`` section), ``GET /v2/models/stats`` (every
  model's),
- ``POST /v2/repository/index`` (the index of Triton's model repository extension,
  docs/protocol/extension_model_repository.md): every model's name, version and state
  (``READY``; ``UNAVAILABLE`` while the server stops), only the ready ones for a body of
  ``{"ready": true}``. The models are fixed at start: ``.../repository/models/NAME/load`` and
  ``unload`` are answered 400, so the server metadata does not announce ``model_repository``,
- ``POST /v2/models/NAME[/versions/V]/infer``: inputs as JSON ``data`` or as binary
  (``parameters.binary_data_size`` and the ``Inference-Header-Content-Length`` header); outputs
  in binary when asked (``parameters.binary_data`` per output, or the request's
  ``parameters.binary_data_output``), answered with ``Inference-Header-Content-Length``. A
  gzip or deflate request body (``Content-Encoding``) is accepted; answers are not compressed.

Each artifacts folder holds ``server.onnx`` (its graph inputs and outputs, with their names,
types and shapes, are the protocol's) and ``split.json`` with at least ``model_name``,
``model_version`` and ``sha256["server.onnx"]``; the server refuses to start when one is
missing or the sha256 does not match, in any folder, or when two folders name the same model.

Load: the figures are the server's, whichever model a request names (every model's requests
wait in one queue for the same workers). Every answer of an infer endpoint (200, 400 and 503)
carries the headers

- ``X-Zoo-Queue-Depth``: requests waiting for a worker when the answer was sent,
- ``X-Zoo-Queue-Capacity``: the queue's size (``max_queue``); one request more is answered 503,
- ``X-Zoo-Workers``: inference threads (``workers``),
- ``X-Zoo-Busy-Workers``: workers computing when the answer was sent,
- ``X-Zoo-Recent-Compute-Ms``: mean onnxruntime time of the last 32 runs of any model (0
  before the first),
- ``X-Zoo-Compute-Ms``: this request's onnxruntime time (200 only),
- ``X-Zoo-Queue-Ms``: this request's wait in the queue (200 only),

and a 200's JSON carries the same figures as response ``parameters`` (``zoo_queue_depth``, ...),
because `tritonclient` hands a caller the JSON but not the headers. `read_load` reads either
into a `Load`. Malformed requests are answered 400 ``{"error": "<one line>"}`` (an unknown
model or version too, as Triton does); a full queue is answered 503 at once, never waited on.
The statistics are each model's; their ``zoo`` section holds the server's queue figures and
the model's own ``rejected`` (503s) and ``recent_compute_ms`` (its last 32 runs).

Concurrency: one HTTP thread per connection (keep-alive), one queue of `max_queue` requests
and `workers` threads for all models; each model has one onnxruntime session of `threads`
intra-op threads, which the workers share. SIGTERM or SIGINT stops accepting connections, lets
every request in flight finish, and returns.
"""

from __future__ import annotations

import json
import math
import queue
import re
import select
import signal
import socket
import socketserver
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from zoo import __version__, checks
from zoo.errors import ConfigError
from zoo.files import error_line, sha256_file

MODEL_FILE = "server.onnx"
SPEC_FILE = "split.json"
PLATFORM = "onnxruntime_onnx"  # Triton's platform name for an ONNX model (model_configuration.md)
EXTENSIONS = ("binary_tensor_data", "statistics")

# onnxruntime's element type -> (the protocol's datatype, numpy dtype); the protocol's names are
# those of the Open Inference Protocol's "Tensor Data Types" table.
DATATYPES = {
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
}

HEADER_LENGTH = "Inference-Header-Content-Length"
LOAD_HEADERS = {  # Load field -> header; the response parameter is the header's snake_case
    "queue_depth": "X-Zoo-Queue-Depth",
    "queue_capacity": "X-Zoo-Queue-Capacity",
    "workers": "X-Zoo-Workers",
    "busy_workers": "X-Zoo-Busy-Workers",
    "recent_compute_ms": "X-Zoo-Recent-Compute-Ms",
    "compute_ms": "X-Zoo-Compute-Ms",
    "queue_ms": "X-Zoo-Queue-Ms",
}
RECENT = 32  # requests in X-Zoo-Recent-Compute-Ms

JSON_ALLOWANCE = 64 * 1024  # bytes of a request's JSON besides its tensors' data
JSON_CHARS_PER_VALUE = 32  # the longest float JSON writes ("-1.2345678901234567e-300, ")
DYNAMIC_BODY_LIMIT = 256 * 1024 * 1024  # a body's limit when an input has a dynamic dimension
DRAIN_LIMIT = 64 * 1024 * 1024  # a refused body up to this size is read before the answer
POLL_S = 0.1  # how often idle connections and the accept loop look for a stop
READ_TIMEOUT_S = 60  # a request that stalls this long while being sent is dropped


# ------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, the protocol's datatype, numpy dtype, and shape
    (-1 for a dynamic dimension)."""

    name: str
    datatype: str
    dtype: np.dtype
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True))


RunFn = Callable[[list[str], dict[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Model:
    """``server.onnx`` loaded in onnxruntime, with the name and version of ``split.json``."""

    name: str
    version: str
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    session: Any

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds)

    def body_limit(self) -> int:
        """The largest request body this model's inputs can need: every value written as the
        longest JSON number, plus the JSON around them."""
        if any(-1 in spec.shape for spec in self.inputs):
            return DYNAMIC_BODY_LIMIT
        return JSON_ALLOWANCE + sum(JSON_CHARS_PER_VALUE * math.prod(spec.shape)
                                    for spec in self.inputs)


def _specs(file: Path, what: str, nodes) -> tuple[TensorSpec, ...]:
    specs = []
    for node in nodes:
        if node.type not in DATATYPES:
            raise ConfigError(f"{file}: {what} {node.name!r} has type {node.type}; the server "
                              f"carries {', '.join(sorted(d for d, _ in DATATYPES.values()))}")
        datatype, dtype = DATATYPES[node.type]
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
        specs.append(TensorSpec(node.name, datatype, np.dtype(dtype), shape))
    return tuple(specs)


def _read_spec(folder: Path) -> dict[str, Any]:
    path = folder / SPEC_FILE
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; the artifacts folder must hold {SPEC_FILE} "
                          f"beside {MODEL_FILE}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable as JSON ({error_line(exc)})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: must hold a JSON object, got {type(spec).__name__}")
    name = spec.get("model_name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"{path}: \"model_name\" must be a name of letters, digits, '_', '.' "
                          f"or '-', got {name!r}")
    version = spec.get("model_version")
    if not isinstance(version, str) or not re.fullmatch(r"[1-9][0-9]*", version):
        raise ConfigError(f"{path}: \"model_version\" must be a version number as a string "
                          f"such as \"1\", got {version!r}")
    digest = spec.get("sha256")
    if not isinstance(digest, dict) or not isinstance(digest.get(MODEL_FILE), str):
        raise ConfigError(f"{path}: must give the sha256 of {MODEL_FILE} as "
                          f"{{\"sha256\": {{\"{MODEL_FILE}\": \"<hex>\"}}}}")
    return spec


def load_artifacts(artifacts: str | Path, threads: int | None = None) -> Model:
    """The model of an artifacts folder, checked: ``split.json`` readable and complete,
    ``server.onnx`` present, of the sha256 ``split.json`` gives, and loadable by onnxruntime
    with `threads` intra-op threads (None: onnxruntime's default)."""
    folder = Path(artifacts)
    if not folder.is_dir():
        raise ConfigError(f"--artifacts must be a folder holding {MODEL_FILE} and {SPEC_FILE}, "
                          f"got {str(artifacts)!r}")
    spec = _read_spec(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing; the artifacts folder must hold {MODEL_FILE} "
                          f"beside {SPEC_FILE}")
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({error_line(exc)})") from None
    if digest != spec["sha256"][MODEL_FILE].lower():
        raise ConfigError(f"{path}: sha256 {digest} does not match the "
                          f"{spec['sha256'][MODEL_FILE]} of {folder / SPEC_FILE}; the file was "
                          f"changed or belongs to another split")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    # A server idles between requests: intra-op threads that spin there would take the cores
    # from the HTTP threads and the other workers (onnxruntime's default is to spin).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes for a bad graph
        raise ConfigError(f"{path}: onnxruntime cannot load it ({error_line(exc)})") from None
    return Model(spec["model_name"], spec["model_version"], path,
                 inputs=_specs(path, "input", session.get_inputs()),
                 outputs=_specs(path, "output", session.get_outputs()), session=session)


def artifact_folders(artifacts: Any) -> list[str]:
    """The folders `artifacts` names: one folder (a str or Path), a comma-separated string of
    them (``"a,b"``; a folder whose own name holds a comma is taken whole), or a list or tuple
    (what Fire makes of ``--artifacts a,b``)."""
    if isinstance(artifacts, list | tuple):
        folders = [str(item).strip() for item in artifacts]
    elif isinstance(artifacts, str) and not Path(artifacts).is_dir():
        folders = [item.strip() for item in artifacts.split(",")]
    else:
        folders = [str(artifacts)]
    folders = [folder for folder in folders if folder]
    if not folders:
        raise ConfigError(f"--artifacts must name a folder holding {MODEL_FILE} and {SPEC_FILE}, "
                          f"or several separated by commas, got {artifacts!r}")
    return folders


def load_models(artifacts: Any, threads: int | None = None) -> tuple[Model, ...]:
    """The models of one artifacts folder or several (see `artifact_folders`), each checked by
    `load_artifacts`; two folders naming one model in their ``split.json`` are refused, as a
    client could not tell them apart."""
    models: dict[str, tuple[Model, Path]] = {}
    for folder in artifact_folders(artifacts):
        model = load_artifacts(folder, threads)
        if model.name in models:
            first = models[model.name][1]
            if first.resolve() == Path(folder).resolve():
                raise ConfigError(f"--artifacts names the folder {folder} twice")
            raise ConfigError(f"{Path(folder) / SPEC_FILE}: model_name {model.name!r} is "
                              f"already that of {first / SPEC_FILE}; each folder served must "
                              f"hold a model of its own name")
        models[model.name] = model, Path(folder)
    return tuple(model for model, _ in models.values())


# ------------------------------------------------------------------------------ the load figure
@dataclass(frozen=True)
class Load:
    """The server's load as one answer reports it (see the module docstring). The figures of
    one request (`compute_ms`, `queue_ms`) are None on answers that ran nothing."""

    queue_depth: int
    queue_capacity: int
    workers: int
    busy_workers: int
    recent_compute_ms: float
    compute_ms: float | None = None
    queue_ms: float | None = None

    @property
    def full(self) -> bool:
        """True when the next request would be answered 503."""
        return self.queue_depth >= self.queue_capacity


def _load_key(name: str) -> str:
    """``X-Zoo-Queue-Depth`` and ``zoo_queue_depth`` -> ``queue_depth``."""
    return name.lower().removeprefix("x-").replace("-", "_").removeprefix("zoo_")


def read_load(headers: Mapping[str, Any]) -> Load:
    """The `Load` of an infer answer's headers (any mapping; names in any case) or of its JSON
    ``parameters``. A ``ValueError`` names a figure that is missing or not a number."""
    given = {_load_key(str(k)): v for k, v in headers.items()}
    values: dict[str, Any] = {}
    for field_name in LOAD_HEADERS:
        raw = given.get(field_name)
        if raw is None:
            if field_name in ("compute_ms", "queue_ms"):
                continue
            raise ValueError(f"no {LOAD_HEADERS[field_name]} in the answer; is it from "
                             f"zoo.split.server's infer endpoint?")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{LOAD_HEADERS[field_name]} must be a number, got {raw!r}") from None
        values[field_name] = number if field_name.endswith("_ms") else int(number)
    return Load(**values)


# ------------------------------------------------------------------------------ the protocol
class BadRequest(Exception):
    """A request the server answers with `status` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _short(value: Any, limit: int = 60) -> str:
    """A client's value for an error line: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: the feeds, and each output asked for with whether it goes back
    as binary."""

    id: str | None
    feeds: dict[str, np.ndarray]
    outputs: tuple[tuple[TensorSpec, bool], ...]


_KINDS = {"b": "boolean", "i": "integer", "u": "integer", "f": "float", "U": "string"}


def _json_tensor(spec: TensorSpec, data: Any, count: int) -> np.ndarray:
    """An input's JSON ``data`` (flat or nested, row-major) as `spec`'s dtype, checked value
    by value: no float into an integer type, no number into BOOL, no integer out of range."""
    try:
        guess = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input {spec.name!r}: \"data\" is not a rectangular list of "
                         f"numbers") from None
    kinds = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[spec.dtype.kind]
    if guess.size and guess.dtype.kind not in kinds:
        kind = _KINDS.get(guess.dtype.kind, "non-number")
        raise BadRequest(f"input {spec.name!r}: \"data\" holds {kind} values such as "
                         f"{_short(guess.ravel()[0])}, not {spec.datatype} values")
    if guess.size != count:
        raise BadRequest(f"input {spec.name!r}: \"data\" holds {guess.size} values, its shape "
                         f"needs {count}")
    try:
        with np.errstate(over="raise"):  # 1e10 as FP16 is inf: refused like 300 as UINT8
            return np.asarray(data, dtype=spec.dtype).reshape(-1)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise BadRequest(f"input {spec.name!r}: {error_line(exc)}") from None


def parse_infer(model: Model, body: bytes, header_length: int | None) -> InferRequest:
    """An infer request's body (JSON, or JSON of `header_length` bytes then the binary tensors)
    checked against the model; `BadRequest` names the first fault."""
    if header_length is not None and not 0 <= header_length <= len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {header_length}, the body holds {len(body)} "
                         f"bytes")
    end = len(body) if header_length is None else header_length
    try:
        request = json.loads(body[:end])
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the request is not JSON ({error_line(exc)})") from None
    if not isinstance(request, dict):
        raise BadRequest("the request must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"\"id\" must be a string, got {_short(request_id)}")
    params = _parameters(request, "the request")
    if params.get("sequence_id") not in (None, 0, ""):
        raise BadRequest(f"model {model.name!r} is not stateful; \"sequence_id\" must not be "
                         f"given")
    inputs = request.get("inputs")
    if not isinstance(inputs, list):
        raise BadRequest("\"inputs\" must be a list of tensors")
    specs = {spec.name: spec for spec in model.inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = None if header_length is None else end
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest("each input must be an object with a \"name\"")
        name = tensor["name"]
        if name not in specs:
            raise BadRequest(f"unknown input {_short(name)}; model {model.name!r} takes "
                             f"{', '.join(specs)}")
        if name in feeds:
            raise BadRequest(f"input {name!r} is given twice")
        feeds[name], offset = _input(specs[name], tensor, body, offset)
    if missing := [name for name in specs if name not in feeds]:
        raise BadRequest(f"missing input(s) {', '.join(missing)} of model {model.name!r}")
    if offset is not None and offset != len(body):
        raise BadRequest(f"the body holds {len(body) - end} bytes after its JSON, the inputs' "
                         f"binary_data_size add up to {offset - end}")
    return InferRequest(request_id, feeds, _outputs(model, request, params))


def _parameters(obj: dict, what: str) -> dict:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise BadRequest(f"\"parameters\" of {what} must be an object")
    return params


def _input(spec: TensorSpec, tensor: dict, body: bytes,
           offset: int | None) -> tuple[np.ndarray, int | None]:
    """One input as an array of `spec`'s shape, and the offset of the next binary tensor (None:
    a body of JSON alone)."""
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"input {spec.name!r}: \"shape\" must be a list of sizes, got "
                         f"{_short(shape)}")
    if tensor.get("datatype") != spec.datatype:
        raise BadRequest(f"input {spec.name!r} has datatype {_short(tensor.get('datatype'))}, "
                         f"the model takes {spec.datatype}")
    if not spec.accepts(tuple(shape)):
        raise BadRequest(f"input {spec.name!r} has shape {shape}, the model takes "
                         f"{list(spec.shape)}")
    params = _parameters(tensor, f"input {spec.name!r}")
    if any(key.startswith("shared_memory") for key in params):
        raise BadRequest(f"input {spec.name!r}: shared memory is not supported, send the data")
    count = math.prod(shape)
    size = params.get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise BadRequest(f"input {spec.name!r} has neither \"data\" nor "
                             f"parameters.binary_data_size")
        return _json_tensor(spec, tensor["data"], count).reshape(shape), offset
    if "data" in tensor:
        raise BadRequest(f"input {spec.name!r} has both \"data\" and binary_data_size")
    if offset is None:
        raise BadRequest(f"input {spec.name!r} has binary_data_size but the request has no "
                         f"{HEADER_LENGTH} header to say where its JSON ends")
    need = count * spec.dtype.itemsize
    if isinstance(size, bool) or size != need:
        raise BadRequest(f"input {spec.name!r}: binary_data_size is {_short(size)}, its "
                         f"{spec.datatype} shape {shape} needs {need} bytes")
    if offset + size > len(body):
        raise BadRequest(f"input {spec.name!r}: the body ends {offset + size - len(body)} "
                         f"bytes before its binary data does")
    # A copy: the data sits at any offset of the body, onnxruntime wants it aligned and owned.
    array = np.frombuffer(body, dtype=spec.dtype.newbyteorder("<"), count=count, offset=offset)
    return array.astype(spec.dtype).reshape(shape), offset + size


def _outputs(model: Model, request: dict, params: dict) -> tuple[tuple[TensorSpec, bool], ...]:
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")
    specs = {spec.name: spec for spec in model.outputs}
    asked = request.get("outputs")
    if asked is None:
        return tuple((spec, binary_default) for spec in model.outputs)
    if not isinstance(asked, list):
        raise BadRequest("\"outputs\" must be a list")
    chosen: dict[str, tuple[TensorSpec, bool]] = {}
    for output in asked:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise BadRequest("each requested output must be an object with a \"name\"")
        name = output["name"]
        if name not in specs:
            raise BadRequest(f"unknown output {_short(name)}; model {model.name!r} gives "
                             f"{', '.join(specs)}")
        if name in chosen:
            raise BadRequest(f"output {name!r} is requested twice")
        out_params = _parameters(output, f"output {name!r}")
        if out_params.get("classification"):
            raise BadRequest(f"output {name!r}: the classification extension is not supported")
        if any(key.startswith("shared_memory") for key in out_params):
            raise BadRequest(f"output {name!r}: shared memory is not supported")
        binary = out_params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequest(f"output {name!r}: parameters.binary_data must be true or false")
        chosen[name] = specs[name], binary
    return tuple(chosen.values())


def encode_infer(model: Model, request: InferRequest, arrays: list[np.ndarray],
                 parameters: dict[str, Any]) -> tuple[list[bytes], int | None]:
    """The answer's body parts and, when any output is binary, the length of its JSON (the
    ``Inference-Header-Content-Length``)."""
    outputs, blobs = [], []
    for (spec, binary), array in zip(request.outputs, arrays, strict=True):
        entry: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype,
                                 "shape": list(array.shape)}
        if binary:
            blob = np.ascontiguousarray(array, dtype=spec.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        answer["id"] = request.id
    answer["parameters"] = parameters
    answer["outputs"] = outputs
    header = json.dumps(answer, separators=(",", ":")).encode()
    return [header, *blobs], (len(header) if blobs else None)


# ------------------------------------------------------------------------------ statistics
class _Recent:
    """The mean onnxruntime time of the last `RECENT` runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: deque[float] = deque(maxlen=RECENT)

    def add(self, ms: float) -> None:
        with self.lock:
            self.ms.append(ms)

    def mean(self) -> float:
        with self.lock:
            return sum(self.ms) / len(self.ms) if self.ms else 0.0


class _Stats:
    """One model's counters in the shape of Triton's statistics extension
    (extension_statistics.md)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = {key: [0, 0] for key in (
            "success", "fail", "queue", "compute_input", "compute_infer", "compute_output")}
        self.rejected = 0
        self.last_inference_ms = 0
        self.recent = _Recent()

    def add(self, key: str, ns: int) -> None:
        with self.lock:
            self.counts[key][0] += 1
            self.counts[key][1] += ns

    def ran(self, queue_ns: int, compute_ns: int) -> None:
        with self.lock:
            for key, ns in (("queue", queue_ns), ("compute_infer", compute_ns)):
                self.counts[key][0] += 1
                self.counts[key][1] += ns
            self.last_inference_ms = int(time.time() * 1000)
        self.recent.add(compute_ns / 1e6)

    def reject(self) -> None:
        with self.lock:
            self.rejected += 1

    def model_stats(self, model: Model, zoo: dict[str, Any]) -> dict[str, Any]:
        recent_ms = round(self.recent.mean(), 3)
        with self.lock:
            stats = {key: {"count": c, "ns": ns} for key, (c, ns) in self.counts.items()}
            done = self.counts["success"][0]
            return {"name": model.name, "version": model.version,
                    "last_inference": self.last_inference_ms, "inference_count": done,
                    "execution_count": done, "inference_stats": stats,
                    "zoo": {**zoo, "rejected": self.rejected, "recent_compute_ms": recent_ms}}


# ------------------------------------------------------------------------------ the server
@dataclass
class _Job:
    model: Model
    request: InferRequest
    enqueued: int
    done: threading.Event
    arrays: list[np.ndarray] | None = None
    error: str | None = None
    queue_ns: int = 0
    compute_ns: int = 0


_STOP = object()


class InferenceServer:
    """The HTTP server, one bounded queue and one pool of worker threads around one `Model` or
    several (a list; their names differ), as Triton serves a model repository.

    Every model's requests wait in the same queue for the same workers, so the load figures are
    the server's; the statistics are each model's. `start` binds and returns at once; `stop`
    stops accepting connections, waits for every request in flight, then stops the workers.
    `wrap_run`, given a model's ``run(output_names, feeds)``, returns the callable the workers
    use instead (tests make inference wait on them with it); it is called once per model."""

    def __init__(self, models: Model | Sequence[Model], host: str = "127.0.0.1",
                 port: int = 8000, *, max_queue: int = 8, workers: int = 1,
                 wrap_run: Callable[[RunFn], RunFn] | None = None) -> None:
        models = (models,) if isinstance(models, Model) else tuple(models)
        if not models:
            raise ValueError("InferenceServer needs at least one model")
        self.models = {model.name: model for model in models}
        if len(self.models) != len(models):
            raise ValueError(f"two models share a name among {[m.name for m in models]}")
        self.host, self.port = host, port
        self.workers = workers
        self.runs = {name: wrap_run(model.run) if wrap_run else model.run
                     for name, model in self.models.items()}
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.max_queue = max_queue
        self.stats = {name: _Stats() for name in self.models}
        self.recent = _Recent()  # every model's runs: the server's figure
        self.stopping = threading.Event()
        self.busy = 0
        self.busy_lock = threading.Lock()
        self._body_limits = {name: model.body_limit() for name, model in self.models.items()}
        self._threads: list[threading.Thread] = []
        self._http: _HTTPServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def body_limit(self, name: str | None) -> tuple[int, str]:
        """The largest request body to read for model `name`, and whose inputs set it: that
        model's, or, for any other path, the largest of every model's."""
        if name in self._body_limits:
            return self._body_limits[name], f"the inputs of model {name!r}"
        return max(self._body_limits.values()), "the inputs of any model served"

    def start(self) -> int:
        """Bind, start the workers and the accept loop; the bound port (`port` 0: a free one)."""
        try:
            self._http = _HTTPServer((self.host, self.port), self)
        except OSError as exc:
            raise ConfigError(f"--host {self.host} --port {self.port}: cannot listen there "
                              f"({exc.strerror or error_line(exc)})") from None
        self.port = self._http.server_address[1]
        for i in range(self.workers):
            self._threads.append(threading.Thread(target=self._work, name=f"zoo-split-worker-{i}",
                                                  daemon=True))
        self._threads.append(threading.Thread(target=self._http.serve_forever, args=(POLL_S,),
                                              name="zoo-split-http", daemon=True))
        for thread in self._threads:
            thread.start()
        return self.port

    def stop(self) -> None:
        """Graceful: no new connections; requests in flight finish; then the workers stop."""
        self.stopping.set()
        if not self._threads:
            return
        self._http.shutdown()  # the accept loop returns
        self._http.server_close()  # closes the socket, then joins each connection's thread
        for _ in range(self.workers):
            self.queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    # -- the queue
    def submit(self, model: Model, request: InferRequest) -> _Job:
        """Queue a request, or `BadRequest` 503 at once when the queue is full."""
        job = _Job(model, request, time.perf_counter_ns(), threading.Event())
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.stats[model.name].reject()
            raise BadRequest(f"busy: the queue holds {self.max_queue} requests (--max-queue "
                             f"{self.max_queue}); retry later", status=503) from None
        return job

    def _work(self) -> None:
        while (job := self.queue.get()) is not _STOP:
            with self.busy_lock:
                self.busy += 1
            start = time.perf_counter_ns()
            job.queue_ns = start - job.enqueued
            try:
                names = [spec.name for spec, _ in job.request.outputs]
                job.arrays = self.runs[job.model.name](names, job.request.feeds)
            except Exception as exc:  # a failed run answers 500; the worker lives on
                job.error = error_line(exc)
            finally:
                job.compute_ns = time.perf_counter_ns() - start
                with self.busy_lock:
                    self.busy -= 1
                if job.error is None:
                    self.stats[job.model.name].ran(job.queue_ns, job.compute_ns)
                    self.recent.add(job.compute_ns / 1e6)
                job.done.set()

    def load(self, job: _Job | None = None) -> dict[str, float | int]:
        """The server's load figures by `Load` field name; a job's own when it ran."""
        with self.busy_lock:
            busy = self.busy
        figures: dict[str, float | int] = {
            "queue_depth": self.queue.qsize(), "queue_capacity": self.max_queue,
            "workers": self.workers, "busy_workers": busy,
            "recent_compute_ms": round(self.recent.mean(), 3)}
        if job is not None and job.arrays is not None:
            figures["compute_ms"] = round(job.compute_ns / 1e6, 3)
            figures["queue_ms"] = round(job.queue_ns / 1e6, 3)
        return figures

    # -- the protocol's answers
    def check_model(self, name: str, version: str | None) -> Model:
        """The model served as `name` (at `version`, when given)."""
        model = self.models.get(name)
        if model is None:
            served = ", ".join(repr(n) for n in self.models)
            raise BadRequest(f"unknown model {_short(name)}; this server serves {served}")
        if version not in (None, "", model.version):
            raise BadRequest(f"unknown version {_short(version)} of model {name!r}; it has "
                             f"version {model.version}")
        return model

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mobileseg-zoo-split", "version": __version__,
                "extensions": list(EXTENSIONS)}

    def model_metadata(self, model: Model) -> dict[str, Any]:
        return {"name": model.name, "versions": [model.version], "platform": PLATFORM,
                "inputs": [spec.metadata() for spec in model.inputs],
                "outputs": [spec.metadata() for spec in model.outputs]}

    def model_stats(self, model: Model | None = None) -> dict[str, Any]:
        """Triton's statistics of `model`, or of every model (None); each ``zoo`` section holds
        the server's queue figures and the model's own ``rejected`` and ``recent_compute_ms``."""
        figures = self.load()
        server = {key: figures[key] for key in ("queue_depth", "queue_capacity", "workers",
                                                "busy_workers")}
        chosen = self.models.values() if model is None else (model,)
        return {"model_stats": [self.stats[m.name].model_stats(m, server) for m in chosen]}

    def repository_index(self, body: bytes) -> list[dict[str, str]]:
        """Triton's repository index: every model with its version and state; only the ready
        ones when the body says ``{"ready": true}`` (an empty body asks for all)."""
        ready_only = False
        if body.strip():
            try:
                request = json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadRequest(f"the index request is not JSON ({error_line(exc)})") from None
            if not isinstance(request, dict):
                raise BadRequest("the index request must be a JSON object")
            ready_only = request.get("ready", False)
            if not isinstance(ready_only, bool):
                raise BadRequest(f"\"ready\" must be true or false, got {_short(ready_only)}")
        if self.stopping.is_set():
            state, reason = "UNAVAILABLE", "the server is stopping"
        else:
            state, reason = "READY", ""
        if ready_only and state != "READY":
            return []
        return [{"name": model.name, "version": model.version, "state": state,
                 "reason": reason} for model in self.models.values()]

    def infer(self, model: Model, body: bytes,
              header_length: int | None) -> tuple[list[bytes], int | None, dict[str, Any]]:
        """Parse, queue, wait, encode: the answer's body parts, JSON length and load figures."""
        stats = self.stats[model.name]
        start = time.perf_counter_ns()
        try:
            request = parse_infer(model, body, header_length)
        except BadRequest:
            stats.add("fail", time.perf_counter_ns() - start)
            raise
        parsed = time.perf_counter_ns()
        stats.add("compute_input", parsed - start)
        try:
            job = self.submit(model, request)
        except BadRequest:
            stats.add("fail", time.perf_counter_ns() - start)
            raise
        job.done.wait()
        if job.error is not None:
            stats.add("fail", time.perf_counter_ns() - start)
            raise BadRequest(f"inference failed: {job.error}", status=500)
        encode_start = time.perf_counter_ns()
        figures = self.load(job)
        parts, json_length = encode_infer(model, request, job.arrays, {
            f"zoo_{key}": value for key, value in figures.items()})
        end = time.perf_counter_ns()
        stats.add("compute_output", end - encode_start)
        stats.add("success", end - start)
        return parts, json_length, figures


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, each joined on close so requests in flight finish."""

    daemon_threads = False  # ThreadingHTTPServer's True would leave them unjoined on close
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: InferenceServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks the host's name up (socket.getfqdn), which can wait
        # on DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        import sys

        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):  # a client that went away
            print(f"zoo.split.server: {client_address[0]}: {error_line(exc)}", file=sys.stderr)


_ROUTE = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                    r"(?:/(?P<action>ready|infer|stats))?")
_REPOSITORY_ROUTE = re.compile(r"/v2/repository/models/(?P<name>[^/]+)/(?P<action>load|unload)")
POST_ONLY = ("infer", "index", "load", "unload")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tritonclient's connection pool expects
    server_version = f"mobileseg-zoo-split/{__version__}"
    # Unbuffered reads: select() on the socket (see `_request_arrives`) then sees every byte a
    # client sent, with none hidden in a read buffer; the headers cost one recv per byte.
    rbufsize = 0
    timeout = READ_TIMEOUT_S
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds
        # the second until the client's delayed ACK (RFC 1122 4.2.3.2), some 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        self.close_connection = False
        while not self.close_connection and self._request_arrives():
            self.handle_one_request()

    def _request_arrives(self) -> bool:
        """Wait for the next request on the connection; False when the server stops first."""
        app = self.server.app
        while not app.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], POLL_S)
            if readable:
                return True
        return False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # no access log: one line per request would drown the serving line

    # -- answers
    def _send(self, status: int, parts: list[bytes], headers: dict[str, Any]) -> None:
        if self.server.app.stopping.is_set():
            self.close_connection = True
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(sum(len(p) for p in parts)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        for part in parts:
            self.wfile.write(part)

    def _json(self, status: int, obj: Any, headers: dict[str, Any] | None = None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self._send(status, [body], {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, message: str, headers: dict[str, Any] | None = None) -> None:
        self._json(status, {"error": " ".join(message.split())}, headers)

    def _route(self) -> tuple[str, str | None, str | None] | None:
        """(what, model name, version) of the path, or None when no endpoint has it."""
        path = urlsplit(self.path).path.rstrip("/")
        fixed = {"/v2/health/live": "live", "/v2/health/ready": "ready_server", "/v2": "server",
                 "/v2/models/stats": "stats_all", "/v2/repository/index": "index"}
        if path in fixed:
            return fixed[path], None, None
        if match := _REPOSITORY_ROUTE.fullmatch(path):
            return match["action"], unquote(match["name"]), None
        match = _ROUTE.fullmatch(path)
        if match is None:
            return None
        version = unquote(match["version"]) if match["version"] else None
        return match["action"] or "metadata", unquote(match["name"]), version

    def do_GET(self) -> None:
        app = self.server.app
        raw = self.headers.get("Content-Length", "0")
        self._discard(int(raw) if raw.isdigit() else 0)  # a GET's body is meaningless
        route = self._route()
        if route is None:
            return self._error(404, f"no endpoint at {_short(self.path)}")
        what, name, version = route
        if what in POST_ONLY:
            return self._error(405, f"{_short(self.path)} takes POST", {"Allow": "POST"})
        if what == "live":
            return self._send(200, [], {})
        if what == "ready_server":
            return self._send(503 if app.stopping.is_set() else 200, [], {})
        if what == "server":
            return self._json(200, app.server_metadata())
        if what == "stats_all":
            return self._json(200, app.model_stats())
        try:
            model = app.check_model(name, version)
        except BadRequest as exc:
            return self._error(exc.status, str(exc))
        if what == "ready":
            return self._send(503 if app.stopping.is_set() else 200, [], {})
        if what == "stats":
            return self._json(200, app.model_stats(model))
        return self._json(200, app.model_metadata(model))

    def do_POST(self) -> None:
        app = self.server.app
        route = self._route()
        what, name, version = route or (None, None, None)
        try:
            body = self._body(*app.body_limit(name if what == "infer" else None))
        except BadRequest as exc:
            self.close_connection = True  # the body was not read: the connection is spent
            return self._error(exc.status, str(exc), self._load_headers())
        if route is None:
            return self._error(404, f"no endpoint at {_short(self.path)}")
        if what == "index":
            try:
                return self._json(200, app.repository_index(body))
            except BadRequest as exc:
                return self._error(exc.status, str(exc))
        if what in ("load", "unload"):
            return self._error(400, f"cannot {what} model {_short(name)}: this server's models "
                                    f"are the --artifacts folders it was started with")
        if what != "infer":
            return self._error(405, f"{_short(self.path)} takes GET", {"Allow": "GET"})
        try:
            model = app.check_model(name, version)
            parts, json_length, figures = app.infer(model, body, self._header_length())
        except BadRequest as exc:
            return self._error(exc.status, str(exc), self._load_headers())
        headers = {"Content-Type": "application/octet-stream" if json_length is not None
                   else "application/json", **self._load_headers(figures)}
        if json_length is not None:
            headers[HEADER_LENGTH] = json_length
        self._send(200, parts, headers)

    def _load_headers(self, figures: dict[str, Any] | None = None) -> dict[str, Any]:
        figures = self.server.app.load() if figures is None else figures
        return {LOAD_HEADERS[key]: value for key, value in figures.items()}

    def _header_length(self) -> int | None:
        raw = self.headers.get(HEADER_LENGTH)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be a number of bytes, got "
                             f"{_short(raw)}") from None

    def _body(self, limit: int, whose: str) -> bytes:
        """The request body, decompressed; `BadRequest` for a body without a length, beyond
        `limit` (what `whose` inputs can take), or in an encoding the server does not read (the
        body is then left unread)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise BadRequest("Transfer-Encoding chunked is not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else 0
        except ValueError:
            raise BadRequest(f"Content-Length must be a number, got {_short(raw)}") from None
        if length < 0:
            raise BadRequest(f"Content-Length must be >= 0, got {length}")
        if length > limit:
            self._discard(length)
            raise BadRequest(f"the body of {length} bytes is larger than the {limit} bytes "
                             f"{whose} can take")
        body = bytearray(length)
        view, got = memoryview(body), 0
        while got < length:
            n = self.rfile.readinto(view[got:])
            if not n:
                raise ConnectionError("the client closed the connection mid-body")
            got += n
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding in ("identity", ""):
            return bytes(body)
        if encoding not in ("gzip", "deflate"):
            raise BadRequest(f"Content-Encoding {_short(encoding)} is not supported; use gzip, "
                             f"deflate or none")
        return _decompress(bytes(body), encoding, limit, whose)

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (up to `DRAIN_LIMIT` bytes): closing a connection with
        unread data resets it, and the client may lose the answer (RFC 9112 9.6)."""
        left = min(length, DRAIN_LIMIT)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)


def _decompress(body: bytes, encoding: str, limit: int, whose: str) -> bytes:
    """A gzip or zlib ("deflate", RFC 9110 8.4.1.2) body, refused past `limit` bytes."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {encoding} body does not decompress ({exc})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise BadRequest(f"the {encoding} body decompresses to more than the {limit} bytes "
                         f"{whose} can take")
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is cut short")
    return data


# ------------------------------------------------------------------------------ entry points
def _signal_readiness(ready: Any, port: int) -> None:
    if ready is None:
        return
    if isinstance(ready, threading.Event):
        ready.port = port  # the Event carries the port for the thread that waits on it
        ready.set()
    else:
        ready(port)


def serve(artifacts: str | Path | Sequence[str | Path], host: str = "127.0.0.1",
          port: int = 8000, max_queue: int = 8, workers: int = 1, threads: int | None = None,
          ready: Callable[[int], Any] | threading.Event | None = None, *,
          stop: threading.Event | None = None,
          wrap_run: Callable[[RunFn], RunFn] | None = None) -> None:
    """Serve the model of each artifacts folder until SIGTERM or SIGINT (or `stop` is set);
    blocks. `artifacts`: one folder, several separated by commas, or a list of them (see
    `artifact_folders`); each is checked by `load_artifacts`, and their model names must differ.

    Prints ``serving <model>[, <model>...] on http://host:port`` once it accepts requests
    (`port` 0: a free port, shown there). `ready`, when given, is then called with the port,
    or, if it is a `threading.Event`, gets it as ``ready.port`` and is set. Signals are caught
    only when called from the main thread. `wrap_run`: see `InferenceServer`. Returns after a
    graceful stop."""
    host = str(host)
    port = checks.integer("--port", port, 0, 65535)
    max_queue = checks.integer("--max-queue", max_queue, low=1)
    workers = checks.integer("--workers", workers, low=1)
    threads = checks.optional(checks.integer)("--threads", threads, low=1)
    models = load_models(artifacts, threads)
    server = InferenceServer(models, host, port, max_queue=max_queue, workers=workers,
                             wrap_run=wrap_run)
    signalled = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: Any) -> None:
            signalled.set()  # read by the loop below; a second signal acts as it did before
            signal.signal(signum, previous[signum])

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        server.start()
        print(f"serving {', '.join(server.models)} on {server.url}", flush=True)
        _signal_readiness(ready, server.port)
        # Polls: a signal handler runs in the main thread, and one that set an Event this
        # thread waits on could find the Event's lock held by that very wait.
        while not signalled.is_set() and not (stop is not None and stop.is_set()):
            time.sleep(POLL_S)
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def command(artifacts: str, host: str = "127.0.0.1", port: int = 8000, max_queue: int = 8,
            workers: int = 1, threads: int | None = None) -> None:
    """Serve the model of each ARTIFACTS folder (server.onnx + split.json) over the Open
    Inference Protocol until SIGTERM or Ctrl-C.

    Example: python -m zoo.split.server --artifacts split_out/cut5,split_out/cut11 --port 0

    Args:
        artifacts: folder holding server.onnx and split.json, or several separated by commas
            (one model each, told apart by their split.json's model_name).
        host: address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: port to listen on (0: a free one, printed).
        max_queue: requests that may wait for a worker; one more is answered 503.
        workers: inference threads.
        threads: onnxruntime intra-op threads per run (default: onnxruntime's).
    """
    serve(artifacts, host=host, port=port, max_queue=max_queue, workers=workers,
          threads=threads)


def main() -> None:
    from zoo.cli import run

    run(command, name="python -m zoo.split.server")


if __name__ == "__main__":
    main()
