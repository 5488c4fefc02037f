"""The report: one self-contained page plus figures, JSON and CSV, from a run with several
samplers and seeds or with one sampler only; a damaged study journal is a one-line error."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import pytest

from slimda_nas._folders import MANIFEST
from slimda_nas.cli import main
from slimda_nas.cost.budget import parse_budgets
from slimda_nas.evaluate.evaluator import EvalSettings
from slimda_nas.evaluate.scores import DEFAULT_METRIC
from slimda_nas.report import build_report
from slimda_nas.search.runner import SearchOptions, run_search
from tests.conftest import copy_run, require, require_module

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)
CHROMIUM = Path("/usr/bin/chromium")
# As root, without a screen, on a closed network: no sandbox, no GPU, no background requests.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _search(run_dir: Path, sampler: str, seed: int = 0, budgets: str = "1/4,1/16", **kw) -> None:
    opts = SearchOptions(
        budgets=parse_budgets(budgets),
        sampler=sampler,
        evaluations=kw.pop("evaluations", 4),
        seed=seed,
        settings=SMALL,
        **kw,
    )
    run_search(run_dir, opts)  # saves search/results.json as the CLI does


@pytest.fixture(scope="module")
def two_samplers(tiny_run_dir, tmp_path_factory):
    """random (seeds 0 and 1) and tpe (seed 0) at 1/4 and 1/16, then the report."""
    run_dir = copy_run(tiny_run_dir, tmp_path_factory.mktemp("report") / "run")
    for sampler, seed in (("random", 0), ("random", 1), ("tpe", 0)):
        _search(run_dir, sampler, seed)
    return run_dir, build_report(run_dir, device="cpu")


def test_report_files_and_self_contained_page(two_samplers):
    run_dir, page = two_samplers
    folder = run_dir / "report"
    assert page == folder / "index.html"
    for name in (
        "pareto.png",
        "accuracy.png",
        "efficiency.png",
        "ranking.png",
        "summary.json",
        "summary.csv",
    ):
        assert (folder / name).is_file(), name
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == [MANIFEST]  # what slimda-nas wrote; no temporary files left
    html = page.read_text()
    # self-contained: no scripts, no links, no external URLs; every image inline
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)=['"](?!data:)""", html)
    assert not re.search(r"url\(", html)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) >= 4 + 4  # four figures + a widths chart per (budget, sampler)
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    for text in (
        "Pareto front",
        "Search efficiency",
        "UPEM against accuracy",
        "Budget 1/4",
        "Budget 1/16",
        "random",
        "tpe",
        "Settings (to reproduce)",
        "slimda-nas search --run",
        "checkpoint",
    ):
        assert text in html, text


def test_summary_json_and_csv(two_samplers):
    run_dir, page = two_samplers
    s = json.loads((page.parent / "summary.json").read_text())
    assert [b["budget"] for b in s["budgets"]] == ["1/4", "1/16"]
    results = json.loads((run_dir / "search" / "results.json").read_text())
    for b in s["budgets"]:
        assert {k["sampler"] for k in b["samplers"]} == {"random", "tpe"}
        chosen = b["chosen"]
        assert chosen["chosen"] and chosen["macs"] <= b["budget_macs"]
        assert chosen["value"] == min(k["value"] for k in b["samplers"])
        # the search's own pick at this budget, over its studies, is the report's pick
        best = min(
            (
                c
                for st in results["studies"].values()
                for c in st["choices"]
                if c["budget"] == b["budget"]
            ),
            key=lambda c: c["upem"][DEFAULT_METRIC],
        )
        assert chosen["config"] == best["config"]
        assert chosen["accuracy"] is not None and 0 <= chosen["accuracy"] <= 1
    random_curves = [c for c in s["efficiency"] if c["sampler"] == "random"]
    assert {c["budget"] for c in random_curves} == {"1/4", "1/16"}
    assert all(c["seeds"] == [0, 1] and len(c["mean"]) == 4 for c in random_curves)
    for c in random_curves:  # best-so-far never gets worse, the band holds the mean
        means = [m for m in c["mean"] if m is not None]
        assert means == sorted(means, reverse=True)
        assert all(
            lo <= m <= hi
            for lo, m, hi in zip(c["low"], c["mean"], c["high"], strict=False)
            if m is not None
        )
    assert len(s["studies"]) == 6 and s["full_width_accuracy"] is not None
    front = [p["macs"] for p in s["pareto_front"]]
    assert front == sorted(front)
    assert s["correlations"]["n"] >= 3
    assert s["versions"]["torch"] and s["versions"]["optuna"] and s["versions"]["thop"]
    assert (
        s["run"]["space"]["hash"]
        and s["run"]["checkpoint"]
        and s["settings"]["subsets"]["calibration"] == 8
    )
    rows = list(csv.DictReader(io.StringIO((page.parent / "summary.csv").read_text())))
    assert len(rows) == 4 and {r["sampler"] for r in rows} == {"random", "tpe"}
    assert sum(int(r["chosen"]) for r in rows) == 2
    assert all(int(r["macs"]) <= int(r["budget_macs"]) and r["accuracy"] for r in rows)


def test_ranking_json_and_reference_run_are_used(two_samplers, tiny_run_dir, tmp_path):
    run_dir, _ = two_samplers
    run_dir = copy_run(run_dir, tmp_path / "run")
    candidates = [
        {"upem": {"kl": u}, "accuracy": a, "macs": m}
        for u, a, m in (
            (0.1, 0.9, 10**6),
            (0.2, 0.8, 2 * 10**6),
            (0.3, 0.5, 3 * 10**6),
            (0.4, 0.6, 10**5),
        )
    ]
    (run_dir / "ranking.json").write_text(
        json.dumps({"metric": "kl", "n": 4, "candidates": candidates})
    )
    page = build_report(run_dir, reference=tiny_run_dir, device="cpu", accuracy_points=2)
    s = json.loads((page.parent / "summary.json").read_text())
    assert s["correlations"]["source"].startswith("ranking.json") and s["correlations"]["n"] == 4
    assert s["correlations"]["spearman"] == pytest.approx(0.8)
    assert s["reference"]["accuracy"] == s["full_width_accuracy"]  # the same bank, as a stand-in
    assert "ranking.json" in page.read_text()


