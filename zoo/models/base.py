"""The base of every genzoo model: one API for sampling, densities and the Hub format.

A model is a plain ``nn.Module`` (no Lightning, so loading and sampling stay fast).
Its init arguments are its config: subclasses record them with ``self.init_args``
(JSON-able values only) and the Hub format saves them as config.json.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from zoo import hub


class GenerativeModel(nn.Module):
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

    # -- the generative API ----------------------------------------------------------------

    def sample(self, n: int, *, seed: int | None = None, **conditions: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement sample")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example log-likelihood in nats; families without a tractable density raise."""
        raise NotImplementedError(
            f"the {self.family} family ({type(self).__name__}) has no log-likelihood; "
            "use a density model (vae, gmm, hmm, naive bayes) for scores")

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score per example: higher = more unusual. By default ``-log_prob(x)``."""
        return -self.log_prob(x)

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
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.max_samples:
            raise ValueError(f"n must be an integer in 1..{self.max_samples}, got {n!r}")
        return n

    def check_labels(self, labels: Any, n: int, *, required: bool = False) -> torch.Tensor | None:
        """labels as a (n,) long tensor in [0, num_classes), or None for an unconditional call."""
        if labels is None:
            if required and self.num_classes:
                raise ValueError(f"labels are required: this {type(self).__name__} is conditional on {self.num_classes} classes")
            return None
        if not self.num_classes:
            raise ValueError(f"labels were given, but this {type(self).__name__} is unconditional (num_classes=None)")
        labels = torch.as_tensor(labels, device=self.device)
        if labels.dim() == 0:
            labels = labels.expand(n)
        if labels.is_floating_point() or labels.is_complex() or labels.shape != (n,):
            raise ValueError(f"labels must be an integer or {n} integers, got {tuple(labels.shape)} {labels.dtype}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be in 0..{self.num_classes - 1}, got {labels.min().item()}..{labels.max().item()}")
        return labels.long()

    def _generator(self, seed: int | None) -> torch.Generator | None:
        """A generator seeded with `seed` on the model's device, or None (global RNG)."""
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        return torch.Generator(device=self.device).manual_seed(seed)

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

    def load_extra_files(self, folder: Path) -> None:
        """Read back what ``extra_files`` wrote (called by ``from_pretrained`` after the weights)."""

    def model_card(self) -> str:
        return hub.default_card(type(self).__name__, self.family, self.config())

    def save_pretrained(self, folder: str | Path, *, card: str | None = None) -> Path:
        """Write the Hub layout (config.json + model.safetensors + README.md) into `folder`."""
        return hub.save_folder(folder, self.config(), self.state_dict(), card or self.card or self.model_card(),
                               extra_files=self.extra_files())

    @classmethod
    def from_pretrained(cls, folder_or_repo_id: str | Path, *, revision: str | None = None) -> "GenerativeModel":
        """Load a model folder or Hub repo id (cache first); strict, safetensors only, eval mode."""
        folder = Path(folder_or_repo_id)
        if not folder.is_dir():
            if not hub.is_repo_id(str(folder_or_repo_id)):
                raise hub.CheckpointError(f"{folder_or_repo_id!s} is neither a model folder nor a Hub repo id")
            folder = hub.download(str(folder_or_repo_id), revision)
        config = hub.read_config(folder)
        model_cls = cls._class_for(config, folder)
        model = model_cls._from_config(config, folder)
        model.load_weights(hub.read_weights(folder), source=folder)
        model.load_extra_files(folder)
        model.card = hub.read_card(folder)
        return model.eval()

    @classmethod
    def _class_for(cls, config: dict[str, Any], folder: Path) -> type["GenerativeModel"]:
        from zoo.registry import architecture_class

        model_cls = architecture_class(config["architecture"], source=folder)
        if not issubclass(model_cls, cls):
            raise hub.CheckpointError(
                f"{folder} holds a {config['architecture']} ({config.get('family')} family), "
                f"not a {cls.__name__}; load it with zoo.load or {model_cls.__name__}.from_pretrained")
        return model_cls

    @classmethod
    def _from_config(cls, config: dict[str, Any], folder: Path) -> "GenerativeModel":
        init_args = config["init_args"]
        accepted = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(init_args) - set(accepted))
        if unknown:
            raise hub.CheckpointError(f"{folder}/config.json has init arguments {cls.__name__} does not take: {unknown}")
        try:
            model = cls(**init_args)
        except (TypeError, ValueError) as e:
            raise hub.CheckpointError(f"{folder}/config.json does not describe a valid {cls.__name__}: {e}") from None
        derived = model.derived_config()
        model.extra_config = {k: v for k, v in config.items() if k not in hub.RESERVED_KEYS and k not in derived}
        return model

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
