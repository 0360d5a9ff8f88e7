"""Model cards: one writer renders every card, the packaged ones and the one each ``genzoo fit`` exports.

A card is a Hugging Face Hub README: YAML front matter (license, tags, datasets, and a model-index with
the metrics, which ``hub.card_metrics`` reads back) and markdown. Everything in it comes from four
inputs: the model (its declarations: ``outputs``, ``sample_conditions()``, sampling options), the data
spec, the metrics measured, and a ``Run`` record of how the weights were made. Nothing is copied from
another card, so a fine-tuned model's card names its parent and reports its own run, never the parent's.

    from zoo.cards import Run, render_card
    card = render_card(model, spec, {"elbo": -85.0}, Run("my-vae", recipe="recipes/vae-digits.yaml", seed=0))
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from zoo import hub
from zoo.data.spec import DataSpec
from zoo.models.base import GenerativeModel
from zoo.models.contract import LABELS_TYPE, OUTPUTS, takes_prompts
from zoo.registry import PRETRAINED

#: decimals of every metric on a card, in the model-index and the tables alike (derived numbers, such as
#: FID over its floor, are computed from the rounded values, so a card re-renders from its own header)
DIGITS = 3
#: the largest run configuration a card shows folded in full (LightningCLI's config.yaml)
MAX_CONFIG_CHARS = 20_000
#: the Hub task of what a generator outputs; a classifier's is "<kind>-classification"
GENERATION_TASKS = {"images": "unconditional-image-generation", "text": "text-generation"}
CLASSIFICATION_TASKS = {"image": "image-classification", "text": "text-classification",
                        "sequence": "text-classification", "tabular": "tabular-classification"}
#: what the usage example calls what ``sample`` returns
SAMPLE_NAMES = {"images": "images", "text": "texts", "sequences": "sequences", "vectors": "x"}


@dataclass(frozen=True)
class Run:
    """What a card says about the run behind the weights: everything the weights themselves cannot tell.

    Args:
        name: the model's name on the card (a pretrained name; for a user's run, a made-up one).
        recipe: the config that reproduces the run (``recipes/vae-digits.yaml``, a run's config.yaml).
        config_text: that config in full, shown folded (a fit's own config.yaml, so a pushed card reproduces).
        parent: the pretrained name or folder the run was fine-tuned from (``--model.init_from``).
        seed: the global seed of the run (``seed_everything``).
        hardware, training_time: where and how long it trained, in words.
        split: what the metrics were measured on, "test" or "validation".
        measured_by: how, in words ("`genzoo eval vae-digits` on the test split, seed 0").
        n_generated, sample_kwargs: the samples behind FID/KID/IS and the ``sample`` options that drew them.
        load_as: what ``zoo.load`` takes in the usage example (default: `name`).
        description: the card's first line (default: the registry's description of `name`).
        tags, rows, usage, metric_notes, notes, limitations: what only this model needs: extra tags, rows
            of the training table, usage and metric definitions (markdown), extra sections (comparisons with
            other tools, a sample), and limitations.
    """

    name: str
    recipe: str | None = None
    config_text: str | None = None
    parent: str | None = None
    seed: int | None = None
    hardware: str | None = None
    training_time: str | None = None
    split: Literal["test", "validation"] = "test"
    measured_by: str | None = None
    n_generated: int | None = None
    sample_kwargs: dict[str, Any] = field(default_factory=dict)
    load_as: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    rows: tuple[tuple[str, str], ...] = ()
    usage: str = ""
    metric_notes: str = ""
    notes: str = ""
    limitations: str = ""

    def __post_init__(self) -> None:
        if self.split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation', got {self.split!r}")


def render_card(model: GenerativeModel, spec: DataSpec | None, metrics: dict[str, float], run: Run) -> str:
    """The Hub model card of `model`, trained on the data of `spec` as `run` says, with `metrics` (name -> value,
    measured on ``run.split``). Pure: the same inputs give the same text."""
    metrics = {k: round(float(v), DIGITS) for k, v in metrics.items()}
    info = PRETRAINED.get(run.name)
    tasks = info.tasks if info is not None else _tasks(model)
    task = _task(model, spec, tasks)
    description = run.description or (info.description if info is not None else _description(model, spec))
    if run.parent:
        parent = PRETRAINED.get(run.parent)
        about = f" (a genzoo pretrained model: {parent.description})" if parent is not None else ""
        description += (f". Fine-tuned from `{run.parent}`{about}: its weights were this run's starting point; the "
                        "training and the metrics below are this run's own")
    limitations = run.limitations or _limitations(model, spec)
    sections = [
        _front_matter(model, spec, metrics, run, task, tasks),
        f"# {run.name}\n\n{description}.\n",
        "## Usage\n\n" + _usage(model, spec, run, task),
        "## Training\n\n" + _training(model, spec, run),
        f"## {'Test' if run.split == 'test' else 'Validation'} metrics\n\n" + _metrics(model, spec, metrics, run),
        run.notes.strip("\n") + "\n" if run.notes.strip() else "",
        f"## Limitations\n\n{limitations.strip()}\n",
    ]
    return "\n".join(s for s in sections if s)


def hardware(device_type: str, devices: int = 1) -> str:
    """The machine a run trains on, in words: the accelerator (its name), how many, CPU threads, torch."""
    version = f"torch {torch.__version__}"
    count = f"{devices} x " if devices > 1 else ""
    if device_type == "cuda" and torch.cuda.is_available():
        return f"{count}{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), {version}"
    if device_type == "mps":
        return f"{count}Apple MPS ({platform.machine()}), {version}"
    threads = torch.get_num_threads()
    processes = f", {devices} processes" if devices > 1 else ""
    return f"{platform.machine()} CPU ({_cpu_name()}){processes}, {threads} thread{'s' * (threads > 1)}, {version}"


# -- the parts of a card ---------------------------------------------------------------------


def _tasks(model: GenerativeModel) -> tuple[str, ...]:
    """A registry-style task list for a model the registry does not name (a user's run)."""
    if model.outputs == "labels":
        return ("classifier",)
    return ("generator", "classifier") if callable(getattr(model, "predict", None)) else ("generator",)


def _task(model: GenerativeModel, spec: DataSpec | None, tasks: tuple[str, ...]) -> str:
    if "classifier" in tasks:
        return CLASSIFICATION_TASKS.get(spec.kind if spec is not None else "", "other")
    if takes_prompts(model):
        return "text-to-image"
    return GENERATION_TASKS.get(model.outputs, "other")


def _description(model: GenerativeModel, spec: DataSpec | None) -> str:
    """The first line of a user's run: what was trained on what."""
    data = f" on `{spec.name}`" if spec is not None else ""
    return f"A {type(model).__name__} ({model.family} family) trained by `genzoo fit`{data}"


def _transformers(model: GenerativeModel) -> str | None:
    """The transformers architecture of a folder that is also a transformers checkpoint, else None."""
    architectures = model.derived_config().get("architectures")
    return architectures[0] if architectures else None


def _front_matter(model, spec, metrics, run, task, tasks) -> str:
    import yaml

    tags = ["genzoo", *(["generative"] if "generator" in tasks else []),
            *(["feature-extractor"] if "feature-extractor" in tasks else []), model.family, task, *run.tags]
    header: dict[str, Any] = {"license": "apache-2.0", "library_name": "genzoo"}
    if _transformers(model) is not None:
        header["pipeline_tag"] = task
    parent = PRETRAINED.get(str(run.parent)) if run.parent else None
    base_model = parent.repo_id if parent is not None else run.parent
    if base_model is not None and hub.is_repo_id(base_model):  # the Hub's base_model must be a Hub repo
        header["base_model"] = base_model
    header["tags"] = list(dict.fromkeys(tags))
    if spec is not None:
        header["datasets"] = [spec.name]
    if metrics:
        header["metrics"] = list(metrics)
        dataset = {"name": spec.name, "type": spec.name} if spec is not None else {"name": "unknown", "type": "unknown"}
        header["model-index"] = [{"name": run.name, "results": [{
            "task": {"type": task}, "dataset": {**dataset, "split": run.split},
            "metrics": [{"type": k, "value": v} for k, v in metrics.items()]}]}]
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _usage(model: GenerativeModel, spec: DataSpec | None, run: Run, task: str) -> str:
    """How to load and call it, from the model's declarations (what it outputs, its conditions and options)."""
    load = run.load_as or run.name
    shape = spec.image_shape if spec is not None and spec.image_shape else None
    code = [("import zoo", ""), (f"model = zoo.load({json.dumps(load)})", "")]
    conditions = model.sample_conditions()
    label = f", labels={min(3, model.num_classes - 1)}" if "labels" in conditions else ""
    prompted = takes_prompts(model)
    if prompted:
        label = f", prompt={EXAMPLE_PROMPT!r}"
    name = SAMPLE_NAMES.get(model.outputs)
    if name is not None:
        n = 16 if model.outputs in ("images", "vectors") else 4  # a grid of images; a few texts
        what = f"({n}, {', '.join(map(str, shape))}) in [0, 1]" if model.outputs == "images" and shape else \
            OUTPUTS[model.outputs].replace("N", str(n))
        code.append((f"{name} = model.sample({n}, seed=0{label})", what))
        if model.has_log_prob():
            code.append((f"model.log_prob({name}{label})", f"({n},) log-likelihoods, nats"))
    images = f"images (N, {', '.join(map(str, shape))}) in [0, 1]" if shape else "inputs"
    if callable(getattr(model, "predict", None)):
        code.append(("model.predict(images)", f"(N,) classes of {images}"))
    if callable(getattr(model, "features", None)):
        code.append(("model.features(images)", f"(N, {getattr(model, 'num_features', 'D')}) features"))
    column = max(len(c) for c, _ in code) + 3
    out = "```python\n" + "\n".join(f"{c:<{column}}# {note}" if note else c for c, note in code) + "\n```\n"
    keywords = [*conditions.values(), *(o for n, o in model.accepts("sample").items() if n not in conditions)]
    if name is not None and keywords:
        out += "\n`sample` takes:\n\n" + "".join(f"- {_keyword(o, model)}\n" for o in keywords)
    estimator = model.accepts("log_prob") if model.has_log_prob() else {}
    estimator = [o for n, o in estimator.items() if n not in conditions]
    if estimator:
        out += "\n`log_prob` also takes:\n\n" + "".join(f"- {_keyword(o, model)}\n" for o in estimator)
    if name is not None:
        images_out = model.outputs == "images"
        shell = f"genzoo sample {load} --n 64 --out grid.png" if images_out else f"genzoo sample {load} --n 4"
        hint = " (`--label 3` for one class; without it, one column per class)" if label and images_out else ""
        if prompted:
            shell = f'genzoo sample {load} --prompt "{EXAMPLE_PROMPT}" --n 16 --out grid.png'
            hint = " (a list of prompts draws one image each; the empty prompt draws any digit)"
        elif "prompt" in conditions:
            hint += " (`--prompt TEXT` continues a text)"
        out += f"\nFrom the shell: `{shell}`{hint}; `genzoo eval {load}` prints its test metrics.\n"
    else:
        out += f"\nFrom the shell: `genzoo eval {load}` prints its test metrics.\n"
    architecture = _transformers(model)
    if architecture is not None and task == "text-generation":
        out += (f"\nThe folder is also a transformers checkpoint (`{architecture}`; no `trust_remote_code`):\n\n"
                "```python\nfrom transformers import pipeline\n"
                f'pipe = pipeline("text-generation", model="{run.load_as or "path/to/" + run.name}")\n```\n')
    return out + (f"\n{run.usage.strip()}\n" if run.usage.strip() else "")


#: the prompt of a text-to-image card's usage example
EXAMPLE_PROMPT = "a thick 7 leaning right"


def _keyword(option, model) -> str:
    """One option's line; a default that is "the model's" (a value in its config, e.g. guidance) is given too."""
    default = "" if option.type == LABELS_TYPE or option.default is None else f", default {option.default!r}"
    help = option.help
    if help.endswith("default: the model's") and isinstance(getattr(model, option.name, None), (int, float)):
        help += f", {getattr(model, option.name)!r}"
    return f"`{option.name}`: {option.spec()}{default}" + (f"; {help}" if help else "")


def _training(model: GenerativeModel, spec: DataSpec | None, run: Run) -> str:
    rows = [("recipe", f"`genzoo fit --config {run.recipe}`" if run.recipe else "not recorded")]
    if run.parent:
        rows.append(("fine-tuned from", f"`{run.parent}` (`--model.init_from {run.parent}`)"))
    rows.append(("data", _data(spec)))
    rows += [("seed", f"{run.seed} (`seed_everything`)" if run.seed is not None else "not set"),
             ("hardware", run.hardware or "not recorded"), ("training time", run.training_time or "not measured"),
             ("parameters", _parameters(model)), *run.rows]
    out = "| | |\n|---|---|\n" + "".join(f"| {k} | {_cell(v)} |\n" for k, v in rows)
    if run.config_text and len(run.config_text) <= MAX_CONFIG_CHARS:
        out += ("\n<details><summary>The run's full configuration (LightningCLI's config.yaml)</summary>\n\n"
                f"```yaml\n{run.config_text.strip()}\n```\n\n</details>\n")
    return out


def _data(spec: DataSpec | None) -> str:
    if spec is None:
        return "not recorded (the datamodule has no spec)"
    if spec.description.startswith(f"{spec.name}:"):
        return f"`{spec.name}`{spec.description[len(spec.name):]}"
    return f"`{spec.name}`: {spec.description}" if spec.description else f"`{spec.name}`"


def _parameters(model: GenerativeModel) -> str:
    """How many values the weights file holds, its size, and the share of each top-level part."""
    tensors = model.state_dict()
    total = sum(t.numel() for t in tensors.values())
    size = sum(t.numel() * t.element_size() for t in tensors.values()) / 1024
    parts: dict[str, int] = {}
    for key, t in tensors.items():
        parts[key.split(".", 1)[0]] = parts.get(key.split(".", 1)[0], 0) + t.numel()
    split = "; " + ", ".join(f"`{k}` {v:,}" for k, v in parts.items()) if 2 <= len(parts) <= 6 else ""
    return f"{total:,} ({size:,.0f} KB of weights){split}"


def _metrics(model: GenerativeModel, spec: DataSpec | None, metrics: dict[str, float], run: Run) -> str:
    if not metrics:
        return (f"This run measured none. `genzoo eval {run.load_as or run.name}` measures the test metrics of the "
                "data its config.json names.\n")
    out = f"Measured by {run.measured_by or 'the run'}:\n\n| metric | value |\n|---|---|\n"
    out += "".join(f"| {k} | {v:.{DIGITS}f} |\n" for k, v in metrics.items())
    if run.metric_notes.strip():
        out += f"\n{run.metric_notes.strip()}\n"
    if "fid" in metrics:
        out += "\n" + _image_quality(model, spec, metrics, run)
    if "valid" in metrics:
        out += "\n" + _molecule_quality(metrics, run)
    if "digit_acc" in metrics:
        out += "\n" + _faithfulness(metrics)
    return out


def _faithfulness(metrics: dict[str, float]) -> str:
    """Does the image show what the prompt said? The protocol of zoo.metrics.text_to_image, as a table."""
    from zoo.captions import held_out_text

    held = held_out_text()
    out = ("### Faithfulness to the prompt\n\n"
           "Every digit x thickness x slant combination is prompted in phrasings never used in training "
           "(`zoo.captions.EVAL_TEMPLATES`); the digit is read by `mnist-5k-classifier`, thickness and slant are "
           "measured on the pixels (`zoo.captions.words`). The held-out combinations were never in training "
           f"(composition): {held}.\n\n| accuracy | trained combinations | held-out combinations |\n|---|---|---|\n")
    for key, label in [("digit", "digit"), ("thickness", "thickness"), ("slant", "slant"), ("all", "all three")]:
        out += _row([label, f"{metrics[f'{key}_acc']:.1%}", f"{metrics[f'held_out_{key}_acc']:.1%}"])
    return out


def _molecule_quality(metrics: dict[str, float], run: Run) -> str:
    """MOSES's table: this model's row beside the published rows, and how the molecules were drawn."""
    from zoo.metrics.molecules import format_table

    n = int(metrics.get("n_molecules", 0))
    return (f"### MOSES metrics ({n:,} molecules; MOSES's protocol is 30,000)\n\n"
            f"Sampled with `sample(n, seed=...)`, {1000:,} per seed from the seed up, scored by genzoo's "
            "reimplementation of MOSES's metrics (`zoo.metrics.molecules`, checked against MOSES's own test values): "
            "validity, uniqueness and novelty on canonical SMILES; FCD (ChemNet, fcd_torch), SNN (Morgan radius 2, "
            "1,024 bits), Frag (BRICS) and Scaf (Bemis-Murcko) against MOSES's test set and scaffold test set. The "
            "published rows are the MOSES README's (means over 3 runs, GPU training).\n\n"
            + format_table(metrics, f"{run.name} (genzoo)") + "\n")


def _image_quality(model: GenerativeModel, spec: DataSpec | None, metrics: dict[str, float], run: Run) -> str:
    """What FID/KID/IS mean here: how many samples, drawn how, against what, with which feature extractor."""
    extractor = spec.feature_extractor if spec is not None else None
    samples = f"{run.n_generated:,} samples" if run.n_generated else "Samples"
    options = {k: v for k, v in run.sample_kwargs.items() if not isinstance(v, bool)}  # display switches say nothing
    drawn = f" drawn by `sample(n, {', '.join(f'{k}={v!r}' for k, v in options.items())})`" if options else ""
    balance = f"class-balanced (label i mod {model.num_classes}), seeded" if model.num_classes else "seeded"
    if takes_prompts(model):
        balance = ("seeded, each prompted with the description of one image of the split (its digit and measured "
                   "words, phrased by templates never used in training), cycling through the split")
    info = PRETRAINED.get(str(extractor))
    about = ""
    if info is not None:
        value = info.card_metrics().get(info.key_metric)
        about = f" ({_lower_first(info.description)}" + (
            f"; {info.key_metric_label} {value:.{DIGITS}f})" if value is not None else ")")
    out = (f"### Sample quality (features of `{extractor}`, not InceptionV3)\n\n"
           f"{samples}{drawn}, {balance}, scored by torchmetrics against the {run.split} split. The features are "
           f"those of genzoo's registered feature extractor `{extractor}`{about}; the Inception Score reads its class "
           "logits. These numbers compare only with numbers made with the same extractor, never with InceptionV3's.\n\n")
    floors = "floor_fid" in metrics
    out += ("| | this model | real-data floor | ratio |\n|---|---|---|---|\n" if floors else
            "| | this model |\n|---|---|\n")
    for key, label in [("fid", "FID (lower is better)"), ("kid", "KID (lower is better)"),
                       ("is", "Inception Score (higher is better" + (
                           f", at most {spec.num_classes})" if spec is not None and spec.num_classes else ")"))]:
        if key not in metrics:
            continue
        floor = metrics.get(f"floor_{key}")
        ratio = f"{metrics[key] / floor:.2f}x" if key == "fid" and floor else ""
        cells = [label, f"{metrics[key]:.{DIGITS}f}", *([f"{floor:.{DIGITS}f}" if floor is not None else "", ratio]
                                                        if floors else [])]
        out += _row(cells)
    if "cond_acc" in metrics:
        out += _row(["conditional accuracy (the extractor agrees with the label)", f"{metrics['cond_acc']:.1%}",
                     *(["", ""] if floors else [])])
    if floors:
        out += ("\nThe **real-data floor** (`floor_*`) scores the training split's images in place of samples: what a "
                "perfect generator would get against this split with that many images (two finite samples of one "
                "distribution never have FID 0). FID's bias shrinks as samples grow, so a generator very close to the "
                "data, scored with more samples than the training split holds, can land slightly under its floor.\n")
    return out


def _limitations(model: GenerativeModel, spec: DataSpec | None) -> str:
    data = f"Trained on `{spec.name}` only: it knows nothing of other data." if spec is not None else ""
    density = "" if model.has_log_prob() or model.outputs == "labels" else " It has no likelihood (`log_prob` raises)."
    return (data + density).strip() or "None recorded."


def _row(cells: list[str]) -> str:
    """A markdown table row; empty cells stay empty."""
    return "|" + "|".join(f" {_cell(c)} " if c else " " for c in cells) + "|\n"


def _lower_first(text: str) -> str:
    """A registry description inside a sentence ("Small convolutional ..." -> "small convolutional ...")."""
    return text[:1].lower() + text[1:]


def _cell(text: str) -> str:
    """A markdown table cell: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
