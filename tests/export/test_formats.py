"""Every registered format, without converting: its declarations, the CLI help generated from
them, and the seams that keep a format to one module."""

import ast
import sys
from pathlib import Path

import pytest

import zoo
from zoo.cli import run
from zoo.errors import ConfigError
from zoo.export import FORMATS
from zoo.export.exporter import export, export_command, format_options

PACKAGE = Path(zoo.__file__).parent


@pytest.mark.parametrize("name", FORMATS.list())
def test_declarations(name, format_declarations):
    format_declarations(name)


def test_help_lists_every_option_with_its_formats(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["export.py", "--help"])
    with pytest.raises(SystemExit):
        run(export_command, name="export")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for name in FORMATS.list():
        spec = FORMATS.get(name)
        assert name in text
        for option in spec.option_names():
            line = next((li for li in text.splitlines()
                         if f"--{option.replace('_', '-')}:" in li and name in li), None)
            assert line is not None, (name, option)


def test_an_option_goes_to_every_format_that_takes_it():
    parsed = format_options(["tflite-int8", "edgetpu", "onnx"],
                            {"calibration_images": 7, "output": "labels", "opset": None})
    assert parsed["tflite-int8"].calibration_images == 7
    assert parsed["edgetpu"].calibration_images == 7
    assert {p.output for p in parsed.values()} == {"labels"}
    assert parsed["onnx"].opset == 17  # None: not given, the format's own default
    with pytest.raises(ConfigError, match=r"option\(s\) opset not taken .* opset: onnx"):
        format_options(["tflite"], {"opset": 13})
    with pytest.raises(ConfigError, match="unknown export option 'calibraton_images'; did you"):
        format_options(["tflite"], {"calibraton_images": 8})


def test_unknown_option_fails_before_anything_is_read(tmp_path):
    with pytest.raises(ConfigError, match="unknown export option"):
        export(run=str(tmp_path / "no-such-run"), format="tflite", bogus=1)


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


# zoo/bench/targets.py and report.py's ratio table define the performance targets, and
# compression.py's ratio is against the fp32 TFLite file (Deep Compression's baseline): comparisons
# of named formats by definition; the rest of zoo/bench is generic.
GENERIC = ["export/exporter.py", "export/validate.py", "export/manifest.py",
           *[f"bench/{p.name}" for p in sorted((PACKAGE / "bench").glob("*.py"))
             if p.name not in ("targets.py", "report.py", "compression.py")]]


@pytest.mark.parametrize("module", GENERIC)
def test_generic_modules_name_no_format(module):
    named = _string_constants(PACKAGE / module) & set(FORMATS.list())
    assert not named, f"{module} names format(s) {sorted(named)}"


def test_no_call_passes_more_than_five_positional_arguments():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and len(node.args) > 5:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} "
                             f"{ast.unparse(node.func)}")
    assert not found, found


def test_format_modules_are_found_by_folder():
    folder = PACKAGE / "export" / "formats"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    registered_by = {FORMATS.get(n).convert.__module__.rsplit(".", 1)[1] for n in FORMATS.list()}
    assert registered_by == modules
