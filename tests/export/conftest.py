"""The format contract: what every export format must do, checked the same way for each.

A format's test file calls the `format_contract` fixture with the format's name (and options);
it converts the session's tiny trained run, runs the artifact in the format's own runtime on the
run's validation images, compares it with the Keras model at the format's declared tolerance
(the exporter's gate), reads back the metadata the format embeds, and checks that an unknown
option is a one-line error. What is truly specific to a format stays in its own file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from importlib import metadata as importlib_metadata

import pytest

from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export import FORMATS, RUNTIMES, Artifact, parse_options
from zoo.export.exporter import export_context, load_checkpoint, validation_data
from zoo.export.validate import ValidationResult, reference, validate


@dataclass
class Contract:
    artifact: Artifact
    result: ValidationResult
    keras_logits: object  # the Keras model's logits on `images`
    images: object  # the validation images the artifact was checked on
    context: object


@pytest.fixture(scope="session")
def run_reference(trained_run):
    """(model, config, spec, Reference) of the session's trained run on 8 validation images."""
    _, run_dir = trained_run
    cfg = load_config(run_dir / "config.yaml")
    model = load_checkpoint(run_dir / "best.keras")
    spec, images, masks = validation_data(cfg, 8)
    return run_dir, model, cfg, spec, reference(model, images, masks, spec.num_classes,
                                                spec.ignore_index)


@pytest.fixture(scope="session")
def _contracts():
    """Contracts already checked in this session, by format and options: a format's own test
    file and the cross-format ones share one conversion (tests only read the artifacts)."""
    return {}


@pytest.fixture(scope="session")
def _contract_context(run_reference, tmp_path_factory):
    """One `ExportContext` for every contract, as one export of a run has: the TFLite variants
    of a graph convert one SavedModel, calibration images are loaded once."""
    run_dir, model, cfg, spec, ref = run_reference
    context = export_context(cfg, run_dir, spec, threads=1)
    context.scratch = tmp_path_factory.mktemp("contract-scratch")
    return context


@pytest.fixture
def format_contract(run_reference, tmp_path_factory, _contracts, _contract_context):
    """``format_contract(name, **options) -> Contract`` (see the module docstring)."""
    run_dir, model, cfg, spec, ref = run_reference
    context = _contract_context

    def check(name: str, **options) -> Contract:
        parsed = asdict(parse_options(FORMATS.get(name), options))
        key = (name, tuple(sorted(parsed.items())))
        if key not in _contracts:
            _contracts[key] = convert_and_check(name, options)
        return _contracts[key]

    def convert_and_check(name: str, options: dict) -> Contract:
        fmt = FORMATS.get(name)
        folder = tmp_path_factory.mktemp(f"contract-{name}")
        parsed = parse_options(fmt, options)
        artifact = fmt.convert(model, folder / f"model{fmt.suffix}", parsed, context)

        # What the exporter and the manifest rely on.
        assert artifact.format == name and artifact.path.exists()
        assert artifact.runtime == fmt.runtime and artifact.runtime in RUNTIMES
        assert artifact.output_kind == parsed.output
        assert artifact.ops, "no ops recorded"
        if "calibration_images" in fmt.option_names():
            assert artifact.calibration_sha256 and len(artifact.calibration_sha256) == 64

        # Run in its own runtime against Keras, at the format's declared tolerance.
        result = validate(artifact, ref, fmt.tolerance, threads=1)
        assert result.passed, result.reason
        assert result.images == len(ref.images) and result.status == "passed"

        # The metadata an app reads travels inside the file.
        assert fmt.read_metadata is not None, f"{name} declares no metadata reader"
        embedded = fmt.read_metadata(artifact.path)
        for key, value in context.metadata().items():
            if key == "input_layout":  # the format's own (Core ML takes a pixel buffer)
                assert embedded.get(key), name
            else:
                assert embedded.get(key) == value, (name, key, embedded.get(key))

        check_declarations(name)
        return Contract(artifact, result, ref.logits, ref.images, context)

    return check


@pytest.fixture
def format_declarations():
    """``format_declarations(name)``: `check_declarations` as a fixture."""
    return check_declarations


def check_declarations(name: str) -> None:
    """What a format declares, without converting anything: options with help, a runtime that
    exists, tools that are installed, and a one-line error for an unknown option."""
    fmt = FORMATS.get(name)
    for f in fields(fmt.options_cls):
        assert f.metadata.get("help"), f"{name}: option {f.name} has no help text"
    assert fmt.runtime in RUNTIMES and (fmt.speed_runtime or fmt.runtime) in RUNTIMES
    for tool in fmt.tools:
        assert importlib_metadata.version(tool), tool
    assert fmt.suffix.startswith(".")
    with pytest.raises(ConfigError) as info:
        parse_options(fmt, {"no_such_option": 1})
    message = str(info.value)
    assert "no_such_option" in message and name in message and "\n" not in message
