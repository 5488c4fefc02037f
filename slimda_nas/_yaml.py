"""YAML reading that refuses what PyYAML silently accepts (duplicate keys) and what would exhaust
memory from a small file (alias bombs, deep nesting, devices such as /dev/zero)."""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20
"""Largest YAML file read (search spaces and run configs are a few kB)."""
MAX_NODES = 100_000
"""Largest number of values a file may expand to once its aliases are followed."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings."""


class _StrictLoader(yaml.SafeLoader):
    pass


_MERGE = "tag:yaml.org,2002:merge"


def _mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE:  # ``<<: *base``: its keys are defaults the others override
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise yaml.constructor.ConstructorError(
                None, None, "expected a plain key (a name or a number)", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates
)


def _expanded_size(root: yaml.Node) -> int:
    """How many values the node graph holds once every alias is followed (a shared node counts
    once per use), refusing too deep a nesting. Iterative and memoised: an alias bomb is
    measured without being expanded."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                raise _TooBig(
                    f"expands to more than {MAX_NODES:,} values (aliases nested in aliases?)",
                    node.start_mark,
                )
            sizes[id(node)] = total
        else:
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


class _TooBig(Exception):
    def __init__(self, what: str, mark) -> None:
        super().__init__(what)
        self.mark = mark


def read_yaml(path: str | Path, error: type[Exception]) -> Any:
    """Parse ``path``; any problem raises ``error`` with a one-line message naming the file."""
    path = Path(path)
    text = _read_text(path, error)
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _TooBig as e:
        raise error(f"{path}: line {e.mark.line + 1}: YAML {e}") from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e)
        raise error(f"{path}:{where}: invalid YAML: {' '.join(str(what).split())}") from None


def _read_text(path: Path, error: type[Exception]) -> str:
    """A regular file's text, at most MAX_BYTES (a device or a pipe would never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: expected a YAML file, got a directory")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: expected a YAML file, got a device, pipe or socket")
    if st.st_size > MAX_BYTES:
        raise error(f"{path}: {st.st_size:,} bytes; a YAML file here is at most {MAX_BYTES:,}")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise error(f"{path}: more than {MAX_BYTES:,} bytes; a YAML file here is at most that")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: cannot read (not UTF-8 text)") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
