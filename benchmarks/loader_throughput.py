"""Training-loader throughput on Office-31 amazon (not a test; run by hand).

    python benchmarks/loader_throughput.py [--data-root ../shared/data] [--size 224]

Prints images/s for the first epoch including decoding, and for later epochs (steady state).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from slimda_nas.data import InfiniteLoader, load_task, resolve_data_root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data-root",
        default=os.environ.get("SLIMDA_NAS_DATA")
        or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
    )
    parser.add_argument("--task", default="office31:amazon->amazon")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    start = time.perf_counter()
    data = load_task(args.task, root, args.size, workers=args.workers)
    decoded = time.perf_counter() - start
    loader = InfiniteLoader(data.source_train, args.batch_size, seed=0)
    n = len(data.source_train)
    per_epoch = -(-n // args.batch_size)
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        for _ in range(per_epoch):
            x, y = next(loader)
        times.append(time.perf_counter() - t)
    first = decoded + times[0]
    steady = sum(times[1:]) / max(1, len(times) - 1)
    print(
        f"{data.source_train}: decode {decoded:.2f}s; batch {args.batch_size} x {tuple(x.shape[1:])}, "
        f"torch threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        f"first epoch incl. decode: {n / first:.0f} images/s ({first:.2f}s); "
        f"epoch 1 without decode: {per_epoch * args.batch_size / times[0]:.0f} images/s; "
        f"steady state: {per_epoch * args.batch_size / steady:.0f} images/s"
    )


if __name__ == "__main__":
    main()
