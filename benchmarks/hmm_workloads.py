"""HMM workloads of the probabilistic benchmark: genzoo vs hmmlearn (scaling, log) vs pomegranate 1.x.

Gaussian HMM with diagonal covariances, 16 states, D=8, 200 sequences x 500 steps drawn from a
seeded random HMM; every tool starts from the same parameters (k-means++ means on the frames,
the data's variances, uniform start, a seeded near-uniform transition matrix):

* ``hmm fit``: 20 Baum-Welch iterations (no early stop);
* ``hmm forward``: log-likelihood of all sequences under the generating parameters;
* ``hmm viterbi``: most likely state paths under the generating parameters.

``loglik_per_sample`` is per observed step (per frame), each tool scoring its own result:
for ``fit`` the fitted model's log-likelihood of the training data, for ``viterbi`` the best
path's log p(x, z). pomegranate's DenseHMM also learns end probabilities (a different model:
its numbers include log p(end | z_T)); hmmlearn's M-step adds its default covariance prior
(covars_prior=1e-2, min_covar=1e-3), genzoo's reg_covar=1e-6.

    python benchmarks/hmm_workloads.py            # the issue's workloads (a minute or two)
    python benchmarks/hmm_workloads.py --quick    # 50 x 200, 5 iterations, a few seconds
    python benchmarks/hmm_workloads.py --json

`hmm_rows(quick)` returns the rows for benchmarks/probabilistic.py.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Callable

import numpy as np
import torch

from zoo.layers.hmm import HiddenMarkovModel

K, D = 16, 8


def make_data(n_seq: int, length: int, seed: int = 0) -> tuple[np.ndarray, dict, dict]:
    """Sequences (n, T, D) float32 from a random HMM, its parameters, and the shared initial parameters."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(K, 0.3), size=K) * 0.5 + np.eye(K) * 0.5  # sticky states
    truth = {"startprob": rng.dirichlet(np.ones(K)), "transmat": trans,
             "means": rng.normal(0, 3, size=(K, D)), "covariances": rng.uniform(0.3, 2.0, size=(K, D))}
    gen = HiddenMarkovModel.from_params(**truth)
    x, _ = gen.sample(n_seq, length, seed=seed)
    x = x.numpy().astype(np.float32)
    init_model = HiddenMarkovModel(K, "gaussian", n_features=D).double()
    init_model.initialize(torch.from_numpy(x).double(), seed=seed)
    init = {"startprob": init_model.startprob.detach().numpy(), "transmat": init_model.transmat.detach().numpy(),
            "means": init_model.emission.means.detach().numpy(),
            "covariances": init_model.emission.covariances().detach().numpy()}
    return x, truth, init


