"""The split server against the real `tritonclient.http`: metadata, binary, JSON and mixed
inference equal to onnxruntime run directly (an INT8 input through DequantizeLinear, a UINT8
label map out), 400s with one-line reasons, 503 on a full queue with the load figures, stats,
refusals at start, and a graceful SIGTERM with a request in flight; two models (two cuts) served
by one server through one queue, each answering with its own results and statistics, listed by
the repository index."""

import contextlib
import http.client
import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.files import sha256_file
from zoo.split import server
from zoo.split.server import load_models, read_load, serve

NAME = "tiny-cut"
SHAPES = {"x": [1, 8, 10, 4], "q": [1, 4, 5, 16]}
SCALE = 0.05
# A second cut of the same network: other tensors, another scale, its own name and version.
NAME_B = "tiny-cut-b"
SHAPES_B = {"x": [1, 4, 5, 4], "q": [1, 2, 5, 8]}
SCALE_B = 0.5
rng = np.random.default_rng(0)


def build_model(path: Path, shapes: dict = SHAPES, scale: float = SCALE) -> None:
    """x (FP32) + dequantized q (INT8, scale `scale`) reshaped to x's shape -> logits (FP32) and
    their argmax over the last axis -> labels (UINT8), as a server half would answer."""
    from onnx import TensorProto, helper, numpy_helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["qf"]),
         helper.make_node("Reshape", ["qf", "shape"], ["qr"]),
         helper.make_node("Add", ["x", "qr"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], ["index"], axis=3, keepdims=0),
         helper.make_node("Cast", ["index"], ["labels"], to=TensorProto.UINT8)],
        "server_half",
        [value("x", TensorProto.FLOAT, shapes["x"]), value("q", TensorProto.INT8, shapes["q"])],
        [value("logits", TensorProto.FLOAT, shapes["x"]),
         value("labels", TensorProto.UINT8, shapes["x"][:3])],
        [numpy_helper.from_array(np.array(scale, np.float32), "scale"),
         numpy_helper.from_array(np.array(0, np.int8), "zero"),
         numpy_helper.from_array(np.array(shapes["x"], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def write_artifacts(folder: Path, name: str = NAME, version: str = "1", shapes: dict = SHAPES,
                    scale: float = SCALE) -> Path:
    folder.mkdir(parents=True)
    build_model(folder / "server.onnx", shapes, scale)
    (folder / "split.json").write_text(json.dumps({
        "model_name": name, "model_version": version, "cut": "conv_pw_5_relu",
        "sha256": {"server.onnx": sha256_file(folder / "server.onnx")}}))
    return folder


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return write_artifacts(tmp_path_factory.mktemp("split") / "artifacts")


@pytest.fixture(scope="module")
def artifacts_b(artifacts):
    """The second cut's folder, beside the first."""
    return write_artifacts(artifacts.parent / "artifacts_b", NAME_B, "2", SHAPES_B, SCALE_B)


def frame(shapes: dict = SHAPES) -> dict[str, np.ndarray]:
    return {"x": rng.normal(size=shapes["x"]).astype(np.float32),
            "q": rng.integers(-128, 128, shapes["q"], dtype=np.int8)}


def direct(artifacts: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of onnxruntime run on server.onnx directly."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifacts / "server.onnx"),
                                   providers=["CPUExecutionProvider"])
    return dict(zip(["logits", "labels"], session.run(["logits", "labels"], feeds), strict=True))


@contextlib.contextmanager
def running(artifacts: Path, **kwargs):
    """`serve` in a thread on a free port; yields "127.0.0.1:PORT"; stopped on exit."""
    ready, stop, failed = threading.Event(), threading.Event(), []

    def target():
        try:
            serve(artifacts, port=0, ready=ready, stop=stop, **kwargs)
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    assert not failed, failed
    try:
        yield f"127.0.0.1:{ready.port}"
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
        assert not failed, failed


@pytest.fixture(scope="module")
def url(artifacts):
    with running(artifacts, workers=2, max_queue=4, threads=1) as address:
        yield address


@pytest.fixture
def client(url):
    import tritonclient.http as httpclient

    triton = httpclient.InferenceServerClient(url)
    yield triton
    triton.close()


def wait_until(condition, what: str, seconds: float = 30):
    """Poll `condition` until it is true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


# ------------------------------------------------------------------------------ raw HTTP
def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def infer_body(feeds: dict[str, np.ndarray], *, binary=("x", "q"), outputs=None,
               request_id=None) -> tuple[bytes, dict]:
    """An infer request as the binary tensor data extension lays it out: the inputs in
    `binary` as bytes after the JSON, the others as JSON data; all outputs binary."""
    datatypes = {"x": "FP32", "q": "INT8"}
    inputs, blobs = [], []
    for name, array in feeds.items():
        entry = {"name": name, "shape": list(array.shape), "datatype": datatypes[name]}
        if name in binary:
            entry["parameters"] = {"binary_data_size": array.nbytes}
            blobs.append(array.tobytes())
        else:
            entry["data"] = array.ravel().tolist()
        inputs.append(entry)
    obj = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    if outputs is not None:
        obj["outputs"] = outputs
    if request_id is not None:
        obj["id"] = request_id
    header = json.dumps(obj).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))} if blobs else {}
    return header + b"".join(blobs), headers


def decode(headers: dict, body: bytes):
    from tritonclient.http import InferResult

    length = headers.get("Inference-Header-Content-Length")
    return InferResult.from_response_body(body, header_length=length and int(length))


def stats(url: str, name: str = NAME) -> dict:
    status, _, body = request(url, "GET", f"/v2/models/{name}/stats")
    assert status == 200
    return json.loads(body)["model_stats"][0]


# ------------------------------------------------------------------------------ the protocol
def test_metadata_and_health(client, url):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"] and server["name"] and server["version"]
    expected = {"name": NAME, "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 8, 10, 4]},
                           {"name": "q", "datatype": "INT8", "shape": [1, 4, 5, 16]}],
                "outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 8, 10, 4]},
                            {"name": "labels", "datatype": "UINT8", "shape": [1, 8, 10]}]}
    assert client.get_model_metadata(NAME) == expected
    assert client.get_model_metadata(NAME, "1") == expected
    assert request(url, "GET", "/v2/nothing/here")[0] == 404


def test_unknown_model_or_version_is_400(client):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    x = httpclient.InferInput("x", SHAPES["x"], "FP32").set_data_from_numpy(frame()["x"])
    for call, reason in [(lambda: client.get_model_metadata("other"), "unknown model 'other'"),
                         (lambda: client.get_model_metadata(NAME, "2"), "unknown version '2'"),
                         (lambda: client.infer("other", [x]), "unknown model 'other'"),
                         (lambda: client.infer(NAME, [x], model_version="7"), "unknown version")]:
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == "400" and reason in info.value.message()
    assert not client.is_model_ready("other") and not client.is_model_ready(NAME, "2")


@pytest.mark.parametrize("way", ["binary", "json", "mixed", "gzip"])
def test_inference_equals_onnxruntime(client, artifacts, way):
    import tritonclient.http as httpclient

    feeds = frame()
    expected = direct(artifacts, feeds)
    binary_in = {"binary": ("x", "q"), "json": (), "mixed": ("x",), "gzip": ("x", "q")}[way]
    inputs = [httpclient.InferInput(name, SHAPES[name], datatype).set_data_from_numpy(
        feeds[name], binary_data=name in binary_in) for name, datatype in (("x", "FP32"),
                                                                           ("q", "INT8"))]
    outputs = {"binary": None, "gzip": None,
               "json": [httpclient.InferRequestedOutput("logits", binary_data=False),
                        httpclient.InferRequestedOutput("labels", binary_data=False)],
               "mixed": [httpclient.InferRequestedOutput("labels", binary_data=True),
                         httpclient.InferRequestedOutput("logits", binary_data=False)]}[way]
    result = client.infer(NAME, inputs, outputs=outputs, request_id=f"frame-{way}",
                          request_compression_algorithm="gzip" if way == "gzip" else None)
    response = result.get_response()
    assert response["id"] == f"frame-{way}"
    assert response["model_name"] == NAME and response["model_version"] == "1"
    sent_binary = {o["name"]: "binary_data_size" in o.get("parameters", {})
                   for o in response["outputs"]}
    assert sent_binary == {"binary": {"logits": True, "labels": True},
                           "gzip": {"logits": True, "labels": True},
                           "json": {"logits": False, "labels": False},
                           "mixed": {"labels": True, "logits": False}}[way]
    for name, want in expected.items():
        got = result.as_numpy(name)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    load = read_load(response["parameters"])
    assert load.queue_capacity == 4 and load.workers == 2 and load.compute_ms >= 0


def test_outputs_asked_for_are_the_ones_answered(client, artifacts):
    import tritonclient.http as httpclient

    feeds = frame()
    inputs = [httpclient.InferInput("x", SHAPES["x"], "FP32").set_data_from_numpy(feeds["x"]),
              httpclient.InferInput("q", SHAPES["q"], "INT8").set_data_from_numpy(feeds["q"])]
    result = client.infer(NAME, inputs, outputs=[httpclient.InferRequestedOutput("labels")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["labels"]
    assert result.as_numpy("logits") is None
    np.testing.assert_array_equal(result.as_numpy("labels"), direct(artifacts, feeds)["labels"])


def _json_request(drop: str | None = None, **changes) -> tuple[bytes, dict]:
    """A JSON-only request (both inputs as data) without input `drop`, with `changes` applied
    (``x__shape=[2]``: input x's shape)."""
    feeds = frame()
    body, headers = infer_body({k: v for k, v in feeds.items() if k != drop}, binary=())
    obj = json.loads(body)
    for key, value in changes.items():
        tensor, field = key.split("__")
        entry = next(e for e in obj["inputs"] if e["name"] == tensor)
        entry[field] = value
    return json.dumps(obj).encode(), headers


def _binary_request(extra: bytes = b"", cut: int = 0, header_delta: int = 0,
                    **x_changes) -> tuple[bytes, dict]:
    body, headers = infer_body(frame())
    length = int(headers["Inference-Header-Content-Length"])
    obj = json.loads(body[:length])
    obj["inputs"][0].update(x_changes)
    header = json.dumps(obj).encode()
    body = header + body[length:len(body) - cut] + extra
    return body, {"Inference-Header-Content-Length": str(len(header) + header_delta)}


BAD = {
    "not JSON": (lambda: (b"{inputs: ", {}), "is not JSON"),
    "not an object": (lambda: (b"[1, 2]", {}), "must be a JSON object"),
    "unknown input": (lambda: _json_request(x__name="y"), "unknown input 'y'; model 'tiny-cut'"),
    "missing input": (lambda: _json_request(drop="q"), "missing input(s) q of model"),
    "wrong shape": (lambda: _json_request(x__shape=[1, 8, 10, 3]),
                    "has shape [1, 8, 10, 3], the model takes [1, 8, 10, 4]"),
    "wrong datatype": (lambda: _json_request(x__datatype="FP16"),
                       "has datatype 'FP16', the model takes FP32"),
    "too few values": (lambda: _json_request(x__data=[1.0, 2.0, 3.0]),
                       "holds 3 values, its shape needs 320"),
    "float into INT8": (lambda: _json_request(q__data=[0.5] * 320), "holds float values"),
    "INT8 out of range": (lambda: _json_request(q__data=[300] * 320), "out of bounds for int8"),
    "size not shape x dtype": (lambda: _binary_request(parameters={"binary_data_size": 1000}),
                               "binary_data_size is 1000, its FP32 shape [1, 8, 10, 4] needs 1280"),
    "too many bytes": (lambda: _binary_request(extra=b"1234567"),
                       "holds 1607 bytes after its JSON, the inputs' binary_data_size add up to "
                       "1600"),
    "too few bytes": (lambda: _binary_request(cut=5), "the body ends 5 bytes before"),
    "header beyond body": (lambda: _binary_request(header_delta=5000),
                           "Inference-Header-Content-Length is"),
    "binary without header": (lambda: (_binary_request()[0], {}), "is not JSON"),
    "body over the limit": (lambda: (b" " * 200_000, {}), "larger than the"),
    "bad gzip": (lambda: (b"not gzip", {"Content-Encoding": "gzip"}), "does not decompress"),
    "unknown output": (lambda: (json.dumps({**json.loads(_json_request()[0]),
                                            "outputs": [{"name": "probs"}]}).encode(), {}),
                       "unknown output 'probs'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_request_is_400_with_one_line_reason(url, artifacts, case):
    make, reason = BAD[case]
    body, headers = make()
    status, answer_headers, answer = request(url, "POST", f"/v2/models/{NAME}/infer", body,
                                             headers)
    assert status == 400
    error = json.loads(answer)
    assert list(error) == ["error"] and "\n" not in error["error"]
    assert reason in error["error"]
    assert read_load(answer_headers).queue_capacity == 4
    # The server is unharmed: the next request is answered as before.
    feeds = frame()
    status, answer_headers, answer = request(url, "POST", f"/v2/models/{NAME}/infer",
                                             *infer_body(feeds))
    assert status == 200
    np.testing.assert_array_equal(decode(answer_headers, answer).as_numpy("labels"),
                                  direct(artifacts, feeds)["labels"])


def test_binary_data_size_needs_the_header_length(url):
    body, headers = _binary_request()
    json_only = body[:int(headers["Inference-Header-Content-Length"])]
    status, _, answer = request(url, "POST", f"/v2/models/{NAME}/infer", json_only)
    assert status == 400
    assert json.loads(answer)["error"] == (
        "input 'x' has binary_data_size but the request has no Inference-Header-Content-Length "
        "header to say where its JSON ends")


# ------------------------------------------------------------------------------ load
class Gate:
    """A `wrap_run` whose runs wait until the gate opens."""

    def __init__(self):
        self.open = threading.Event()

    def wrap(self, run):
        def gated(names, feeds):
            assert self.open.wait(60), "the gate never opened"
            return run(names, feeds)

        return gated


def test_full_queue_is_503_at_once_and_the_load_figures_follow(artifacts):
    gate = Gate()
    with running(artifacts, workers=1, max_queue=2, wrap_run=gate.wrap) as url:
        sent = [frame() for _ in range(3)]
        answers: dict[int, tuple] = {}

        def send(i):
            answers[i] = request(url, "POST", f"/v2/models/{NAME}/infer", *infer_body(sent[i]))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        threads[0].start()  # taken by the one worker, which waits at the gate
        wait_until(lambda: stats(url)["zoo"]["busy_workers"] == 1, "the worker took request 0")
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: stats(url)["zoo"]["queue_depth"] == 2, "requests 1, 2 queued")

        status, headers, answer = request(url, "POST", f"/v2/models/{NAME}/infer",
                                          *infer_body(frame()))
        assert status == 503
        error = json.loads(answer)
        assert list(error) == ["error"] and "queue holds 2 requests" in error["error"]
        busy = read_load(headers)
        assert (busy.queue_depth, busy.queue_capacity, busy.workers, busy.busy_workers) == (
            2, 2, 1, 1)
        assert busy.full and busy.compute_ms is None and busy.queue_ms is None

        gate.open.set()
        for thread in threads:
            thread.join(60)
        for i in range(3):
            status, headers, answer = answers[i]
            assert status == 200
            np.testing.assert_array_equal(decode(headers, answer).as_numpy("labels"),
                                          direct(artifacts, sent[i])["labels"])
        assert read_load(answers[1][1]).queue_ms > 0  # it waited for request 0's gate

        status, headers, _ = request(url, "POST", f"/v2/models/{NAME}/infer",
                                     *infer_body(frame()))
        idle = read_load(headers)
        assert status == 200 and (idle.queue_depth, idle.busy_workers) == (0, 0)
        assert not idle.full and idle.compute_ms is not None and idle.recent_compute_ms > 0

        after = stats(url)
        counts = {k: v["count"] for k, v in after["inference_stats"].items()}
        assert counts["success"] == after["inference_count"] == 4
        assert counts["fail"] == after["zoo"]["rejected"] == 1
        assert counts["queue"] == counts["compute_infer"] == 4
        assert after["zoo"]["queue_depth"] == 0


def test_stats_count_each_request(client, url):
    import tritonclient.http as httpclient

    before = client.get_inference_statistics(NAME)["model_stats"][0]
    feeds = frame()
    inputs = [httpclient.InferInput("x", SHAPES["x"], "FP32").set_data_from_numpy(feeds["x"]),
              httpclient.InferInput("q", SHAPES["q"], "INT8").set_data_from_numpy(feeds["q"])]
    for _ in range(3):
        client.infer(NAME, inputs)
    request(url, "POST", f"/v2/models/{NAME}/infer", *_json_request(x__shape=[2]))
    after = client.get_inference_statistics(NAME)["model_stats"][0]
    assert after == stats(url)  # the client reads the same statistics

    def delta(key, what="count"):
        return after["inference_stats"][key][what] - before["inference_stats"][key][what]

    assert after["inference_count"] - before["inference_count"] == 3
    assert (delta("success"), delta("fail"), delta("compute_infer")) == (3, 1, 3)
    assert delta("compute_infer", "ns") > 0 and after["last_inference"] > 0
    assert after["zoo"] | {"recent_compute_ms": 0} == {
        "queue_depth": 0, "queue_capacity": 4, "workers": 2, "busy_workers": 0, "rejected": 0,
        "recent_compute_ms": 0}
    assert client.get_inference_statistics()["model_stats"][0]["name"] == NAME


def test_read_load_reads_headers_or_parameters():
    headers = {"x-zoo-queue-depth": "3", "X-Zoo-Queue-Capacity": "8", "X-ZOO-WORKERS": "2",
               "X-Zoo-Busy-Workers": "2", "X-Zoo-Recent-Compute-Ms": "12.5",
               "X-Zoo-Compute-Ms": "11.25", "X-Zoo-Queue-Ms": "30", "Content-Length": "9"}
    load = read_load(headers)
    assert (load.queue_depth, load.queue_capacity, load.workers, load.busy_workers) == (3, 8, 2, 2)
    assert (load.recent_compute_ms, load.compute_ms, load.queue_ms) == (12.5, 11.25, 30.0)
    assert not load.full
    params = {"zoo_queue_depth": 8, "zoo_queue_capacity": 8, "zoo_workers": 1,
              "zoo_busy_workers": 1, "zoo_recent_compute_ms": 4.0}
    assert read_load(params).full and read_load(params).compute_ms is None
    with pytest.raises(ValueError, match="no X-Zoo-Queue-Depth in the answer"):
        read_load({"Content-Length": "9"})
    with pytest.raises(ValueError, match="X-Zoo-Workers must be a number, got 'two'"):
        read_load({**headers, "X-Zoo-Workers": "two"})


# ------------------------------------------------------------------------------ several models
def triton_inputs(feeds: dict[str, np.ndarray]) -> list:
    import tritonclient.http as httpclient

    return [httpclient.InferInput(name, list(array.shape), datatype).set_data_from_numpy(array)
            for (name, array), datatype in zip(feeds.items(), ("FP32", "INT8"), strict=True)]


@pytest.fixture(scope="module")
def pair_url(artifacts, artifacts_b):
    """One server of both cuts, given as one comma-separated string."""
    with running(f"{artifacts},{artifacts_b}", workers=2, max_queue=4, threads=1) as address:
        yield address


def test_two_models_each_answer_with_their_own_results(pair_url, artifacts, artifacts_b):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(pair_url)
    try:
        for name, version, shapes in ((NAME, "1", SHAPES), (NAME_B, "2", SHAPES_B)):
            assert client.is_model_ready(name) and client.is_model_ready(name, version)
            metadata = client.get_model_metadata(name)
            assert (metadata["name"], metadata["versions"]) == (name, [version])
            assert [i["shape"] for i in metadata["inputs"]] == [shapes["x"], shapes["q"]]
        assert not client.is_model_ready(NAME, "2") and not client.is_model_ready(NAME_B, "1")
        before = {name: stats(pair_url, name)["inference_count"] for name in (NAME, NAME_B)}
        # Interleaved, as a client switching cuts between frames sends them.
        for name, version, folder, shapes in [(NAME, "1", artifacts, SHAPES),
                                              (NAME_B, "2", artifacts_b, SHAPES_B),
                                              (NAME, "1", artifacts, SHAPES),
                                              (NAME_B, "2", artifacts_b, SHAPES_B)]:
            feeds = frame(shapes)
            result = client.infer(name, triton_inputs(feeds))
            response = result.get_response()
            assert (response["model_name"], response["model_version"]) == (name, version)
            for output, want in direct(folder, feeds).items():
                got = result.as_numpy(output)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
            assert read_load(response["parameters"]).queue_capacity == 4
        # Each model checks the requests against its own inputs.
        with pytest.raises(InferenceServerException) as info:
            client.infer(NAME_B, triton_inputs(frame(SHAPES)))
        assert info.value.status() == "400" and (
            "input 'x' has shape [1, 8, 10, 4], the model takes [1, 4, 5, 4]"
            in info.value.message())
        with pytest.raises(InferenceServerException) as info:
            client.infer("tiny-cut-c", triton_inputs(frame(SHAPES)))
        assert info.value.status() == "400" and info.value.message() == (
            "unknown model 'tiny-cut-c'; this server serves 'tiny-cut', 'tiny-cut-b'")
        after = {name: stats(pair_url, name) for name in (NAME, NAME_B)}
        assert {name: after[name]["inference_count"] - before[name] for name in after} == {
            NAME: 2, NAME_B: 2}
        assert after[NAME_B]["inference_stats"]["fail"]["count"] == 1
        assert after[NAME]["inference_stats"]["fail"]["count"] == 0
        every = client.get_inference_statistics()["model_stats"]
        assert [(s["name"], s["version"]) for s in every] == [(NAME, "1"), (NAME_B, "2")]
    finally:
        client.close()


def test_repository_index_lists_every_model(pair_url, url):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(pair_url)
    try:
        both = [{"name": NAME, "version": "1", "state": "READY", "reason": ""},
                {"name": NAME_B, "version": "2", "state": "READY", "reason": ""}]
        assert client.get_model_repository_index() == both
    finally:
        client.close()
    status, _, body = request(pair_url, "POST", "/v2/repository/index", b'{"ready": true}')
    assert status == 200 and json.loads(body) == both
    status, _, body = request(url, "POST", "/v2/repository/index")
    assert status == 200 and json.loads(body) == both[:1]
    for method, path, body, want in [
            ("POST", "/v2/repository/index", b'{"ready": "yes"}',
             (400, "\"ready\" must be true or false, got 'yes'")),
            ("POST", "/v2/repository/index", b"[]",
             (400, "the index request must be a JSON object")),
            ("GET", "/v2/repository/index", None,
             (405, "'/v2/repository/index' takes POST")),
            ("POST", f"/v2/repository/models/{NAME}/unload", b"",
             (400, f"cannot unload model '{NAME}': this server's models are the --artifacts "
                   f"folders it was started with"))]:
        status, _, answer = request(pair_url, method, path, body)
        assert (status, json.loads(answer)["error"]) == want


def test_one_queue_and_one_pool_serve_every_model(artifacts, artifacts_b):
    gate = Gate()
    with running([artifacts, artifacts_b], workers=1, max_queue=1, wrap_run=gate.wrap) as url:
        sent = {NAME: frame(SHAPES), NAME_B: frame(SHAPES_B)}
        answers: dict[str, tuple] = {}

        def send(name):
            answers[name] = request(url, "POST", f"/v2/models/{name}/infer",
                                    *infer_body(sent[name]))

        first = threading.Thread(target=send, args=(NAME,))
        first.start()  # taken by the one worker, which waits at the gate
        wait_until(lambda: stats(url, NAME_B)["zoo"]["busy_workers"] == 1,
                   "the worker took the first model's request")
        second = threading.Thread(target=send, args=(NAME_B,))
        second.start()  # the other model's request waits in the same queue
        wait_until(lambda: stats(url, NAME)["zoo"]["queue_depth"] == 1,
                   "the second model's request queued")

        status, headers, answer = request(url, "POST", f"/v2/models/{NAME}/infer",
                                          *infer_body(frame()))
        assert status == 503 and "queue holds 1 requests" in json.loads(answer)["error"]
        busy = read_load(headers)
        assert (busy.queue_depth, busy.queue_capacity, busy.workers, busy.busy_workers) == (
            1, 1, 1, 1)

        gate.open.set()
        for thread in (first, second):
            thread.join(60)
        for name, folder in ((NAME, artifacts), (NAME_B, artifacts_b)):
            status, headers, answer = answers[name]
            assert status == 200
            np.testing.assert_array_equal(decode(headers, answer).as_numpy("labels"),
                                          direct(folder, sent[name])["labels"])
        assert read_load(answers[NAME_B][1]).queue_ms > 0  # it waited for the first's gate

        per_model = {name: stats(url, name) for name in (NAME, NAME_B)}
        counts = {name: (s["inference_count"], s["inference_stats"]["fail"]["count"],
                         s["zoo"]["rejected"]) for name, s in per_model.items()}
        assert counts == {NAME: (1, 1, 1), NAME_B: (1, 0, 0)}
        assert all(s["zoo"]["recent_compute_ms"] > 0 for s in per_model.values())


def test_module_entry_takes_a_comma_list(artifacts, artifacts_b, monkeypatch):
    """``--artifacts A,B`` as Fire hands it over: a string of paths, or a tuple of bare names."""
    given = []
    monkeypatch.setattr(server, "serve", lambda artifacts, **kwargs: given.append(artifacts))
    monkeypatch.chdir(artifacts.parent)
    for value in (f"{artifacts},{artifacts_b}", "artifacts,artifacts_b"):
        monkeypatch.setattr(sys, "argv", ["zoo.split.server", "--artifacts", value])
        server.main()
    assert given[1] == ("artifacts", "artifacts_b")
    for value in given:
        assert [model.name for model in load_models(value)] == [NAME, NAME_B]


# ------------------------------------------------------------------------------ refusals
def _tamper(folder: Path) -> None:
    data = bytearray((folder / "server.onnx").read_bytes())
    data[-1] ^= 1
    (folder / "server.onnx").write_bytes(bytes(data))


def _resign(folder: Path, **spec) -> None:
    old = json.loads((folder / "split.json").read_text())
    (folder / "split.json").write_text(json.dumps({**old, **spec}))


REFUSED = {
    "no folder": (lambda f: shutil.rmtree(f), {}, "--artifacts must be a folder"),
    "no split.json": (lambda f: (f / "split.json").unlink(), {}, "split.json: missing"),
    "split.json not JSON": (lambda f: (f / "split.json").write_text("{"), {},
                            "split.json: unreadable as JSON"),
    "no sha256": (lambda f: _resign(f, sha256={}), {},
                  "split.json: must give the sha256 of server.onnx"),
    "bad version": (lambda f: _resign(f, model_version=1), {},
                    "\"model_version\" must be a version number"),
    "no server.onnx": (lambda f: (f / "server.onnx").unlink(), {}, "server.onnx: missing"),
    "tampered server.onnx": (_tamper, {}, "does not match"),
    "not ONNX": (lambda f: ((f / "server.onnx").write_bytes(b"junk"),
                            _resign(f, sha256={"server.onnx": sha256_file(f / "server.onnx")})),
                 {}, "server.onnx: onnxruntime cannot load it"),
    "bad port": (lambda f: None, {"port": 70000},
                 "--port must be an integer between 0 and 65535, got 70000"),
    "no queue": (lambda f: None, {"max_queue": 0}, "--max-queue must be an integer >= 1, got 0"),
}


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))} if folder.exists() else {}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_artifacts_or_arguments_refuse_to_start(artifacts, tmp_path, capsys, case):
    folder = tmp_path / "artifacts"
    shutil.copytree(artifacts, folder)
    spoil, kwargs, reason = REFUSED[case]
    spoil(folder)
    before = _snapshot(folder)
    with pytest.raises(ConfigError) as info:
        serve(folder, **{"port": 0, **kwargs})
    message = str(info.value)
    assert reason in message and "\n" not in message
    if case == "tampered server.onnx":
        assert f"{folder / 'server.onnx'}: sha256 " in message
    assert _snapshot(folder) == before and capsys.readouterr().out == ""


REFUSED_MANY = {
    "one model name twice": (lambda a, b, copy: [a, copy],
                             "{copy}/split.json: model_name 'tiny-cut' is already that of "
                             "{a}/split.json; each folder served must hold a model of its own "
                             "name"),
    "one folder twice": (lambda a, b, copy: f"{a},{b},{a}", "--artifacts names the folder {a} "
                                                           "twice"),
    "a bad folder among good ones": (lambda a, b, copy: f"{a}, {b}, {copy}/nowhere",
                                     "--artifacts must be a folder holding server.onnx and "
                                     "split.json, got '{copy}/nowhere'"),
    "no folder": (lambda a, b, copy: " , ", "--artifacts must name a folder holding "
                                            "server.onnx and split.json, or several"),
}


@pytest.mark.parametrize("case", list(REFUSED_MANY))
def test_several_folders_refused_with_one_line(artifacts, artifacts_b, tmp_path, capsys, case):
    copy = tmp_path / "copy"
    shutil.copytree(artifacts, copy)
    given, reason = REFUSED_MANY[case]
    before = [_snapshot(folder) for folder in (artifacts, artifacts_b, copy)]
    with pytest.raises(ConfigError) as info:
        serve(given(artifacts, artifacts_b, copy), port=0)
    message = str(info.value)
    assert reason.format(a=artifacts, b=artifacts_b, copy=copy) in message and "\n" not in message
    assert [_snapshot(folder) for folder in (artifacts, artifacts_b, copy)] == before
    assert capsys.readouterr().out == ""


def test_a_port_in_use_is_refused(artifacts, url):
    with pytest.raises(ConfigError, match=rf"--port {url.split(':')[1]}: cannot listen there"):
        serve(artifacts, port=int(url.split(":")[1]))


# ------------------------------------------------------------------------------ processes
def _lines(proc) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _refused(port: int) -> bool:
    """True once connecting to `port` is refused. A connection reset while the listening socket
    closes under it is not counted: the next try is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        pass
    return False


GATED_SERVER = """
import sys, time
from pathlib import Path
from zoo.split.server import serve

gate = Path(sys.argv[2])

def wrap(run):
    def gated(names, feeds):
        print("computing", flush=True)
        while not gate.exists():
            time.sleep(0.01)
        return run(names, feeds)
    return gated

serve(sys.argv[1], port=0, wrap_run=wrap)
"""


def test_sigterm_finishes_the_request_in_flight_and_exits_0(artifacts, tmp_path):
    import tritonclient.http as httpclient

    gate, feeds, answer = tmp_path / "open", frame(), {}

    def send(port):
        try:
            triton = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
            answer["labels"] = triton.infer(NAME, [
                httpclient.InferInput("x", SHAPES["x"], "FP32").set_data_from_numpy(feeds["x"]),
                httpclient.InferInput("q", SHAPES["q"], "INT8").set_data_from_numpy(feeds["q"]),
            ]).as_numpy("labels")
            triton.close()
        except Exception as exc:
            answer["error"] = exc

    with subprocess.Popen([sys.executable, "-c", GATED_SERVER, str(artifacts), str(gate)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            lines = _lines(proc)
            match = re.fullmatch(rf"serving {NAME} on http://127\.0\.0\.1:(\d+)",
                                 lines.get(timeout=60))
            assert match, "no serving line"
            port = int(match[1])
            sender = threading.Thread(target=send, args=(port,))
            sender.start()
            assert lines.get(timeout=60) == "computing"
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: _refused(port), "new connections refused after SIGTERM")
            assert proc.poll() is None  # still finishing the request in flight
            gate.touch()
            sender.join(60)
            assert "error" not in answer, answer
            np.testing.assert_array_equal(answer["labels"], direct(artifacts, feeds)["labels"])
            assert proc.wait(60) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()


def test_module_entry_serves_until_ctrl_c_and_refuses_bad_artifacts(artifacts, tmp_path):
    command = [sys.executable, "-m", "zoo.split.server", "--artifacts", str(artifacts),
               "--port", "0", "--max-queue", "3", "--threads", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            match = re.fullmatch(rf"serving {NAME} on http://127\.0\.0\.1:(\d+)",
                                 _lines(proc).get(timeout=60))
            assert match, "no serving line"
            url = f"127.0.0.1:{match[1]}"
            assert request(url, "GET", "/v2/health/ready")[0] == 200
            status, headers, _ = request(url, "POST", f"/v2/models/{NAME}/infer",
                                         *infer_body(frame()))
            assert status == 200 and read_load(headers).queue_capacity == 3
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    bad = subprocess.run([*command[:4], str(tmp_path / "nowhere")], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        f"error: --artifacts must be a folder holding server.onnx and split.json, got "
        f"{str(tmp_path / 'nowhere')!r}"]
