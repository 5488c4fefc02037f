"""Imports flow one way along the pipeline (README, Architecture): every import of a module of
the package, at the top of a file or inside a function, goes to a layer at or below its own."""

from __future__ import annotations

import ast

from tests.conftest import REPO

LAYERS = [
    {"errors", "_io", "_folders", "_check", "_yaml", "_shipped", "_versions", "_threads"},
    {"slim"},
    {"backbones"},
    {"space"},
    {"bank", "data", "methods"},
    {"cost", "deploy"},
    {"train"},
    {"evaluate"},
    {"search"},
    {"report", "export"},
    {"cli"},
    {"__init__", "__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str:
    """``slimda_nas.search.record`` -> ``search``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m == "slimda_nas" or m.startswith("slimda_nas.")]


def test_every_package_module_has_a_layer():
    for path in (REPO / "slimda_nas").iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            assert name in LAYER, f"{path}: not in the architecture's layers"


def test_imports_flow_along_the_pipeline():
    wrong = []
    for path in sorted((REPO / "slimda_nas").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        here = _part(".".join(rel.parts)) if len(rel.parts) > 1 else "__init__"
        if rel.parts[-1] == "__main__":
            here = "__main__"
        for module in _imports(path):
            there = _part(module)
            if LAYER[there] > LAYER[here]:
                wrong.append(f"{rel}: imports {module} ({there} is after {here})")
    assert not wrong, "\n".join(wrong)
