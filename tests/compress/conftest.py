"""The Deep Compression chain of the session's trained run, made once for the test files that
read it (test_prune reads its pruned stage, test_cluster the whole chain)."""

import json
import os
from pathlib import Path

import pytest

CHAIN = "prune:0.6,cluster:8"
EPOCHS = 2  # test_prune resumes the pruned stage after its first epoch


@pytest.fixture(scope="session")
def pruned_chain(trained_run, tmp_path_factory):
    """(parent, pruned stage, clustered stage): the run folders of ``compress(<trained run>,
    CHAIN, epochs=EPOCHS)``, one per stage. Tests only read them (or copy them; exports go to
    their own folders). Under pytest-xdist the workers share them: the first to ask makes
    them under a file lock, as `trained_run` trains, and the others read them."""
    import fcntl

    from zoo.compress.run import compress
    from zoo.config import load_config

    _, parent = trained_run
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    checkpoints = shared / "pruned-chain" / "checkpoints"
    done = shared / "pruned-chain" / "stages.json"
    with open(shared / "pruned-chain.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            checkpoints.mkdir(parents=True, exist_ok=True)
            last = compress(parent, CHAIN, epochs=EPOCHS, checkpoints_dir=checkpoints,
                            verbose=0)
            middle = checkpoints / load_config(last / "config.yaml").compress.parent
            done.write_text(json.dumps([str(middle), str(last)]))
        middle, last = map(Path, json.loads(done.read_text()))
        return parent, middle, last
