"""Bad input, table-driven: each case exits with code 2, prints one line that names the input
and what was expected, shows no traceback, and leaves every existing file byte-identical."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from slimda_nas.cli import main
from tests.conftest import SPACES, copy_run, make_folder_domains, search_args
from tests.reliability.conftest import tree_hashes


@dataclass
class World:
    root: Path
    run: Path
    config: Path
    space: Path
    data: Path

    def write(self, name: str, text: str) -> str:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return str(p)

    def config_with(self, **changes) -> str:
        raw = yaml.safe_load(self.config.read_text())
        for k, v in changes.items():
            if v is None:
                raw.pop(k, None)
            else:
                raw[k] = v
        return self.write(f"cfg_{len(list(self.root.glob('cfg_*')))}.yaml", yaml.safe_dump(raw))

    def space_with(self, old: str, new: str) -> str:
        text = self.space.read_text()
        assert old in text
        return self.write(
            f"space_{len(list(self.root.glob('space_*')))}.yaml", text.replace(old, new)
        )


@pytest.fixture
def world(tmp_path, tiny_run_dir) -> World:
    run = copy_run(tiny_run_dir, tmp_path / "run")
    data = make_folder_domains(tmp_path / "data")
    space = tmp_path / "space.yaml"
    space.write_text((SPACES / "digits_cnn.yaml").read_text())
    cfg = {
        "name": "bad",
        "task": f"folder:{data / 'A'}->folder:{data / 'B'}",
        "space": str(space),
        "iterations": 2,
        "batch_size": 4,
        "device": "cpu",
        "out": str(tmp_path / "newrun"),
        "eval_every": 0,
        "calibration_images": 8,
        "eval_images": 8,
    }
    config = tmp_path / "good.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return World(tmp_path, run, config, space, data)


def _search(w, *extra):
    return search_args(w.run, *extra)


def _train(w, **changes):
    """``train`` with the good run config changed by ``changes`` (None removes a field)."""
    return ["train", "--config", w.config_with(**changes)]


CASES = {
    # -- search-space YAML ------------------------------------------------------------------------
    "space: missing file": (
        lambda w: ["space", "validate", str(w.root / "nope.yaml")],
        "nope.yaml: file not found",
    ),
    "space: invalid YAML": (
        lambda w: ["space", "validate", w.write("s.yaml", "units: [\n")],
        "invalid YAML",
    ),
    "space: width above 1": (
        lambda w: ["space", "validate", w.space_with("conv3: {}", "conv3: {widths: [1.5]}")],
        "unit 'conv3': field 'widths': width 1.5 is above 1.0",
    ),
    "space: unknown backbone": (
        lambda w: ["space", "validate", w.space_with("backbone: digits_cnn", "backbone: vgg")],
        "unknown backbone 'vgg'",
    ),
    "space: duplicate key": (
        lambda w: [
            "space",
            "validate",
            w.space_with("units:", "input: {channels: 3, size: 32}\nunits:"),
        ],
        "duplicate key 'input'",
    ),
    "space: layer in no unit": (
        lambda w: ["space", "validate", w.space_with("  conv5: {}", "")],
        "layer 'conv5' is in no unit",
    ),
    "space: empty file": (lambda w: ["space", "validate", w.write("e.yaml", "")], "file is empty"),
    "space: descending widths": (
        lambda w: ["space", "validate", w.space_with("fc1: {}", "fc1: {widths: [1.0, 0.5]}")],
        "expected ascending ratios",
    ),
    "space: channels above full": (
        lambda w: ["space", "validate", w.space_with("conv1: {}", "conv1: {channels: [8, 64]}")],
        "64 is above the layer's full width 32",
    ),
    "space: bad budget on show": (
        lambda w: ["space", "show", str(w.space), "--budget", "1/0"],
        "division by zero",
    ),
    # -- run configs --------------------------------------------------------------------------------
    "config: unknown field": (
        lambda w: _train(w, epochs=3),
        "unknown field 'epochs'",
    ),
    "config: missing task": (
        lambda w: _train(w, task=None),
        "field 'task': missing",
    ),
    "config: unknown method": (
        lambda w: _train(w, method="dann"),
        "field 'method'",
    ),
    "config: negative lr": (
        lambda w: _train(w, optimizer={"lr": -0.1}),
        "field 'optimizer.lr': expected a number above 0",
    ),
    "config: zero iterations": (
        lambda w: _train(w, iterations=0),
        "field 'iterations': expected a positive integer",
    ),
    "config: text batch size": (
        lambda w: _train(w, batch_size="big"),
        "field 'batch_size': expected an integer",
    ),
    "config: unknown device": (
        lambda w: _train(w, device="tpu"),
        "field 'device'",
    ),
    "config: unknown precision": (
        lambda w: _train(w, precision="fp16"),
        "field 'precision'",
    ),
    "config: missing space": (
        lambda w: _train(w, space="nowhere.yaml"),
        "field 'space': 'nowhere.yaml' not found",
    ),
    "config: top-level list": (
        lambda w: ["train", "--config", w.write("l.yaml", "- 1\n- 2\n")],
        "expected a mapping of fields",
    ),
    "config: sandwich not bool": (
        lambda w: _train(w, sandwich="yes"),
        "field 'sandwich': expected true or false",
    ),
    "config: malformed task": (
        lambda w: _train(w, task="usps=>mnist"),
        "usps=>mnist",
    ),
    "config: unknown domain": (
        lambda w: _train(w, task="usps->svhn"),
        "svhn",
    ),
    "config: missing data root": (
        lambda w: [
            "train",
            "--config",
            w.config_with(task="usps->mnist"),
            "--data-root",
            str(w.root / "no_data"),
        ],
        "no_data",
    ),
    "data: empty domain folder": (
        lambda w: [
            "train",
            "--config",
            w.config_with(
                task=f"folder:{w.data / 'A'}->folder:{(w.root / 'empty').mkdir() or w.root / 'empty'}"
            ),
        ],
        "empty",
    ),
    "data: every image of a class corrupt": (
        lambda w: [
            "train",
            "--config",
            w.config_with(task=f"folder:{_corrupt_class(w)}->folder:{w.data / 'B'}"),
        ],
        "class0",
    ),
    # -- budgets and search options -----------------------------------------------------------------
    "budget 0": (lambda w: _search(w, "--budget", "0"), "budget '0': must be above 0"),
    "budget 1/0": (lambda w: _search(w, "--budget", "1/0"), "budget '1/0': division by zero"),
    "budget -1/4": (lambda w: _search(w, "--budget=-1/4"), "budget '-1/4': must be above 0"),
    "budget 2": (lambda w: _search(w, "--budget", "2"), "budget '2': a fraction above 1"),
    "budget abc": (
        lambda w: _search(w, "--budget", "abc"),
        "budget 'abc': expected a fraction like 1/64",
    ),
    "budget 1e999": (
        lambda w: _search(w, "--budget", "1e999"),
        "budget '1e999': not a finite number",
    ),
    "budget unreachable": (
        lambda w: _search(w, "--budget", "1/100000"),
        "is below the smallest model's",
    ),
    "search: zero trials": (
        lambda w: _search(w, "--trials", "0"),
        "--trials: expected a positive integer",
    ),
    "search: zero workers": (
        lambda w: _search(w, "--workers", "0"),
        "--workers: expected a positive integer",
    ),
    "search: unknown sampler": (
        lambda w: _search(w, "--sampler", "cmaes"),
        "argument --sampler: invalid choice",
    ),
    "search: sqlite with workers": (
        lambda w: _search(w, "--storage", f"sqlite:///{w.root / 's.db'}", "--workers", "2"),
        "SQLite breaks with several worker processes",
    ),
    "search: unreachable storage": (
        lambda w: _search(w, "--storage", "postgresql+psycopg2://nobody@127.0.0.1:1/none"),
        "cannot connect",
    ),
    "search: storage scheme": (
        lambda w: _search(w, "--storage", "redis://127.0.0.1/0"),
        "expected a journal file path or a sqlite/postgresql/mysql URL",
    ),
    "search: garbage journal": (
        lambda w: _search(w, "--storage", w.write("j.journal", "{not json}\n{}\n")),
        "damaged or truncated study journal",
    ),
    "search: bad worker rank": (
        lambda w: (_search(w, "--budget", "1/4"), {"SLIMDA_NAS_WORKER_RANK": "abc"}),
        "SLIMDA_NAS_WORKER_RANK: expected a non-negative integer",
    ),
    "search: bad metric": (
        lambda w: _search(w, "--metric", "l2"),
        "argument --metric: invalid choice",
    ),
    # -- eval / export / report ---------------------------------------------------------------------
    "eval: uniform above 1": (
        lambda w: [
            "eval",
            "--run",
            str(w.run),
            "--uniform",
            "2",
            "--calibration-images",
            "8",
            "--scoring-images",
            "8",
        ],
        "--uniform: expected a width ratio in (0, 1]",
    ),
    "eval: missing config file": (
        lambda w: [
            "eval",
            "--run",
            str(w.run),
            "--config-file",
            str(w.root / "c.yaml"),
            "--calibration-images",
            "8",
            "--scoring-images",
            "8",
        ],
        "c.yaml: file not found",
    ),
    "eval: config with unknown unit": (
        lambda w: [
            "eval",
            "--run",
            str(w.run),
            "--config-file",
            w.write("c.yaml", "conv9: 1.0\n"),
            "--calibration-images",
            "8",
            "--scoring-images",
            "8",
        ],
        "unit 'conv9' is not in space",
    ),
    "eval: no options": (lambda w: ["eval", "--run", str(w.run)], "one of the arguments"),
    "export: budget never searched": (
        lambda w: ["export", "--run", str(w.run), "--budget", "1/3"],
        "1/3",
    ),
    "report: missing journal": (lambda w: ["report", "--run", str(w.run)], "no study journal"),
    # -- runs and checkpoints -----------------------------------------------------------------------
    "run: missing folder": (
        lambda w: ["eval", "--run", str(w.root / "ghost"), "--largest"],
        "no such run folder",
    ),
    "run: truncated checkpoint": (
        lambda w: ["eval", "--run", _truncated(w), "--largest"],
        "unreadable or truncated checkpoint",
    ),
    "run: foreign checkpoint": (
        lambda w: ["eval", "--run", _foreign(w), "--largest"],
        "not a slimda-nas checkpoint",
    ),
    "run: checkpoint of another space": (
        lambda w: [
            "train",
            "--config",
            w.config_with(
                out=str(w.run), space=w.space_with("fc1: {}", "fc1: {widths: [0.5, 1.0]}")
            ),
        ],
        "not this one",
    ),
    "run: read-only run folder": (
        lambda w: _read_only(w, _search(w, "--budget", "1/4", "--trials", "2")),
        "cannot write",
    ),
    # -- what a hostile-but-realistic user tried (issue 16) -------------------------------------
    "config: device cudaXYZ": (lambda w: _train(w, device="cudaXYZ"), "field 'device'"),
    "eval: device cudaXYZ": (lambda w: _eval(w, "--device", "cudaXYZ"), "device 'cudaXYZ'"),
    "eval: device tpu": (lambda w: _eval(w, "--device", "tpu"), "device 'tpu'"),
    "eval: device cuda:99": (lambda w: _eval(w, "--device", "cuda:99"), "device 'cuda:99'"),
    "eval: batch size 1": (
        lambda w: _eval(w, "--batch-size", "1"),
        "--batch-size: expected an integer of at least 2",
    ),
    "eval: one calibration image": (
        lambda w: _eval(w, "--calibration-images", "1"),
        "--calibration-images: expected an integer of at least 2",
    ),
    "run: checkpoint missing a weight": (
        lambda w: _eval_on(_checkpoint_edit(w, lambda s: s["model"].pop("conv1.weight"))),
        "do not fit",
    ),
    "run: checkpoint with a wrong-shaped weight": (
        lambda w: _eval_on(
            _checkpoint_edit(
                w, lambda s: s["model"].__setitem__("conv1.weight", torch.zeros(3, 3, 3, 3))
            )
        ),
        "do not fit",
    ),
    "run: iteration stored as text": (
        lambda w: _eval_on(_checkpoint_edit(w, lambda s: s.__setitem__("iteration", "6"))),
        "field 'iteration': expected an integer",
    ),
    "search: journal with an unknown operation": (
        lambda w: _search(
            w, "--storage", w.write("u.journal", '{"op_code": 99, "worker_id": "x"}\n')
        ),
        "unknown operation 99",
    ),
    "search: journal in a missing folder": (
        lambda w: _search(w, "--storage", str(w.root / "no_such_dir" / "j.journal")),
        "no_such_dir does not exist",
    ),
    "search: sqlite file in a missing folder": (
        lambda w: _search(w, "--storage", f"sqlite:///{w.root / 'no_such_dir' / 's.db'}"),
        "no_such_dir does not exist",
    ),
    "eval: --budget without --ranking": (
        lambda w: _eval_on(str(w.run), "--budget", "1/4"),
        "--budget: only with --ranking N",
    ),
    "train: empty --name": (
        lambda w: [*_train(w), "--name", ""],
        "--name: expected a run name, got an empty one",
    ),
    "train: empty config file": (
        lambda w: ["train", "--config", w.write("empty.yaml", ""), "--dry-run"],
        "empty.yaml: file is empty (expected a run config mapping)",
    ),
    "eval: --run is a file": (
        lambda w: _eval_on(w.write("afile", "mine")),
        "afile: is a file, expected a run folder",
    ),
    "predict: --model is a file": (
        lambda w: ["predict", "--model", w.write("amodel", "mine"), w.write("x.png", "")],
        "amodel: is a file, expected an export folder",
    ),
    "search: storage /dev/null": (
        lambda w: _search(w, "--storage", "/dev/null"),
        "/dev/null: not a regular file",
    ),
    "export: results without anchor_macs": (
        lambda w: [
            "export",
            "--run",
            _results_edit(w, lambda r: r.pop("anchor_macs")),
            "--budget",
            "1/4",
        ],
        "not a results file of this version",
    ),
    "export: a search's settings with a number as head": (
        lambda w: [
            "export",
            "--run",
            _results_edit(w, _head_seven),
            "--budget",
            "1/4",
            "--no-latency",
        ],
        "search/results.json: the search's settings: EvalSettings: argument 'head'",
    ),
    "space: complex key": (
        lambda w: ["space", "validate", w.write("k.yaml", "? [a, b]\n: 1\n")],
        "expected a plain key",
    ),
    "space: nested too deep": (
        lambda w: ["space", "validate", w.write("d.yaml", "units: " + "[" * 200 + "]" * 200)],
        "nested",
    ),
    "space show: zero classes": (
        lambda w: ["space", "show", str(w.space), "--num-classes", "0"],
        "--num-classes: expected 1 to 100000 classes",
    ),
    "space show: empty budget": (
        lambda w: ["space", "show", str(w.space), "--budget", ""],
        "budgets '': expected a comma-separated list",
    ),
    "space init: input size 0": (
        lambda w: ["space", "init", "--backbone", "digits_cnn", "--input-size", "0"],
        "--input-size: expected pixels from 8 to 4096",
    ),
    "config: weights on digits_cnn": (
        lambda w: _train(w, weights="imagenet"),
        "digits_cnn has no pretrained weights",
    ),
    "config: seed 2**70": (lambda w: _train(w, seed=2**70), "field 'seed'"),
    "report: missing reference run": (
        lambda w: ["report", "--run", str(w.run), "--reference", str(w.root / "ghost")],
        "no such run folder",
    ),
    "export: an empty format between commas": (
        lambda w: ["export", "--run", str(w.run), "--budget", "1/4", "--format", "onnx,,pt2"],
        "--format: expected one or more of",
    ),
    "eval: negative --subset-seed": (
        lambda w: _eval(w, "--subset-seed", "-1"),
        "--subset-seed: expected an integer of at least 0",
    ),
    "eval: unknown --head": (
        lambda w: _eval(w, "--head", "zz"),
        "--head: expected one of",
    ),
    "export: --out a TF.js model (another model.json)": (
        lambda w: [
            "export",
            "--run",
            str(w.run),
            "--largest",
            "--no-latency",
            "--out",
            str(Path(w.write("tfjs/model.json", '{"format": "layers-model"}')).parent),
        ],
        "the folder exists and is not an earlier export",
    ),
    "search: --storage a one-line text file": (
        lambda w: _search(w, "--storage", w.write("notes.txt", "my notes, no newline")),
        "not an Optuna journal record",
    ),
    "search: a superscript worker rank": (
        lambda w: (_search(w, "--budget", "1/4"), {"SLIMDA_NAS_WORKER_RANK": "\u00b2"}),
        "SLIMDA_NAS_WORKER_RANK: expected a non-negative integer",
    ),
    "space: a superscript thread count": (
        lambda w: (["space", "validate", "digits_cnn"], {"SLIMDA_NAS_THREADS": "\u00b2"}),
        "$SLIMDA_NAS_THREADS: expected a positive integer",
    ),
    "data: a list label --1": (
        lambda w: _train(w, task=_list_task(w, "--1")),
        "expected '<image path> <integer label>'",
    ),
    "data: a superscript list label": (
        lambda w: _train(w, task=_list_task(w, "\u00b2")),
        "expected '<image path> <integer label>'",
    ),
    "data: a Latin-1 classes.txt": (
        lambda w: _train(w, task=_list_task(w, "0", classes=b"caf\xe9\n")),
        "classes.txt: unreadable class list",
    ),
    "train: --source a folder named with '->'": (
        lambda w: [
            "train",
            "--source",
            _copied(w, "src->x"),
            "--target",
            str(w.data / "B"),
            "--dry-run",
        ],
        "--source",
    ),
    "train: --target a folder ending in a space": (
        lambda w: [
            "train",
            "--source",
            str(w.data / "A"),
            "--target",
            _copied(w, "tgt "),
            "--dry-run",
        ],
        "--target",
    ),
    "export: --target-labelled missing": (
        lambda w: [
            "export",
            "--run",
            str(w.run),
            "--largest",
            "--target-labelled",
            str(w.root / "ghost"),
        ],
        "--target-labelled:",
    ),
    "space: extends a folder": (
        lambda w: ["space", "validate", w.write("x.yaml", f"extends: {w.root}\n")],
        "is a folder, expected a search-space file",
    ),
    "space: extends a cycle of two files": (
        lambda w: [
            "space",
            "validate",
            (w.write("b.yaml", "extends: a.yaml\n"), w.write("a.yaml", "extends: b.yaml\n"))[1],
        ],
        "a cycle: a.yaml -> b.yaml -> a.yaml",
    ),
    "data: an npz that is a text file": (
        lambda w: _train(w, task="mnist->usps", data_root=_text_npz(w)),
        "not an npz archive",
    ),
}


def _list_task(w: World, label: str, classes: bytes | None = None) -> str:
    """From a list file of one image of domain A with ``label`` (and a classes.txt beside it)
    to domain B."""
    image = next((w.data / "A").rglob("*.png"))
    if classes is not None:
        (w.root / "lists").mkdir(exist_ok=True)
        (w.root / "lists" / "classes.txt").write_bytes(classes)
    listing = w.write("lists/src.txt", f"{image} {label}" + "\n")
    return f"list:{listing}->folder:{w.data / 'B'}"


def _copied(w: World, name: str) -> str:
    """A copy of domain A named ``name``."""
    import shutil

    return str(shutil.copytree(w.data / "A", w.root / name))


def _head_seven(results: dict) -> None:
    for record in (results, *results["studies"].values()):
        if isinstance(record.get("settings"), dict):
            record["settings"]["head"] = 7


def _text_npz(w: World) -> str:
    """A data root whose mnist.npz is a text file."""
    w.write("textnpz/digits/mnist.npz", "x_train,y_train\n1,2\n")
    return str(w.root / "textnpz")


def _eval(w: World, *extra: str) -> list[str]:
    return _eval_on(str(w.run), *extra)


def _eval_on(run: str, *extra: str) -> list[str]:
    small = ["--calibration-images", "8", "--scoring-images", "8"]
    given = {a for a in extra if a.startswith("--")}
    small = [x for i, x in enumerate(small) if small[i - i % 2] not in given]
    return ["eval", "--run", run, "--largest", *small, *extra]


def _checkpoint_edit(w: World, change) -> str:
    ckpt = w.run / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    change(state)
    torch.save(state, ckpt)
    return str(w.run)


def _results_edit(w: World, change) -> str:
    import json

    assert main([*search_args(w.run, "--budget", "1/4", "--trials", "2")]) == 0
    path = w.run / "search" / "results.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    return str(w.run)


def _corrupt_class(w: World) -> Path:
    bad = w.root / "corrupt"
    for c in ("class0", "class1", "class2"):
        (bad / c).mkdir(parents=True)
        for i in range(3):
            src = w.data / "A" / c / f"{i}.png"
            (bad / c / f"{i}.png").write_bytes(b"not a png" if c == "class0" else src.read_bytes())
    return bad


def _truncated(w: World) -> str:
    ckpt = w.run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    return str(w.run)


def _foreign(w: World) -> str:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, w.run / "checkpoint.pt")
    return str(w.run)


def _read_only(w: World, argv: list[str]) -> list[str]:
    r = subprocess.run(["chattr", "-R", "+i", str(w.run)], capture_output=True)
    if r.returncode:
        pytest.skip("chattr +i unavailable here (needs root on ext4)")
    w.read_only = True
    return argv


def test_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, world, capsys, monkeypatch):
    make, expected = CASES[name]
    made = make(world)
    capsys.readouterr()  # what setting the case up printed
    argv, env = made if isinstance(made, tuple) else (made, {})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = tree_hashes(world.root)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    finally:
        if getattr(world, "read_only", False):
            subprocess.run(["chattr", "-R", "-i", str(world.run)], check=True)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err  # no blank line either (a progress display that never ran)
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    after = tree_hashes(world.root)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"files changed or removed: {changed}"


def test_debug_keeps_the_exit_code(world, capsys):
    """--debug adds the traceback; the exit code and the last line are those without it."""
    argv = ["space", "validate", str(world.root / "nope.yaml")]
    assert main(argv) == 2
    plain = capsys.readouterr().err.strip()
    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Traceback") and "SpaceError" in err
    assert err.splitlines()[-1] == plain
