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
from zoo.data.spec import FOLDER_CLASSIFIER

@dataclass(frozen=True)
class Family:
    """A family: its model class and the LightningModule that trains and evaluates it ("module:Class")."""

    model: str
    system: str


#: every family, named here and nowhere else
FAMILIES: dict[str, Family] = {
    "vae": Family("zoo.models.vae:VAE", "zoo.systems.vae:VAESystem"),
    "gan": Family("zoo.models.gan:GAN", "zoo.systems.gan:GANSystem"),
    "diffusion": Family("zoo.models.diffusion:DDPM", "zoo.systems.diffusion:DiffusionSystem"),
    "gpt": Family("zoo.models.gpt:GPT", "zoo.systems.gpt:GPTSystem"),
    "gmm": Family("zoo.models.gmm:GMM", "zoo.systems.gmm:GMMSystem"),
    "hmm": Family("zoo.models.hmm:HMM", "zoo.systems.hmm:HMMSystem"),
    "nb": Family("zoo.models.naive_bayes:NaiveBayes", "zoo.systems.naive_bayes:NaiveBayesSystem"),
    "classifier": Family("zoo.models.classifier:DigitsClassifier", "zoo.systems.classifier:ClassifierSystem"),
    "text-diffusion": Family("zoo.models.text_diffusion:TextDDPM", "zoo.systems.text_diffusion:TextDiffusionSystem"),
}

#: the ``architecture`` field of config.json -> "module:Class"
ARCHITECTURES: dict[str, str] = {f.model.rsplit(":", 1)[1]: f.model for f in FAMILIES.values()}
#: components: saved inside another family's models, loadable alone (a text-to-image model's text encoder)
COMPONENTS: dict[str, str] = {"text-encoder": "zoo.models.text_encoder:TextEncoder"}
ARCHITECTURES.update({c.rsplit(":", 1)[1]: c for c in COMPONENTS.values()})

#: datamodules a config.json may name (``{"datamodule": {"name": ..., "init_args": ...}}``) -> "module:Class"
DATAMODULES: dict[str, str] = {
    "digits": "zoo.data.digits:DigitsDataModule",
    "text": "zoo.data.text:TextDataModule",
    "molecules": "zoo.data.molecules:MoleculesDataModule",
    "char-sequences": "zoo.data.sequences:CharSequenceDataModule",
    "mnist-5k": "zoo.data.images:Mnist5kDataModule",
    "mnist-5k-captions": "zoo.data.images:CaptionedMnist5kDataModule",
    "mnist": "zoo.data.downloads:MnistDataModule",
    "fashion-mnist": "zoo.data.downloads:FashionMnistDataModule",
    "cifar-10": "zoo.data.downloads:Cifar10DataModule",
}

#: what a pretrained name is for (``list_models(task=...)``)
TASKS = ("generator", "classifier", "feature-extractor")

#: pretrained names: lowercase, dash-separated (no paths, no surprises)
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


