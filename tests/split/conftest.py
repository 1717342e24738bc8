"""The split pairs of the session's trained run, exported once for the test files that read them
(test_halves, test_client, test_experiment)."""

import json
import os

import pytest

PAIR_CUTS = ("conv_pw_7_relu", "input")  # in the encoder (three skips cross), and all-server


@pytest.fixture(scope="session")
def split_pairs(trained_run, tmp_path_factory):
    """(root, {cut: split.json's content as `export_halves` returned it}) of the trained run's
    int8-transfer pairs at `PAIR_CUTS`, in that order, each in ``root / cut``, validated on 4
    images. Tests only read them (or copy them). Under pytest-xdist the workers share them:
    the first to ask exports them under a file lock, as `trained_run` trains, and the others
    read them."""
    import fcntl

    from zoo.split.halves import export_halves

    checkpoints, run_dir = trained_run
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "split-pairs"
    done = shared / "split-pairs.json"  # beside the folder: it holds only the exports
    with open(shared / "split-pairs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            facts = [export_halves(str(run_dir), cut, transfer="int8", out=str(root / cut),
                                   val_images=4, checkpoints_dir=str(checkpoints))
                     for cut in PAIR_CUTS]
            done.write_text(json.dumps(facts))
        return root, {cut: facts for cut, facts in zip(PAIR_CUTS, json.loads(done.read_text()),
                                                       strict=True)}
