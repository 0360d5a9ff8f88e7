"""Make a pretrained checkpoint from its recipe: train, package, evaluate, write the model card.

    python scripts/release.py vae-digits            # genzoo fit --config recipes/vae-digits.yaml, then package
    python scripts/release.py vae-digits --run runs/vae-digits/version_0   # package an existing run
    python scripts/release.py vae-digits --card-only   # keep the packaged weights, re-evaluate, rewrite the card

Writes zoo/pretrained/<name>/{config.json, model.safetensors, README.md} (shipped in the wheel)
and model_cards/<name>.md (the same card). The card's numbers are the ones `genzoo eval <name>`
prints, measured here, seeded. Image generators (vae, gan, diffusion) get FID/KID/IS against the
test split next to the real-data floor; `digits-classifier` (the metrics' feature extractor) gets
its test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
from pathlib import Path

import torch
from release_common import front_matter, metric_fields, train

ROOT = Path(__file__).resolve().parents[1]

HEADER = """{front_matter}
# {name}

{description}. Trained by genzoo's recipe `recipes/{name}.yaml`; load it with

```python
{usage}
```
{after_usage}
## Training

| | |
|---|---|
| recipe | `genzoo fit --config recipes/{name}.yaml` |
| data | scikit-learn digits, 8x8 greyscale, pixel values 0..16 scaled to [0, 1] (/16) |
| split | seeded permutation (seed 0): 1,257 train / 270 validation / 270 test |
| seed | 0 (`seed_everything`) |
| hardware | {hardware} |
| training time | {train_time} |
| parameters | {params:,} ({size_kb:.0f} KB in safetensors){params_note} |

## Test metrics

Measured by `genzoo eval {eval_target}` on the 270 test images (seed 0):

| metric | value |
|---|---|
{metric_table}
"""

GENERATOR_USAGE = """import zoo
model = zoo.load("{name}")
images = model.sample(16, seed=0{label})   # (16, 1, 8, 8) in [0, 1]"""
SHELL_USAGE = "\nor sample a grid from the shell: `genzoo sample {name} --n 64 --out grid.png`{label}.\n"

CLASSIFIER_USAGE = """import zoo.metrics
clf = zoo.metrics.load_extractor("digits-classifier")      # or zoo.models.classifier.DigitsClassifier.from_pretrained(folder)
clf.predict(images)                         # (N,) classes of (N, 1, 8, 8) images in [0, 1]
clf.features(images)                        # (N, 64): what FID and KID compare"""

VAE_NOTES = """
Likelihoods are in nats per image; pixels are a 17-level categorical, so log p(x) is a true log probability.

- **elbo**: evidence lower bound, one posterior sample per image.
- **iwae**: importance-weighted estimate of log p(x) with k=1,000 samples (Burda et al. 2016), a tighter bound.
- **recon_nll**: -E_q[log p(x|z)]; **kl**: KL(q(z|x) || p(z)); **recon_mse**: squared error of the mean reconstruction in [0, 1] pixel units.
"""

GAN_NOTES = """
- **d_loss**, **g_loss**: the {loss} losses of discriminator and generator on test images; **d_real**, **d_fake**: the
  discriminator's mean score on test and on generated images. Training diagnostics, not quality measures.
"""

DIFFUSION_NOTES = """
- **loss**: the denoising loss (MSE of the {prediction} prediction at uniform random timesteps) on test images.
"""

