"""Faithfulness of text-to-image digits: does the image show what the prompt asked for?

Protocol (``faithfulness``): every digit x thickness x slant combination of ``zoo.captions`` is prompted
through the ``EVAL_TEMPLATES`` (phrasings never used in training), `per_combination` samples each, and
`per_held_out` for each combination of ``HELD_OUT`` (never in training: composition). Each image is
then checked by instruments that never saw the prompt:

- ``digit_acc``: the data's classifier (``mnist-5k-classifier``) predicts the prompt's digit;
- ``thickness_acc``, ``slant_acc``: the measurement (``zoo.captions.words``) falls in the prompt's bin;
- ``all_acc``: all three at once;
- the same with a ``held_out_`` prefix on the held-out combinations.

``prompt_metrics`` gives FID/KID/IS against the real split for the prompts that describe that split's
own images (each real image's digit and measured words, phrased by the evaluation templates), next to
the real-data floor. ``guidance_sweep`` repeats both over guidance scales; ``plot_sweep`` draws it.

Example::

    model = zoo.load("ddpm-mnist-5k-text")
    faithfulness(model, "mnist-5k-classifier", sample_kwargs={"steps": 20})   # {"digit_acc": ..., ...}
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from zoo.captions import ATTRIBUTES, EVAL_TEMPLATES, HELD_OUT, prompt_for, words
from zoo.metrics.image import ImageMetrics, _batches, batch_size_for, compare, real_data_floor

GUIDANCES = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


def combinations() -> list[tuple[int, str, str]]:
    """Every (digit, thickness word, slant word)."""
    return [(d, t, s) for d in range(10) for t in ATTRIBUTES["thickness"] for s in ATTRIBUTES["slant"]]


@torch.no_grad()
def draw(model, prompts: Sequence[str], seed: int = 0, sample_kwargs: dict[str, Any] | None = None,
         progress: bool | None = None) -> Tensor:
    """One image per prompt (N, C, H, W), in seeded batches (seed, seed + 1, ...), with a tqdm bar."""
    from tqdm.auto import tqdm

    size = batch_size_for(tuple(model.image_shape))
    starts = range(0, len(prompts), size)
    bar = tqdm(starts, desc=f"sampling {len(prompts):,} prompted images", leave=False,
               disable=None if progress is None else not progress)
    return torch.cat([model.sample(len(prompts[s:s + size]), seed=seed + i, prompt=list(prompts[s:s + size]),
                                   **(sample_kwargs or {})).cpu() for i, s in enumerate(bar)])


def _accuracies(images: Tensor, wanted: list[tuple[int, str, str]], classifier) -> dict[str, float]:
    digits = torch.cat([classifier.predict(b) for b in _batches(images)]).cpu()
    bins = words(images)
    hit = {"digit": digits == torch.tensor([d for d, _, _ in wanted])}
    for i, name in enumerate(ATTRIBUTES, start=1):
        hit[name] = bins[name] == torch.tensor([ATTRIBUTES[name].index(w[i]) for w in wanted])
    hit["all"] = hit["digit"] & hit["thickness"] & hit["slant"]
    return {f"{k}_acc": float(v.float().mean()) for k, v in hit.items()}


@torch.no_grad()
def faithfulness(model, classifier: str | torch.nn.Module, *, per_combination: int = 10, per_held_out: int = 50,
                 seed: int = 0, sample_kwargs: dict[str, Any] | None = None,
                 progress: bool | None = None) -> dict[str, float]:
    """Digit and attribute accuracy of prompted samples (module docstring), on the trained and held-out combinations."""
    from zoo.metrics.features import load_extractor

    classifier = load_extractor(classifier) if isinstance(classifier, str) else classifier
    held = set(HELD_OUT)
    rng = random.Random(seed)
    wanted = [c for c in combinations() if c not in held for _ in range(per_combination)]
    wanted += [c for c in HELD_OUT for _ in range(per_held_out)]
    prompts = [prompt_for(*c, rng, EVAL_TEMPLATES) for c in wanted]
    images = draw(model, prompts, seed, sample_kwargs, progress)
    is_held = torch.tensor([c in held for c in wanted])
    out = _accuracies(images[~is_held], [c for c in wanted if c not in held], classifier)
    out.update({f"held_out_{k}": v for k, v in
                _accuracies(images[is_held], [c for c in wanted if c in held], classifier).items()})
    return out


def describe(images: Tensor, labels: Tensor, seed: int = 0) -> list[str]:
    """A prompt for each real image: its digit and its measured words, phrased by ``EVAL_TEMPLATES``."""
    bins = words(images)
    rng = random.Random(seed)
    return [prompt_for(int(y), ATTRIBUTES["thickness"][int(t)], ATTRIBUTES["slant"][int(s)], rng, EVAL_TEMPLATES)
            for y, t, s in zip(labels, bins["thickness"], bins["slant"])]


@torch.no_grad()
def prompt_metrics(model, real: Tensor, labels: Tensor, extractor: str | torch.nn.Module, *, n: int = 2000,
                   seed: int = 0, sample_kwargs: dict[str, Any] | None = None,
                   metrics: ImageMetrics | None = None, progress: bool | None = None) -> dict[str, float]:
    """FID/KID/IS of `n` images prompted with the descriptions of the `real` images (cycled) against them."""
    prompts = describe(real, labels, seed)
    prompts = [prompts[i % len(prompts)] for i in range(n)]
    return compare(draw(model, prompts, seed, sample_kwargs, progress), real, extractor, metrics, seed)


def text_to_image_metrics(model, real: Tensor, labels: Tensor, train: Tensor, extractor: str, *, n: int = 2000,
                          seed: int = 0, sample_kwargs: dict[str, Any] | None = None,
                          progress: bool | None = None) -> dict[str, float]:
    """What ``genzoo eval`` reports for a text-to-image model: faithfulness, FID/KID/IS and the floor (floor_*);
    `progress`: the sampling bars (None: on a terminal)."""
    out = faithfulness(model, extractor, seed=seed, sample_kwargs=sample_kwargs, progress=progress)
    out.update(prompt_metrics(model, real, labels, extractor, n=n, seed=seed, sample_kwargs=sample_kwargs,
                              progress=progress))
    out.update({f"floor_{k}": v for k, v in real_data_floor(train, real, extractor, seed=seed).items()})
    return dict(sorted(out.items()))


def guidance_sweep(model, real: Tensor, labels: Tensor, extractor: str, *, guidances: Sequence[float] = GUIDANCES,
                   n: int = 500, per_combination: int = 2, per_held_out: int = 10, seed: int = 0,
                   sample_kwargs: dict[str, Any] | None = None) -> list[dict[str, float]]:
    """Faithfulness and FID at each guidance scale (smaller samples than ``text_to_image_metrics``)."""
    rows = []
    for g in guidances:
        kwargs = {**(sample_kwargs or {}), "guidance": float(g)}
        row = {"guidance": float(g), **faithfulness(model, extractor, per_combination=per_combination,
                                                    per_held_out=per_held_out, seed=seed, sample_kwargs=kwargs)}
        row.update(prompt_metrics(model, real, labels, extractor, n=n, seed=seed, sample_kwargs=kwargs))
        rows.append(row)
    return rows


def plot_sweep(rows: list[dict[str, float]], path: str | Path, floor_fid: float | None = None) -> Path:
    """A PNG of the sweep: accuracies and FID against the guidance scale (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = [r["guidance"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in [("digit_acc", "digit"), ("thickness_acc", "thickness"), ("slant_acc", "slant"),
                       ("held_out_all_acc", "held-out, all three")]:
        left.plot(g, [r[key] for r in rows], marker="o", label=label)
    left.set(xlabel="guidance scale", ylabel="accuracy (unseen phrasings)", ylim=(0, 1.02))
    left.legend()
    left.grid(alpha=0.3)
    right.plot(g, [r["fid"] for r in rows], marker="o", color="black", label="FID")
    if floor_fid is not None:
        right.axhline(floor_fid, linestyle="--", color="grey", label="real-data floor")
    right.set(xlabel="guidance scale", ylabel="FID (mnist-5k-classifier features)")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
