"""Training-loader throughput on Office-31 amazon (not a test; run by hand).

    python -m benchmarks.loader_throughput [--data-root ../shared/data] [--size 224]

Prints images/s for the first epoch including decoding, and for later epochs (steady state).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch

from benchmarks import _common as bc


def main(argv: Sequence[str] | None = None) -> None:
    p = bc.parser(__doc__)
    p.add_argument(
        "--data-root",
        default=os.environ.get("SLIMDA_NAS_DATA") or str(bc.REPO.parent / "shared" / "data"),
    )
    p.add_argument("--task", default="office31:amazon->amazon")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = bc.parse(p, argv)
    if args.tiny is not None:
        args.task, args.size, args.batch_size = bc.tiny_task(args.tiny / "data"), 32, 4
        args.data_root = str(args.tiny)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = bc.resolve_data_root(args.data_root)
    start = time.perf_counter()
    data = bc.load_task(args.task, root, args.size, workers=args.workers)
    decoded = time.perf_counter() - start
    loader = bc.InfiniteLoader(data.source_train, args.batch_size, seed=0)
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