def test_report_from_one_sampler_and_a_pareto_study(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    _search(run_dir, "random", budgets="1/8")
    page = build_report(run_dir, device="cpu", accuracy=False)
    s = json.loads((page.parent / "summary.json").read_text())
    assert [b["budget"] for b in s["budgets"]] == ["1/8"]
    assert [k["sampler"] for k in s["budgets"][0]["samplers"]] == ["random"]
    assert not (page.parent / "accuracy.png").exists() and s["full_width_accuracy"] is None
    assert "accuracy not computed" in " ".join(s["notes"])
    _search(run_dir, "nsga2", budgets="1/8", multi_objective=True, evaluations=6)
    s = json.loads(
        (build_report(run_dir, device="cpu", accuracy=False).parent / "summary.json").read_text()
    )
    assert {k["sampler"] for k in s["budgets"][0]["samplers"]} == {"random", "nsga2 (Pareto)"}


def test_cli_report(two_samplers, tmp_path, capsys):
    run_dir, _ = two_samplers
    out = tmp_path / "elsewhere"
    assert (
        main(
            [
                "report",
                "--run",
                str(run_dir),
                "--out",
                str(out),
                "--no-accuracy",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (out / "index.html").is_file() and str(out / "index.html") in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["garbage", "garbage_line", "cut_in_the_middle"])
def test_damaged_journal_is_one_line_error(two_samplers, tmp_path, capsys, damage):
    run_dir, _ = two_samplers
    run_dir = copy_run(run_dir, tmp_path / "run")
    journal = run_dir / "study.journal"
    data = journal.read_bytes()
    if damage == "garbage":
        journal.write_bytes(bytes(range(256)) * 20)
    elif damage == "garbage_line":
        lines = data.split(b"\n")
        lines[len(lines) // 3] = b'{"op_code": 5, "trial_id": ###}'
        journal.write_bytes(b"\n".join(lines))
    else:  # a line cut short in the middle, complete records after it
        cut = data.index(b"\n", len(data) // 2)
        journal.write_bytes(data[: cut - 20] + data[cut:])
    before = journal.read_bytes()
    assert main(["report", "--run", str(run_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "study.journal" in err and "damaged or truncated" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert journal.read_bytes() == before  # refused, not "repaired"
    assert not list(run_dir.glob(".report.*"))


def test_a_journal_cut_at_its_end_is_repaired_and_said(two_samplers, tmp_path, capsys):
    run_dir, _ = two_samplers
    run_dir = copy_run(run_dir, tmp_path / "run")
    journal = run_dir / "study.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-20])  # the last record lost its end (a full disk, a kill)
    assert main(["report", "--run", str(run_dir), "--device", "cpu", "--no-accuracy"]) == 0
    err = capsys.readouterr().err
    assert "last record was cut off" in err
    assert journal.read_bytes() == data[: data.rfind(b"\n", 0, len(data) - 20) + 1]
    assert [p.read_bytes() for p in run_dir.glob("study.journal.*.torn")] == [data[:-20]]


def test_missing_journal_is_one_line_error(tiny_run_dir, tmp_path, capsys):
    run_dir = copy_run(tiny_run_dir, tmp_path / "run")
    assert main(["report", "--run", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "no study journal" in err and err.count("\n") == 1


def test_page_renders_in_headless_chromium(two_samplers):
    """What a reader sees in a real browser: every image loads, no console error, the
    at-a-glance table holds one row per budget, the page is not blank."""
    require(CHROMIUM.exists(), "needs Debian's chromium (apt-get install chromium)")
    sync_api = require_module("playwright.sync_api", "needs playwright (pip install playwright)")
    from PIL import Image

    _, page_path = two_samplers
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url[:80]}"))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            rows = page.locator("#glance tr").all_inner_texts()
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert len(images) >= 4 and all(done and width > 0 for _, done, width in images), images
    assert len(rows) == 3 and rows[1].startswith("1/4") and rows[2].startswith("1/16"), rows
    img = Image.open(io.BytesIO(shot)).convert("RGB")
    assert img.size[0] == 1400 and img.size[1] > 2000
    small = img.resize((140, 400))
    colours = small.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50, "the screenshot is (nearly) one colour: blank page"
    ink = sum(n for n, (r, g, b) in colours if min(r, g, b) < 200) / (140 * 400)
    assert ink > 0.02, f"only {ink:.1%} of the page has content"
    # the figures were drawn: the sampler colours of the plots appear in the screenshot
    tpe_blue = sum(n for n, (r, g, b) in colours if b > 150 and r < 90 and 90 < g < 150)
    assert tpe_blue > 0


def test_reproduce_command_names_every_non_default_scoring_option():
    from slimda_nas.report.provenance import _scoring_options

    record = {
        "metric": DEFAULT_METRIC,
        "subsets": {"calibration": 1000, "scoring": 8, "batch_size": 4},
    }
    assert _scoring_options(record, "ca") == " --scoring-images 8 --batch-size 4"
    assert _scoring_options({**record, "metric": "kl"}, "ca").startswith(" --metric kl ")
    assert _scoring_options({"subsets": {"batch_size": 500}}, "ca") == ""
