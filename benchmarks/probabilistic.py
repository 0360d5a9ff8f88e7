"""GMM, HMM and naive Bayes: genzoo's torch layers side by side with scikit-learn, hmmlearn and pomegranate.

    python benchmarks/probabilistic.py            # the issue's workloads (minutes on 2 CPU cores)
    python benchmarks/probabilistic.py --quick    # scaled down, under a minute
    python benchmarks/probabilistic.py --json out.json --threads 1

Every tool runs in this one process on the same seeded synthetic data, from the same initial
parameters (a shared k-means start for the mixtures), for the same number of EM iterations
(convergence checks disabled), with the same thread limit for torch and NumPy's BLAS. Each row
reports wall seconds and the final mean log-likelihood per sample as the tool itself computes it
(for the classifiers: mean log-probability of the true class, from ``predict_proba``). The ratio
column is the fastest *other* tool's time divided by the row's time, on genzoo's rows.

HMM rows come from ``benchmarks/hmm_workloads.py`` (``hmm_rows(quick)``), when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

OURS = "genzoo"


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    """(seconds, value) of one call."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, float(value)


REPEAT = 1  # set by --repeat: each row reports the fastest of this many runs (the machine may be shared)


def row(workload: str, tool: str, fn: Callable[[], float]) -> dict:
    seconds, ll = min(timed(fn) for _ in range(REPEAT))
    print(f"  {workload:<38} {tool:<22} {seconds:8.3f} s  loglik/sample {ll:.5f}", flush=True)
    return {"workload": workload, "tool": tool, "seconds": seconds, "loglik_per_sample": ll}


# -- Gaussian mixtures ----------------------------------------------------------------------------


def mixture_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """n samples of a random k-component mixture in d dimensions (random means and full covariances)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    factors = rng.normal(scale=0.5, size=(k, d, d)) + np.eye(d)
    labels = rng.integers(k, size=n)
    x = means[labels] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), factors[labels])
    return x.astype(np.float32)


def kmeans_start(x: np.ndarray, k: int, covariance_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, covariances) in float64 from one k-means run: every tool starts here."""
    from sklearn.cluster import KMeans

    from zoo.layers.mixture import GaussianMixture

    labels = KMeans(k, n_init=1, random_state=0).fit(x).labels_
    gmm = GaussianMixture(k, x.shape[1], covariance_type).double()
    xt = torch.from_numpy(x).double()
    gmm.m_step(gmm._stats_from_resp(xt, torch.nn.functional.one_hot(torch.from_numpy(labels).long(), k).double()))
    return gmm.weights.detach().numpy(), gmm.means.detach().numpy(), gmm.covariances.detach().numpy()


GMM_KINDS = ("full", "diag")  # set by --gmm


def gmm_rows(quick: bool) -> list[dict]:
    n, d, k, iters = (10_000, 16, 8, 10) if quick else (100_000, 16, 32, 100)
    x = mixture_data(n, d, k)
    rows = []
    for kind in GMM_KINDS:
        workload = f"GMM {kind} N={n} D={d} K={k} x{iters}"
        weights, means, covs = kmeans_start(x, k, kind)
        rows.append(row(workload, OURS + " float32", lambda: _ours_gmm(x, weights, means, covs, kind, iters, torch.float32)))
        rows.append(row(workload, OURS + " float64", lambda: _ours_gmm(x, weights, means, covs, kind, iters, torch.float64)))
        rows.append(row(workload, "scikit-learn", lambda: _sklearn_gmm(x, weights, means, covs, kind, iters)))
        rows.append(row(workload, "pomegranate float32", lambda: _pomegranate_gmm(x, weights, means, covs, kind, iters)))
    return rows


def _ours_gmm(x, weights, means, covs, kind, iters, dtype) -> float:
    from zoo.layers.mixture import GaussianMixture

    gmm = GaussianMixture.from_params(torch.tensor(weights, dtype=dtype), torch.tensor(means, dtype=dtype),
                                      torch.tensor(covs, dtype=dtype), covariance_type=kind)
    xt = torch.from_numpy(x).to(dtype)
    gmm.fit(xt, init=None, max_iter=iters, tol=0.0)
    with torch.no_grad():
        return gmm.log_prob(xt).double().mean().item()


def _sklearn_gmm(x, weights, means, covs, kind, iters) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    precisions = np.linalg.inv(covs) if kind == "full" else 1 / covs
    gmm = GaussianMixture(len(weights), covariance_type=kind, max_iter=iters, tol=0.0, weights_init=weights,
                          means_init=means, precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x.astype(np.float64))
    return gmm.score(x.astype(np.float64))


def _pomegranate_gmm(x, weights, means, covs, kind, iters) -> float:
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    dists = [Normal(means=torch.tensor(m, dtype=torch.float32), covs=torch.tensor(c, dtype=torch.float32),
                    covariance_type=kind) for m, c in zip(means, covs)]
    gmm = GeneralMixtureModel(dists, priors=torch.tensor(weights, dtype=torch.float32), max_iter=iters,
                              tol=-float("inf"))
    xt = torch.from_numpy(x)
    gmm.fit(xt)
    with torch.no_grad():
        return gmm.log_probability(xt).double().mean().item()


# -- the table ------------------------------------------------------------------------------------


