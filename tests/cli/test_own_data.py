"""From two folders to a deployed model: ``train --source/--target`` (and ``--dry-run``),
``search``, ``export``, ``predict`` on tiny generated images, in this process."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slimda_nas._io import write_yaml
from slimda_nas.cli import main
from slimda_nas.train import load_run_config
from tests.conftest import REPO, copy_run, make_folder_domains, require_module


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its content hash (folders too, as empty entries)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


@pytest.fixture
def folders(tmp_path, monkeypatch) -> Path:
    """Two tiny class-per-folder domains; the working directory and the cache are tmp_path."""
    root = make_folder_domains(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return root


TINY = ["--backbone", "digits_cnn", "--iterations", "3", "--device", "cpu", "--quiet"]


def test_dry_run_writes_nothing(folders, tmp_path, capsys):
    before = _tree(tmp_path)
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    assert main([*args, "--budgets", "1/16,1/1000", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert _tree(tmp_path) == before  # no run folder, no cache, nothing changed
    assert "domain_bn: separate" in out and "lr: 0.05" in out  # the digits row
    assert "class2" in out and "18" in out  # images per class and in total
    assert "reachable budgets: 1/159.4 to 1" in out
    assert "unreachable: budget 1/1000" in out and "budget 1/16 (" in out
    assert "adaptation: 4 model(s) per step" in out and "s/iteration x 3 iterations" in out
    assert "  teacher: " not in out and "nothing was written" in out


def test_dry_run_names_data_problems(folders, tmp_path, capsys):
    (folders / "B" / "class2").rename(folders / "B" / "extra")
    bad = folders / "A" / "class0" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    assert main([*args, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "classes only in source: ['class2']; only in target: ['extra']" in captured.out
    assert "1 unreadable files" in captured.out and "broken.jpg" in captured.out
    assert captured.err.count("\n") == 1 and "class lists differ" in captured.err


def test_minimal_config_equals_what_the_cli_writes(folders, tmp_path):
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    assert main(args) == 0
    written = load_run_config(tmp_path / "runs" / "A_B" / "run.yaml")
    minimal = tmp_path / "minimal.yaml"
    task = f"folder:{folders / 'A'}->folder:{folders / 'B'}"
    write_yaml(minimal, {"task": task, "space": "digits_cnn", "iterations": 3, "device": "cpu"})
    loaded = load_run_config(minimal, name="A_B")
    assert loaded.to_dict() == written.to_dict()
    assert loaded.training_hash() == written.training_hash()
    # the written run.yaml trains the same bank: training again from it resumes the finished run
    assert main(["train", "--config", str(tmp_path / "runs" / "A_B" / "run.yaml"), "--quiet"]) == 0


def test_size_generates_a_space_in_the_run_folder(folders, tmp_path, capsys):
    src, tgt = str(folders / "A"), str(folders / "B")
    args = ["train", "--source", src, "--target", tgt, "--name", "r", *TINY, "--size", "40"]
    assert main([*args, "--dry-run"]) == 0
    assert "generated for input 40" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()
    assert main(args) == 0
    run = tmp_path / "runs" / "r"
    cfg = load_run_config(run / "run.yaml")
    assert Path(cfg.space) == run / "space.yaml" and "size: 40" in Path(cfg.space).read_text()
    from slimda_nas.train import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt").config_hash == cfg.training_hash()
    assert main(["train", "--task", "usps->mnist", "--size", "48", "--dry-run"]) == 2
    assert "--size: digits tasks are fed 32x32" in capsys.readouterr().err


def _write_odd_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (45, 52, 3), dtype=np.uint8))
    folder.mkdir()
    files = {
        "grey": folder / "grey.png",
        "cmyk": folder / "cmyk.jpg",
        "alpha": folder / "alpha.png",
        "plain": folder / "plain.jpg",
    }
    rgb.convert("L").save(files["grey"])
    rgb.convert("CMYK").save(files["cmyk"])
    rgb.convert("RGBA").save(files["alpha"])
    rgb.save(files["plain"])
    return files


def _doc_snippets() -> list[str]:
    """The plain-Python block of docs/export.md, as written (TorchScript) and with its ONNX
    Runtime lines in place of the TorchScript one."""
    text = (REPO / "docs" / "export.md").read_text()
    block = text.split("The same without slimda-nas")[1].split("```python\n")[1].split("```")[0]
    onnx = [ln for ln in block.splitlines() if "torch.jit.load" not in ln]
    onnx = [ln[2:] if ln.startswith(("# probs", "# or ONNX")) else ln for ln in onnx]
    onnx = [ln.replace("or ONNX Runtime: ", "") for ln in onnx]
    return [block, "\n".join(onnx)]


def test_docs_lines_run_an_onnx_export(tiny_run_dir, tmp_path, capsys):
    require_module("onnxruntime", "onnxruntime is needed for the ONNX Runtime lines")
    run = copy_run(tiny_run_dir, tmp_path / "run")
    export = tmp_path / "onnx"
    args = ["export", "--run", str(run), "--largest", "--format", "onnx", "--out", str(export)]
    assert main([*args, "--no-latency"]) == 0
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (41, 37, 3), np.uint8)).save(image)
    capsys.readouterr()
    assert main(["predict", "--model", str(export), str(image), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)[0]
    printed = _run_snippet(_doc_snippets()[1], export, image, capsys)
    assert printed[0] == want["class"]
    assert float(printed[1]) == pytest.approx(want["confidence"], abs=1e-5)


def _run_snippet(code: str, export: Path, image: Path, capsys) -> list[str]:
    code = code.replace("EXPORT", str(export)).replace('"photo.jpg"', repr(str(image)))
    exec(compile(code, "docs/export.md", "exec"), {})
    return capsys.readouterr().out.split()


def _choices(run: Path) -> list:
    studies = json.loads((run / "search" / "results.json").read_text())["studies"]
    return [(c["key"], c["config"]) for s in studies.values() for c in s["choices"]]


def test_the_walk_from_two_folders_to_predict(folders, tmp_path, capsys):
    src, tgt = str(folders / "A"), str(folders / "B")
    assert main(["train", "--source", src, "--target", tgt, *TINY]) == 0
    run = tmp_path / "runs" / "A_B"
    tiny = ["--calibration-images", "8", "--scoring-images", "8", "--no-report"]
    assert main(["search", "--run", str(run), "--budget", "1/16", "--trials", "3", *tiny]) == 0
    picked = _choices(run)
    # a labelled target folder only reports: the same search with it picks the same model
    few = ["--target-labelled", tgt]
    assert (
        main(["search", "--run", str(run), "--budget", "1/16", "--trials", "3", *few, *tiny]) == 0
    )
    assert _choices(run) == picked
    assert "accuracy on 18 labelled target images" in " ".join(capsys.readouterr().out.split())
    assert main(["export", "--run", str(run), "--budget", "1/16", "--no-latency", *few]) == 0
    export = next((run / "export").iterdir())
    record = json.loads((export / "model.json").read_text())
    assert record["input"]["resize"]["rule"] == "shorter_side_then_center_crop"
    assert record["target_labelled"]["images"] == 18
    assert 0 <= record["target_labelled"]["accuracy"][export.name] <= 1
    report = ["report", "--run", str(run), "--no-latency", "--no-accuracy", *few]
    assert main(report) == 0
    assert json.loads((run / "report" / "summary.json").read_text())["target_labelled"]["images"]
    (tmp_path / "odd" / "zebra").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(tmp_path / "odd" / "zebra" / "z.png")
    assert main(["report", "--run", str(run), "--target-labelled", str(tmp_path / "odd")]) == 2
    assert "classes the bank was not trained on: ['zebra']" in capsys.readouterr().err

    odd = _write_odd_images(tmp_path / "mine")
    assert main(["predict", "--model", str(export), str(odd["grey"]), tgt, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 + 18 and rows[0]["image"] == str(odd["grey"])
    assert {r["class"] for r in rows} <= {"class0", "class1", "class2"}
    assert all(0 < r["confidence"] <= 1 for r in rows)
    # the table; grey, CMYK and alpha images all classify
    assert main(["predict", "--model", str(export), "mine"]) == 0  # relative: short rows
    out = capsys.readouterr().out
    assert all(name in out for name in ("grey.png", "cmyk.jpg", "alpha.png", "plain.jpg"))

    # predict preprocesses exactly as training and export did
    from slimda_nas.data._decode import decode_resized
    from slimda_nas.data.transforms import CropTransform
    from slimda_nas.export.predict import ExportedModel

    model = ExportedModel(export)
    image = folders / "B" / "class1" / "0.png"
    expected = CropTransform(32).eval([torch.from_numpy(decode_resized(str(image), 36))])[0]
    assert torch.equal(model.preprocess(image), expected)

    # docs/export.md's lines without slimda_nas give predict's class and confidence
    assert main(["predict", "--model", str(export), str(odd["plain"]), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)[0]
    printed = _run_snippet(_doc_snippets()[0], export, odd["plain"], capsys)
    assert printed[0] == want["class"]
    assert float(printed[1]) == pytest.approx(want["confidence"], abs=1e-5)

    # a truncated image: one line, exit 2
    whole = odd["plain"].read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    assert main(["predict", "--model", str(export), str(cut)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cut.jpg: cannot read the image" in err
    assert main(["predict", "--model", str(tmp_path), str(cut)]) == 2
    assert "model.json: not found" in capsys.readouterr().err
    # a model.json that is not a whole export record: one line too
    broken = tmp_path / "broken"
    broken.mkdir()
    for body, says in (
        ("[1, 2]", "expected a JSON object"),
        ('{"label": "x"}', "export the model again"),
    ):
        (broken / "model.json").write_text(body)
        assert main(["predict", "--model", str(broken), str(odd["plain"])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    # in a folder, an unreadable image is left out with one note (named, it is an error: above)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(odd["plain"], mixed / "good.jpg")
    (mixed / "bad.jpg").write_bytes(b"not an image")
    assert main(["predict", "--model", str(export), str(mixed), "--json"]) == 0
    captured = capsys.readouterr()
    assert [Path(r["image"]).name for r in json.loads(captured.out)] == ["good.jpg"]
    note = f"slimda-nas predict: note: skipped 1 unreadable images (first: {mixed / 'bad.jpg'})"
    assert captured.err.strip() == note
    (mixed / "good.jpg").unlink()
    assert main(["predict", "--model", str(export), str(mixed)]) == 2
    assert "no readable images" in capsys.readouterr().err
    # preprocessing numbers that cannot work: one line naming the field
    for field, value in (
        ("normalization.std", [0, 0, 0]),
        ("size", 0),
        ("resize.shorter_side", -5),
        ("normalization.mean", "grey"),
        ("resize.crop", 10_000),  # above the shorter side: TorchScript's error, exit 1
        ("resize.shrink_to", {"px": 16}),  # a KeyError, exit 1
        ("resize", {"rule": "resize", "size": [32, 32], "shrink_to": {"size": [7, 7]}}),
    ):
        edited = tmp_path / f"edited_{field}"
        shutil.copytree(export, edited)
        record = json.loads((edited / "model.json").read_text())
        *parents, leaf = field.split(".")
        holder = record["input"]
        for key in parents:
            holder = holder[key]
        holder[leaf] = value
        (edited / "model.json").write_text(json.dumps(record))
        assert main(["predict", "--model", str(edited), str(odd["plain"])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"field 'input.{field}': expected" in err, err
    for field, value in (("classes", 5), ("classes", [1, 2, 3])):  # TypeError, rich's error
        edited = tmp_path / f"edited_{field}_{len(str(value))}"
        shutil.copytree(export, edited)
        record = json.loads((edited / "model.json").read_text())
        record[field] = value
        (edited / "model.json").write_text(json.dumps(record))
        assert main(["predict", "--model", str(edited), str(odd["plain"])]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"field '{field}': expected" in err, err
    # a decompression bomb (a header claiming 200 megapixels) is an unreadable image
    bomb = tmp_path / "bomb.png"
    _png_header_claiming(bomb, 20_000, 10_000)
    assert main(["predict", "--model", str(export), str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bomb}: cannot read the image" in err, err
    # a damaged model file: one line naming it, exit 2 (not an internal error)
    damaged = tmp_path / "damaged"
    shutil.copytree(export, damaged)
    (damaged / "model.ts").write_bytes((export / "model.ts").read_bytes()[:1000])
    assert main(["predict", "--model", str(damaged), str(odd["plain"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{damaged / 'model.ts'}: damaged or unreadable" in err, err


def _png_header_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels (and holds almost none)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_list_files_work_as_folders_do(folders, tmp_path):
    """--source/--target take list files too (and --task every task text): same summary."""
    from slimda_nas.data import summarize_data
    from slimda_nas.train import domain_text, new_run_config

    lists = {}
    for domain in ("A", "B"):
        lines = [
            f"{f} {int(f.parent.name[-1])}" for f in sorted((folders / domain).rglob("*.png"))
        ]
        lists[domain] = tmp_path / f"{domain}.txt"
        lists[domain].write_text("\n".join(lines) + "\n")
    task = f"{domain_text(lists['A'])}->{domain_text(lists['B'])}"
    assert task.startswith("list:") and "->list:" in task
    new = new_run_config(task, backbone="digits_cnn")
    assert new.config.name == "A_B" and new.config.domain_bn == "separate"
    by_list = summarize_data(new.config.task, None)
    by_folder = summarize_data(f"folder:{folders / 'A'}->folder:{folders / 'B'}", None)
    assert list(by_list.source.counts.values()) == list(by_folder.source.counts.values())
    assert by_list.target.images == 18 and not by_list.problems


def test_an_unlabelled_target_folder(folders, tmp_path, capsys):
    """Target images without class folders: trained on, searched, exported; accuracy only
    where labels are given (--target-labelled)."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, f in enumerate(sorted((folders / "B").rglob("*.png"))):
        f.rename(flat / f"{i}.png")
    src = str(folders / "A")
    args = ["train", "--source", src, "--target", str(flat), "--name", "u", *TINY]
    assert main([*args, "--iterations", "2"]) == 0
    run = tmp_path / "runs" / "u"
    tiny = ["--calibration-images", "8", "--scoring-images", "8", "--no-report"]
    assert main(["search", "--run", str(run), "--budget", "1/16", "--trials", "2", *tiny]) == 0
    few = ["--target-labelled", src]  # the source's labels stand in for a few target ones
    assert main(["export", "--run", str(run), "--budget", "1/16", "--no-latency", *few]) == 0
    record = json.loads(next((run / "export").glob("*/model.json")).read_text())
    assert record["accuracy"] is None and record["target_labelled"]["images"] == 18
    capsys.readouterr()
    assert main(["train", "--source", src, "--target", str(flat), *TINY, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(unlabelled)" in out and "class lists differ" not in out


def test_unreadable_images_are_one_note_line(folders, tmp_path, capsys):
    """Training leaves undecodable files out and says so in one line, not as a Python warning."""
    (folders / "A" / "class0" / "broken.png").write_bytes(b"\x89PNG not really")
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    assert main(args) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "unreadable" in line]
    assert notes == [
        f"slimda-nas train: note: skipped 1 unreadable images under {folders / 'A'} "
        f"(first: {folders / 'A' / 'class0' / 'broken.png'})"
    ], err
    assert "UnreadableImagesWarning" not in err and ".py:" not in err


def test_a_failed_start_leaves_no_run_folder(folders, tmp_path, capsys):
    """The generated space is written before training starts; a run that fails before writing
    anything else (a missing weights file) takes it away again."""
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    missing = tmp_path / "no_such_weights.pt"
    lite0 = ["--backbone", "efficientnet_lite0", "--size", "32"]  # weights read at training
    assert main([*args, *lite0, "--weights", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err, err
    assert not (tmp_path / "runs" / "A_B").exists()


@pytest.mark.parametrize("problem", ["class_unreadable", "weights", "out_is_a_file"])
def test_the_dry_run_refuses_what_training_would(folders, tmp_path, capsys, problem):
    """Exit 2 and one line where the real run would stop at once; the table counts only the
    images training keeps."""
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    if problem == "class_unreadable":
        for f in (folders / "A" / "class1").iterdir():
            f.write_bytes(b"not an image")
        expected = f"{folders / 'A'}: class 'class1' has no readable images"
    elif problem == "weights":
        args += ["--backbone", "efficientnet_lite0", "--size", "32", "--weights", "nope.pt"]
        expected = "weights nope.pt: file not found"
    else:
        (tmp_path / "afile").write_text("mine")
        args += ["--out", "afile"]
        expected = "run folder afile: is a file"
    assert main([*args, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and expected in captured.err, captured.err
    if problem == "class_unreadable":
        row = next(line for line in captured.out.splitlines() if "class1" in line)
        assert [c.strip() for c in row.split("│") if c.strip()] == ["class1", "0", "6"], row


def test_a_size_the_backbone_refuses_names_the_option(folders, tmp_path, capsys):
    """The space is generated from --size: its error names --size and the rule, not a file that
    was never written nor its 'backbone_args'."""
    args = ["train", "--source", str(folders / "A"), "--target", str(folders / "B"), *TINY]
    assert main([*args, "--size", "33", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--size 33: field 'input.size'" in err, err
    assert "multiple of 8" in err and "space.yaml" not in err and "backbone_args" not in err