IMAGE_NOTES = """
### Sample quality (features of `digits-classifier`, not InceptionV3)

{n:,} samples{how}, {balance}, scored by torchmetrics against the 270 test images. The features are the
64 penultimate activations of genzoo's packaged `digits-classifier` (test accuracy {acc:.1%}); the
Inception Score reads its 10 logits. InceptionV3 would be meaningless on 8x8 digits, so these numbers
compare only with other numbers made the same way.

| | this model | real-data floor | ratio |
|---|---|---|---|
| FID (lower is better) | {fid:.3f} | {floor_fid:.3f} | {fid_ratio:.2f}x |
| KID (lower is better) | {kid:.3f} | {floor_kid:.3f} | |
| Inception Score (higher is better, at most 10) | {is_:.3f} | {floor_is:.3f} | |
{cond_row}
The **real-data floor** (`floor_*`) scores the 1,257 training images in place of samples: what a perfect
generator would get against this test split with this many images (two finite samples of one distribution
never have FID 0). FID's bias shrinks as samples grow, so a generator very close to the data, scored with
2,000 samples, can land slightly under a floor measured with 1,257.
"""

CLASSIFIER_NOTES = """
- **acc**: test accuracy; **loss**: test cross-entropy (nats).

This network is the feature extractor of the zoo's image metrics: its 64 penultimate activations feed
torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance`, its logits `InceptionScore`, and its
predictions the conditional accuracy of class-conditional generators. Retraining it changes every FID in
the zoo: keep it fixed.
"""

LIMITS = {
    "vae": "8x8 digits only; a VAE's samples are the mean of p(x|z), smoother than real digits.",
    "gan": "8x8 digits only; a GAN has no likelihood (`log_prob` raises) and may miss modes of the data.",
    "diffusion": "8x8 digits only; diffusion has no exact likelihood here (`log_prob` raises); sampling costs one "
                 "UNet call per step (two with guidance != 1).",
    "classifier": "Trained on 1,257 clean 8x8 digits; its features describe digits, not other images.",
}

DATASETS = {"digits": ("sklearn-digits", "scikit-learn digits")}
#: packaged names outside the registry's PRETRAINED (not generators): family, dataset, description
EXTRA = {"digits-classifier": ("classifier", "digits",
                               "Small convolutional digits classifier, the feature extractor of genzoo's FID/KID/IS")}


def describe(name: str) -> tuple[str, str, str]:
    """(family, dataset, description) of a packaged name."""
    if name in EXTRA:
        return EXTRA[name]
    from zoo.registry import model_info

    info = model_info(name)
    return info.family, info.dataset, info.description