def with_ratios(rows: list[dict]) -> list[dict]:
    """Add `speedup`: the fastest non-genzoo time of the workload / this row's time (genzoo rows only)."""
    for r in rows:
        others = [o["seconds"] for o in rows if o["workload"] == r["workload"] and not o["tool"].startswith(OURS)]
        r["speedup"] = min(others) / r["seconds"] if r["tool"].startswith(OURS) and others else None
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'workload':<40} {'tool':<24} {'seconds':>9} {'loglik/sample':>14} {'speedup':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if r.get("speedup") else ""
        print(f"{r['workload']:<40} {r['tool']:<24} {r['seconds']:9.3f} {r['loglik_per_sample']:14.5f} {speed:>8}")
    print("speedup = fastest other tool's seconds / genzoo's seconds on the same workload")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scaled-down workloads (under a minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH ('-' for stdout)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for torch and NumPy's BLAS alike (default: torch's default)")
    parser.add_argument("--repeat", type=int, help="runs per row, the fastest reported (default 1)")
    parser.add_argument("--gmm", choices=["full", "diag"], action="append", help="only these GMM workloads")
    parser.add_argument("--only", choices=["gmm", "hmm", "nb"], action="append", help="run only these families")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    global REPEAT, GMM_KINDS
    REPEAT = args.repeat or 1
    GMM_KINDS = tuple(args.gmm or GMM_KINDS)

    torch.set_num_threads(args.threads)
    families = args.only or ["gmm", "hmm", "nb"]
    print(f"{platform.machine()} {platform.processor() or ''} | torch {torch.__version__} | threads {args.threads}"
          f" | best of {REPEAT}"
          f" | {'quick' if args.quick else 'full'} workloads", flush=True)
    rows: list[dict] = []
    with threadpool_limits(args.threads):
        for family in families:
            rows += {"gmm": gmm_rows, "hmm": _hmm_rows, "nb": nb_rows}[family](args.quick)
    rows = with_ratios(rows)
    print_table(rows)
    if args.json:
        text = json.dumps({"threads": args.threads, "quick": args.quick, "repeat": REPEAT, "rows": rows}, indent=2)
        print(text) if args.json == "-" else Path(args.json).write_text(text + "\n")


def _hmm_rows(quick: bool) -> list[dict]:
    try:
        from hmm_workloads import hmm_rows
    except ImportError as e:
        print(f"  (HMM rows skipped: benchmarks/hmm_workloads.py is not available: {e})")
        return []
    return hmm_rows(quick)


# -- naive Bayes -------------------------------------------------------------------------------


def gaussian_nb_data(n: int, d: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    x = 0.3 * rng.normal(size=(classes, d))[y] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(classes, d))[y]
    return x.astype(np.float32), y


def count_data(n: int, d: int, classes: int, words: int = 20, seed: int = 0):
    """Sparse word counts (CSR, int64): each row draws `words` words from its class's word distribution."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    cdf = np.cumsum(rng.dirichlet(np.full(d, 1.0), size=classes), axis=1)  # (C, D) word distributions
    u = rng.random((n, words))
    cols = np.minimum(_draw(cdf, y, u), d - 1)  # (N, words) word ids
    rows = np.repeat(np.arange(n), words)
    x = sp.csr_matrix((np.ones(n * words, dtype=np.int64), (rows, cols.ravel())), shape=(n, d))
    x.sum_duplicates()
    return x, y


def _draw(cdf: np.ndarray, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.empty(u.shape, dtype=np.int64)
    for c in range(len(cdf)):
        out[y == c] = np.searchsorted(cdf[c], u[y == c])
    return out


def _true_class_log_proba(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.log(np.clip(proba[np.arange(len(y)), y], 1e-300, None)).mean())


def nb_rows(quick: bool) -> list[dict]:
    rows = []
    n, d, c = (50_000, 32, 10) if quick else (1_000_000, 32, 10)
    x, y = gaussian_nb_data(n, d, c)
    workload = f"GaussianNB fit+proba N={n} D={d} C={c}"
    rows.append(row(workload, OURS + " float32", lambda: _ours_nb("gaussian", x, y, c, torch.float32)))
    rows.append(row(workload, "scikit-learn", lambda: _sklearn_nb("gaussian", x, y)))
    rows.append(row(workload, "pomegranate float32", lambda: _pomegranate_gnb(x, y, c)))
    n, d = (20_000, 1000) if quick else (200_000, 1000)
    xs, y = count_data(n, d, c)
    workload = f"MultinomialNB sparse N={n} D={d} C={c}"
    rows.append(row(workload, OURS + " float32", lambda: _ours_nb("multinomial", xs, y, c, torch.float32)))
    rows.append(row(workload, "scikit-learn", lambda: _sklearn_nb("multinomial", xs, y)))
    return rows


def _ours_nb(kind, x, y, classes, dtype) -> float:
    from zoo.layers.naive_bayes import GaussianNaiveBayes, MultinomialNaiveBayes

    cls = GaussianNaiveBayes if kind == "gaussian" else MultinomialNaiveBayes
    model = cls(classes, x.shape[1]).to(dtype)
    xt = torch.from_numpy(x) if isinstance(x, np.ndarray) else x  # scipy CSR goes in as is
    with torch.no_grad():
        proba = model.fit(xt, torch.from_numpy(y)).predict_proba(xt)
    return _true_class_log_proba(proba.numpy(), y)


def _sklearn_nb(kind, x, y) -> float:
    from sklearn.naive_bayes import GaussianNB, MultinomialNB

    model = GaussianNB() if kind == "gaussian" else MultinomialNB()
    return _true_class_log_proba(model.fit(x, y).predict_proba(x), y)


def _pomegranate_gnb(x, y, classes) -> float:
    from pomegranate.bayes_classifier import BayesClassifier
    from pomegranate.distributions import Normal

    model = BayesClassifier([Normal(covariance_type="diag") for _ in range(classes)])
    xt = torch.from_numpy(x)
    with torch.no_grad():
        proba = model.fit(xt, torch.from_numpy(y)).predict_proba(xt)
    return _true_class_log_proba(proba.double().numpy(), y)


if __name__ == "__main__":
    main()
