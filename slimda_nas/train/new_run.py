"""A run config from two folders (or a task text) and a few hints: ``slimda-nas train --source
DIR --target DIR``. The result is the same :class:`RunConfig` a YAML file with those fields
gives (one resolution path, :func:`resolve_run_config`), so the ``run.yaml`` that training writes
reloads into the same bank."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slimda_nas._io import write_text
from slimda_nas._shipped import shipped_spaces
from slimda_nas.data import parse_task
from slimda_nas.errors import ConfigError, SpaceError
from slimda_nas.space import SearchSpace, load_space, resolve_space_path, space_from_dict
from slimda_nas.train.config import RunConfig, resolve_run_config

#: The backbone of a task when none is named: digits train the digits CNN from scratch, image
#: folders fine-tune the ImageNet EfficientNet-Lite0.
DEFAULT_BACKBONE = {"digits": "digits_cnn", "images": "efficientnet_lite0"}
SPACE_FILE = "space.yaml"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class NewRun:
    """A resolved config, its space, and the text of a space generated for ``--size`` that
    :meth:`write_space` puts at ``config.space`` (inside the run folder) before training."""

    config: RunConfig
    space: SearchSpace
    space_text: str | None = None

    def write_space(self) -> None:
        """Write the generated space, refusing to replace another run's different one."""
        if self.space_text is None:
            return
        path = Path(self.config.space)
        if path.is_file():
            if path.read_text(encoding="utf-8") == self.space_text:
                return
            raise ConfigError(
                f"{path}: this run folder already holds another search space; choose another "
                "--name or --out"
            )
        write_text(path, self.space_text)


def domain_text(path: str | Path) -> str:
    """``folder:/abs/DIR`` for a folder, ``list:/abs/FILE`` for a list file."""
    p = Path(path).expanduser().resolve()
    return f"{'list' if p.is_file() else 'folder'}:{p}"


def new_run_config(
    task: str,
    *,
    backbone: str | None = None,
    input_size: int | None = None,
    space: str | Path | None = None,
    name: str | None = None,
    **fields: Any,
) -> NewRun:
    """The run config of ``task`` (``folder:A->folder:B``, ``list:...``, ``office31:amazon->webcam``).

    The space is ``space`` (a file or shipped name), else ``backbone``'s shipped space (or the
    shipped ``<backbone>_<input_size>``), else ``slimda-nas space init``'s default space for
    that size, to be written into the run folder. ``fields`` are run-config fields (None: left out, so
    that the backbone's defaults apply).
    """
    parsed = parse_task(task)
    given = {k: v for k, v in fields.items() if v is not None}
    name = name or _name(parsed)
    given.update(name=name, task=str(parsed))
    if space is not None:
        if backbone is not None or input_size is not None:
            raise ConfigError("--space: give either a space or --backbone/--size, not both")
        cfg = resolve_run_config({**given, "space": str(space)}, "<command line>")
        return NewRun(cfg, load_space(cfg.space))
    kind = "digits" if parsed.source.is_digits else "images"
    backbone = backbone or DEFAULT_BACKBONE[kind]
    if kind == "digits" and input_size not in (None, 32):
        raise ConfigError(f"--size: digits tasks are fed 32x32 images, got {input_size}")
    # a shipped space of that size: NAME, else NAME_SIZE (efficientnet_lite0_112); for image
    # backbones the elastic one first (input resolution and depth as units too): on Office-31
    # A->W its bank's picks beat the widths-only bank's at every budget (BENCHMARKS.md section 12)
    shipped = shipped_spaces()
    names = (backbone, f"{backbone}_{input_size}")
    if kind == "images":
        names = (f"{backbone}_elastic", f"{backbone}_elastic_{input_size}", *names)
    for candidate in names:
        if candidate not in shipped:
            continue
        base = load_space(resolve_space_path(candidate))
        if base.backbone == backbone and input_size in (None, base.input_size):
            cfg = resolve_run_config({**given, "space": candidate}, "<command line>")
            return NewRun(cfg, base)
    from slimda_nas.space.template import default_space_yaml

    if input_size is not None and not 8 <= input_size <= 4096:
        raise ConfigError(f"--size: expected pixels from 8 to 4096, got {input_size}")
    text = default_space_yaml(backbone, input_size=input_size)
    run_dir = Path(given["out"]) if given.get("out") else Path("runs") / name
    path = (run_dir / SPACE_FILE).resolve()
    try:
        generated = space_from_dict(yaml.safe_load(text), source=str(path))
    except SpaceError as e:  # the space is generated from --size: name the option, not a file
        if input_size is None:
            raise
        reason = str(e).removeprefix(f"{path}: ")
        raise ConfigError(f"--size {input_size}: {reason}") from None
    cfg = resolve_run_config({**given, "space": str(path)}, "<command line>", backbone=backbone)
    return NewRun(cfg, generated, text)


def _name(task) -> str:
    """``amazon_webcam`` from the two domains' names."""
    text = _UNSAFE.sub("_", f"{task.source.name}_{task.target.name}").strip("._")
    return text or "run"
