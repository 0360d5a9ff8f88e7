"""The model contract: what a model outputs, what it can be conditioned on, and how it samples.

Every model class declares it (diffusers' uniform pipeline call, written down as data)::

    class DDPM(GenerativeModel):
        outputs = "images"                                   # what sample returns: a key of OUTPUTS
        conditions = (LABELS,)                               # what sample and log_prob are conditioned on
        sample_options = (Option("steps", int, 50, low=1, high="schedule.timesteps"), ...)
        log_prob_options = ()                                # estimator settings of log_prob (VAE: k, seed)

``GenerativeModel.sample(n, *, seed=None, **conditions_and_options)`` checks every keyword with
``check_options``, the one validation function, so a wrong option is one line naming the valid
ones; the CLI and the demo read the same declarations to decide what to offer, never a family
name. Plain Python: reading a declaration needs no model weights.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, Callable, Iterable

#: output kind -> the one type ``sample`` returns for it
OUTPUTS: dict[str, str] = {
    "images": "a float tensor (N, C, H, W) in [0, 1]",
    "vectors": "a float tensor (N, D)",
    "text": "a list of N str",
    "sequences": "one tensor of N sequences, (N, length) symbols or (N, length, D) observations",
    "labels": "a classifier: class predictions (N,) from predict; sample raises",
}

#: the type of the ``labels`` condition: one class or n classes, checked by ``GenerativeModel.check_labels``
LABELS_TYPE = "labels"
#: the type of a text-to-image ``prompt``: one str or n str, checked by the model's ``check_prompts``
PROMPTS_TYPE = "prompts"


@dataclass(frozen=True)
class Option:
    """One keyword a model's ``sample`` (or ``log_prob``) takes: its type, range or choices, default and meaning.

    `high` is a number or the name of the model attribute that holds it (``"schedule.timesteps"``);
    `conditional_only` options exist only on class-conditional instances (``num_classes`` set).
    A default of None means "not given" and is always accepted.
    """

    name: str
    type: type | str  # int, float, str, bool, or LABELS_TYPE
    default: Any = None
    low: float | None = None
    high: float | str | None = None
    choices: tuple | None = None
    help: str = ""
    open_low: bool = False  # low itself excluded, e.g. top_p in (0, 1]
    conditional_only: bool = False

    def bind(self, model: Any) -> "Option":
        """This option on `model`: a range held by an attribute resolved; labels get 0..num_classes-1."""
        if self.type == LABELS_TYPE:
            return replace(self, low=0, high=model.num_classes - 1)
        if isinstance(self.high, str):
            return replace(self, high=attrgetter(self.high)(model))
        return self

    def spec(self) -> str:
        """What a valid value is, in words: "an integer in 1..1000", "None or a number in (0, 1]"."""
        if self.type == LABELS_TYPE:
            return f"a class in {self.low}..{self.high}, as one int or one per sample"
        if self.type == PROMPTS_TYPE:
            return "a str, or a list of one str per sample"
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        elif self.type is bool:
            text = "True or False"
        elif self.type is str:
            text = "a string"
        else:
            text = ("an integer" if self.type is int else "a number") + self._range()
        return f"None or {text}" if self.default is None else text

    def _range(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            if self.type is int:
                return f" in {low}..{high}"
            return f" in {'(' if self.open_low else '['}{low}, {high}]"
        if low is not None:
            return f" {'>' if self.open_low else '>='} {low}"
        return f" <= {high}" if high is not None else ""

    def summary(self) -> str:
        """One entry of the list of valid options: ``steps (an integer in 1..1000, default 50)``."""
        default = "" if self.type == LABELS_TYPE else f", default {self.default!r}"
        return f"{self.name} ({self.spec()}{default})"

    def check(self, value: Any, where: str) -> Any:
        """`value` if it is valid (ints and floats as Python numbers), else a ValueError naming the option."""
        if value is None and self.default is None:
            return None
        if self.type in (LABELS_TYPE, PROMPTS_TYPE):
            return value  # checked with the batch size, by check_options
        ok = value is not None
        if ok and self.type is bool:
            ok = isinstance(value, bool)
        elif ok and self.type is str:
            ok = isinstance(value, str)
        elif ok:
            number = (isinstance(value, numbers.Integral) if self.type is int else isinstance(value, numbers.Real))
            ok = number and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                value = self.type(value)
                ok = self._in_range(value)
        if ok and self.choices is not None:
            ok = value in self.choices
        if not ok:
            hint = f" ({self.help})" if self.help else ""
            raise ValueError(f"{where}: {self.name} must be {self.spec()}{hint}, got {value!r}")
        return value

    def _in_range(self, value: float) -> bool:
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        return low_ok and (self.high is None or value <= self.high)


class PerInstance:
    """A declaration that depends on the instance, like SQLAlchemy's hybrid properties: read on the
    class it is `default` (what the family's pretrained models do, for tables built without loading
    one), read on a model it is ``rule(model)`` (a GMM of plain vectors outputs "vectors")."""

    def __init__(self, default: str, rule: Callable[[Any], str]):
        self.default, self.rule = default, rule

    def __get__(self, model: Any, owner: type) -> str:
        return self.default if model is None else self.rule(model)


def available(model: Any, declared: Iterable[Option]) -> dict[str, Option]:
    """The `declared` options `model` takes (conditional-only ones only when it is class-conditional), bound."""
    return {o.name: o.bind(model) for o in declared if not (o.conditional_only and not model.num_classes)}


def check_options(model: Any, method: str, given: dict[str, Any], declared: Iterable[Option],
                  *, n: int | None = None) -> dict[str, Any]:
    """Check the keywords `given` to ``model.<method>`` against its `declared` options.

    Returns every declared option's value (the default where not given; labels as a (n,) tensor or
    None), or raises one ValueError line: an unknown option names the valid ones, a bad value names
    the option and its range.
    """
    declared = tuple(declared)
    where = f"{type(model).__name__}.{method}"
    valid = available(model, declared)
    for name, value in given.items():
        known = any(o.name == name for o in declared)
        if name not in valid and not (known and value is None):  # None: not given, so labels=None always works
            conditions = [o.name for o in valid.values() if o in tuple(model.conditions) or o.type == LABELS_TYPE]
            if known:
                problem = f"got {name!r}, but this {type(model).__name__} is unconditional (num_classes=None)"
            elif name in CONDITION_NAMES:  # a condition of other families: say what this one is conditioned on
                problem = (f"got {name!r}, but this {type(model).__name__} is not conditioned on a {name}; its "
                           f"conditions: {', '.join(conditions) or 'none'}")
            else:
                problem = f"got unknown option {name!r}"
            raise ValueError(f"{where} {problem}; {takes(valid.values())}")
    values = {o.name: o.default for o in declared}
    for name, option in valid.items():
        value = option.check(given[name], where) if name in given else option.default
        if option.type == LABELS_TYPE and n is not None:
            value = model.check_labels(value, n)
        if option.type == PROMPTS_TYPE and n is not None:
            value = model.check_prompts(value, n)
        values[name] = value
    return values


#: the conditions families take (a wrong one is named as a condition, not as an unknown option)
CONDITION_NAMES = ("labels", "prompt")


def takes(options: Iterable[Option]) -> str:
    """'it takes n, seed, labels (...), ...': the list a wrong option's message ends with."""
    entries = [o.summary() for o in options]
    return "it takes n, seed, " + ", ".join(entries) if entries else "it takes only n and seed"


