"""Export: standalone files that load with torch alone, reproduce the bank's logits, and carry a
verification record; every refusal is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from slimda_nas._folders import MANIFEST
from slimda_nas.cli import main
from slimda_nas.cost.budget import parse_budget
from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.export import ExportError, export_model
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.train.run import load_run
from tests.conftest import copy_run, require_module

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


@pytest.fixture(scope="module")
def searched(tiny_run_dir, tmp_path_factory):
    """A tiny run searched at 1/4 (random), results written as the CLI writes them."""
    run_dir = copy_run(tiny_run_dir, tmp_path_factory.mktemp("export") / "run")
    run_search(
        run_dir,
        SearchOptions(
            budgets=[parse_budget("1/4")], sampler="random", evaluations=6, settings=SMALL
        ),
    )
    return run_dir


@pytest.fixture(scope="module")
def evaluator(searched):
    """Built once: export_model also takes an Evaluator (the CLI passes one)."""
    return Evaluator(load_run(searched, device="cpu"), SMALL)


@pytest.fixture(scope="module")
def exported(searched):
    return export_model(searched, budget="1/4", formats="torchscript,pt2,state_dict", device="cpu")


def _choice(run_dir):
    data = json.loads((run_dir / "search" / "results.json").read_text())
    return next(c for s in data["studies"].values() for c in s["choices"])


def test_export_writes_files_config_and_verification(searched, exported):
    out = exported.out
    assert out == searched / "export" / "1-4-random"
    assert {p.name for p in out.iterdir()} == {
        "model.ts",
        "model.pt2",
        "state_dict.pt",
        "config.yaml",
        "model.json",
        MANIFEST,  # what slimda-nas wrote there: only these are ever replaced
    }
    assert not [
        p for p in out.parent.iterdir() if p.name.startswith(".")
    ]  # no staging folder left
    choice = _choice(searched)
    assert yaml.safe_load((out / "config.yaml").read_text()) == choice["config"]
    rec = json.loads((out / "model.json").read_text())
    v = rec["verification"]
    assert v["passed"] is True
    assert (
        v["macs"]["thop"]
        == v["macs"]["search"]
        == v["macs"]["cost_model"]
        == choice["macs"]
        == rec["macs"]
    )
    assert v["upem"]["same_settings"] and v["upem"]["relative_difference"] < 1e-4
    assert rec["upem"]["kl"] == pytest.approx(choice["upem"]["kl"], rel=1e-4, abs=1e-7)
    for name in ("model.ts", "model.pt2", "state_dict.pt"):
        f = v["files"][name]
        assert f["logits"]["passed"] and f["logits"]["max_abs_diff"] <= f["logits"]["tolerance"]
        assert f["logits"]["images"] == 8
        assert f["accuracy"]["exported"] == pytest.approx(f["accuracy"]["bank"], abs=1e-6)
        assert f["accuracy"]["images"] == 18
    run = load_run(searched, device="cpu")
    data = run.data()
    assert rec["input"]["shape"] == [1, *run.space.input_shape]
    assert rec["input"]["normalization"]["mean"] == list(data.mean)
    assert rec["input"]["normalization"]["std"] == list(data.std)
    assert rec["classes"] == list(run.bank.classes)
    assert rec["budget"] == "1/4" and rec["anchor_macs"] > rec["macs"]
    assert rec["accuracy"] == pytest.approx(v["files"]["model.ts"]["accuracy"]["bank"])
    assert rec["settings"]["subsets"]["calibration"] == 8  # the search's settings, read back


def test_files_load_in_a_fresh_process_without_slimda_nas(searched, exported, evaluator, tmp_path):
    """torch alone: the child process cannot import slimda_nas at all."""
    x = torch.cat(evaluator.scoring)
    expected = evaluator.logits(_choice(searched)["config"], [x])
    torch.save(x, tmp_path / "x.pt")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["slimda_nas"] = None          # any import of it now fails
        try:
            import slimda_nas  # noqa: F401
            raise SystemExit("slimda_nas importable")
        except ImportError:
            pass
        import warnings
        warnings.simplefilter("ignore", FutureWarning)
        import torch
        out = {str(exported.out)!r}
        x = torch.load({str(tmp_path / "x.pt")!r})
        ts = torch.jit.load(out + "/model.ts")
        pt2 = torch.export.load(out + "/model.pt2").module()
        state = torch.load(out + "/state_dict.pt", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        with torch.no_grad():
            y = {{"ts": ts(x), "pt2": pt2(x), "ts1": ts(x[:1])}}
            torch.save(y, {str(tmp_path / "y.pt")!r})
        print(sorted(m for m in sys.modules if m.startswith("slimda")))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['slimda_nas']"  # only the blocking entry
    y = torch.load(tmp_path / "y.pt")
    assert torch.allclose(y["ts"], expected, atol=1e-5)
    assert torch.allclose(y["pt2"], expected, atol=1e-5)
    assert torch.allclose(y["ts1"], expected[:1], atol=1e-5)  # any batch size


def test_state_dict_loads_into_the_materialized_architecture(searched, exported, evaluator):
    config = _choice(searched)["config"]
    module = evaluator.bank.materialize(config)
    module.load_state_dict(
        torch.load(exported.out / "state_dict.pt", weights_only=True), strict=True
    )
    x = torch.cat(evaluator.scoring)
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), evaluator.logits(config, [x]), atol=1e-5)


def test_onnx_export_verifies_with_onnx_runtime(evaluator, tmp_path):
    require_module("onnxscript", "needs the ONNX exporter (pip install slimda-nas[onnx])")
    ort = require_module("onnxruntime", "needs ONNX Runtime (pip install onnxruntime)")
    result = export_model(evaluator, largest=True, formats="onnx", out=tmp_path / "onnx")
    f = result.record.verification["files"]["model.onnx"]
    assert f["runtime"] == f"onnxruntime {ort.__version__}"  # what users deploy with
    assert f["logits"]["passed"] and f["accuracy"]["passed"]
    assert f["accuracy"]["images"] == 18  # every test image: the runtime is fast enough
    assert result.record.origin == {"kind": "largest"} and result.record.budget is None
    lat = result.record.latency
    assert lat["model"]["onnxruntime"]["median_ms"] > 0 and lat["machine"]["onnxruntime"]


def test_export_records_its_latency_beside_the_full_width(exported):
    lat = exported.record.latency
    for name in ("model", "full_width"):
        t = lat[name]["pytorch"]
        assert 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"] and t["runs"] >= 20
    assert lat["machine"]["threads"] >= 1 and lat["machine"]["cpu"]
    assert "this machine" in lat["note"]
    on_disk = json.loads((exported.out / "model.json").read_text())
    assert on_disk["latency"] == lat


def test_onnx_without_exporter_is_one_line(searched, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match="ONNX exporter is not installed"):
        export_model(searched, largest=True, formats="onnx", out=tmp_path / "o", device="cpu")
    assert not (tmp_path / "o").exists()


def test_verification_failure_is_an_error_and_writes_nothing(evaluator, tmp_path, monkeypatch):
    from slimda_nas.export import api

    real = api.calibrated_plain

    def broken(ev, config):
        plain = real(ev, config)
        with torch.no_grad():
            next(plain.parameters()).add_(0.5)
        return plain

    monkeypatch.setattr(api, "calibrated_plain", broken)
    with pytest.raises(ExportError, match="verification failed: model.ts: logits differ"):
        export_model(evaluator, budget="1/4", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


def test_cli_trial_and_config_file_and_one_line_errors(searched, tmp_path, capsys):
    choice = _choice(searched)
    out = tmp_path / "t"
    base = ["export", "--run", str(searched), "--format", "state_dict", "--out", str(out)]
    base += ["--device", "cpu"]
    assert main([*base, "--study", choice["study"], "--trial", str(choice["trial"])]) == 0
    rec = json.loads((out / "model.json").read_text())
    assert rec["config"] == choice["config"] and rec["origin"]["kind"] == "trial"
    # replaces an earlier export
    assert main([*base, "--config-file", str(out / "config.yaml")]) == 0
    assert json.loads((out / "model.json").read_text())["origin"]["kind"] == "config-file"
    capsys.readouterr()
    for argv, expected in [
        (["--budget", "1/8"], "no search result at this budget"),
        (["--budget", "1/4", "--sampler", "tpe"], "no tpe result at budget 1/4"),
        (["--study", "nope", "--trial", "0"], "no such study"),
        (["--largest", "--study", "x"], "--study: only with --trial"),
        (["--largest", "--format", "tflite"], "--format: expected"),
        (["--largest", "--out", str(tmp_path)], "is not an earlier export"),
    ]:
        assert main(["export", "--run", str(searched), "--device", "cpu", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_budget_without_search_results_is_one_line(tiny_run_dir, tmp_path, capsys):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    assert main(["export", "--run", str(run_dir), "--budget", "1/64"]) == 2
    err = capsys.readouterr().err
    assert "no search results" in err and "slimda-nas search" in err and err.count("\n") == 1
    assert not (run_dir / "export").exists()


def test_pareto_exports_every_front_configuration(searched, evaluator, tmp_path):
    from slimda_nas.export import export_pareto
    from slimda_nas.search.storage import open_run_storage
    from slimda_nas.search.studies import pareto_front, read_studies

    studies = read_studies(open_run_storage(None, searched), evaluator.run.space, "journal")
    front = pareto_front(p for s in studies for p in s.points)
    results = export_pareto(evaluator, formats="state_dict", out=tmp_path)
    assert [r.record.config for r in results] == [p.config for p in front]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(r.label for r in results)
    assert all(
        r.record.origin["kind"] == "pareto" and r.record.verification["passed"] for r in results
    )
