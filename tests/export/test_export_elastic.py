"""Export of a depth-reduced, lower-resolution sub-network: it holds only the blocks it runs,
takes inputs at its own resolution, and verifies (MACs and outputs equal the bank's)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import yaml

from slimda_nas.evaluate.evaluator import EvalSettings
from slimda_nas.export import export_model
from slimda_nas.slim.elastic import resize_input
from slimda_nas.train import train_bank
from slimda_nas.train.run import load_run
from tests.conftest import make_folder_domains, tiny_elastic_space, tiny_run_config

SMALL = EvalSettings(calibration_images=8, scoring_images=8, batch_size=8)


@pytest.fixture(scope="module")
def elastic_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("elastic_export")
    root = make_folder_domains(base / "tiny")
    task = f"folder:{root / 'A'}->folder:{root / 'B'}"
    space = tiny_elastic_space(base / "space")
    cfg = tiny_run_config(base, task, space=str(space), iterations=2, eval_every=0)
    train_bank(cfg, show_progress=False)
    return cfg.run_dir


def test_depth_reduced_lower_resolution_export_verifies(elastic_run, tmp_path):
    space = load_run(elastic_run, device="cpu").space
    config = dict(space.largest())
    config.update({"resolution": space.input_sizes[1], "depth.stage3": 1, "depth.stage5": 2})
    config.update({"stem": 0.5, "blocks.12.expand": 0.25})  # and narrower widths
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = export_model(
        elastic_run,
        config_file=path,
        formats="torchscript,state_dict",
        out=tmp_path / "out",
        settings=SMALL,
        latency=False,
        device="cpu",
    )
    rec = json.loads((result.out / "model.json").read_text())
    size = space.input_sizes[1]
    assert size < space.input_size
    assert rec["input"]["shape"] == [1, 3, size, size] and rec["input"]["size"] == size
    assert f"resize to {size}x{size}" in rec["input"]["preprocess"]
    v = rec["verification"]
    assert v["passed"] is True
    assert v["macs"]["thop"] == v["macs"]["cost_model"] == rec["macs"]
    for f in v["files"].values():
        assert f["logits"]["passed"] and f["logits"]["max_abs_diff"] <= f["logits"]["tolerance"]
        assert f["accuracy"]["passed"]
    # the file takes inputs at its own size (the verification fed it the stored images shrunk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in 2.14
        module = torch.jit.load(str(result.out / "model.ts"))
    assert module(torch.zeros(1, 3, size, size)).shape == (1, 3)
    # predict follows the record: the crop at the stored size, then shrunk to the model's size
    from slimda_nas.export.predict import ExportedModel

    assert rec["input"]["resize"]["shrink_to"]["size"] == [size, size]
    model = ExportedModel(result.out)
    image = next((elastic_run.parent / "tiny" / "B").rglob("*.png"))
    assert model.preprocess(image).shape == (3, size, size)
    assert len(model.predict([image])) == 1


def test_exported_module_holds_only_the_blocks_it_runs(elastic_run):
    run = load_run(elastic_run, device="cpu")
    space = run.space
    config = dict(space.smallest())
    plain = run.bank.materialize(config)
    kept = [n for n, m in plain.named_modules() if n.startswith("_blocks.") and n.count(".") == 1]
    identity = [n for n in kept if isinstance(plain.get_submodule(n), torch.nn.Identity)]
    skipped = sum(u.full - int(config[u.name]) for u in space.depth_units)
    assert len(identity) == skipped > 0
    assert not any(
        n.startswith(tuple(f"{b}." for b in identity)) for n, _ in plain.named_parameters()
    )
    x = torch.randn(2, 3, space.input_size, space.input_size)
    with torch.no_grad(), run.bank.use(config):
        ref = run.bank.model(x, heads=[run.bank.deploy_head])[run.bank.deploy_head]
    out = plain(resize_input(x, space.resolution(config)))
    assert torch.allclose(out, ref, atol=1e-5)
    assert run.bank.model.active_depths == {} and run.bank.model.active_resolution is None


def test_search_on_an_elastic_bank_records_one_config_per_network(elastic_run, tmp_path):
    from slimda_nas.cost.budget import parse_budget
    from slimda_nas.search.runner import SearchOptions, run_search
    from tests.conftest import copy_run

    run_dir = copy_run(elastic_run, tmp_path / "run")
    options = SearchOptions(
        budgets=[parse_budget("1/8")], sampler="tpe", evaluations=5, settings=SMALL
    )
    result = run_search(run_dir, options)
    space = load_run(run_dir, device="cpu").space
    data = json.loads((run_dir / "search" / "results.json").read_text())
    choice = next(c for s in data["studies"].values() for c in s["choices"])
    assert space.normalize(choice["config"]) == choice["config"]
    assert choice["macs"] <= parse_budget("1/8").macs(result.anchor_macs)
