"""``slimda-nas space``: init / show / validate, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slimda_nas.cli import main
from slimda_nas.space import load_space
from tests.conftest import REPO, SPACES

DIGITS = str(SPACES / "digits_cnn.yaml")


def test_validate_ok(capsys):
    assert main(["space", "validate", DIGITS]) == 0
    out = capsys.readouterr().out
    assert "ok (6 units" in out


def test_show_prints_units_macs_and_budget(capsys):
    assert main(["space", "show", DIGITS, "--budget", "1/64", "--samples", "300"]) == 0
    out = capsys.readouterr().out
    for text in ("conv1", "fc1", "largest", "smallest", "uniform 0.5", "budget 1/64", "reachable"):
        assert text in out


def test_unreachable_budget_names_smallest_fraction(capsys):
    assert main(["space", "validate", DIGITS, "--budget", "1/1000"]) == 2
    out = capsys.readouterr().out
    assert "is below the smallest model's 1/1" in out
    assert "needs narrower widths in the space file" in out  # no shipped space reaches lower


def test_unreachable_budget_names_the_elastic_space_that_reaches_it(capsys):
    """Widths alone stop at 1/29.6 on Lite0; the shipped elastic space reaches 1/64."""
    assert main(["space", "validate", "efficientnet_lite0", "--budget", "1/64"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "the shipped space efficientnet_lite0_elastic adds input resolution and depth" in out
    assert main(["space", "validate", "efficientnet_lite0_elastic", "--budget", "1/64"]) == 0


def test_init_writes_a_valid_space(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    assert main(["space", "init", "--backbone", "digits_cnn", "--out", str(out)]) == 0
    space = load_space(out)
    assert space.canonical()["units"] == load_space(DIGITS).canonical()["units"]
    assert main(["space", "init", "--backbone", "digits_cnn", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_init_says_the_reachable_budgets(capsys):
    """Before anyone trains on it: the narrowest fraction, and a note per unreachable budget."""
    assert main(["space", "init", "--backbone", "digits_cnn", "--budgets", "1/16,1/1000"]) == 0
    err = capsys.readouterr().err
    assert "reachable budgets: 1/159.3 to 1 of the largest model's" in err  # 10 classes
    assert err.count("note: --budgets: unreachable") == 1 and "budget 1/1000 (" in err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["space", "validate", "missing.yaml"], "missing.yaml: file not found"),
        (["space", "show", DIGITS, "--budget", "abc"], "budget 'abc'"),
        (["space", "init", "--backbone", "nope"], "unknown backbone 'nope'"),
    ],
)
def test_errors_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_bad_yaml_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (SPACES / "digits_cnn.yaml").read_text().replace("conv3: {}", "conv3: {widths: [1.5]}")
    )
    assert main(["space", "validate", str(bad)]) == 2
    assert "unit 'conv3': field 'widths': width 1.5 is above 1.0" in capsys.readouterr().err


def test_console_entry_points():
    script = Path(sys.executable).parent / "slimda-nas"
    for exe in ([str(script)], [sys.executable, "-m", "slimda_nas"]):
        r = subprocess.run(
            exe + ["space", "validate", "nope.yaml"], capture_output=True, text=True, cwd=REPO
        )
        assert r.returncode == 2
        assert r.stderr.strip().count("\n") == 0 and "nope.yaml: file not found" in r.stderr
        r = subprocess.run(
            exe + ["space", "--bogus-flag"], capture_output=True, text=True, cwd=REPO
        )
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


def test_show_elastic_lite0_has_a_feasible_set_at_1_64(capsys):
    """Widths alone stop at 1/29.5 on Lite0; with depth and resolution 1/64 is reachable and
    the band sampler finds configurations in it even where no uniform draw does."""
    argv = ["space", "show", "efficientnet_lite0_elastic", "--budget", "1/16,1/64"]
    assert main([*argv, "--samples", "300"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("depth.stage5", "resolution", "128 160 192 224", "budget 1/16", "budget 1/64"):
        assert text in out
    line = out[out.index("budget 1/64") :]
    assert "reachable" in line and "unreachable" not in line
    if "0.0% of 300" in line:
        assert "not empty: the band sampler found 20 distinct configurations" in line
