"""Typed checks of the public API's arguments: a wrong type is refused where it is passed, in
one line naming the argument and the type expected, not deep inside with an AttributeError."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from slimda_nas.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


class ArgumentError(UserError, TypeError):
    """An argument of the Python API has the wrong type (a TypeError, and a UserError so that
    the command line prints it in one line)."""


def typed(func: F) -> F:
    """Check the arguments of ``func`` against its annotations at every call."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ArgumentError(f"{func.__name__}(): {e}") from None
        hints = _hints(func)
        for name, value in bound.arguments.items():
            if name in hints and sig.parameters[name].kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                _check(f"{func.__name__}(): argument {name!r}", value, hints[name])
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_fields(obj: Any) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in hints:
            _check(
                f"{type(obj).__name__}: argument {f.name!r}", getattr(obj, f.name), hints[f.name]
            )


@functools.cache
def _hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations; one that names a type only imported for type checkers is left
    unchecked rather than guessed."""
    raw = getattr(obj, "__annotations__", {})
    if isinstance(obj, type):
        raw = {}
        for klass in reversed(obj.__mro__):
            raw.update(getattr(klass, "__annotations__", {}))
    module = inspect.getmodule(obj)
    scope = dict(vars(module)) if module else {}
    out = {}
    for name, text in raw.items():
        try:
            out[name] = eval(text, scope) if isinstance(text, str) else text  # noqa: S307
        except Exception:
            continue
    return out


def _check(name: str, value: Any, hint: Any) -> None:
    if not _matches(value, hint):
        raise ArgumentError(f"{name}: expected {_describe(hint)}, got {_got(value)}")


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any or isinstance(hint, TypeVar):
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence):
        if not isinstance(value, origin or list) or isinstance(value, str):
            return False
        item = args[0] if args and (origin is not tuple or args[-1] is Ellipsis) else Any
        return all(_matches(v, item) for v in value)
    if origin is not None:
        return isinstance(value, origin) if isinstance(origin, type) else True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a forward reference or a construct we do not check


def _describe(hint: Any) -> str:
    if hint is None or hint is type(None):
        return "None"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is not None:
        args = ", ".join(_describe(a) for a in typing.get_args(hint) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(hint, "__name__", str(hint))


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
