"""`python -m zoo` and the CLI runner: one-line errors, exit 2, --help is Fire's own flag."""

import pytest

from zoo.__main__ import check, list_models, summary
from zoo.cli import run


def test_list_names_every_arch_backbone_and_head(capsys):
    import zoo

    list_models()
    out = capsys.readouterr().out
    for name in zoo.list_archs() + zoo.list_backbones() + zoo.list_heads():
        assert name in out


def test_check_reports_findings_with_alternatives(capsys):
    check("edgetpu", arch="mobilenet_v3_small_lraspp", alpha=0.35, input_size=64)
    out = capsys.readouterr().out
    assert "map badly to edgetpu" in out and "hard_swish" in out and "use: minimalistic=True" in out
    check("edgetpu", arch="mobilenet_edgetpu_unet", alpha=0.35, input_size=64)
    assert "every layer maps to edgetpu" in capsys.readouterr().out


def test_summary_counts_params_and_macs(capsys):
    summary(alphas=(0.25,), input_size=64, pattern="mobileunet")
    row = [line for line in capsys.readouterr().out.splitlines() if "| mobileunet" in line][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.25" and float(cells[2]) > 0 and float(cells[3]) > 0


def test_user_error_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["zoo", "check", "--target", "edgetpu", "--arch", "mobileunt"])
    with pytest.raises(SystemExit) as exit_info:
        run({"check": check})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown arch 'mobileunt'; did you mean 'mobileunet'?")
    assert "\n" not in err


def test_help_is_fires_help_not_an_option(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["zoo", "check", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        run({"check": check}, name="zoo")
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "--arch" in captured.out + captured.err