@dataclass(frozen=True)
class ModelInfo:
    """What a pretrained name is: shown by ``genzoo list`` and the README table."""

    name: str
    family: str
    dataset: str
    description: str
    key_metric: str  # the model card's headline test metric (a model-index type), e.g. "iwae"
    key_metric_label: str  # how to read it, e.g. "IWAE log p(x), nats"
    tasks: tuple[str, ...] = ("generator",)
    repo_id: str | None = None  # Hub fallback when the checkpoint is not packaged

    def __post_init__(self) -> None:
        if not NAME.match(self.name) or self.family not in FAMILIES or not set(self.tasks) <= set(TASKS):
            raise ValueError(f"pretrained name {self.name!r} must be lowercase and dash-separated, of a known family "
                             f"({', '.join(FAMILIES)}), with tasks among {TASKS}")

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
        ModelInfo("gpt-moses", "gpt", "moses",
                  "A 4-layer, 192-wide GPT (Llama layout) on MOSES's 1.58M molecules, one SMILES per sequence, "
                  "trained in 2 hours on one CPU thread; loads in transformers",
                  "FCD/Test", "FCD/Test, 30k samples"),
        ModelInfo("hmm-shakespeare-char", "hmm", "tinyshakespeare",
                  "Categorical HMM over characters, 32 states, Baum-Welch (strings in, strings out)",
                  "nll", "val nll, nats/char"),
        ModelInfo("nb-digits", "nb", "digits", "Gaussian naive Bayes classifier of digits (samples any digit 0-9)",
                  "accuracy", "test accuracy", tasks=("generator", "classifier")),
        ModelInfo("digits-classifier", "classifier", "digits",
                  "Small convolutional digits classifier, the feature extractor of genzoo's FID/KID/IS",
                  "acc", "test accuracy", tasks=("classifier", "feature-extractor")),
        ModelInfo("ddpm-mnist-5k-text", "text-diffusion", "mnist-5k-captions",
                  "Text-to-image DDPM on the 5k MNIST: prompts such as \"a thick 7 leaning right\", read by its own "
                  "character transformer, cross-attention and classifier-free guidance",
                  "digit_acc", "digit accuracy on unseen phrasings"),
        ModelInfo("ddpm-mnist-5k", "diffusion", "mnist-5k",
                  "Class-conditional DDPM (351k-parameter UNet) on the 5k MNIST, 28x28, DDIM and classifier-free guidance",
                  "fid", "test FID, mnist-5k-classifier features"),
        ModelInfo("vae-mnist-5k", "vae", "mnist-5k",
                  "Convolutional VAE on the 5k MNIST, 28x28, 256-level categorical pixels",
                  "iwae", "test IWAE log p(x), nats"),
        ModelInfo("mnist-5k-classifier", "classifier", "mnist-5k",
                  "The same convolutional classifier on the 5k MNIST (28x28), the feature extractor of its FID/KID/IS",
                  "acc", "test accuracy", tasks=("classifier", "feature-extractor")),
        ModelInfo("dcgan-mnist-5k", "gan", "mnist-5k",
                  "Class-conditional DCGAN (hinge loss, spectral norm, projection discriminator) on the 5k MNIST, 28x28",
                  "fid", "test FID, mnist-5k-classifier features"),
        ModelInfo("gmm-mnist-5k", "gmm", "mnist-5k",
                  "Gaussian mixture, 20 diagonal components over the 784 pixels of the 5k MNIST, dequantised",
                  "log_likelihood", "test log P(x), nats"),
        ModelInfo("nb-mnist-5k", "nb", "mnist-5k",
                  "Gaussian naive Bayes classifier of the 5k MNIST, 28x28 (samples any digit 0-9)",
                  "accuracy", "test accuracy", tasks=("generator", "classifier")),
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


def list_models(pattern: str | None = None, *, task: str | None = None) -> list[str]:
    """Pretrained names, sorted, optionally filtered by a shell-style pattern (``"vae*"``) and a task
    (``"generator"``, ``"classifier"``, ``"feature-extractor"``)."""
    if pattern is not None and not isinstance(pattern, str):
        raise ValueError(f"pattern must be a str such as 'vae*', or None, got {type(pattern).__name__}")
    if task is not None and task not in TASKS:
        raise ValueError(_unknown("task", task, TASKS))
    return [n for n in sorted(PRETRAINED) if (pattern is None or fnmatch.fnmatch(n, pattern))
            and (task is None or task in PRETRAINED[n].tasks)]


def model_info(name: str) -> ModelInfo:
    """Family, dataset, description and key metric of a pretrained name."""
    if name not in PRETRAINED:
        raise ValueError(_unknown("pretrained model", name, PRETRAINED))
    return PRETRAINED[name]


