"""The one place for argument checks (pomegranate's ``_check_parameter``): each raises ``ValueError``
naming the argument and what was expected, so no module writes the same three-line idiom again.

``check_args`` checks a dict of arguments read from a file against a callable's annotated signature
(unknown names, wrong types), so a saved config can never pass a list where an int belongs.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low) \
            or (high is not None and value > high):
        bounds = f" in {low}..{high}" if low is not None and high is not None else (
            f" >= {low}" if low is not None else (f" <= {high}" if high is not None else ""))
        raise ValueError(f"{name} must be an integer{bounds}, got {value!r:.80}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r:.80}")
    return value


def matches(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a type annotation (int, float, str, bool, None, Literal, unions,
    list/tuple/Sequence of them, dict); an annotation it cannot read (Any, a class) accepts anything."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, params = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(matches(value, p) for p in params)
    if origin is Literal:
        return any(value == p and type(value) is type(p) for p in params)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and params and params[-1] is not Ellipsis:
            return len(value) == len(params) and all(matches(v, p) for v, p in zip(value, params))
        return not params or all(matches(v, params[0]) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict) and (not params or all(isinstance(k, str) and matches(v, params[1])
                                                              for k, v in value.items()))
    return True  # a class or anything else: its own constructor checks it


def check_args(fn: Any, args: dict[str, Any], where: str) -> dict[str, Any]:
    """`args` (e.g. init_args read from config.json) checked against `fn`'s signature: every name one that
    `fn` takes, every value of its annotated type; raises ValueError naming `where` and the argument."""
    if not isinstance(args, dict):
        raise ValueError(f"{where} must be an object of arguments, got {args!r:.80}")
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    unknown = sorted(set(args) - set(signature.parameters))
    if unknown:
        raise ValueError(f"{where}: unknown arguments {unknown}; takes {', '.join(p for p in signature.parameters if p != 'self')}")
    for name, value in args.items():
        if not matches(value, hints.get(name, Any)):
            raise ValueError(f"{where}.{name} must be {_describe(hints[name])}, got {value!r:.80}")
    return args


def _describe(annotation: Any) -> str:
    """int, int | None, list[int], Literal['a', 'b']: as a reader writes a type."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")
