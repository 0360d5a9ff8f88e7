"""The base of every genzoo model: one API for sampling, densities and the Hub format.

A model is a plain ``nn.Module`` (no Lightning, so loading and sampling stay fast).
Its init arguments are its config: subclasses record them with ``self.init_args``
(JSON-able values only) and the Hub format saves them as config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from zoo import hub
from zoo.checks import CheckedInit, check_args, check_int, check_labels, generator
from zoo.models import contract
from zoo.models.contract import Option


#: the value of an init arg that the data sets where None means something else (``num_classes: data``)
FROM_DATA = "data"


def _plain(value: Any) -> Any:
    """Lists and tuples compare alike (JSON has only lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def check_num_classes(num_classes: Any) -> None:
    """num_classes of an optionally conditional model: None (unconditional), FROM_DATA, or an integer >= 2."""
    if num_classes is not None and num_classes != FROM_DATA and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 2 <= num_classes <= 100_000):
        raise ValueError(f"num_classes must be None (unconditional), {FROM_DATA!r} (the data's classes) or an integer "
                         f"in 2..100000, got {num_classes!r:.80}")


def image_data_args(spec: Any, init_args: dict[str, Any], *, levels: bool = False,
                    sizes: tuple[str, ...] = ("image_size", "channels")) -> dict[str, Any]:
    """What an image spec sets: image_size and channels of square images (and levels), and num_classes
    where the model is conditional (init num_classes not None)."""
    if spec.kind != "image" or spec.image_size is None:
        raise ValueError(f"this model takes square images; the data {spec.name!r} is {spec.kind}"
                         f"{'' if spec.image_shape is None else ' of shape ' + str(spec.image_shape)}")
    out = {"image_size": spec.image_size, "channels": spec.image_shape[0]}
    out = {k: v for k, v in out.items() if k in sizes}
    if levels:
        out["levels"] = spec.levels
    if init_args.get("num_classes") is not None:
        if spec.num_classes is None:
            raise ValueError(f"a class-conditional model needs labelled data; {spec.name!r} has no classes "
                             "(set num_classes: null for an unconditional model)")
        out["num_classes"] = spec.num_classes
    return out


