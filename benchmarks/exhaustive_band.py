"""A budget holding fewer configurations than the evaluations asked: how many trials and seconds
each sampler takes to evaluate all of them, on the test suite's tiny synthetic bank (scores on 8
images, so the search's own work dominates).

    PYTHONPATH=. python benchmarks/exhaustive_band.py --samplers tpe,nsga2 --budget 1/64 --trials 800

Prints, per sampler: evaluations, the study's (capped) request, trials, repairs, seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from slimda_nas.evaluate.evaluator import EvalSettings, Evaluator
from slimda_nas.search.runner import SearchOptions, run_search
from slimda_nas.train import load_run, train_bank
from tests.conftest import copy_run, make_folder_domains, tiny_run_config

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samplers", default="tpe,nsga2,random")
    p.add_argument("--budget", default="1/64")
    p.add_argument("--trials", type=int, default=800)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = make_folder_domains(base / "tiny")
        cfg = tiny_run_config(base, f"folder:{root / 'A'}->folder:{root / 'B'}", iterations=6)
        train_bank(cfg, show_progress=False)
        for sampler in args.samplers.split(","):
            run_dir = copy_run(cfg.run_dir, base / f"search-{sampler}")
            ev = Evaluator(load_run(run_dir, device="cpu"), SMALL)
            opts = SearchOptions(
                budgets=args.budget, sampler=sampler, evaluations=args.trials, settings=SMALL
            )
            t0 = time.time()
            study = run_search(ev, opts, save=False, accuracy=False).studies[0]
            print(
                f"{sampler}: {study.evaluations} evaluations of {study.requested} "
                f"({args.trials} asked), {study.trials} trials, {study.repairs} repairs, "
                f"{time.time() - t0:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
