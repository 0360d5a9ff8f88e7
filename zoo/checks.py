"""The one place for argument checks (pomegranate's ``_check_parameter``): each raises ``ValueError``
naming the argument and what was expected, so no module writes the same three-line idiom again.

Numbers (``check_int``, ``check_float``: NaN and inf never pass), seeds (``check_seed``, ``generator``),
tensors (``as_tensor``: arrays and lists become tensors; text, complex and meta tensors are refused; float16
and float64 are cast), value ranges (``check_range``) and work caps checked before the work (``check_work``).

``check_args`` checks a dict of arguments read from a file against a callable's annotated signature
(unknown names, wrong types), so a saved config can never pass a list where an int belongs.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union

import torch


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as a Python int (numpy integers too, not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low) \
            or (high is not None and value > high):
        bounds = f" in {low}..{high}" if low is not None and high is not None else (
            f" >= {low}" if low is not None else (f" <= {high}" if high is not None else ""))
        raise ValueError(f"{name} must be an integer{bounds}, got {value!r:.80}")
    return int(value)


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                open_low: bool = False) -> float:
    """`value` as a finite float (not a bool) in [low, high] ((low, high] with `open_low`): NaN and inf never pass."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        value = float(value)
        ok = (low is None or (value > low if open_low else value >= low)) and (high is None or value <= high)
    if not ok:
        bounds = "" if low is None and high is None else (
            f" in {'(' if open_low else '['}{low}, {high}]" if low is not None and high is not None else
            (f" {'>' if open_low else '>='} {low}" if low is not None else f" <= {high}"))
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r:.80}")
    return value


#: torch's generators take seeds in 0..2**64-1 (a negative seed would alias a large one: -1 is 2**64-1)
SEED_LIMIT = 2 ** 64


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """`seed` as a Python int in 0..2**64-1 (numpy integers too), or None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be None or an integer in 0..2**64-1, got {seed!r:.80}")
    return int(seed)


def generator(seed: Any, device: Any = "cpu", name: str = "seed") -> torch.Generator | None:
    """A torch generator on `device` seeded with the checked `seed`, or None (the global stream) for None."""
    seed = check_seed(seed, name)
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def as_tensor(name: str, x: Any, *, dtype: torch.dtype | None = None, device: Any = None,
              finite: bool = True) -> torch.Tensor:
    """`x` (a tensor, a numpy array, or nested lists of numbers) as a real tensor with data, on `device`.

    Floating `dtype`: values are cast to it (float16 and float64 input work like float32); bools count as
    0 and 1. Refused, naming `name`: text and other objects, complex numbers (never silently cast to real),
    meta tensors (no data), and NaN or inf unless `finite` is False.
    """
    if isinstance(x, (str, bytes)) or x is None or isinstance(x, (dict, set)):
        raise ValueError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__}")
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__} "
                             f"({str(error).splitlines()[0][:80]})") from None
    if x.is_complex():
        raise ValueError(f"{name} must hold real numbers, got {x.dtype} (take .real or .abs() first)")
    if x.is_meta:
        raise ValueError(f"{name} is a meta tensor: it has a shape but no values")
    if dtype is not None or device is not None:
        x = x.to(device=device, dtype=dtype)  # a no-op when both already agree
    if finite and x.is_floating_point() and x.layout == torch.strided and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf: expected finite values")
    return x


def check_range(name: str, x: torch.Tensor, low: float, high: float, what: str = "values") -> torch.Tensor:
    """`x` if every value lies in [low, high], else a ValueError giving the range found."""
    if x.numel() and (x.min() < low or x.max() > high):
        raise ValueError(f"{name} must hold {what} in [{low:g}, {high:g}], got range "
                         f"[{x.min().item():.4g}, {x.max().item():.4g}]")
    return x


def check_images(name: str, x: Any, image_shape: Sequence[int], *, dtype: torch.dtype | None = None,
                 device: Any = None) -> torch.Tensor:
    """`x` as a float batch (N, *image_shape), N >= 1, of pixel values in [0, 1]; one image becomes a batch of one."""
    x = as_tensor(name, x, dtype=dtype or torch.get_default_dtype(), device=device)
    shape = tuple(image_shape)
    if x.dim() == len(shape):
        x = x.unsqueeze(0)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}) with N >= 1, got {tuple(x.shape)}")
    return check_range(name, x, 0, 1, "pixel values")


def check_labels(labels: Any, n: int, num_classes: int, *, device: Any = None) -> torch.Tensor:
    """`labels` (one class, or n classes as any integer array) as a (n,) long tensor in 0..num_classes-1."""
    y = as_tensor("labels", labels, device=device)
    if y.dim() == 0:
        y = y.expand(n)
    if y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be an integer or {n} integers, got shape {tuple(y.shape)} of {y.dtype}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {y.min().item()}..{y.max().item()}")
    return y.long()


def check_vectors(name: str, x: Any, dim: int, *, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """`x` as a finite float batch (N, dim), N >= 1 (latents, feature rows); one vector becomes a batch of one."""
    x = as_tensor(name, x, dtype=dtype or torch.get_default_dtype(), device=device)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2 or x.shape[1] != dim or len(x) == 0:
        raise ValueError(f"{name} must have shape (N, {dim}) with N >= 1, got {tuple(x.shape)}")
    return x


#: the most values one sampling call of a layer creates (1 GB in float64): a cap on memory, checked first
MAX_VALUES = 2 ** 27


def check_work(name: str, cells: int, cap: int, what: str) -> None:
    """Refuse, before it starts, work of `cells` units above `cap` (a cap on memory or time, e.g. n * length
    symbols): the message names the argument and the cap."""
    if cells > cap:
        raise ValueError(f"{name} asks for {cells:,} {what}, above the cap of {cap:,}; ask for less at a time")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r:.80}")
    return value


def matches(value: Any, annotation: Any) -> bool:
    """Whether a value fits a type annotation (int, float (finite), str, bool, None, Literal, unions,
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
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:  # a finite number: NaN and inf are never a hyperparameter's value
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:  # a path is a str to the code that takes it (os.fspath); JSON holds str only
        return isinstance(value, (str, os.PathLike))
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
    """`args` (init_args read from config.json, or given to a constructor) checked against `fn`'s signature:
    every name one that `fn` takes, every value of its annotated type; raises ValueError naming `where` and
    the argument."""
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


class CheckedInit:
    """A base whose subclasses' constructors first check their arguments against their annotated signatures
    (``check_args``: a str or NaN where a number belongs is one line naming the argument) and the ranges in
    ``arg_ranges`` (name -> (low, high), for arguments that are not None), before any check or work of their
    own. Models and datamodules inherit it."""

    arg_ranges: dict[str, tuple[float, float | None]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def checked(self, *args: Any, **kw: Any) -> None:
            if type(self).__init__ is checked:  # the outermost constructor: the caller's arguments
                bound = signature.bind(self, *args, **kw).arguments
                given = {k: v for k, v in bound.items() if k not in ("self", "kwargs")}
                check_args(init, given, cls.__name__)
                for name, (low, high) in cls.arg_ranges.items():
                    value = given.get(name)
                    if value is not None:
                        (check_int if isinstance(value, numbers.Integral) else check_float)(name, value, low, high)
            init(self, *args, **kw)

        cls.__init__ = checked


def _describe(annotation: Any) -> str:
    """int, int | None, list[int], Literal['a', 'b']: as a reader writes a type."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")