def previous_row(card_path: Path, row: str) -> str | None:
    """A row's value in the training table of an existing card (to keep it when only the card is rewritten)."""
    if not card_path.is_file():
        return None
    match = re.search(rf"^\| {row} \| (.+) \|$", card_path.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def image_notes(model, metrics: dict[str, float]) -> str:
    from zoo.metrics import load_extractor
    from zoo.evaluate import N_GENERATED, build_system

    system = build_system(model)
    kwargs = system.metric_sample_kwargs() if hasattr(system, "metric_sample_kwargs") else {}
    how = ""
    if model.family == "diffusion":
        guidance = kwargs.get("guidance", model.guidance)
        how = f" (DDIM, {kwargs['steps']} steps, guidance {guidance:g}, EMA weights)"
    elif model.family == "gan":
        how = " (EMA generator)"
    conditional = getattr(model, "num_classes", None)
    balance = "class-balanced (label i mod 10), seeded" if conditional else "seeded"
    cond_row = (f"| conditional accuracy (classifier agrees with the label) | {metrics['cond_acc']:.1%} | | |\n"
                if conditional else "")
    from zoo.data.digits import digits_split

    x, y = digits_split("test")
    acc = float((load_extractor("digits-classifier").predict(x) == y).float().mean())
    return IMAGE_NOTES.format(n=N_GENERATED, how=how, balance=balance, acc=acc, fid=metrics["fid"],
                              floor_fid=metrics["floor_fid"], fid_ratio=metrics["fid"] / metrics["floor_fid"],
                              kid=metrics["kid"], floor_kid=metrics["floor_kid"], is_=metrics["is"],
                              floor_is=metrics["floor_is"], cond_row=cond_row)


def family_notes(model, metrics: dict[str, float], recipe_hparams: dict) -> str:
    family = model.family
    if family == "vae":
        notes = VAE_NOTES
    elif family == "gan":
        notes = GAN_NOTES.format(loss=recipe_hparams.get("loss", "hinge"))
    elif family == "diffusion":
        notes = DIFFUSION_NOTES.format(prediction=model.prediction)
    else:
        return CLASSIFIER_NOTES
    return notes + image_notes(model, metrics)


def usage(name: str, model) -> tuple[str, str]:
    """The Python example of the card, and the line after it."""
    if model.family == "classifier":
        return CLASSIFIER_USAGE, ""
    conditional = getattr(model, "num_classes", None)
    shell = " (`--label 3` draws threes; without it, one column per class)" if conditional else ""
    return (GENERATOR_USAGE.format(name=name, label=", labels=3" if conditional else ""),
            SHELL_USAGE.format(name=name, label=shell))


def recipe_model_args(name: str) -> dict:
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    return recipe["model"].get("init_args", {})


def write_card(name: str, target: Path, train_time: str, hardware: str) -> dict[str, float]:
    import zoo
    from zoo import hub
    from zoo.evaluate import evaluate

    family, dataset_key, description = describe(name)
    metrics = evaluate(str(target), split="test", seed=0)
    model = zoo.load(target)
    weights = hub.open_folder(target).tensors()
    dataset_id, dataset = DATASETS[dataset_key]
    is_generator = family != "classifier"
    example, after = usage(name, model)
    task = "unconditional-image-generation" if is_generator else "image-classification"
    tags = ["generative" if is_generator else "feature-extractor", family, task]
    card = HEADER.format(
        front_matter=front_matter(name, tags, task, dataset_id, dataset, metrics),
        name=name, description=description, usage=example, after_usage=after,
        eval_target=f"zoo/pretrained/{name}" if name in EXTRA else name,
        **metric_fields(metrics),
        hardware=hardware, train_time=train_time, params=sum(t.numel() for t in weights.values()),
        params_note={"gan": "; counts the discriminator and the EMA generator",
                     "diffusion": "; counts the UNet and its EMA copy"}.get(family, ""),
        size_kb=(target / hub.WEIGHTS_NAME).stat().st_size / 1024,
    ) + family_notes(model, metrics, recipe_model_args(name)) + f"\n## Limits\n\n{LIMITS[family]}\n"
    (target / hub.CARD_NAME).write_text(card)
    (ROOT / "model_cards" / f"{name}.md").write_text(card)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--run", type=Path, help="an existing run folder (skip training)")
    parser.add_argument("--train-time", help="training time to state when --run is given")
    parser.add_argument("--threads", type=int, help="torch threads training used, to state when --run is given")
    parser.add_argument("--card-only", action="store_true",
                        help="keep the packaged weights and the card's training rows; re-evaluate and rewrite the card")
    args = parser.parse_args()

    from zoo import hub

    describe(args.name)  # an unknown name fails here, before any training
    target = ROOT / "zoo" / "pretrained" / args.name
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    hardware = f"{platform.machine()} CPU, {threads} thread{'s' if threads > 1 else ''} (torch {torch.__version__})"
    if args.card_only:
        old = target / hub.CARD_NAME
        train_time = previous_row(old, "training time") or args.train_time or "not measured"
        hardware = previous_row(old, "hardware") or hardware
    else:
        if args.run:
            run, train_time = args.run, args.train_time or "not measured"
        else:
            run, seconds = train(args.name)
            train_time = f"{seconds:.0f} s wall (including validation each epoch)"
        target.mkdir(parents=True, exist_ok=True)
        for file in (hub.CONFIG_NAME, hub.WEIGHTS_NAME):
            shutil.copyfile(run / "pretrained" / file, target / file)
    metrics = write_card(args.name, target, train_time, hardware)
    print(json.dumps({"name": args.name, "train_time": train_time, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
