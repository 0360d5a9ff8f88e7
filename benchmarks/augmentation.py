"""Data augmentation with the zoo's class-conditional generators: does a digits classifier trained on a few
real images per class (plus the usual random shifts) classify better with synthetic labelled samples added?

    python benchmarks/augmentation.py            # 5, 20 and all real images per class, 3 seeds (~6 minutes)
    python benchmarks/augmentation.py --quick    # 5 real images per class, 1 seed
    python benchmarks/augmentation.py --json out.json

Each row trains the packaged classifier's architecture (recipes/digits-classifier.yaml) for the same
number of steps with Lightning, on ``DigitsDataModule(train_per_class=k, synthetic=MODEL,
synthetic_per_class=n)``: the first k real training images of each digit, plus n samples of each digit
from MODEL. It reports test accuracy (270 real images), mean and range over seeds, next to the same
training without synthetic data. Caveat: the packaged generators were trained on the full training
split (1,257 images), so with k < 126 they also carry what the classifier was not shown: this measures
a pretrained generator as a data source, not augmentation from the k images alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

GENERATORS = ("nb-digits", "cvae-digits", "dcgan-digits", "ddpm-digits")


def test_accuracy(train_per_class: int | None, synthetic: str | None, per_class: int, seed: int, steps: int) -> float:
    """Test accuracy of the recipe's classifier after `steps` steps on this training set."""
    import lightning as L

    import zoo
    from zoo.data.digits import DigitsDataModule
    from zoo.models.classifier import DigitsClassifier
    from zoo.systems.classifier import ClassifierSystem

    L.seed_everything(seed, verbose=False)
    dm = DigitsDataModule(train_per_class=train_per_class, synthetic=synthetic, synthetic_per_class=per_class,
                          synthetic_seed=seed)
    if synthetic is not None:
        dm.provide_synthetic(zoo.load(synthetic))
    system = ClassifierSystem(DigitsClassifier(hidden=32, num_features=64, dropout=0.2))
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, default_root_dir=root)
        trainer.fit(system, datamodule=dm)
        return trainer.test(system, datamodule=dm, verbose=False)[0]["test/acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 real images per class and one seed")
    parser.add_argument("--per-class", type=int, default=100, help="synthetic images per class")
    parser.add_argument("--steps", type=int, default=600, help="training steps of every classifier (batch 64)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    sizes, seeds = ((5,), 1) if args.quick else ((5, 20, None), args.seeds)
    import lightning  # noqa: F401  (it sets its loggers' levels on import: quiet them after)

    for name in ("lightning.pytorch", "lightning.fabric"):  # no Trainer banners around the table
        logging.getLogger(name).setLevel(logging.ERROR)
    rows, start = [], time.perf_counter()
    print(f"test accuracy (%), mean [min, max] over {seeds} seed(s); {args.per_class} synthetic images per class, "
          f"{args.steps} steps")
    print(f"{'real per class':>14} | {'real only':>18} | " + " | ".join(f"{g:>18}" for g in GENERATORS))
    for k in sizes:
        cells = []
        for synthetic in (None, *GENERATORS):
            accs = [100 * test_accuracy(k, synthetic, args.per_class, seed, args.steps) for seed in range(seeds)]
            rows.append({"train_per_class": k, "synthetic": synthetic, "synthetic_per_class": args.per_class,
                         "steps": args.steps, "test_acc": accs})
            cells.append(f"{sum(accs) / len(accs):5.1f} [{min(accs):4.1f}, {max(accs):4.1f}]")
        print(f"{'all' if k is None else k:>14} | " + " | ".join(f"{c:>18}" for c in cells))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
