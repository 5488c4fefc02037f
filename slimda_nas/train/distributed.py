"""torchrun / DistributedDataParallel plumbing: one process per device, gloo on CPU."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from slimda_nas.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_EXPECTED = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """The device ``name`` names, checked against this machine (one-line ConfigError)."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ConfigError(f"device {name!r}: expected {DEVICE_EXPECTED}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this machine has no CUDA GPU (use cpu or auto)")
        if name == "cuda":  # one process per GPU under torchrun
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        index = int(name.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_ok(info: DistInfo, ok: bool, device: torch.device) -> bool:
    """True when every rank says ok (one rank's NaN stops all of them together)."""
    if not info.enabled:
        return ok
    flag = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def sync_buffers(info: DistInfo, model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BN running statistics) to every rank."""
    if info.enabled:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)
