"""Anomaly detection: genzoo's detectors (zoo.anomaly.Detector) side by side with PyOD's.

    python benchmarks/anomaly.py                       # every protocol, 5 seeds (~10 minutes on one core)
    python benchmarks/anomaly.py --quick               # one seed (~2 minutes)
    python benchmarks/anomaly.py --protocols wine,wdbc --json out.json
    python benchmarks/anomaly.py --genzoo gmm+shifts,vae,ddpm --protocols digits   # the slower deep detectors too
    python benchmarks/anomaly.py --eval-split val      # one-class protocols on the validation split (tuning)

Every detector runs in this one process on the same splits with the same seeds and thread limit,
and reports AUROC and AUPRC (anomalies are the positive class; in percent, mean +- std over the
seeds), fit and scoring seconds, and scoring throughput (test samples per second).

Protocols:

- ``mnist-5k``: one-class MNIST (Deep SVDD's protocol, Ruff et al. 2018, scaled to genzoo's 5k MNIST):
  for each digit c, train on the training images of c only (400), test on the whole test split (500:
  c normal, the other nine digits anomalies); the score is the mean AUROC over the ten digits. Deep
  SVDD's 94.8 is its mean on the full MNIST (6,000 training images per digit, 10,000 test images).
- ``digits``: the same on scikit-learn's 8x8 digits (~125 training images per digit, 270 test images).
- ``wine``, ``wdbc``, ``digits-0``: ADBench's unsupervised tabular setting (Han et al. 2022): the
  training data are contaminated (labels unused), a stratified 60/40 split. ``wine``: scikit-learn's
  wine classes 1 and 2 (119 rows) plus the class-0 rows [5, 7, 9, 16, 32, 37, 48, 53, 56, 57] (indices
  into the 59 class-0 rows) as anomalies: 129 rows. ``wdbc``: breast_cancer's 357 benign rows plus the
  malignant rows [28, 33, 95, 117, 230, 323, 370, 498, 516, 564] (indices into the full table; each is
  malignant): 367 rows. ``digits-0``: the 8x8 digits 1-9 as normal, zeros as anomalies, downsampled
  (seed 0) to 3% of the rows, as ODDS's optdigits: 1,669 rows.

Seeds: seed s splits the data (the one-class protocols use the seeded dataset split of seed s; the
tables a 60/40 split with random_state s) and seeds every detector that has a random state.

Preprocessing, the same for every detector: tables are z-scored with the training split's mean and
standard deviation (zoo.anomaly.Standardizer, which genzoo's detectors apply themselves); images are
flattened pixels in [0, 1] for PyOD, and genzoo's image detectors take the images as they are.

Competitors, PyOD's defaults, with these changes: ``random_state`` = the seed (IForest, AutoEncoder),
``verbose=0`` (AutoEncoder). Non-finite PyOD scores (PCA on constant features of digits-0) are replaced
by the largest finite score plus one and counted in the ``nonfinite`` field.

genzoo's detectors (their settings below; reg_covar and the shift were chosen on the one-class
validation splits of seed 0, never on a test split):

- ``gmm``: one full-covariance Gaussian, -log p(x) (reg_covar: 0.1 on mnist-5k, 0.03 on digits, 1e-6 on tables).
- ``gmm+shifts``: the same, scored by the likelihood ratio against a background Gaussian of the training
  images circularly shifted by up to a third of the side (zoo.anomaly's ``background="shifts"``).
- ``gmm-diag``: a diagonal Gaussian; ``nb``: Gaussian naive Bayes on 5 k-means clusters.
- ``vae``, ``ddpm`` (opt-in, slow on a CPU): trained on the normal images for at most 90 seconds (epochs
  of at most 200); the VAE scored by -IWAE log p(x) (k=16), the DDPM by its denoising score (10 timesteps).

"fit s" is the detector's whole ``fit``: training and scoring the training data (for the threshold).

The last column compares each genzoo row with the best PyOD detector of the run: AUROC points above it,
and scoring throughput as a ratio (>1: genzoo faster).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads its BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zoo.anomaly import Detector, Standardizer  # noqa: E402

PROTOCOLS = ("mnist-5k", "digits", "wine", "wdbc", "digits-0")
ONE_CLASS = ("mnist-5k", "digits")
PYOD = ("IForest", "OCSVM", "KNN", "LOF", "KDE", "ECOD", "COPOD", "PCA", "AutoEncoder")
GENZOO_DEFAULT = ("gmm", "gmm+shifts", "gmm-diag", "nb")
GENZOO_ALL = (*GENZOO_DEFAULT, "vae", "ddpm")
WINE_OUTLIERS = [5, 7, 9, 16, 32, 37, 48, 53, 56, 57]  # indices into wine's class-0 rows
WDBC_OUTLIERS = [28, 33, 95, 117, 230, 323, 370, 498, 516, 564]  # indices into breast_cancer's rows
#: reg_covar of genzoo's Gaussians, chosen on the seed-0 validation split of each one-class protocol
REG_COVAR = {"mnist-5k": 0.1, "digits": 0.03}


# -- data -------------------------------------------------------------------------------------------


def one_class_splits(protocol: str, seed: int, eval_split: str) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, test images, test labels) of a one-class protocol's seeded split."""
    if protocol == "mnist-5k":
        from zoo.data.images import mnist_5k_split as split
    else:
        from zoo.data.digits import digits_split as split
    x, y = split("train", seed)
    xt, yt = split(eval_split, seed)
    return x, y, xt, yt


