"""Run under torchrun by test_ddp.py: train a tiny bank, then save this rank's weights."""

import json
import sys

import torch
import torch.distributed as dist

from slimda_nas.train import train_bank
from slimda_nas.train.config import config_from_dict

if __name__ == "__main__":
    cfg = config_from_dict(json.loads(sys.argv[1]))
    result = train_bank(cfg, show_progress=False)
    torch.save(result.bank.model.state_dict(), cfg.run_dir / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()