class DataMismatch(ValueError):
    """A built model's sizes disagree with the data's; ``wrong`` maps each size to (the model's, the data's)."""

    def __init__(self, message: str, wrong: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.wrong = wrong


class GenerativeModel(CheckedInit, nn.Module):
    """Base class: ``sample``, ``log_prob``, ``score``, ``save_pretrained``, ``from_pretrained``, ``push_to_hub``.

    Example::

        model = zoo.load("vae-digits")
        x = model.sample(16, seed=0)          # (16, 1, 8, 8) in [0, 1]
        model.save_pretrained("my-vae")       # config.json + model.safetensors + README.md
        same = type(model).from_pretrained("my-vae")
    """

    family: ClassVar[str] = "generative"
    #: The most samples one ``sample`` call draws; more is almost always a mistake (a huge n
    #: would exhaust memory). Draw in several calls if you really need more.
    max_samples: ClassVar[int] = 100_000
    #: classes of a class-conditional model (set in __init__), None for an unconditional one
    num_classes: int | None = None

    def __init__(self, **init_args: Any) -> None:
        super().__init__()
        self.init_args = dict(init_args)
        self.extra_config: dict[str, Any] = {}  # metadata saved beside init_args (e.g. the datamodule)
        self.card: str | None = None  # the model card it was loaded with, kept on re-save

    # -- the data contract -----------------------------------------------------------------
    # Sizes that come from the data are not typed twice: a recipe leaves them None (or FROM_DATA where
    # None means something else, e.g. ``num_classes: data``), and the system fills them at setup from
    # the datamodule's spec (zoo.data.spec.DataSpec). A model with such a size unset has no weights yet.

    #: init args that None leaves to the data
    data_sizes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def data_args(cls, spec: Any, init_args: dict[str, Any]) -> dict[str, Any]:
        """The init args `spec` determines for a model with these `init_args` (e.g. image_size, levels)."""
        return {}

    @property
    def pending(self) -> bool:
        """Whether a size is still left to the data (no weights yet)."""
        return any(self.init_args.get(k) is None for k in self.data_sizes) or FROM_DATA in self.init_args.values()

    def fit_to_data(self, spec: Any) -> "GenerativeModel":
        """This model if its sizes agree with `spec`, or a fresh one with the sizes left to the data filled in;
        a size given that disagrees with the data is a ValueError naming it."""
        wanted = self.data_args(spec, self.init_args)
        given = {k: self.init_args.get(k) for k in wanted}
        wrong = {k: (v, wanted[k]) for k, v in given.items()
                 if v is not None and v != FROM_DATA and _plain(v) != _plain(wanted[k])}
        if wrong:
            raise DataMismatch(f"{type(self).__name__} does not fit the data {spec.name!r}: "
                               f"{'; '.join(f'{k}={v!r} but the data has {w!r}' for k, (v, w) in wrong.items())} "
                               "(leave data-derived sizes out of the recipe: the data sets them)", wrong)
        filled = {k: w for k, w in wanted.items() if given[k] is None or given[k] == FROM_DATA}
        if not filled:
            return self
        return type(self)(**{**self.init_args, **filled})

    def _check_built(self) -> None:
        if self.pending:
            unset = [k for k in self.data_sizes if self.init_args.get(k) is None] + [
                k for k, v in self.init_args.items() if v == FROM_DATA] or ["its sizes"]
            raise ValueError(f"this {type(self).__name__} has no weights yet: {', '.join(unset)} come from the data "
                             "(its system fills them from the datamodule at setup; or call fit_to_data(spec))")

    # -- the generative API ----------------------------------------------------------------
    # Declared by every family (zoo.models.contract): the CLI, evaluation and the demo read these.

    #: what ``sample`` returns, a key of ``contract.OUTPUTS``; a ``contract.PerInstance`` where it depends on
    #: the instance (a GMM of plain vectors outputs "vectors", an HMM without a vocabulary "sequences")
    outputs: ClassVar[str]
    #: what ``sample`` and ``log_prob`` can be conditioned on (``labels``, ``prompt``)
    conditions: ClassVar[tuple[Option, ...]] = ()
    #: how ``sample`` draws (DDPM: steps, guidance; GPT: temperature, top_k, ...)
    sample_options: ClassVar[tuple[Option, ...]] = ()
    #: settings of the ``log_prob`` estimate (VAE: k importance samples and a seed)
    log_prob_options: ClassVar[tuple[Option, ...]] = ()

    def accepts(self, method: str = "sample") -> dict[str, Option]:
        """The keywords ``sample`` or ``log_prob`` takes on this instance (conditions first), ranges filled in:
        labels (and options such as DDPM's guidance) only when it is class-conditional."""
        declared = {"sample": self.sample_options, "log_prob": self.log_prob_options}
        if method not in declared:
            raise ValueError(f"method must be 'sample' or 'log_prob', got {method!r}")
        return contract.available(self, (*self.conditions, *declared[method]))

    def sample_conditions(self) -> dict[str, Option]:
        """The conditions ``sample`` takes on this instance (labels only when class-conditional)."""
        return contract.available(self, self.conditions)

    @classmethod
    def has_log_prob(cls) -> bool:
        """Whether the family has a log-likelihood (``log_prob`` and ``score`` work)."""
        return cls.log_prob is not GenerativeModel.log_prob

    def sample(self, n: int, *, seed: int | None = None, **conditions_and_options: Any) -> Any:
        """`n` samples of the declared output kind (``outputs``); the same seed gives the same samples.

        Every keyword is checked against the declarations (``accepts()`` lists them): an unknown one,
        or a value out of range, is a ValueError naming the valid options. Families implement ``_sample``.
        """
        n = self._check_n(n)
        self._generator(seed)  # checks the seed
        values = contract.check_options(self, "sample", conditions_and_options,
                                        (*self.conditions, *self.sample_options), n=n)
        return self._sample(n, seed=seed, **values)

    def _sample(self, n: int, *, seed: int | None, **values: Any) -> Any:
        """Draw `n` samples; every declared condition and option arrives checked, defaults filled in."""
        if self.outputs == "labels":
            raise NotImplementedError(f"{type(self).__name__} outputs labels: it is a classifier, not a generator "
                                      f"(use predict)")
        raise NotImplementedError(f"{type(self).__name__} does not implement sample")

    def log_prob(self, x: Any, **conditions: Any) -> torch.Tensor:
        """Per-example log-likelihood in nats, given the declared conditions; families without a density raise."""
        raise NotImplementedError(
            f"the {self.family} family ({type(self).__name__}) has no log-likelihood; "
            "use a density model (vae, gmm, hmm, naive bayes, gpt) for scores")

    @torch.no_grad()
    def score(self, x: Any, **conditions_and_options: Any) -> torch.Tensor:
        """Anomaly score per example: higher = more unusual. By default ``-log_prob(x, **conditions_and_options)``."""
        return -self.log_prob(x, **conditions_and_options)

    @torch.no_grad()
    def labelled_samples(self, per_class: int, *, seed: int | None = None,
                         **sample_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthetic labelled data (data augmentation): `per_class` samples of every class, class by class,
        and their labels (num_classes * per_class,). A class-conditional model only; `sample_kwargs` go to
        ``sample`` (e.g. ``steps`` or ``guidance`` for diffusion)."""
        if not self.num_classes:
            raise ValueError(f"labelled samples need a class-conditional model; this {type(self).__name__} is "
                             f"unconditional (num_classes=None)")
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_class)
        self._check_n(len(labels))
        return self.sample(len(labels), seed=seed, labels=labels, **sample_kwargs), labels

    # -- helpers for subclasses ------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_n(self, n: int) -> int:
        self._check_built()
        return check_int("n", n, 1, self.max_samples)

    def check_labels(self, labels: Any, n: int, *, required: bool = False) -> torch.Tensor | None:
        """labels as a (n,) long tensor in [0, num_classes), or None for an unconditional call."""
        if labels is None:
            if required and self.num_classes:
                raise ValueError(f"labels are required: this {type(self).__name__} is conditional on {self.num_classes} classes")
            return None
        if not self.num_classes:
            raise ValueError(f"labels were given, but this {type(self).__name__} is unconditional (num_classes=None)")
        return check_labels(labels, n, self.num_classes, device=self.device)

    def _generator(self, seed: int | None) -> torch.Generator | None:
        """A generator seeded with `seed` on the model's device, or None (global RNG)."""
        return generator(seed, self.device)

    # -- the Hub format --------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return hub.make_config(type(self).__name__, self.family, self.init_args,
                               **{**self.extra_config, **self.derived_config()})

    def derived_config(self) -> dict[str, Any]:
        """config.json keys computed from the model on every save (e.g. the fields transformers reads).

        They are recomputed, never trusted on load, so they are not kept in ``extra_config``.
        """
        return {}

    def extra_files(self) -> dict[str, bytes]:
        """Files saved beside the weights (names from ``hub.EXTRA_FILES``), e.g. a tokenizer."""
        return {}

    def load_extra_files(self, files: dict[str, bytes]) -> None:
        """Read back what ``extra_files`` wrote (name -> bytes; called by ``from_pretrained`` after the weights)."""

    def model_card(self) -> str:
        return hub.default_card(type(self).__name__, self.family, self.config())

    def save_pretrained(self, folder: str | Path, *, card: str | None = None) -> Path:
        """Write the Hub layout (config.json + model.safetensors + README.md) into `folder`, all or nothing."""
        return hub.save_folder(folder, self.config(), self.state_dict(), card or self.card or self.model_card(),
                               extra_files=self.extra_files())

    @classmethod
    def from_pretrained(cls, folder_or_repo_id: str | Path, *, revision: str | None = None) -> "GenerativeModel":
        """Load a model folder or Hub repo id (cache first) of this class; strict, safetensors only, eval mode.

        ``zoo.load`` loads a folder of any family."""
        return cls.from_checkpoint(hub.fetch(folder_or_repo_id, revision))

    @classmethod
    def from_checkpoint(cls, checkpoint: hub.Checkpoint) -> "GenerativeModel":
        """Build the model a checked folder describes. The config is first built on the meta device and
        compared with the weights' header, so no absurd size in config.json allocates anything."""
        config = checkpoint.config
        if config["architecture"] != cls.__name__:
            raise hub.CheckpointError(
                f"{checkpoint.folder} holds a {config['architecture']} ({config.get('family')} family), "
                f"not a {cls.__name__}; load it with zoo.load")
        init_args = config["init_args"]
        try:
            check_args(cls.__init__, init_args, "init_args")
            with torch.device("meta"):
                skeleton = cls(**init_args)
        except Exception as e:  # any invalid value: one line naming the file
            raise checkpoint.error(hub.CONFIG_NAME, f"init_args do not describe a valid {cls.__name__}: {e}") from None
        skeleton._check_header(checkpoint)
        model = cls(**init_args)
        model.load_weights(checkpoint.tensors(), source=checkpoint.folder / hub.WEIGHTS_NAME)
        try:
            model.load_extra_files(checkpoint.extra_files)
        except Exception as e:  # a malformed tokenizer.json...
            raise checkpoint.error(", ".join(checkpoint.extra_files), f"cannot be read: {e}") from None
        derived = model.derived_config()
        model.extra_config = {k: v for k, v in config.items() if k not in hub.RESERVED_KEYS and k not in derived}
        model.card = checkpoint.card
        return model.eval()

    #: a model's parameters and buffers may take at most this many times its weights file, plus
    #: SLACK_BYTES (derived buffers such as a RoPE table or a noise schedule are not saved)
    BYTES_PER_SAVED_BYTE: ClassVar[int] = 4
    SLACK_BYTES: ClassVar[int] = 64 << 20

    def _check_header(self, checkpoint: hub.Checkpoint) -> None:
        """This (meta-device) model's state dict against the weights' header: names, shapes, dtype kinds."""
        source = checkpoint.folder / hub.WEIGHTS_NAME
        own = self.state_dict()
        header = checkpoint.header
        missing, unexpected = sorted(set(own) - set(header)), sorted(set(header) - set(own))
        wrong = sorted(k for k in set(own) & set(header) if tuple(own[k].shape) != header[k][1])
        kinds = sorted(k for k in set(own) & set(header)
                       if own[k].is_floating_point() != header[k][0].startswith(("F", "BF")))
        if missing or unexpected or wrong or kinds:
            raise hub.CheckpointError(
                f"{source} does not fit the {type(self).__name__} of config.json: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}, wrong shapes "
                f"{[(k, header[k][1], tuple(own[k].shape)) for k in wrong[:5]]}, wrong dtype kinds {kinds[:5]}")
        total = sum(t.numel() * t.element_size() for t in [*self.parameters(), *self.buffers()])
        cap = self.BYTES_PER_SAVED_BYTE * checkpoint.weights_path.stat().st_size + self.SLACK_BYTES
        if total > cap:
            raise checkpoint.error(hub.CONFIG_NAME, f"init_args describe a {type(self).__name__} of {total:,} bytes, "
                                                   f"far more than its {hub.WEIGHTS_NAME} holds")

    def load_weights(self, state_dict: dict[str, torch.Tensor], *, source: Any = "state dict") -> None:
        """Strict load: every key present, none extra, every shape equal, else a CheckpointError."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        wrong = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
        if missing or unexpected or wrong:
            raise hub.CheckpointError(
                f"{source} does not fit {type(self).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"wrong shapes {[(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in wrong[:5]]}")
        self.load_state_dict(state_dict, strict=True)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
        """Save to a temporary folder and upload it with huggingface_hub; returns the commit URL."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return hub.push(tmp, repo_id, private=private, token=token)