def _unknown(what: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown {what} {name!r:.80}; {hint}"


def import_object(path: str) -> Any:
    """The object at "pkg.module:Name" (a registry entry)."""
    module, _, name = path.rpartition(":")
    return getattr(importlib.import_module(module), name)


def architecture_class(architecture: str, *, source: Any = None) -> type:
    """The model class a config.json's ``architecture`` field names."""
    if architecture not in ARCHITECTURES:
        raise hub.CheckpointError(f"{source}: {_unknown('architecture', architecture, ARCHITECTURES)}")
    return import_object(ARCHITECTURES[architecture])


def system_class(family: str) -> type:
    """The LightningModule class that trains and evaluates `family` (imports Lightning)."""
    if family not in FAMILIES:
        raise ValueError(_unknown("family", family, FAMILIES))
    return import_object(FAMILIES[family].system)


def datamodule_class(name: str) -> type:
    """The datamodule class of a registered name (imports Lightning)."""
    if name not in DATAMODULES:
        raise ValueError(_unknown("datamodule", name, DATAMODULES))
    return import_object(DATAMODULES[name])


def datamodule_name(cls: type) -> str | None:
    """The registered name of a datamodule class, None for a class of the user's own."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, p in DATAMODULES.items() if p == path), None)


def create(family: str, *, data: Any = None, **hparams: Any):
    """An untrained model of `family` (``"vae"``, ...) built from its hyperparameters. Sizes that come from
    the data are filled from `data`: a registered datamodule's name (``"digits"``) or a ``DataSpec``;
    without it they stay unset (the system fills them at setup) unless `hparams` give them."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(_unknown("family", family, FAMILIES))
    model = import_object(FAMILIES[family].model)(**hparams)
    if data is None:
        return model
    spec = datamodule_class(data)().spec if isinstance(data, str) else data
    return model.fit_to_data(spec)


def load(name_or_path: str | Path, *, revision: str | None = None):
    """A ready model in eval mode, looked up in order as:

    1. a pretrained name whose checkpoint ships inside the package (``"vae-digits"``);
    2. a local model folder (``"runs/vae/version_0/pretrained"``);
    3. a Hub repo id (``"user/name"``, or a pretrained name's ``repo_id``): first the local
       Hugging Face cache, then the Hub.

    A folder or repo is untrusted input: everything it names must be registered here.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ValueError(f"name_or_path must be a pretrained name, a model folder or a Hub repo id, got {name_or_path!r:.80}")
    name = str(name_or_path)
    info = PRETRAINED.get(name)
    if info is not None and info.packaged is not None:
        return load_checkpoint(hub.open_folder(info.packaged))
    if info is not None and info.repo_id:
        return load_checkpoint(hub.fetch(info.repo_id, revision))
    if _is_folder(name) or hub.is_repo_id(name):
        return load_checkpoint(hub.fetch(name, revision))
    raise ValueError(_unknown("model", name, PRETRAINED) + " (nor is it a model folder or a Hub repo id 'user/name')")


def _is_folder(name: str) -> bool:
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):  # too long for the file system, or a NUL byte: no folder of that name
        return False


def load_checkpoint(checkpoint: hub.Checkpoint):
    """The model of a checked folder, once every name its config.json holds is found registered."""
    config = checkpoint.config
    datamodule = config.get("datamodule")
    if datamodule is not None and datamodule["name"] not in DATAMODULES:
        raise checkpoint.error(hub.CONFIG_NAME, "datamodule.name: " + _unknown("datamodule", datamodule["name"], DATAMODULES))
    family = config.get("family")
    if family is not None and family not in FAMILIES and family not in COMPONENTS:
        raise checkpoint.error(hub.CONFIG_NAME, "family: " + _unknown("family", family, [*FAMILIES, *COMPONENTS]))
    extractor = config.get("data_spec", {}).get("feature_extractor")
    if extractor not in (None, FOLDER_CLASSIFIER) and (
            extractor not in PRETRAINED or "feature-extractor" not in PRETRAINED[extractor].tasks):
        raise checkpoint.error(hub.CONFIG_NAME, "data_spec.feature_extractor: "
                               + _unknown("feature extractor", extractor, list_models(task="feature-extractor")))
    model_cls = architecture_class(config["architecture"], source=checkpoint.folder / hub.CONFIG_NAME)
    return model_cls.from_checkpoint(checkpoint)
