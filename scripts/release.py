"""Make a pretrained checkpoint from its recipe: train, package, evaluate, write the model card.

    python scripts/release.py vae-digits            # genzoo fit --config recipes/vae-digits.yaml, then package
    python scripts/release.py vae-digits --run runs/vae-digits/version_0   # package an existing run

Writes zoo/pretrained/<name>/{config.json, model.safetensors, README.md} (shipped in the wheel)
and model_cards/<name>.md (the same card). The card's numbers are the ones `genzoo eval <name>`
prints, measured here, seeded.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

CARD = """---
license: apache-2.0
library_name: genzoo
tags:
- genzoo
- generative
- {family}
- image-generation
datasets:
- {dataset_id}
metrics:
{metric_names}
model-index:
- name: {name}
  results:
  - task:
      type: unconditional-image-generation
    dataset:
      name: {dataset}
      type: {dataset_id}
      split: test
    metrics:
{metric_entries}
---

# {name}

{description}. Trained by genzoo's recipe `recipes/{name}.yaml`; load it with

```python
import zoo
model = zoo.load("{name}")
images = model.sample(16, seed=0)   # (16, 1, 8, 8) in [0, 1]
```

or sample a grid from the shell: `genzoo sample {name} --n 64 --out grid.png`.

## Training

| | |
|---|---|
| recipe | `genzoo fit --config recipes/{name}.yaml` |
| data | scikit-learn digits, 8x8 greyscale, pixel values 0..16 scaled to [0, 1] (/16) |
| split | seeded permutation (seed 0): 1,257 train / 270 validation / 270 test |
| seed | 0 (`seed_everything`) |
| hardware | {hardware} |
| training time | {train_time} |
| parameters | {params:,} ({size_kb:.0f} KB in safetensors) |

## Test metrics

Measured by `genzoo eval {name}` on the 270 test images (seed 0; nats per image;
pixels are a 17-level categorical, so log p(x) is a true log probability):

| metric | value |
|---|---|
{metric_table}

- **elbo**: evidence lower bound, one posterior sample per image.
- **iwae**: importance-weighted estimate of log p(x) with k=1,000 samples (Burda et al. 2016), a tighter bound.
- **recon_nll**: -E_q[log p(x|z)]; **kl**: KL(q(z|x) || p(z)); **recon_mse**: squared error of the mean reconstruction in [0, 1] pixel units.

## Limits

8x8 digits only; a VAE's samples are the mean of p(x|z), smoother than real digits.
"""

DESCRIPTIONS = {"digits": ("sklearn-digits", "scikit-learn digits")}


def train(name: str) -> tuple[Path, float]:
    recipe = ROOT / "recipes" / f"{name}.yaml"
    root = ROOT / "runs" / f"release-{name}"
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "--config", str(recipe),
                    "--trainer.default_root_dir", str(root)], check=True, cwd=ROOT)
    return root / "version_0", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--run", type=Path, help="an existing run folder (skip training)")
    parser.add_argument("--train-time", help="training time to state when --run is given")
    args = parser.parse_args()

    from zoo import hub
    from zoo.registry import model_info
    from zoo.systems.evaluate import evaluate

    info = model_info(args.name)
    if args.run:
        run, train_time = args.run, args.train_time or "not measured"
    else:
        run, seconds = train(args.name)
        train_time = f"{seconds:.0f} s wall (including validation each epoch)"
    target = ROOT / "zoo" / "pretrained" / args.name
    target.mkdir(parents=True, exist_ok=True)
    for file in (hub.CONFIG_NAME, hub.WEIGHTS_NAME):
        shutil.copyfile(run / "pretrained" / file, target / file)

    metrics = evaluate(str(target), split="test", seed=0)
    weights = hub.read_weights(target)
    dataset_id, dataset = DESCRIPTIONS[info.dataset]
    card = CARD.format(
        name=args.name, family=info.family, description=info.description, dataset=dataset, dataset_id=dataset_id,
        metric_names="\n".join(f"- {k}" for k in metrics),
        metric_entries="\n".join(f"    - type: {k}\n      value: {v:.3f}" for k, v in metrics.items()),
        metric_table="\n".join(f"| {k} | {v:.3f} |" for k, v in metrics.items()),
        hardware=f"{platform.machine()} CPU, {torch.get_num_threads()} threads (torch {torch.__version__})",
        train_time=train_time, params=sum(t.numel() for t in weights.values()),
        size_kb=(target / hub.WEIGHTS_NAME).stat().st_size / 1024,
    )
    (target / hub.CARD_NAME).write_text(card)
    (ROOT / "model_cards" / f"{args.name}.md").write_text(card)
    print(json.dumps({"name": args.name, "train_time": train_time, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
