"""Names -> how to build a model and where its pretrained weights live.

Everything is listed here, explicitly: the families (``zoo.create("vae")``), the
architectures a config.json may name, and the pretrained checkpoints
(``zoo.load("vae-digits")``). Model modules are imported only when used, so
``import zoo`` stays light.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from zoo import hub

#: family -> "module:Class" of its model
FAMILIES: dict[str, str] = {
    "vae": "zoo.models.vae:VAE",
    "gpt": "zoo.models.gpt:GPT",
    "gmm": "zoo.models.gmm:GMM",
    "hmm": "zoo.models.hmm:HMM",
    "nb": "zoo.models.naive_bayes:NaiveBayes",
    "classifier": "zoo.models.classifier:DigitsClassifier",  # the image metrics' feature extractor
    "diffusion": "zoo.models.diffusion:DDPM",
    "gan": "zoo.models.gan:GAN",
}

#: family -> "module:Class" of the LightningModule that trains and evaluates it
SYSTEMS: dict[str, str] = {
    "vae": "zoo.systems.vae:VAESystem",
    "gpt": "zoo.systems.gpt:GPTSystem",
    "gmm": "zoo.systems.gmm:GMMSystem",
    "hmm": "zoo.systems.hmm:HMMSystem",
    "nb": "zoo.systems.naive_bayes:NaiveBayesSystem",
    "classifier": "zoo.systems.classifier:ClassifierSystem",
    "diffusion": "zoo.systems.diffusion:DiffusionSystem",
    "gan": "zoo.systems.gan:GANSystem",
}

#: pretrained names: lowercase ``family-dataset[-variant]`` (no paths, no surprises)
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")

#: the ``architecture`` field of config.json -> "module:Class"
ARCHITECTURES: dict[str, str] = {path.rsplit(":", 1)[1]: path for path in FAMILIES.values()}


@dataclass(frozen=True)
class ModelInfo:
    """What a pretrained name is: shown by ``genzoo list`` and the README table."""

    name: str
    family: str
    dataset: str
    description: str
    key_metric: str  # the model card's headline test metric (a model-index type), e.g. "iwae"
    key_metric_label: str  # how to read it, e.g. "IWAE log p(x), nats"
    repo_id: str | None = None  # Hub fallback when the checkpoint is not packaged

    def __post_init__(self) -> None:
        if not NAME.match(self.name) or self.family not in FAMILIES:
            raise ValueError(f"pretrained name {self.name!r} must be lowercase 'family-dataset[-variant]' "
                             f"of a known family ({', '.join(FAMILIES)})")

    @property
    def packaged(self) -> Path | None:
        """The checkpoint folder shipped inside the package, if any."""
        folder = Path(str(resources.files("zoo") / "pretrained" / self.name))
        return folder if (folder / hub.CONFIG_NAME).is_file() else None

    def card_metrics(self) -> dict[str, float]:
        """The test metrics recorded in the packaged model card (empty if not packaged)."""
        card = hub.read_card(self.packaged) if self.packaged else None
        return hub.card_metrics(card) if card else {}


PRETRAINED: dict[str, ModelInfo] = {
    info.name: info
    for info in [
        ModelInfo("vae-digits", "vae", "digits", "Convolutional VAE on 8x8 digits, 17-level categorical pixels",
                  "iwae", "test IWAE log p(x), nats"),
        ModelInfo("cvae-digits", "vae", "digits", "Class-conditional VAE on 8x8 digits (sample any digit 0-9)",
                  "iwae", "test IWAE log p(x|y), nats"),
        ModelInfo("dcgan-digits", "gan", "digits",
                  "Class-conditional DCGAN (hinge loss, spectral norm, projection discriminator, EMA generator)",
                  "fid", "test FID, digits-classifier features; real-data floor 6.29"),
        ModelInfo("ddpm-digits", "diffusion", "digits",
                  "Class-conditional DDPM (212k-parameter UNet) with DDIM sampling and classifier-free guidance",
                  "fid", "test FID, digits-classifier features; real-data floor 6.29"),
        ModelInfo("gpt-shakespeare-char", "gpt", "tinyshakespeare",
                  "nanoGPT's baby-GPT configuration in Llama's layout (4 layers, 128 dims, 64-character context); "
                  "loads in transformers",
                  "loss", "val loss, nats/char"),
        ModelInfo("gmm-digits", "gmm", "digits", "Gaussian mixture, 10 full-covariance components, dequantised pixels",
                  "log_likelihood", "test log P(x), nats"),
        ModelInfo("hmm-shakespeare-char", "hmm", "tinyshakespeare",
                  "Categorical HMM over characters, 32 states, Baum-Welch (strings in, strings out)",
                  "nll", "val nll, nats/char"),
        ModelInfo("nb-digits", "nb", "digits", "Gaussian naive Bayes classifier of digits (samples any digit 0-9)",
                  "accuracy", "test accuracy"),
    ]
}


def markdown_table() -> str:
    """The README's table of pretrained models, from the registry and the packaged model cards."""
    rows = ["| name | family | dataset | key metric | description |", "|---|---|---|---|---|"]
    for info in PRETRAINED.values():
        value = info.card_metrics().get(info.key_metric)
        metric = f"{value:.2f} ({info.key_metric_label})" if value is not None else "not packaged"
        rows.append(f"| `{info.name}` | {info.family} | {info.dataset} | {metric} | {info.description} |")
    return "\n".join(rows)


