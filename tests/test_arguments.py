"""Out-of-range arguments of every entry point: exit 2, one line naming them, nothing written.

Hypothesis draws values outside each numeric or path argument's range (zero, negatives, huge
numbers, NaN and infinities, words, lists with one bad item, files where folders belong) and
runs ``train.py``, ``python -m zoo``, ``python -m zoo.bench`` (and ``.pipeline``) and
``export.py`` in-process as a user types them (``--flag=value``, parsed by Fire), from a
scratch working folder holding ``checkpoints/`` with a run in it, the tiny dataset and
``bench_out/``. Each refusal must be ``SystemExit(2)`` with exactly one line on stderr,
``error: ...`` naming the argument, and the whole working folder (files and folders, so an
empty run folder counts) unchanged. The other arguments are valid and small, so a missing check
shows up as a failed assertion, not a hang.

Example::

    assert_refused(TRAIN, {**TRAIN_ARGS, "--epochs": "0"}, "--epochs")
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.cli import run

# The working folder is one per test, shared by its examples: each example must leave it as it
# found it, which is what is being tested.
EXAMPLES = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Entry:
    """An entry point: its program name and how it is run."""

    name: str
    main: Callable[[], None]


def _train() -> None:
    from zoo.train.cli import train_command

    run(train_command, name="train.py")


def _zoo() -> None:
    from zoo.__main__ import main

    main()


def _bench() -> None:
    from zoo.bench.__main__ import main

    main()


def _pipeline() -> None:
    from zoo.bench.pipeline import pipeline_vs_step

    run(pipeline_vs_step, name="python -m zoo.bench.pipeline")


def _export() -> None:
    from zoo.export.exporter import export_command

    run(export_command, name="export")


TRAIN, ZOO, BENCH, EXPORT = (Entry("train.py", _train), Entry("python -m zoo", _zoo),
                             Entry("python -m zoo.bench", _bench), Entry("export.py", _export))
PIPELINE = Entry("python -m zoo.bench.pipeline", _pipeline)


RUN_NAME = "mobileunet-a0.25-64x64-20260101-000000"


@pytest.fixture
def workspace(tmp_path, tiny_data, monkeypatch):
    """The working folder: checkpoints/ with one run, the tiny data in tiny/, bench_out/ with a
    CSV, and a plain file a-file.txt."""
    run_dir = tmp_path / "checkpoints" / RUN_NAME
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model: {arch: mobileunet}\n")
    (tmp_path / "bench_out").mkdir()
    (tmp_path / "bench_out" / "grid.csv").write_text("arch\n")
    (tmp_path / "a-file.txt").write_text("not a folder\n")
    assert tiny_data == tmp_path / "tiny"
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree_state(root) -> str:
    """Digest of every folder and file under `root`: names, kinds and bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes() if path.is_file() else b"<folder>")
    return digest.hexdigest()


def call(entry: Entry, argv: list[str]) -> tuple[object, list[str]]:
    """Run `entry` with `argv` in-process: (exit status, stderr lines)."""
    err, saved = io.StringIO(), sys.argv
    sys.argv = [entry.name, *argv]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            entry.main()
        status: object = 0
    except SystemExit as exc:
        status = exc.code
    finally:
        sys.argv = saved
    return status, err.getvalue().splitlines()


def text(value) -> str:
    """A drawn value as typed on the command line (floats by repr: nan, inf, -0.0, 1e+300)."""
    return repr(value) if isinstance(value, float) else str(value)


def argv_of(args: dict[str, object], command: tuple[str, ...] = ()) -> list[str]:
    """`command` (a subcommand and fixed flags), then ``--flag=value`` for each of `args`."""
    return [*command, *(f"{flag}={text(value)}" for flag, value in args.items())]


def assert_refused(entry: Entry, args: dict[str, object], *names: str,
                   command: tuple[str, ...] = ()) -> None:
    """`entry` with `args` exits 2 with one ``error:`` line naming one of `names`, and leaves
    the working folder as it was."""
    before = tree_state(Path.cwd())
    argv = argv_of(args, command)
    status, lines = call(entry, argv)
    assert status == 2, (argv, status, lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
    assert any(name in lines[0] for name in names), (argv, lines[0])
    assert tree_state(Path.cwd()) == before, argv


# Values outside a range. Words are letters only: Fire keeps them as strings, except "None"
# (an unset argument, which is valid) and True/False (booleans, refused like words).
WORDS = st.text(string.ascii_letters, min_size=1, max_size=8).filter(lambda s: s != "None")
NON_INTEGRAL = st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer()))
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def bad_ints(low: int, high: int | None = None):
    """Integers below `low` (or above `high`), non-integral or non-finite numbers, words."""
    options = [st.integers(max_value=low - 1), NON_INTEGRAL, WORDS]
    if high is not None:
        options.append(st.integers(min_value=high + 1))
    return st.one_of(options)


