"""The public API: the pipeline snippet of docs/api.md runs as written (on a tiny task), and
the package exports exactly the names it documents."""

from __future__ import annotations

import json
import re

import yaml

import slimda_nas
from tests.conftest import REPO, SPACES, make_folder_domains

#: What the test changes in the snippet to make it fast; each must occur exactly once, so the
#: page cannot drift from what is run.
TINY = {
    'sn.load_run_config("usps_mnist")': "sn.load_run_config(TINY_CONFIG)",
    'sn.SearchOptions(budgets="1/64")': (
        'sn.SearchOptions(budgets="1/4", evaluations=4, settings=sn.EvalSettings('
        "calibration_images=8, scoring_images=8, batch_size=8))"
    ),
    'sn.export_model(run, budget="1/64")': 'sn.export_model(run, budget="1/4", device="cpu")',
}


def _snippet() -> str:
    text = (REPO / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    for old, new in TINY.items():
        assert code.count(old) == 1, f"docs/api.md no longer says {old!r}"
        code = code.replace(old, new)
    return code


def test_the_documented_pipeline_runs(tmp_path, monkeypatch):
    root = make_folder_domains(tmp_path / "tiny")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "task": f"folder:{root / 'A'}->folder:{root / 'B'}",
                "space": str(SPACES / "digits_cnn.yaml"),
                "iterations": 4,
                "batch_size": 4,
                "models_per_step": 3,
                "device": "cpu",
                "eval_images": 12,
                "calibration_images": 12,
                "out": str(tmp_path / "run"),
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    scope: dict = {"TINY_CONFIG": str(config)}
    exec(compile(_snippet(), "docs/api.md", "exec"), scope)
    run_dir = tmp_path / "run"
    assert scope["run"].run_dir == run_dir
    assert scope["result"].picks and scope["result"].results_file.is_file()
    results = json.loads((run_dir / "search" / "results.json").read_text())
    assert any(s["choices"] for s in results["studies"].values())
    assert scope["page"] == run_dir / "report" / "index.html" and scope["page"].is_file()
    model = scope["model"]
    assert model.out == run_dir / "export" / "1-4-tpe"
    assert json.loads((model.out / "model.json").read_text())["verification"]["passed"]


def test_every_public_name_resolves():
    assert slimda_nas.__all__ == sorted(slimda_nas.__all__)
    for name in slimda_nas.__all__:
        assert getattr(slimda_nas, name) is not None, name
    assert "run_search" in dir(slimda_nas)
