"""What a hostile-but-realistic user broke (issue 16), one regression test per defect: each
failed before its fix. R is a copy of a finished, searched tiny run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from slimda_nas.cli import main
from slimda_nas.errors import Notice
from slimda_nas.evaluate.scores import DEFAULT_METRIC
from slimda_nas.search.storage import open_storage
from slimda_nas.train import TrainSummary
from tests.conftest import REPO, cli_popen, copy_run, search_args, tiny_run_config
from tests.reliability.conftest import cli, in_process, one_line_error, tree_hashes

SEARCH_1_4 = ["--budget", "1/4", "--trials", "3", "--sampler", "random"]


@pytest.fixture(scope="module")
def searched(tiny_run_dir, tmp_path_factory) -> Path:
    run = copy_run(tiny_run_dir, tmp_path_factory.mktemp("hostile") / "run")
    assert main([*search_args(run, *SEARCH_1_4, "--study-name", "mine")]) == 0
    return run


@pytest.fixture
def R(searched, tmp_path) -> Path:
    return copy_run(searched, tmp_path / "R")


_run = in_process
_one_line_error = one_line_error


# -- 1. a study name reused with other settings -----------------------------------------------------
@pytest.mark.parametrize(
    "change, named",
    [
        ({"--budget": "1/2"}, ("budget is 1/4", "this search's 1/2")),
        ({"--sampler": "tpe"}, ("sampler is random", "this search's tpe")),
        ({"--metric": "js"}, ("other settings", f"metric '{DEFAULT_METRIC}' there, 'js' now")),
    ],
)
def test_a_study_name_reused_with_other_settings_is_refused(R, capsys, change, named):
    results = (R / "search" / "results.json").read_bytes()
    options = {"--budget": "1/4", "--trials": "3", "--sampler": "random", **change}
    argv = search_args(R, *[x for kv in options.items() for x in kv], "--study-name", "mine")
    code, err = _run(argv, capsys)
    _one_line_error(code, err, "study 'mine' already exists", *named)
    assert (R / "search" / "results.json").read_bytes() == results


def test_the_same_study_with_more_trials_continues(R, capsys):
    code, _ = _run(
        search_args(
            R, "--budget", "1/4", "--trials", "5", "--sampler", "random", "--study-name", "mine"
        ),
        capsys,
    )
    assert code == 0
    study = optuna.load_study(study_name="mine", storage=open_storage(None, R))
    assert sum(bool(t.user_attrs.get("evaluated")) for t in study.trials) == 5


# -- 2. a torn last record in the journal ----------------------------------------------------------
def test_a_torn_last_journal_record_is_dropped_with_a_backup(R, capsys):
    journal = R / "study.journal"
    whole = journal.read_bytes()
    torn = whole + b'{"op_code": 8, "worker_id": "x", "trial_id": 1, "user_at'
    journal.write_bytes(torn)
    code, err = _run(search_args(R, *SEARCH_1_4, "--study-name", "mine"), capsys)
    assert code == 0, err
    assert "last record was cut off" in err and "resumed" in err
    backups = list(R.glob("study.journal.*.torn"))
    assert len(backups) == 1 and backups[0].read_bytes() == torn
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    assert main(["report", "--run", str(R), "--no-accuracy", "--device", "cpu"]) == 0


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return r.returncode == 0


def test_a_full_disk_during_search_names_the_folder_and_resumes(searched, tmp_path):
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "40m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        run = copy_run(searched, disk / "R")
        args = search_args(run, "--budget", "1/16", "--trials", "40", "--sampler", "random")
        p = cli_popen(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and not list((run / "cache").glob("scores-*.jsonl")):
            time.sleep(0.05)
        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 2, err[-2000:]
        line = [x for x in err.splitlines() if x.strip()][-1]
        assert "no space left on device" in line and str(run) in line, line
        filler.unlink()
        r = cli(args, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        study = optuna.load_study(
            study_name=next(
                n for n in optuna.get_all_study_names(open_storage(None, run)) if "1-16" in n
            ),
            storage=open_storage(None, run),
        )
        assert (
            sum(
                bool(t.user_attrs.get("evaluated"))
                for t in study.trials
                if t.state.name == "COMPLETE"
            )
            == 40
        )
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- 3. report --out -------------------------------------------------------------------------------
def test_report_refuses_a_folder_that_is_not_a_report(R, tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "widths").mkdir(parents=True)
    for name in ("index.html", "summary.csv", "photo.png", "widths/w.png"):
        (mine / name).write_text("my own file")
    before = tree_hashes(mine)
    code, err = _run(["report", "--run", str(R), "--out", str(mine), "--no-accuracy"], capsys)
    _one_line_error(code, err, "not an earlier report")
    assert tree_hashes(mine) == before


def test_a_report_that_fails_part_way_leaves_the_old_one_whole(R, capsys, monkeypatch):
    assert main(["report", "--run", str(R), "--no-accuracy", "--device", "cpu"]) == 0
    folder = R / "report"
    before = tree_hashes(folder)
    from slimda_nas.report import build

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(build, "render", broken)
    code, _ = _run(["report", "--run", str(R), "--no-accuracy", "--device", "cpu"], capsys)
    assert code == 1
    assert tree_hashes(folder) == before
    assert not [p for p in R.iterdir() if p.name.startswith(".report.")]  # no staging left


# -- 4. memory exhaustion from small inputs ---------------------------------------------------------
BOMB = "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else ', '.join(['x'] * 9)}]\n"
    for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True)
)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    space = (REPO / "search_spaces" / "digits_cnn.yaml").read_text()
    for where in ("layers", "backbone_args"):
        text = BOMB + space.replace("conv1: {}", "conv1: {layers: *h}")
        if where == "backbone_args":
            text = BOMB + space + "backbone_args: {x: *h}\n"
        path = tmp_path / f"bomb_{where}.yaml"
        path.write_text(text)
        assert len(BOMB) < 600  # a few hundred bytes that expand to 9**8 list items
        t0 = time.time()
        code, err = _run(["space", "validate", str(path)], capsys)
        _one_line_error(code, err, str(path), "expands to more than")
        assert time.time() - t0 < 5


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_not_read_as_a_space(target, capsys):
    code, err = _run(["space", "validate", target], capsys)
    _one_line_error(code, err, target, "got a device, pipe or socket")


def test_workers_are_capped_by_cores_and_trials():
    from slimda_nas.search.runner import SearchOptions, _capped_workers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opts = _capped_workers(SearchOptions(budgets="1/4", workers=100, evaluations=3))
    assert opts.workers == min(os.cpu_count() or 1, 3)
    assert any(
        issubclass(w.category, Notice) and "--workers 100" in str(w.message) for w in caught
    )


def test_the_cli_says_when_it_caps_workers(R, capsys):
    code, err = _run(
        search_args(
            R, "--budget", "1/4", "--trials", "2", "--workers", "100", "--sampler", "random"
        ),
        capsys,
    )
    assert code == 0, err
    assert "note: --workers 100: using" in err


# -- 5. SIGTERM -------------------------------------------------------------------------------------
def test_sigterm_releases_the_lock_and_resumes(R):
    args = search_args(R, "--budget", "1/16", "--trials", "30", "--sampler", "random")
    for attempt in range(3):
        p = cli_popen(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        cache = R / "cache"
        while time.time() < deadline and p.poll() is None:
            files = list(cache.glob("scores-*.jsonl"))
            if files and files[0].read_text().count("\n") >= 3 + 3 * (attempt + 1):
                break
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        if p.returncode == 0:
            break  # it finished first
        assert p.returncode == 143, err[-2000:]
        assert "interrupted; re-run the same command to resume" in err
        assert not (R / "study.journal.lock").exists()
        study = optuna.load_study(
            study_name=optuna.get_all_study_names(open_storage(None, R))[-1],
            storage=open_storage(None, R),
        )
        assert not [t for t in study.trials if t.state.name == "RUNNING"]
    r = cli(args, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "lock" not in r.stderr.lower()


# -- 6. export of a pick made on another checkpoint ------------------------------------------------
def test_export_refuses_a_pick_of_another_checkpoint(R, capsys):
    ckpt = R / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state["model"]["conv1.weight"] += 0.01  # the same space, another bank
    torch.save(state, ckpt)
    code, err = _run(["export", "--run", str(R), "--budget", "1/4", "--device", "cpu"], capsys)
    _one_line_error(code, err, "picked it on another bank", "search again")
    assert not (R / "export").exists()


# -- 7. re-running train on a finished run ----------------------------------------------------------
def test_a_finished_run_is_left_as_it_is(tmp_path, tiny_task, capsys):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["train", "--config", str(path), "--quiet"]) == 0
    before = tree_hashes(cfg.run_dir)
    assert TrainSummary.read(cfg.run_dir).accuracy_on_target_test
    assert main(["train", "--config", str(path), "--quiet"]) == 0
    assert tree_hashes(cfg.run_dir) == before
    out = capsys.readouterr().out
    assert "target accuracy of the largest model" in out  # read back from the summary


# -- 8 and 9. bad input that is simply bad: one line, exit 2 ---------------------------------------
def test_a_garbage_ground_truth_cache_is_rebuilt(R, capsys):
    (R / "ground_truth.json").write_text("[1, 2, {")
    code, err = _run(search_args(R, *SEARCH_1_4, "--study-name", "mine"), capsys)
    assert code == 0, err
    assert main(["report", "--run", str(R), "--device", "cpu"]) == 0
    assert isinstance(json.loads((R / "ground_truth.json").read_text()), dict)


def test_bad_score_cache_lines_are_scored_again(R, capsys):
    cache = next((R / "cache").glob("scores-*.jsonl"))
    cache.write_text(cache.read_text() + '{"key": "1,2", "score": {"upem": 3}}\n[]\n"x"\n')
    code, err = _run(
        search_args(
            R, "--budget", "1/4", "--trials", "5", "--sampler", "random", "--study-name", "mine"
        ),
        capsys,
    )
    assert code == 0, err


def test_a_ranking_file_that_is_a_list_is_a_note(R, capsys):
    (R / "ranking.json").write_text("[1, 2, 3]")
    assert main(["report", "--run", str(R), "--no-accuracy", "--device", "cpu"]) == 0
    summary = json.loads((R / "report" / "summary.json").read_text())
    assert any("ranking.json ignored" in n for n in summary["notes"])


def test_a_stale_export_staging_folder_is_removed(R, capsys):
    stale = R / "export" / ".1-4-random.999999999.abcd.tmp"
    stale.mkdir(parents=True)
    (stale / "model.ts").write_text("half")
    assert (
        main(
            [
                "export",
                "--run",
                str(R),
                "--budget",
                "1/4",
                "--device",
                "cpu",
                "--format",
                "state_dict",
            ]
        )
        == 0
    )
    assert not stale.exists() and (R / "export" / "1-4-random" / "model.json").is_file()


def test_unicode_out_under_the_c_locale(R, tmp_path):
    env = {"LC_ALL": "C", "LANG": "C"}
    out = tmp_path / "rapport-été"
    r = cli(["report", "--run", str(R), "--out", str(out), "--no-accuracy"], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "index.html").is_file()
    r = cli(
        [
            "export",
            "--run",
            str(R),
            "--budget",
            "1/4",
            "--out",
            str(tmp_path / "modèle"),
            "--format",
            "state_dict",
        ],
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_nan_weights_are_refused_with_one_line(R, capsys):
    ckpt = R / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state["model"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, ckpt)
    code, err = _run(
        [
            "eval",
            "--run",
            str(R),
            "--largest",
            "--device",
            "cpu",
            "--calibration-images",
            "8",
            "--scoring-images",
            "8",
        ],
        capsys,
    )
    _one_line_error(code, err, "not finite")