def bad_floats(low: float, *, open_low: bool):
    """Numbers below `low` (or equal, when `low` itself is excluded), integers too large for a
    float, NaN, infinities, words."""
    below = st.floats(max_value=low, allow_nan=False).filter(
        lambda x: x < low or (open_low and x == low))
    return st.one_of(below, st.sampled_from([-(10**400), 10**400]), NOT_FINITE, WORDS)


def with_good(good: str, bad):
    """A comma list with one bad item (or the bad item alone)."""
    return st.one_of(bad, bad.map(lambda b: f"{good},{text(b)}"))


MOBILENET_V1_ALPHAS = (0.25, 0.5, 0.75, 1.0)
BAD_V1_ALPHAS = st.one_of(
    st.floats().filter(lambda x: not any(abs(x - a) < 1e-6 for a in MOBILENET_V1_ALPHAS)), WORDS)
BAD_SIDES = st.integers().filter(lambda n: n < 32 or n % 32)
BAD_INPUT_SIZES = st.one_of(
    BAD_SIDES, st.tuples(BAD_SIDES, st.sampled_from([64, 96])).map(lambda s: f"{s[1]}x{s[0]}"),
    NON_INTEGRAL, WORDS)

TRAIN_ARGS = {"--arch": "mobileunet", "--alpha": 0.25, "--input-size": 64, "--data": "tiny",
              "--epochs": 1, "--batch-size": 4, "--warmup-epochs": 0, "--precise-bn-images": 8}


@pytest.mark.parametrize(("flag", "values"), [
    ("--epochs", bad_ints(1)),
    ("--batch-size", bad_ints(1)),
    ("--lr", bad_floats(0.0, open_low=True)),
    ("--weight-decay", bad_floats(0.0, open_low=False)),
    ("--warmup-epochs", bad_ints(0)),
    ("--early-stopping", bad_ints(1)),
    ("--precise-bn-images", bad_ints(0)),
    ("--limit", bad_ints(1)),
    ("--steps-per-epoch", bad_ints(1)),
    ("--seed", bad_ints(0, 2**32 - 1)),
    ("--alpha", BAD_V1_ALPHAS),
    ("--input-size", BAD_INPUT_SIZES),
    ("--class-weights", with_good("1", bad_floats(0.0, open_low=False))),
], ids=lambda v: v if isinstance(v, str) else "")
@EXAMPLES
@given(data=st.data())
def test_train_refuses_out_of_range_numbers(workspace, flag, values, data):
    value = data.draw(values, label=flag)
    assert_refused(TRAIN, {**TRAIN_ARGS, flag: value}, flag)


@EXAMPLES
@given(epochs=st.integers(1, 5), extra=st.integers(1, 10**6))
def test_train_refuses_a_warmup_longer_than_training(workspace, epochs, extra):
    assert_refused(TRAIN, {**TRAIN_ARGS, "--epochs": epochs, "--warmup-epochs": epochs + extra},
                   "--warmup-epochs")


@EXAMPLES
@given(name=st.text(string.ascii_letters + string.digits, min_size=1, max_size=12))
def test_train_refuses_missing_paths_and_files_for_folders(workspace, name):
    assert_refused(TRAIN, {**TRAIN_ARGS, "--resume": f"missing-{name}"}, "--resume")
    assert_refused(TRAIN, {**TRAIN_ARGS, "--weights": f"missing/{name}.h5"}, "--weights")
    # zoo.data names the dataset it could not find, not the flag.
    assert_refused(TRAIN, {**TRAIN_ARGS, "--data": f"missing/{name}"},
                   f"dataset 'missing/{name}'")
    assert_refused(TRAIN, {**TRAIN_ARGS, "--checkpoints": "a-file.txt"}, "--checkpoints")
    assert_refused(TRAIN, {**TRAIN_ARGS, "--checkpoints": f"a-file.txt/{name}"}, "--checkpoints")
    # A resumed run is checked like a new one, before its folder is looked at.
    assert_refused(TRAIN, {"--resume": RUN_NAME, "--epochs": -len(name)}, "--epochs")


