"""What a hostile user still broke (issue 38), one regression test per item: each failed on the
code before its fix. Items 1-4: output paths, orphan workers, the training lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from slimda_nas.cli import main
from tests.conftest import cli_popen, search_args, tiny_run_config
from tests.reliability.conftest import in_process as _run
from tests.reliability.conftest import one_line_error, tree_hashes

SPACE_INIT = ["space", "init", "--backbone", "digits_cnn", "--force", "--out"]


# -- 1. a link, a FIFO or a device given as --out is refused, never replaced -------------------------
def test_space_init_refuses_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    code, err = _run([*SPACE_INIT, str(fifo)], capsys)
    one_line_error(code, err, f"--out {fifo}", "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_space_init_refuses_a_symlink_and_leaves_its_target(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    link = tmp_path / "space.yaml"
    link.symlink_to(target)
    code, err = _run([*SPACE_INIT, str(link)], capsys)
    one_line_error(code, err, f"--out {link}", "symbolic link")
    assert link.is_symlink() and target.read_text() == "mine"


def test_space_init_refuses_a_device(tmp_path, capsys, monkeypatch):
    # a regular file that stat says is a character device: no real device is touched
    fake = tmp_path / "full"
    fake.write_text("stand-in for /dev/full")
    real_lstat, real_stat = os.lstat, os.stat

    def as_device(real):
        def f(p, *a, **k):
            st = real(p, *a, **k)
            if os.fspath(p) == str(fake):
                return os.stat_result((stat.S_IFCHR | 0o666, *tuple(st)[1:]))
            return st

        return f

    monkeypatch.setattr(os, "lstat", as_device(real_lstat))
    monkeypatch.setattr(os, "stat", as_device(real_stat))
    code, err = _run([*SPACE_INIT, str(fake)], capsys)
    monkeypatch.undo()
    one_line_error(code, err, f"--out {fake}", "device")
    assert fake.read_text() == "stand-in for /dev/full"


def test_space_init_onto_a_folder_names_out(tmp_path, capsys):
    folder = tmp_path / "dir"
    folder.mkdir()
    code, err = _run([*SPACE_INIT, str(folder)], capsys)
    one_line_error(code, err, f"--out {folder}", "is a folder")
    assert ".tmp" not in err


# -- 2. the user's files in a report or export folder are kept ------------------------------------
REPORT = ["--no-accuracy", "--no-latency", "--device", "cpu"]
EXPORT = ["--budget", "1/4", "--device", "cpu", "--format", "state_dict", "--no-latency"]


def _mine(folder: Path) -> dict[str, str]:
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.txt").write_text("my notes")
    (folder / "photo.jpg").write_text("my photo")
    return tree_hashes(folder / "notes", folder / "photo.jpg")


def test_rebuilding_a_report_keeps_the_users_files(R, capsys):
    assert main(["report", "--run", str(R), *REPORT]) == 0
    folder = R / "report"
    mine = _mine(folder)
    code, err = _run(["report", "--run", str(R), *REPORT], capsys)
    assert code == 0, err
    assert tree_hashes(folder / "notes", folder / "photo.jpg") == mine
    assert "kept 2 entries slimda-nas did not write" in err
    assert (folder / "index.html").is_file()


def test_re_exporting_keeps_the_users_files(R, capsys):
    assert main(["export", "--run", str(R), *EXPORT]) == 0
    folder = R / "export" / "1-4-random"
    mine = _mine(folder)
    code, err = _run(["export", "--run", str(R), *EXPORT], capsys)
    assert code == 0, err
    assert tree_hashes(folder / "notes", folder / "photo.jpg") == mine
    assert (folder / "model.json").is_file()


def test_an_edited_manifest_cannot_reach_outside_its_folder(tmp_path):
    from slimda_nas._folders import MANIFEST, staged_folder
    from slimda_nas._io import write_text

    outside = tmp_path / "precious.txt"
    outside.write_text("mine")
    out = tmp_path / "folder"
    with staged_folder(out) as tmp:
        write_text(tmp / "a.txt", "first")
    (out / MANIFEST).write_text(json.dumps({"files": ["a.txt", "../precious.txt"]}))
    with staged_folder(out) as tmp:
        write_text(tmp / "a.txt", "second")
    assert outside.read_text() == "mine" and (out / "a.txt").read_text() == "second"


@pytest.mark.parametrize("command", ["report", "export"])
def test_a_symlinked_output_folder_is_refused(R, tmp_path, capsys, command):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "keep.txt").write_text("mine")
    link = tmp_path / "linked"
    link.symlink_to(real, target_is_directory=True)
    extra = REPORT if command == "report" else EXPORT
    code, err = _run([command, "--run", str(R), *extra, "--out", str(link)], capsys)
    one_line_error(code, err, f"--out {link}", "symbolic link")
    assert link.is_symlink() and (real / "keep.txt").read_text() == "mine"


# -- 3. a killed search leaves no worker behind ---------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (p / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"multiprocessing.spawn" in cmd:
            found.append(int(p.name))
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
def test_kill_9_of_a_search_leaves_no_worker_writing(R):
    args = ["--budget", "1/4", "--trials", "400", "--sampler", "random", "--workers", "2"]
    p = cli_popen(search_args(R, *args), stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers: list[int] = []
        while time.time() < deadline and not workers:
            workers = _children(p.pid)
            time.sleep(0.1)
        assert workers, "no worker started"
        time.sleep(6)  # the worker loads the run and starts searching
        p.send_signal(signal.SIGKILL)
        p.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(_running(w) for w in workers):
            time.sleep(0.2)
        alive = [w for w in workers if _running(w)]
        for w in alive:
            os.kill(w, signal.SIGKILL)
        assert not alive, "a worker outlived its parent"
    finally:
        if p.poll() is None:
            p.kill()


# -- 4. two trainings of one run folder at once ---------------------------------------------------
def test_a_second_training_of_a_run_is_refused(tmp_path, tiny_task):
    cfg = tiny_run_config(
        tmp_path, tiny_task, iterations=100_000, checkpoint_every=1, eval_every=0
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    first = cli_popen(["train", "--config", str(path), "--quiet"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (cfg.run_dir / "checkpoint.pt").exists():
            time.sleep(0.1)
        assert (cfg.run_dir / "checkpoint.pt").exists(), "the first training did not start"
        second = cli_popen(["train", "--config", str(path), "--resume", "--quiet"])
        try:
            _, err = second.communicate(timeout=90)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        one_line_error(second.returncode, err.strip(), str(cfg.run_dir), "already running")
        assert first.poll() is None  # the first one goes on
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("body", ['{"broken', "[]", "{}"])
def test_a_damaged_results_file_is_kept_aside_and_written_anew(R, capsys, body):
    """results.json is derived from the journals: a damaged one no longer blocks every later
    search (it failed after scoring every trial, and again on each re-run)."""
    from slimda_nas.search.record import RESULTS_FILE, ResultsFile

    path = R / RESULTS_FILE
    path.write_text(body)
    args = ["--budget", "1/4", "--trials", "3", "--sampler", "random"]
    code, err = _run(search_args(R, *args), capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "damaged" in line]
    assert len(notes) == 1 and "note:" in notes[0] and "written anew" in notes[0], err
    (backup,) = path.parent.glob("results.json.*.damaged")
    assert backup.read_text() == body  # the user's file is kept as it was
    assert ResultsFile.read(R).studies  # the new file reads back, with this search's study


# -- a damaged train_summary.json (it is a log: the checkpoint is what a run is) ------------------
@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.replace('"iterations": 2', '"iterations": Infinity'),
        lambda s: json.dumps({**json.loads(s), "accuracy_on_target_test": {"largest": "96%"}}),
        lambda s: json.dumps(
            {**json.loads(s), "accuracy_on_target_test": {"largest": {"ca": "96%"}}}
        ),
    ],
)
def test_a_finished_run_with_a_damaged_summary_is_left_as_it_is(
    tmp_path, tiny_task, capsys, damage
):
    cfg = tiny_run_config(tmp_path, tiny_task, iterations=2, eval_every=0)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert _run(["train", "--config", str(path), "--quiet"], capsys)[0] == 0
    summary = cfg.run_dir / "train_summary.json"
    summary.write_text(damage(summary.read_text()))
    before = tree_hashes(cfg.run_dir)
    code = main(["train", "--config", str(path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err  # it was an OverflowError or a ValueError, exit 1
    assert "already trained, left as it is" in out
    assert tree_hashes(cfg.run_dir) == before