def _timed(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Best wall time of `repeats` runs and the value of the last run."""
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


# -- the tools: each returns (fit, score, viterbi) callables giving log-lik per step --------------


def genzoo_tool(x: np.ndarray, truth: dict, init: dict, n_iter: int, dtype=torch.float32):
    xt = torch.from_numpy(x).to(dtype)
    steps = x.shape[0] * x.shape[1]

    def fit():
        model = HiddenMarkovModel.from_params(**init, dtype=dtype)
        model.fit(xt, max_iter=n_iter, tol=-1.0, init=False)
        with torch.no_grad():
            return model.log_prob(xt).double().sum().item() / steps

    model = HiddenMarkovModel.from_params(**truth, dtype=dtype)

    def score():
        with torch.no_grad():
            return model.log_prob(xt).double().sum().item() / steps

    def viterbi():
        return model.viterbi(xt)[1].double().sum().item() / steps

    return fit, score, viterbi


def hmmlearn_tool(x: np.ndarray, truth: dict, init: dict, n_iter: int, implementation: str):
    from hmmlearn.hmm import GaussianHMM

    flat = x.reshape(-1, D).astype(np.float64)
    lengths = [x.shape[1]] * x.shape[0]

    def build(params: dict, **kw) -> GaussianHMM:
        model = GaussianHMM(K, covariance_type="diag", init_params="", implementation=implementation, **kw)
        model.startprob_, model.transmat_ = params["startprob"], params["transmat"]
        model.means_, model.covars_ = params["means"], params["covariances"]
        return model

    def fit():
        model = build(init, n_iter=n_iter, tol=-np.inf)
        model.fit(flat, lengths)
        return model.score(flat, lengths) / len(flat)

    model = build(truth)
    return (fit, lambda: model.score(flat, lengths) / len(flat),
            lambda: model.decode(flat, lengths, algorithm="viterbi")[0] / len(flat))


def pomegranate_tool(x: np.ndarray, truth: dict, init: dict, n_iter: int):
    from pomegranate.distributions import Normal
    from pomegranate.hmm import DenseHMM

    xt = torch.from_numpy(x)
    steps = x.shape[0] * x.shape[1]

    def build(params: dict, **kw) -> DenseHMM:
        dists = [Normal(torch.tensor(m, dtype=torch.float32), torch.tensor(c, dtype=torch.float32),
                        covariance_type="diag") for m, c in zip(params["means"], params["covariances"])]
        return DenseHMM(dists, edges=params["transmat"].astype(np.float32),
                        starts=params["startprob"].astype(np.float32), **kw)

    def fit():
        model = build(init, max_iter=n_iter, tol=0.0)
        model.fit(xt)
        return model.log_probability(xt).double().sum().item() / steps

    model = build(truth)

    def viterbi():  # pomegranate's viterbi returns paths only: score them with genzoo for the number
        paths = model.viterbi(xt)
        return _path_log_prob(truth, xt, paths) / steps

    return fit, lambda: model.log_probability(xt).double().sum().item() / steps, viterbi


def _path_log_prob(params: dict, x: torch.Tensor, paths: torch.Tensor) -> float:
    """log p(x, z) of given state paths under the parameters (float64)."""
    hmm = HiddenMarkovModel.from_params(**params)
    log_e = hmm.emission.log_prob(x.double().reshape(-1, D)).T.reshape(*paths.shape, K)  # (K, N) -> (n, T, K)
    z = paths.long()
    ll = hmm.startprob.log()[z[:, 0]] + log_e.gather(2, z[..., None]).squeeze(-1).sum(1)
    ll = ll + hmm.transmat.log()[z[:, :-1], z[:, 1:]].sum(1)
    return ll.sum().item()


# -- the benchmark -------------------------------------------------------------------------------


def hmm_rows(quick: bool = False) -> list[dict]:
    """Rows {"workload", "tool", "seconds", "loglik_per_sample"} for every workload and tool."""
    n_seq, length, n_iter = (50, 200, 5) if quick else (200, 500, 20)
    x, truth, init = make_data(n_seq, length)
    tools = {
        "genzoo (float32)": genzoo_tool(x, truth, init, n_iter),
        "genzoo (float64)": genzoo_tool(x, truth, init, n_iter, torch.float64),
        "hmmlearn (scaling)": hmmlearn_tool(x, truth, init, n_iter, "scaling"),
        "hmmlearn (log)": hmmlearn_tool(x, truth, init, n_iter, "log"),
        "pomegranate": pomegranate_tool(x, truth, init, n_iter),
    }
    size = f"K={K}, D={D}, {n_seq}x{length}"
    names = [f"HMM fit {n_iter} it ({size})", f"HMM forward ({size})", f"HMM viterbi ({size})"]
    repeats = [1, 3, 3]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (workload, reps) in enumerate(zip(names, repeats)):
            for tool, fns in tools.items():
                if reps > 1:
                    fns[i]()  # warm-up (first-call overheads, lazy imports); a fit of seconds needs none
                seconds, ll = _timed(fns[i], reps)
                rows.append({"workload": workload, "tool": tool, "seconds": seconds, "loglik_per_sample": ll})
    return rows


def print_table(rows: list[dict]) -> None:
    """Rows grouped by workload, with each time's ratio to the fastest non-genzoo tool."""
    print(f"{'workload':40} {'tool':20} {'seconds':>9} {'vs best other':>14} {'loglik/step':>12}")
    for workload in dict.fromkeys(r["workload"] for r in rows):
        group = [r for r in rows if r["workload"] == workload]
        best_other = min(r["seconds"] for r in group if not r["tool"].startswith("genzoo"))
        for r in group:
            ratio = best_other / r["seconds"]
            print(f"{workload:40} {r['tool']:20} {r['seconds']:9.3f} {ratio:13.2f}x {r['loglik_per_sample']:12.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a scaled-down run (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    parser.add_argument("--threads", type=int, help="torch and BLAS threads for every tool (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)  # noqa: F841 - numpy's BLAS (hmmlearn), kept for the run
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}; log-likelihood per observed step")
    rows = hmm_rows(args.quick)
    print(json.dumps(rows, indent=2)) if args.json else print_table(rows)


if __name__ == "__main__":
    main()