@pytest.mark.parametrize(("args", "message"), [
    ({"--epochs": 0}, "--epochs must be an integer >= 1, got 0"),
    ({"--epochs": -1}, "--epochs must be an integer >= 1, got -1"),
    ({"--batch-size": 0}, "--batch-size must be an integer >= 1, got 0"),
    ({"--lr": -1}, "--lr must be a finite number > 0, got -1"),
    ({"--epochs": 3, "--warmup-epochs": 4},
     "--warmup-epochs must be an integer between 0 and 3 (--epochs), got 4"),
    ({"--alpha": 0.3}, "--alpha 0.3 is not supported by backbone 'mobilenet_v1'; allowed: "
                       "0.25, 0.5, 0.75, 1.0"),
    ({"--schedule": "linear"}, "--schedule must be one of cosine, poly, constant, got 'linear'"),
    ({"--strategy": "tpu"}, "--strategy must be one of default, mirrored, multiworker, "
                            "got 'tpu'"),
    ({"--loss": "ce:-1"}, "loss weight of ce in 'ce:-1' must be a finite number >= 0"),
    ({"--class-weights": "1,2,3"}, "class_weights has 3 values, expected 2 (one per class)"),
])
def test_the_reported_cases_are_one_line_before_any_run_folder(workspace, args, message):
    """The issue's cases (an empty run folder and a traceback, or silent divergence, before)."""
    before = tree_state(workspace)
    status, lines = call(TRAIN, argv_of({**TRAIN_ARGS, **args}))
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert tree_state(workspace) == before


ZOO_CASES = [
    (["check", "--target=edgetpu", "--arch=mobileunet", "--input-size=64"], "--alpha",
     BAD_V1_ALPHAS),
    (["check", "--target=edgetpu", "--arch=mobileunet", "--alpha=0.25"], "--input-size",
     BAD_INPUT_SIZES),
    (["summary", "--pattern=mobileunet", "--input-size=64"], "--alphas",
     with_good("0.25", BAD_V1_ALPHAS)),
    (["summary", "--pattern=mobileunet", "--alphas=0.25"], "--input-size", BAD_INPUT_SIZES),
    (["summary", "--pattern=mobileunet", "--alphas=0.25", "--input-size=64"], "--num-classes",
     bad_ints(1)),
]


@pytest.mark.parametrize(("command", "flag", "values"), ZOO_CASES,
                         ids=[f"{c[0][0]}{c[1]}" for c in ZOO_CASES])
@EXAMPLES
@given(data=st.data())
def test_zoo_commands_refuse_out_of_range_numbers(workspace, command, flag, values, data):
    value = data.draw(values, label=flag)
    assert_refused(ZOO, {flag: value}, flag, command=tuple(command))


GRID = {"--archs": "mobileunet", "--alphas": 0.25, "--sizes": 64, "--runtimes": "tflite",
        "--threads": 1, "--runs": 1, "--warmup": 0, "--peak-size": 64}
SPLIT = {"--archs": "mobileunet", "--alphas": 0.25, "--sizes": 64, "--runtimes": "tflite",
         "--threads": 1, "--runs": 1, "--warmup": 0}
OPS = {"--arch": "mobileunet", "--alpha": 0.25, "--size": 64, "--threads": 1, "--runs": 1,
       "--warmup": 0, "--every": 4, "--top": 1}
BAD_SIZE_LISTS = with_good("64", st.one_of(BAD_SIDES, NON_INTEGRAL, WORDS))
BAD_THREAD_LISTS = with_good("1", bad_ints(1))
BAD_ALPHA_LISTS = with_good("0.25", bad_floats(0.0, open_low=True))
BENCH_CASES = [
    ("grid", GRID, "--runs", bad_ints(1)),
    ("grid", GRID, "--warmup", bad_ints(0)),
    ("grid", GRID, "--threads", BAD_THREAD_LISTS),
    ("grid", GRID, "--sizes", BAD_SIZE_LISTS),
    ("grid", GRID, "--alphas", BAD_ALPHA_LISTS),
    ("grid", GRID, "--num-classes", bad_ints(1, 256)),
    ("grid", GRID, "--peak-size", bad_ints(1, 16384)),
    ("split", SPLIT, "--runs", bad_ints(1)),
    ("split", SPLIT, "--warmup", bad_ints(0)),
    ("split", SPLIT, "--threads", BAD_THREAD_LISTS),
    ("split", SPLIT, "--sizes", BAD_SIZE_LISTS),
    ("split", SPLIT, "--alphas", with_good("0.25", BAD_V1_ALPHAS)),
    ("split", SPLIT, "--num-classes", bad_ints(1, 256)),
    ("ops", OPS, "--alpha", BAD_V1_ALPHAS),
    ("ops", OPS, "--size", st.one_of(BAD_SIDES, NON_INTEGRAL, WORDS)),
    ("ops", OPS, "--threads", bad_ints(1)),
    ("ops", OPS, "--runs", bad_ints(1)),
    ("ops", OPS, "--warmup", bad_ints(0)),
    ("ops", OPS, "--every", bad_ints(1)),
    ("ops", OPS, "--top", bad_ints(1)),
    ("ops", OPS, "--num-classes", bad_ints(1, 256)),
]


@pytest.mark.parametrize(("command", "base", "flag", "values"), BENCH_CASES,
                         ids=[f"{c[0]}{c[2]}" for c in BENCH_CASES])
