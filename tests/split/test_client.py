"""The phone side (`zoo.split.client.SplitClient`) against a real split server on loopback:
every cut in turn gives the pair's labels, a server that is down or goes away means all on
the device (said once, with the reason on each image that fell back), and a server half of
another export is refused by its checksummed model name."""

import contextlib
import json
import shutil
import threading

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.split.client import DEVICE, EVERY, SplitClient
from zoo.split.emulate import free_port
from zoo.split.server import serve

MID = "conv_pw_7_relu"


@pytest.fixture(scope="module")
def folders(split_pairs):
    """The tiny run's pairs at a mid cut (int8 transfer) and at the input (shared, read only:
    tests/split/conftest.py)."""
    _, pairs = split_pairs
    return [pairs[cut]["folder"] for cut in (MID, "input")]


@pytest.fixture(scope="module")
def frames(trained_run):
    from zoo.config import load_config
    from zoo.export.exporter import validation_data

    _, run_dir = trained_run
    _, images, _ = validation_data(load_config(run_dir / "config.yaml"), 3)
    return images


@contextlib.contextmanager
def running(folders):
    """The split server on a free loopback port, in a thread; yields its URL."""
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(",".join(folders),),
                              kwargs={"port": 0, "ready": ready, "stop": stop}, daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    try:
        yield f"http://127.0.0.1:{ready.port}"
    finally:
        stop.set()
        thread.join(30)


def test_every_cut_in_turn_gives_the_labels_of_the_whole_model(folders, frames):
    with running(folders) as url:
        said = []
        client = SplitClient(folders, url, fixed=EVERY, log=said.append)
        try:
            warm = client.warm_up(frames[0], runs=2)
            results = [client.infer(frame) for frame in frames for _ in range(3)]
        finally:
            client.close()
    assert said == []
    assert set(warm["server_ms"]) == {MID, "input"} and warm["rtt_ms"] > 0
    records = [record for _, record in results]
    assert [r.cut for r in records] == [MID, "input", DEVICE] * 3  # in turn, image by image
    assert all(not r.fallback for r in records)
    assert all(r.request_ms > 0 and r.server_ms > 0 for r in records if r.cut != DEVICE)
    assert {r.up_bytes for r in records if r.cut == "input"} == {frames[0].size}  # uint8 frame
    for i in range(len(frames)):
        mid, whole_frame, device = (np.asarray(labels).reshape(frames[i].shape[:2])
                                    for labels, _ in results[3 * i:3 * i + 3])
        assert np.mean(whole_frame == device) >= 0.98  # float32 halves: the same model
        assert np.mean(mid == device) >= 0.9  # int8 tensors across the cut


def test_a_server_that_is_down_means_all_on_the_device_said_once(folders, frames):
    said = []
    client = SplitClient(folders, f"http://127.0.0.1:{free_port()}", timeout=2.0,
                         log=said.append)
    try:
        warm = client.warm_up(frames[0], runs=2)
        records = [client.infer(frame)[1] for frame in frames]
    finally:
        client.close()
    assert warm["rtt_ms"] is None and warm["server_ms"] == {}
    assert [r.cut for r in records] == [DEVICE] * len(frames)
    assert len(said) == 1 and "unusable" in said[0] and "all on the device" in said[0]
    assert "\n" not in said[0]


def test_a_server_that_goes_away_mid_run_falls_back_with_the_reason(folders, frames):
    said = []
    with running(folders) as url:
        client = SplitClient(folders, url, fixed="input", timeout=2.0, log=said.append)
        client.warm_up(frames[0], runs=2)
        before = client.infer(frames[0])[1]
    try:  # the server has stopped
        after = [client.infer(frame)[1] for frame in frames]
    finally:
        client.close()
    assert before.cut == "input" and not before.fallback
    assert after[0].cut == DEVICE and after[0].fallback  # tried, failed: the reason, one line
    assert "\n" not in after[0].fallback
    assert all(r.cut == DEVICE for r in after)
    assert all(not r.fallback for r in after[1:])  # not tried again before RETRY_S
    assert len(said) == 1


def test_a_server_half_of_another_export_is_refused(folders, frames, tmp_path):
    """The device half of one export beside a server serving another export's server half of
    the same cut: the model name carries the pair's checksum, so the client refuses."""
    other = tmp_path / "other"
    shutil.copytree(folders[1], other)
    spec = json.loads((other / "split.json").read_text())
    spec["model_name"] = spec["model_name"][:-4] + "0000"  # another pair's checksum
    (other / "split.json").write_text(json.dumps(spec))
    with running([folders[1]]) as url:
        client = SplitClient([str(other)], url)
        try:
            with pytest.raises(ConfigError, match=r"does not serve .*another export") as info:
                client.warm_up(frames[0], runs=1)
        finally:
            client.close()
    assert "\n" not in str(info.value)


def test_a_cut_not_exported_is_refused(folders):
    with pytest.raises(ConfigError, match=r"^--cut 'conv_pw_1_relu' is not among the exported "
                                          r"folders' cuts \(conv_pw_7_relu, input\), "
                                          r"all-device or every$"):
        SplitClient(folders, "http://127.0.0.1:9", fixed="conv_pw_1_relu")