def table(protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a tabular protocol: y = 1 for the anomalies."""
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    if protocol == "wine":
        data = load_wine()
        zeros = np.flatnonzero(data.target == 0)
        rows = np.concatenate([np.flatnonzero(data.target != 0), zeros[WINE_OUTLIERS]])
        X, y = data.data[rows], (data.target[rows] == 0).astype(int)
        assert len(X) == 129 and y.sum() == 10, (len(X), y.sum())  # 119 normal + 10 anomalies
        return X, y
    if protocol == "wdbc":
        data = load_breast_cancer()  # target 0 = malignant, 1 = benign
        assert (data.target[WDBC_OUTLIERS] == 0).all(), "WDBC's outlier rows must be malignant rows of the full table"
        rows = np.concatenate([np.flatnonzero(data.target == 1), WDBC_OUTLIERS])
        X, y = data.data[rows], (data.target[rows] == 0).astype(int)
        assert len(X) == 367 and y.sum() == 10
        return X, y
    data = load_digits()
    rest, zeros = np.flatnonzero(data.target != 0), np.flatnonzero(data.target == 0)
    n_out = round(0.03 * len(rest) / 0.97)  # zeros are 3% of the rows
    picked = np.sort(np.random.default_rng(0).choice(zeros, n_out, replace=False))
    rows = np.concatenate([rest, picked])
    return data.data[rows].astype(np.float64), (data.target[rows] == 0).astype(int)


# -- detectors ---------------------------------------------------------------------------------------


def pyod_detector(name: str, seed: int):
    from pyod.models import auto_encoder, copod, ecod, iforest, kde, knn, lof, ocsvm, pca

    return {"IForest": lambda: iforest.IForest(random_state=seed), "OCSVM": ocsvm.OCSVM, "KNN": knn.KNN,
            "LOF": lof.LOF, "KDE": kde.KDE, "ECOD": ecod.ECOD, "COPOD": copod.COPOD, "PCA": pca.PCA,
            "AutoEncoder": lambda: auto_encoder.AutoEncoder(random_state=seed, verbose=0)}[name]()


def genzoo_detector(name: str, protocol: str, seed: int) -> Detector:
    reg = REG_COVAR.get(protocol, 1e-6)
    settings = {"gmm": dict(model="gmm", n_components=1, covariance_type="full", reg_covar=reg),
                "gmm+shifts": dict(model="gmm", n_components=1, covariance_type="full", reg_covar=reg,
                                   background="shifts"),
                "gmm-diag": dict(model="gmm", n_components=1, covariance_type="diag",
                                 reg_covar=reg if protocol in ONE_CLASS else 1e-6),
                "nb": dict(model="nb", num_classes=5, var_smoothing=1e-2 if protocol in ONE_CLASS else 1e-9),
                # trained for at most 90 s, so that fit (training and scoring the training images) stays under 2 minutes
                "vae": dict(model="vae", latent_dim=16, hidden=32, max_seconds=90.0, max_epochs=200),
                "ddpm": dict(model="diffusion", base=16, channel_mults=[1, 2], max_seconds=90.0, max_epochs=200)}
    return Detector(**settings[name], random_state=seed)


def finite(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Scores with NaN/inf replaced by the largest finite score + 1 (-inf by the smallest - 1), and how many."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if not bad.any():
        return scores, 0
    ok = scores[~bad]
    high, low = (ok.max() + 1, ok.min() - 1) if len(ok) else (1.0, -1.0)
    return np.where(np.isneginf(scores), low, np.where(bad, high, scores)), int(bad.sum())


def run_one(make: Callable[[], Any], x_train: Any, x_test: Any, y_test: np.ndarray) -> dict:
    """Fit on x_train, score x_test: AUROC, AUPRC (percent), seconds and samples/s."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    detector = make()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector.fit(x_train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        scores = detector.decision_function(x_test)
    score_s = time.perf_counter() - start
    scores, bad = finite(scores)
    return {"auroc": 100 * roc_auc_score(y_test, scores), "auprc": 100 * average_precision_score(y_test, scores),
            "fit_s": fit_s, "score_s": score_s, "n_test": len(y_test), "nonfinite": bad}


def evaluate(protocol: str, tool: str, name: str, seeds: list[int], eval_split: str, classes: list[int]) -> dict:
    """One detector on one protocol over every seed (and, one-class, every normal class)."""
    per_seed = []
    for seed in seeds:
        runs = []
        if protocol in ONE_CLASS:
            x, y, xt, yt = one_class_splits(protocol, seed, eval_split)
            for c in classes:
                normal = x[y == c]
                if tool == "pyod":
                    run = run_one(lambda: pyod_detector(name, seed), normal.flatten(1).numpy(),
                                  xt.flatten(1).numpy(), (yt != c).numpy().astype(int))
                else:
                    run = run_one(lambda: genzoo_detector(name, protocol, seed), normal, xt,
                                  (yt != c).numpy().astype(int))
                runs.append({**run, "normal_class": c})
        else:
            from sklearn.model_selection import train_test_split

            X, y = table(protocol)
            Xtr, Xte, _, yte = train_test_split(X, y, test_size=0.4, random_state=seed, stratify=y)
            if tool == "pyod":
                z = Standardizer(torch.from_numpy(Xtr))
                runs.append(run_one(lambda: pyod_detector(name, seed), z(torch.from_numpy(Xtr)).numpy(),
                                    z(torch.from_numpy(Xte)).numpy(), yte))
            else:  # the detector z-scores with the training split itself
                runs.append(run_one(lambda: genzoo_detector(name, protocol, seed), Xtr, Xte, yte))
        per_seed.append({"seed": seed, "auroc": float(np.mean([r["auroc"] for r in runs])),
                         "auprc": float(np.mean([r["auprc"] for r in runs])),
                         "fit_s": float(np.mean([r["fit_s"] for r in runs])),
                         "score_s": float(np.mean([r["score_s"] for r in runs])),
                         "n_test": runs[0]["n_test"], "nonfinite": int(sum(r["nonfinite"] for r in runs)),
                         "per_class": {str(r["normal_class"]): round(r["auroc"], 2) for r in runs if "normal_class" in r}})
    row = {"protocol": protocol, "tool": tool, "detector": name, "seeds": seeds}
    for key in ("auroc", "auprc", "fit_s", "score_s"):
        values = [s[key] for s in per_seed]
        row[key], row[key + "_std"] = float(np.mean(values)), float(np.std(values))
    row["samples_per_s"] = per_seed[0]["n_test"] / max(row["score_s"], 1e-9)
    row["nonfinite"] = sum(s["nonfinite"] for s in per_seed)
    row["per_seed"] = per_seed
    if protocol in ONE_CLASS:
        row["per_class_auroc"] = {c: float(np.mean([s["per_class"][c] for s in per_seed])) for c in per_seed[0]["per_class"]}
    return row


# -- reporting --------------------------------------------------------------------------------------


def print_table(protocol: str, rows: list[dict]) -> None:
    pyod = [r for r in rows if r["tool"] == "pyod"]
    best = max(pyod, key=lambda r: r["auroc"]) if pyod else None
    print(f"\n{protocol}" + (f"  (best PyOD: {best['detector']} {best['auroc']:.1f})" if best else ""))
    header = f"{'detector':<20} {'AUROC':>12} {'AUPRC':>12} {'fit s':>8} {'score s':>8} {'samples/s':>10}  vs best PyOD"
    print(header)
    print("-" * len(header))
    for r in sorted(rows, key=lambda r: -r["auroc"]):
        versus = ""
        if best is not None and r["tool"] == "genzoo":
            r["vs_best_pyod_points"] = r["auroc"] - best["auroc"]
            r["vs_best_pyod_speed"] = r["samples_per_s"] / best["samples_per_s"]
            versus = f"{r['vs_best_pyod_points']:+5.1f} pts, {r['vs_best_pyod_speed']:.2g}x speed"
        note = f"  ({r['nonfinite']} non-finite scores)" if r["nonfinite"] else ""
        name = f"{r['tool']} {r['detector']}"
        print(f"{name:<20} {r['auroc']:6.1f} ± {r['auroc_std']:3.1f} {r['auprc']:6.1f} ± {r['auprc_std']:3.1f} "
              f"{r['fit_s']:8.3f} {r['score_s']:8.3f} {r['samples_per_s']:10.0f}  {versus}{note}")
    if protocol in ONE_CLASS:
        print("per normal class (AUROC): " + "; ".join(
            f"{r['tool']} {r['detector']}: " + " ".join(f"{v:.1f}" for v in r["per_class_auroc"].values())
            for r in sorted(rows, key=lambda r: -r["auroc"])[:3]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed (default 5)")
    parser.add_argument("--seeds", type=int, help="how many seeds (0..n-1); default 5, --quick 1")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated, of {', '.join(PROTOCOLS)}")
    parser.add_argument("--pyod", default=",".join(PYOD), help="PyOD detectors (comma-separated; 'none' for none)")
    parser.add_argument("--genzoo", default=",".join(GENZOO_DEFAULT),
                        help=f"genzoo detectors, of {', '.join(GENZOO_ALL)} (default: the fast ones)")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9", help="normal classes of the one-class protocols")
    parser.add_argument("--eval-split", default="test", choices=["val", "test"],
                        help="the one-class protocols' evaluation split (val: for choosing settings)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (BLAS: OMP_NUM_THREADS, default 1)")
    parser.add_argument("--json", type=Path, help="write every row (with per-seed and per-class numbers) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds or (1 if args.quick else 5)))
    pick = lambda text, known: [] if text == "none" else [t for t in text.split(",") if t]  # noqa: E731
    protocols, pyod, genzoo = pick(args.protocols, PROTOCOLS), pick(args.pyod, PYOD), pick(args.genzoo, GENZOO_ALL)
    for given, known, what in [(protocols, PROTOCOLS, "protocol"), (pyod, PYOD, "PyOD detector"),
                               (genzoo, GENZOO_ALL, "genzoo detector")]:
        unknown = sorted(set(given) - set(known))
        if unknown:
            parser.error(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    classes = [int(c) for c in args.classes.split(",")]
    print(f"anomaly benchmark: seeds {seeds}, {args.threads} thread(s), {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}", flush=True)
    rows = []
    for protocol in protocols:
        found = []
        for tool, names in (("genzoo", genzoo), ("pyod", pyod)):
            for name in names:
                if protocol not in ONE_CLASS and name in ("gmm+shifts", "vae", "ddpm"):
                    continue  # image-only detectors
                row = evaluate(protocol, tool, name, seeds, args.eval_split, classes)
                print(f"  {protocol:<9} {tool} {name:<12} AUROC {row['auroc']:5.1f} ± {row['auroc_std']:.1f}  "
                      f"fit {row['fit_s']:.3f} s  score {row['score_s']:.3f} s", flush=True)
                found.append(row)
        print_table(protocol, found)
        rows += found
    if args.json:
        args.json.write_text(json.dumps({"seeds": seeds, "threads": args.threads, "eval_split": args.eval_split,
                                         "rows": rows}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