@EXAMPLES
@given(data=st.data())
def test_bench_commands_refuse_out_of_range_numbers(workspace, command, base, flag, values,
                                                    data):
    value = data.draw(values, label=flag)
    assert_refused(BENCH, {**base, flag: value}, flag, command=(command, "--noprogress"))


PIPELINE_ARGS = {"--arch": "mobileunet", "--alpha": 0.25, "--input-size": 64, "--batch-size": 2,
                 "--data": "tiny", "--batches": 1}


@pytest.mark.parametrize(("flag", "values"), [
    ("--alpha", BAD_V1_ALPHAS),
    ("--input-size", BAD_INPUT_SIZES),
    ("--batch-size", bad_ints(1)),
    ("--batches", bad_ints(1)),
], ids=lambda v: v if isinstance(v, str) else "")
@EXAMPLES
@given(data=st.data())
def test_pipeline_benchmark_refuses_out_of_range_numbers(workspace, flag, values, data):
    value = data.draw(values, label=flag)
    assert_refused(PIPELINE, {**PIPELINE_ARGS, flag: value}, flag)


@EXAMPLES
@given(name=st.text(string.ascii_letters + string.digits, min_size=1, max_size=12))
def test_bench_commands_refuse_files_for_folders_and_missing_results(workspace, name):
    for command, base in (("grid", GRID), ("split", SPLIT), ("ops", OPS)):
        for out in ("a-file.txt", f"a-file.txt/{name}"):
            assert_refused(BENCH, {**base, "--out": out}, "--out", command=(command,))
    assert_refused(BENCH, {"--results": f"missing-{name}"}, "--results", command=("targets",))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 10**12), x=st.floats(1e-300, 1e300),
       h=st.integers(1, 64), w=st.integers(1, 64))
def test_values_in_range_pass_the_checks_converted(n, x, h, w):
    from zoo import checks

    assert checks.integer("--n", n, 1) == checks.integer("--n", str(n), 1) == n
    assert checks.integer("--n", float(min(n, 2**52)), 1) == min(n, 2**52)
    assert checks.number("--x", x, 0, low_open=True) == checks.number("--x", repr(x), 0,
                                                                      low_open=True) == x
    assert checks.input_size("--s", f"{32 * h}x{32 * w}") == (32 * h, 32 * w)
    assert checks.input_size("--s", 32 * h) == (32 * h, 32 * h)
    assert checks.each("--sizes", f"{32 * h},{32 * w}", checks.size) == [32 * h, 32 * w]


def test_folder_check_creates_nothing(tmp_path):
    from zoo import checks
    from zoo.errors import ConfigError

    assert checks.folder("--out", tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out must be a folder, got .*\(it is below the "
                                          r"file"):
        checks.folder("--out", tmp_path / "file" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# export.py: only the arguments checked before the run is read (the run named here does not
# exist, so an argument that is not checked ends in "no run folder" instead of its own error).
EXPORT_ARGS = {"--run": "no-such-run", "--format": "onnx"}


def _not_a_format(name: str) -> bool:
    from zoo.export import FORMATS

    return name != "all" and name not in FORMATS.list()


EXPORT_CASES = [
    ({}, "--val-images", st.integers(max_value=0), ("val_images", "--val-images")),
    ({"--format": "tflite-int8"}, "--calibration-images", bad_ints(1),
     ("calibration_images", "--calibration-images")),
    ({}, "--opset", bad_ints(13, 18), ("opset", "--opset")),
    ({}, "--format", WORDS.filter(_not_a_format), ("format",)),
]


@pytest.mark.parametrize(("base", "flag", "values", "names"), EXPORT_CASES,
                         ids=[c[1] for c in EXPORT_CASES])
@EXAMPLES
@given(data=st.data())
def test_export_refuses_out_of_range_arguments(workspace, base, flag, values, names, data):
    value = data.draw(values, label=flag)
    assert_refused(EXPORT, {**EXPORT_ARGS, **base, flag: value}, *names)


@pytest.mark.parametrize("args", [
    {"--threads": 0}, {"--threads": -2}, {"--val-images": "abc"}, {"--val-images": 1.5},
    {"--val-images": "1e999"}, {"--format": "tflite-int8", "--calibration-images": "1e999"},
    {"--min-agreement": 200}, {"--min-agreement": "nan"}, {"--max-miou-drop": -1},
    {"--out": "a-file.txt"},
], ids=lambda a: " ".join(f"{k}={v}" for k, v in a.items()))
def test_export_arguments_checked_before_the_run_is_read(workspace, args):
    flag = [k for k in args if k != "--format"][0]
    assert_refused(EXPORT, {**EXPORT_ARGS, **args}, flag, flag.lstrip("-").replace("-", "_"))
