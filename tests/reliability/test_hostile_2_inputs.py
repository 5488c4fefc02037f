"""What a hostile user still broke (issue 38), items 5-9: unbounded sizes, API types, silent
nonsense, refusals for the wrong reason, internal errors. Each test failed before its fix."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

import slimda_nas as sn
from slimda_nas.cli import main
from slimda_nas.errors import ConfigError, SpaceError, UserError
from slimda_nas.space import space_from_dict
from tests.conftest import SPACES, copy_run, make_folder_domains, search_args, tiny_run_config
from tests.reliability.conftest import cli, one_line_error
from tests.reliability.conftest import in_process as _run

EVAL = ["--device", "cpu", "--calibration-images", "8", "--scoring-images", "8"]


def _config_file(tmp_path: Path, task: str, **changes) -> Path:
    cfg = tiny_run_config(tmp_path, task, **changes)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


# -- 5. every size is bounded before anything is allocated ----------------------------------------
@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("batch_size", 10**12, "at most 16,384"),
        ("iterations", 10**12, "at most 100,000,000"),
        ("eval_images", 10**9, "at most 1,000,000"),
        ("models_per_step", 10**6, "at most 64"),
    ],
)
def test_a_huge_size_in_a_config_is_refused(tmp_path, tiny_task, field, value, allowed):
    with pytest.raises(ConfigError, match=f"field '{field}'.*{allowed}"):
        tiny_run_config(tmp_path, tiny_task, **{field: value})


def test_a_huge_input_size_is_refused_before_the_allocator(capsys):
    raw = yaml.safe_load((SPACES / "digits_cnn.yaml").read_text())
    raw["input"]["size"] = 100_000
    with pytest.raises(SpaceError, match="input.size': expected pixels from 8 to 4096"):
        space_from_dict(raw)


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda: sn.SearchOptions(budgets="1/4", evaluations=10**9).check(), "--trials"),
        (lambda: sn.SearchOptions(budgets="1/4", workers=100_000).check(), "--workers"),
        (lambda: sn.EvalSettings(batch_size=10**9), "--batch-size"),
        (lambda: sn.EvalSettings(scoring_images=10**9), "--scoring-images"),
    ],
)
def test_a_huge_option_is_refused_with_its_range(make, named):
    with pytest.raises(UserError, match=f"{named}: expected .* most"):
        make()


# -- 6. typed arguments of the public API ---------------------------------------------------------
@pytest.mark.parametrize(
    "call, named, expected",
    [
        (lambda: sn.SearchOptions(budgets="1/4", study_name=5), "study_name", "str or None"),
        (lambda: sn.EvalSettings(calibration_images="8"), "calibration_images", "int"),
        (lambda: sn.load_space(5), "path", "str or Path"),
        (lambda: sn.parse_budget(0.25), "text", "str"),
        (lambda: sn.export_model("runs/x", budget=0.25), "budget", "str or None"),
        (lambda: sn.build_report("runs/x", accuracy_points="3"), "accuracy_points", "int"),
        (lambda: sn.train_bank({"name": "x"}), "cfg", "RunConfig"),
        (lambda: sn.RunConfig(name=5, task="digits:usps->digits:mnist", space="x"), "name", "str"),
    ],
)
def test_a_wrong_type_names_the_argument(call, named, expected):
    with pytest.raises(TypeError) as e:
        call()
    assert isinstance(e.value, UserError)
    text = str(e.value)
    assert f"argument {named!r}: expected {expected}" in text and "\n" not in text


def test_a_number_as_study_name_in_the_journal_does_not_break_report_or_export(R, capsys):
    journal = R / "study.journal"
    text = journal.read_text()
    name = json.loads(text.splitlines()[0])["study_name"]
    assert f'"study_name":"{name}"' in text
    journal.write_text(text.replace(f'"study_name":"{name}"', '"study_name":5'))
    results = R / "search" / "results.json"
    record = json.loads(results.read_text())
    record["studies"] = {"5": {**record["studies"][name], "name": 5}}
    for pick in (c for s in record["studies"].values() for c in s["choices"]):
        pick["study"] = 5
    results.write_text(json.dumps(record))
    code, err = _run(
        ["report", "--run", str(R), "--no-accuracy", "--no-latency", "--device", "cpu"], capsys
    )
    assert code == 0, err
    code, err = _run(
        ["export", "--run", str(R), "--budget", "1/4", "--device", "cpu"]
        + ["--format", "state_dict", "--no-latency"],
        capsys,
    )
    assert code == 0, err


# -- 7. silent nonsense ---------------------------------------------------------------------------
def test_a_bank_of_other_classes_than_the_data_is_refused(R, tmp_path, capsys):
    ckpt = torch.load(R / "checkpoint.pt", weights_only=True)
    domains = [d.removeprefix("folder:") for d in ckpt["task"].split("->")]
    for name, domain in zip("AB", domains, strict=True):  # the same task with a 4th class
        shutil.copytree(domain, tmp_path / name)
        shutil.copytree(tmp_path / name / "class0", tmp_path / name / "class3")
    ckpt["task"] = ckpt["config"]["task"] = f"folder:{tmp_path / 'A'}->folder:{tmp_path / 'B'}"
    torch.save(ckpt, R / "checkpoint.pt")
    code, err = _run(["eval", "--run", str(R), "--largest", *EVAL], capsys)
    one_line_error(code, err, "checkpoint.pt", "3 classes, the task's data 4")


def test_a_fifo_among_the_images_is_refused_not_waited_on(tmp_path):
    root = make_folder_domains(tmp_path / "d")
    fifo = root / "A" / "class0" / "zz.png"
    os.mkfifo(fifo)
    cfg = _config_file(tmp_path, f"folder:{root / 'A'}->folder:{root / 'B'}", iterations=2)
    try:
        r = cli(["train", "--config", str(cfg), "--quiet"], timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("training waited on a FIFO")
    one_line_error(r.returncode, r.stderr.strip(), str(fifo), "not a regular file")


def test_a_sqlite_url_one_slash_short_is_refused(R, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--budget", "1/4", "--trials", "3", "--sampler", "random"]
    code, err = _run(search_args(R, *args, "--storage", "sqlite:/x.db"), capsys)
    one_line_error(code, err, "--storage sqlite:/x.db", "sqlite:///")
    assert not (tmp_path / "sqlite:").exists()


def test_re_running_a_finished_search_keeps_its_seconds(R, capsys):
    results = R / "search" / "results.json"
    before = {k: v["seconds"] for k, v in json.loads(results.read_text())["studies"].items()}
    assert all(s > 0 for s in before.values())
    args = ["--budget", "1/4", "--trials", "3", "--sampler", "random"]
    assert main(search_args(R, *args)) == 0
    after = {k: v["seconds"] for k, v in json.loads(results.read_text())["studies"].items()}
    assert all(after[k] >= s for k, s in before.items()), (before, after)


# -- 8. refused for the wrong reason --------------------------------------------------------------
def test_the_same_config_from_another_folder_is_the_same_run(tmp_path, tiny_task):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2, eval_every=0)
    raw = cfg.to_dict()
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        shutil.copy(SPACES / "digits_cnn.yaml", tmp_path / where / "space.yaml")
        (tmp_path / where / "cfg.yaml").write_text(yaml.safe_dump({**raw, "space": "space.yaml"}))
    sn.train_bank(sn.load_run_config(tmp_path / "a" / "cfg.yaml"), show_progress=False)
    result = sn.train_bank(sn.load_run_config(tmp_path / "b" / "cfg.yaml"), show_progress=False)
    assert result.iterations == 2


def test_eval_with_batches_of_one_without_bn_recalibration(R, capsys):
    argv = ["eval", "--run", str(R), "--largest", *EVAL, "--batch-size", "1", "--no-bn-recal"]
    code, err = _run(argv, capsys)
    assert code == 0, err


def test_a_damaged_space_inside_a_checkpoint_names_the_checkpoint(R, capsys):
    ckpt = torch.load(R / "checkpoint.pt", weights_only=True)
    ckpt["space"]["units"] = "damaged"
    torch.save(ckpt, R / "checkpoint.pt")
    code, err = _run(["eval", "--run", str(R), "--largest", *EVAL], capsys)
    one_line_error(code, err, str(R / "checkpoint.pt"), "stored search space")


def test_yaml_merge_keys_are_read_as_yaml_says(tmp_path, tiny_task):
    raw = tiny_run_config(tmp_path, tiny_task).to_dict()
    del raw["optimizer"]
    text = yaml.safe_dump(raw) + "optimizer:\n  <<: {lr: 0.02, momentum: 0.8}\n  momentum: 0.5\n"
    path = tmp_path / "merged.yaml"
    path.write_text(text)
    loaded = sn.load_run_config(path)
    assert (loaded.optimizer.lr, loaded.optimizer.momentum) == (0.02, 0.5)


# -- 9. internal errors where a one-line error belongs ---------------------------------------------
@pytest.mark.parametrize(
    "change, named",
    [
        ({"optimizer": {"lr": 1e308}}, "optimizer.lr"),
        ({"name": "a\0b"}, "name"),
    ],
)
def test_absurd_config_values_are_one_line_errors(tmp_path, tiny_task, capsys, change, named):
    raw = tiny_run_config(tmp_path, tiny_task, iterations=2).to_dict()
    raw.update({k: {**raw[k], **v} if isinstance(v, dict) else v for k, v in change.items()})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = _run(["train", "--config", str(path), "--quiet"], capsys)
    one_line_error(code, err, f"field '{named}'")


def test_a_full_disk_while_saving_a_checkpoint_names_the_folder(
    tmp_path, tiny_task, capsys, monkeypatch
):
    path = _config_file(tmp_path, tiny_task, iterations=4, checkpoint_every=2, eval_every=0)
    sn.train_bank(sn.load_run_config(path), show_progress=False, stop_after=2)
    run = tmp_path / "run"
    old = hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest()
    real_save = torch.save

    def full(obj, f, *a, **k):
        if hasattr(f, "write"):
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    code, err = _run(["train", "--config", str(path), "--quiet"], capsys)
    one_line_error(code, err, str(run), "no space left")
    assert hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest() == old


def test_a_last_calibration_batch_of_one_image(R, capsys):
    argv = ["eval", "--run", str(R), "--largest", "--device", "cpu"]
    argv += ["--calibration-images", "3", "--batch-size", "2", "--scoring-images", "8"]
    code, err = _run(argv, capsys)
    assert code == 0, err


def test_non_ascii_paths_without_utf8_mode(R, tmp_path):
    # the C locale without UTF-8 mode: Python holds non-ASCII path bytes as surrogates
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    run = copy_run(R, tmp_path / "rün")
    r = cli(["report", "--run", str(run), "--device", "cpu", "--no-latency"], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "report" / "index.html").is_file()
    out = tmp_path / "modèle"
    argv = ["export", "--run", str(run), "--budget", "1/4", "--out", str(out), "--device", "cpu"]
    r = cli([*argv, "--format", "torchscript,state_dict", "--no-latency"], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "model.json").read_text())["verification"]["passed"] is True