def list_models(pattern: str | None = None) -> list[str]:
    """Pretrained names, sorted, optionally filtered by a shell-style pattern (``"vae*"``)."""
    names = sorted(PRETRAINED)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_info(name: str) -> ModelInfo:
    """Family, dataset, description and key metric of a pretrained name."""
    if name not in PRETRAINED:
        raise ValueError(_unknown("pretrained model", name, PRETRAINED))
    return PRETRAINED[name]


def _unknown(what: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown {what} {name!r}; {hint}"


def import_object(path: str) -> Any:
    """The object at "pkg.module:Name" (or "pkg.module.Name", LightningCLI's class_path)."""
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def architecture_class(architecture: str, *, source: Any = None) -> type:
    """The model class a config.json's ``architecture`` field names."""
    if architecture not in ARCHITECTURES:
        raise hub.CheckpointError(f"{source}: {_unknown('architecture', architecture, ARCHITECTURES)}")
    return import_object(ARCHITECTURES[architecture])


def create(family: str, **hparams: Any):
    """An untrained model of `family` (``"vae"``, ...) built from its hyperparameters."""
    if family not in FAMILIES:
        raise ValueError(_unknown("family", family, FAMILIES))
    return import_object(FAMILIES[family])(**hparams)


def load(name_or_path: str | Path, *, revision: str | None = None):
    """A ready model in eval mode, looked up in order as:

    1. a pretrained name whose checkpoint ships inside the package (``"vae-digits"``);
    2. a local model folder (``"runs/vae/version_0/pretrained"``);
    3. a Hub repo id (``"user/name"``, or a pretrained name's ``repo_id``): first the local
       Hugging Face cache, then the Hub.
    """
    from zoo.models.base import GenerativeModel

    name = str(name_or_path)
    info = PRETRAINED.get(name)
    if info is not None:
        if info.packaged is not None:
            return GenerativeModel.from_pretrained(info.packaged)
        if info.repo_id:
            return GenerativeModel.from_pretrained(info.repo_id, revision=revision)
    if name.strip() and Path(name).is_dir():
        return GenerativeModel.from_pretrained(name)
    if hub.is_repo_id(name):
        return GenerativeModel.from_pretrained(name, revision=revision)
    raise ValueError(_unknown("model", name, PRETRAINED) + " (nor is it a model folder or a Hub repo id 'user/name')")