#: the condition of every class-conditional family: the class of each sample (or of each scored example)
LABELS = Option("labels", LABELS_TYPE, help="the class of each sample; default: drawn from the class prior",
                conditional_only=True)
#: the seed of a stochastic ``log_prob`` estimate (``sample`` takes ``seed`` itself, always)
ESTIMATE_SEED = Option("seed", int, None, help="seeds the estimate: the same seed, the same value")


def takes_prompts(model: Any) -> bool:
    """Whether `model` is text-to-image: it declares a prompt condition of ``PROMPTS_TYPE``."""
    return any(o.type == PROMPTS_TYPE for o in model.conditions)


#: the sampling options that bound the length of one sequence, by family (GPT: new tokens; HMM: steps)
LENGTH_OPTIONS = ("max_new_tokens", "length")


def length_bound(model: Any, max_length: int | None) -> dict[str, int]:
    """``sample`` options limiting each sequence to `max_length` (a molecule dataset's longest, say): the declared
    option among ``LENGTH_OPTIONS`` set to it; empty when the model declares none or `max_length` is None."""
    name = next((o.name for o in model.sample_options if o.name in LENGTH_OPTIONS), None)
    return {name: max_length} if name is not None and max_length is not None else {}


#: the option every long sampler declares: a tqdm bar on stderr (None: only on a terminal)
PROGRESS = Option("progress", bool, None, help="a progress bar; default: only on a terminal")


def progress_bar(items: Iterable, show: bool | None, desc: str, total: int | None = None) -> Iterable:
    """tqdm over `items` as ``PROGRESS`` says: always if `show`, never if False, on a terminal only if None."""
    if show is False:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=False, disable=None if show is None else False)
