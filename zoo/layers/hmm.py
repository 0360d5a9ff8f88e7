"""Hidden Markov models (Rabiner 1989) as a plain torch layer: exact, batched, trainable by EM or gradients.

A hidden state z_t in {0..K-1} follows a Markov chain (start probabilities pi, transitions A)
and emits x_t from p(x | z_t): a Gaussian (diagonal or full covariance), a categorical over
symbols, or a mixture of Gaussians. Everything runs on a padded batch of sequences at once:

* **Forward algorithm, scaled** (Rabiner eq. 91-92): alpha_t = normalise((alpha_{t-1} A) * e_t), with
  the emission probabilities e_t shifted by their per-step maximum before ``exp``, so one
  (B, K) x (K, K) matmul per step and no log-sum-exp in the loop; log p(x) = sum_t log c_t + shift_t.
  Stable for any length (100,000 steps and more). Shifted emissions are floored at the smallest
  normal float (denormals are slow and imprecise); should a step's scaling factor come near that
  floor (a transition of probability ~0 into the only plausible state), those sequences are
  recomputed in the log domain, so the answer is exact either way.
* **Forward-backward** for posteriors and Baum-Welch statistics, the same scaling (eq. 93-94).
* **Viterbi** in the log domain; instead of storing back-pointers, backtracking (in numpy)
  recomputes the one argmax it needs per step, so the forward pass is a max, never an argmax.

The recursions run with denormals flushed on the calling thread (see ``_flush_denormals``; scoped,
restored on exit, no global setting). Each step is small and latency-bound; emission
log-probabilities for all steps are computed up front in one batched op.

Sequences are sorted by length once, so at step t the active sequences are a prefix of the batch.
A sequence of length 0 has log-probability 0 (the empty sequence is certain: the model has
no end state), an empty posterior and an empty Viterbi path.

Parameters are unconstrained (logits of pi and A, log-variances or precision Cholesky factors
with log-diagonals, emission logits), so ``-hmm.log_prob(x, lengths).sum()`` backpropagates and
the layer can sit inside a bigger network; Baum-Welch (``e_step``/``m_step``, ``fit``) writes the
closed-form updates into the same parameters. float32 is the default (log-likelihoods agree with
float64 to ~1e-6 relative on the benchmark data); float64 (``hmm.double()``) matches hmmlearn to 1e-10.

Example::

    hmm = HiddenMarkovModel(4, "gaussian", n_features=2)
    x, states = hmm.sample(8, 100, seed=0)             # (8, 100, 2), (8, 100)
    hmm.fit(x, max_iter=20)                             # Baum-Welch
    hmm.log_prob(x)                                     # (8,) nats per sequence
    paths, scores = hmm.viterbi(x)                      # (8, 100) and (8,)
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import MAX_VALUES, as_tensor, check_float, check_int, check_work, generator

EMISSIONS = ("gaussian", "categorical", "gmm")
COVARIANCE_TYPES = ("diag", "full")
LOG_ZERO = -1e30  # log of a probability that EM set to 0: finite, so no inf - inf = nan anywhere


def _log_probs(p: Tensor) -> Tensor:
    """log p with zeros mapped to LOG_ZERO (finite)."""
    return torch.log(p).clamp_min(LOG_ZERO)


def _set_row_log_probs(logits: Tensor, counts: Tensor) -> None:
    """Rows of `logits` := log(counts / row total) (an M-step); a row without counts keeps its values."""
    counts = counts.to(torch.float64)
    total = counts.sum(1, keepdim=True)
    live = total.squeeze(1) > 0
    logits[live] = _log_probs(counts / total.clamp_min(1e-300)).to(logits.dtype)[live]


def _flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero (torch has a setter but no getter: probe it)."""
    return bool((torch.tensor([1e-30], dtype=torch.float32) * 1e-10).item() == 0)


@contextmanager
def _flush_denormals():
    """Flush denormal floats to zero on the calling thread for the duration; restore its setting on exit.

    An alpha or beta entry of ~1e-40 (an improbable state, a near-zero transition) makes every later
    product on it ~30x slower on x86 while carrying no precision; flushed, it is 0. Measured on the
    benchmark's Baum-Welch: 0.72 s flushed against 2.9 s not. The setting is per thread (the CPU's
    control register), so nothing outside this block, and no other thread, sees it; the thread count
    is left alone (the steps are below torch's parallel grain, so they run on this thread anyway).
    """
    flushing = _flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(flushing)


def _flushed(method):
    """Decorator: run a whole public method under `_flush_denormals` (its products on posteriors too)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _flush_denormals():
            return method(self, *args, **kwargs)
    return wrapper


def _emission_floor(dtype: torch.dtype) -> float:
    """The floor of shifted log-emissions: exp of anything lower is a denormal (slow, imprecise)."""
    return math.log(torch.finfo(dtype).tiny) + 1


def _underflow(dtype: torch.dtype, n_states: int) -> float:
    """A scaling factor c_t below this may owe 1e-6 of itself to floored emissions (at most K exp(floor)):
    the sequence is then recomputed exactly in the log domain. c_t = 0 (true underflow) is below it too."""
    return n_states * math.exp(_emission_floor(dtype)) * 1e6


#: the most steps one ``sample`` call draws: about 50 bytes each while drawing (1.7 GB at the cap)
MAX_SAMPLE_STEPS = 2 ** 25


# -- emissions -----------------------------------------------------------------------------------


class GaussianEmission(nn.Module):
    """C Gaussian components over D features; diagonal (log-variances) or full (precision Cholesky W).

    Full covariance: Sigma^-1 = W W^T with W upper-triangular, positive diagonal stored as its log,
    so log N(x) = sum log diag W - ||(x - mu) W||^2 / 2 - D/2 log 2 pi is one matmul for all C.
    """

    def __init__(self, n_components: int, n_features: int, covariance_type: str, reg_covar: float):
        super().__init__()
        self.n_components, self.n_features = n_components, n_features
        self.covariance_type, self.reg_covar = covariance_type, reg_covar
        self.means = nn.Parameter(torch.randn(n_components, n_features))
        if covariance_type == "diag":
            self.log_var = nn.Parameter(torch.zeros(n_components, n_features))
        else:
            self.prec_chol_raw = nn.Parameter(torch.zeros(n_components, n_features, n_features))

    def precision_cholesky(self) -> Tensor:
        raw = self.prec_chol_raw  # (C, D, D)
        return raw.triu(1) + torch.diag_embed(raw.diagonal(dim1=-2, dim2=-1).exp())

    def covariances(self) -> Tensor:
        """(C, D) variances or (C, D, D) covariance matrices."""
        if self.covariance_type == "diag":
            return self.log_var.exp()
        w = self.precision_cholesky()
        return torch.cholesky_inverse(w.transpose(-1, -2))  # (W W^T)^-1, W^T is lower

    def component_log_prob(self, x: Tensor) -> Tensor:
        """(N, D) -> (C, N) log N(x | mu_c, Sigma_c), centred on the mean of the means for float32 accuracy.

        Components first: the per-frame maximum over components is then an elementwise max of C rows
        (30x faster than a max over a short last dimension). Diagonal: one matmul of [x^2, x] (N, 2D)
        with [-prec/2, mu prec] (C, 2D) plus a constant per component.
        """
        centre = self.means.detach().mean(0)
        x, mu = x - centre, self.means - centre  # (N, D), (C, D)
        const = -0.5 * self.n_features * math.log(2 * math.pi)
        if self.covariance_type == "diag":
            prec = torch.exp(-self.log_var)  # (C, D)
            weight = torch.cat([-0.5 * prec, mu * prec], 1)  # (C, 2D)
            bias = const - 0.5 * (self.log_var.sum(1) + (mu * mu * prec).sum(1))  # (C,)
            return torch.addmm(bias[:, None], weight, torch.cat([x * x, x], 1).T)  # (C, N)
        w = self.precision_cholesky()  # (C, D, D)
        c, d = self.n_components, self.n_features
        y = (x @ w.permute(1, 0, 2).reshape(d, c * d)).view(-1, c, d) - torch.einsum("cd,cde->ce", mu, w)
        log_det = w.diagonal(dim1=-2, dim2=-1).log().sum(1)  # (C,)
        return (const + log_det - 0.5 * (y * y).sum(-1)).T

    def stats(self, x: Tensor, weights: Tensor) -> dict[str, Tensor]:
        """Weighted sufficient statistics of x (N, D) under weights (C, N), centred like component_log_prob."""
        x = x - self.means.detach().mean(0)
        out = {"w": weights.sum(1), "wx": weights @ x}  # (C,), (C, D)
        if self.covariance_type == "diag":
            out["wxx"] = weights @ (x * x)  # (C, D)
        else:
            out["wxx"] = torch.einsum("cn,nd,ne->cde", weights, x, x)  # (C, D, D)
        return out

    @torch.no_grad()
    def m_step(self, w: Tensor, wx: Tensor, wxx: Tensor) -> None:
        """Closed-form means and covariances (+ reg_covar); components with no weight keep theirs."""
        dtype = self.means.dtype
        w, wx, wxx = w.to(torch.float64), wx.to(torch.float64), wxx.to(torch.float64)
        live = w > 1e-10 * w.sum().clamp_min(1e-300)
        mean = wx / w.clamp_min(1e-300)[:, None]  # (C, D), centred
        if self.covariance_type == "diag":
            var = wxx / w.clamp_min(1e-300)[:, None] - mean * mean + self.reg_covar
            var = var.clamp_min(max(self.reg_covar, 1e-12))
            self.log_var[live] = var.log().to(dtype)[live]
        else:
            cov = wxx / w.clamp_min(1e-300)[:, None, None] - mean[:, :, None] * mean[:, None, :]
            cov = cov + self.reg_covar * torch.eye(self.n_features, dtype=cov.dtype)
            self.prec_chol_raw[live] = _raw_precision_cholesky(cov[live]).to(dtype)
        centre = self.means.mean(0).to(torch.float64)
        self.means[live] = (mean + centre).to(dtype)[live]

    @torch.no_grad()
    def set_params(self, means: Tensor, covariances: Tensor) -> None:
        self.means.copy_(means)
        if self.covariance_type == "diag":
            self.log_var.copy_(covariances.log())
        else:
            self.prec_chol_raw.copy_(_raw_precision_cholesky(covariances.to(torch.float64)))

    @torch.no_grad()
    def initialize(self, x: Tensor, generator: torch.Generator) -> None:
        """Means by k-means++ and 10 Lloyd steps on (a sample of) the frames; every covariance = the data's."""
        x = x[torch.randperm(len(x), generator=generator, device=x.device)[:20_000]]
        means = _kmeans(x, self.n_components, generator)
        var = x.var(0, unbiased=False) + self.reg_covar + 1e-6 * x.var(0, unbiased=False).mean()
        if self.covariance_type == "diag":
            covs = var.expand(self.n_components, -1)
        else:
            cov = torch.cov(x.T, correction=0).reshape(self.n_features, self.n_features)
            cov = cov + torch.diag(var - cov.diagonal())  # same diagonal, regularised
            covs = cov.expand(self.n_components, -1, -1)
        self.set_params(means, covs.clone())

    @torch.no_grad()
    def sample(self, comp: Tensor, generator: torch.Generator | None) -> Tensor:
        """One draw per component index in `comp` (...,) -> (..., D)."""
        eps = torch.randn(*comp.shape, self.n_features, generator=generator, device=comp.device,
                          dtype=self.means.dtype)
        if self.covariance_type == "diag":
            return self.means[comp] + eps * (0.5 * self.log_var[comp]).exp()
        w = self.precision_cholesky()  # (K, D, D); x = mu + W^-T eps, component by component (never (..., D, D))
        z = torch.empty_like(eps)
        for k in comp.unique().tolist():
            rows = comp == k
            z[rows] = torch.linalg.solve_triangular(w[k].T, eps[rows].T, upper=False).T
        return self.means[comp] + z

    def n_parameters(self) -> int:
        d = self.n_features
        return self.n_components * (d + (d if self.covariance_type == "diag" else d * (d + 1) // 2))


def _raw_precision_cholesky(cov: Tensor) -> Tensor:
    """Covariances (C, D, D) -> the stored parameter: W = L^-T (Sigma = L L^T), log on the diagonal."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    chol, info = torch.linalg.cholesky_ex(cov)
    if (info > 0).any():  # singular: regularise, never crash
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[:, None, None]
        chol = torch.linalg.cholesky(cov + 1e-6 * scale * eye)
    w = torch.linalg.solve_triangular(chol, eye.expand_as(cov), upper=False).transpose(-1, -2)  # (C, D, D)
    return w.triu(1) + torch.diag_embed(w.diagonal(dim1=-2, dim2=-1).log())


def _kmeans(x: Tensor, k: int, generator: torch.Generator, steps: int = 10) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) and a few Lloyd iterations: (N, D) -> (k, D)."""
    if len(x) < k:
        raise ValueError(f"x must hold at least {k} frames to initialise {k} components, got {len(x)}")
    centres = x[torch.randint(len(x), (1,), generator=generator, device=x.device)]
    dist = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(1, k):
        p = dist / dist.sum() if dist.sum() > 0 else torch.full_like(dist, 1 / len(dist))
        nxt = x[torch.multinomial(p, 1, generator=generator)]
        centres = torch.cat([centres, nxt])
        dist = torch.minimum(dist, ((x - nxt) ** 2).sum(1))
    for _ in range(steps):
        label = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, label, x)
        counts = torch.bincount(label, minlength=k).to(x.dtype)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    return centres


class CategoricalEmission(nn.Module):
    """K categorical distributions over M symbols, stored as logits (K, M)."""

    def __init__(self, n_states: int, n_symbols: int):
        super().__init__()
        self.n_states, self.n_symbols = n_states, n_symbols
        self.logits = nn.Parameter(torch.zeros(n_states, n_symbols))

    def log_prob(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.logits, 1)[:, x]  # (N,) -> (K, N)

    def stats(self, x: Tensor, gamma: Tensor) -> dict[str, Tensor]:
        """Expected symbol counts per state (K, M) from posteriors gamma (K, N)."""
        return {"emission_counts": gamma.new_zeros(self.n_states, self.n_symbols).index_add_(1, x, gamma)}

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor]) -> None:
        _set_row_log_probs(self.logits, stats["emission_counts"])

    @torch.no_grad()
    def initialize(self, x: Tensor, generator: torch.Generator) -> None:
        """Random emission probabilities (like hmmlearn) mixed with the symbol frequencies."""
        freq = torch.bincount(x, minlength=self.n_symbols).to(torch.float64) + 1
        rand = torch.rand(self.n_states, self.n_symbols, generator=generator, dtype=torch.float64, device=x.device)
        probs = rand / rand.sum(1, keepdim=True) * 0.5 + freq / freq.sum() * 0.5
        self.logits.copy_(probs.log())

    @torch.no_grad()
    def sample(self, states: Tensor, generator: torch.Generator | None) -> Tensor:
        # Each state's CDF lies in [0, 1], so CDF_k + k is one sorted array over all states: one search finds every
        # symbol, in memory of the states' size (indexing a CDF per step would hold (..., M) floats: 10 GB at 2e7 steps).
        m = self.n_symbols
        cdf = F.softmax(self.logits.double(), 1).cumsum(1)
        flat = (cdf + torch.arange(self.n_states, device=cdf.device, dtype=cdf.dtype)[:, None]).reshape(-1)
        u = torch.rand(states.shape, generator=generator, device=states.device, dtype=torch.float64)
        found = torch.searchsorted(flat, states + u)
        return (found - states * m).clamp_(0, m - 1)

    def n_parameters(self) -> int:
        return self.n_states * (self.n_symbols - 1)


class MixtureEmission(nn.Module):
    """Per state a mixture of M Gaussians: K * M Gaussian components and mixture logits (K, M)."""

    def __init__(self, n_states: int, n_mix: int, n_features: int, covariance_type: str, reg_covar: float):
        super().__init__()
        self.n_states, self.n_mix = n_states, n_mix
        self.gaussians = GaussianEmission(n_states * n_mix, n_features, covariance_type, reg_covar)
        self.mix_logits = nn.Parameter(torch.zeros(n_states, n_mix))

    def _joint(self, x: Tensor) -> Tensor:
        comp = self.gaussians.component_log_prob(x).view(self.n_states, self.n_mix, -1)  # (K, M, N)
        return comp + F.log_softmax(self.mix_logits, 1)[:, :, None]

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self._joint(x), 1)  # (K, N)

    def stats(self, x: Tensor, gamma: Tensor) -> dict[str, Tensor]:
        resp = F.softmax(self._joint(x), 1) * gamma[:, None, :]  # (K, M, N)
        out = self.gaussians.stats(x, resp.reshape(self.n_states * self.n_mix, -1))
        out["mix_counts"] = resp.sum(2)
        return out

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor]) -> None:
        self.gaussians.m_step(stats["w"], stats["wx"], stats["wxx"])
        _set_row_log_probs(self.mix_logits, stats["mix_counts"])

    @torch.no_grad()
    def initialize(self, x: Tensor, generator: torch.Generator) -> None:
        self.gaussians.initialize(x, generator)
        self.mix_logits.zero_()

    @torch.no_grad()
    def sample(self, states: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = F.softmax(self.mix_logits.double(), 1)[states.reshape(-1)]  # (n, M)
        mix = torch.multinomial(probs, 1, generator=generator).view(states.shape)
        return self.gaussians.sample(states * self.n_mix + mix, generator)

    def n_parameters(self) -> int:
        return self.gaussians.n_parameters() + self.n_states * (self.n_mix - 1)


class _GaussianStateEmission(GaussianEmission):
    """One Gaussian per state: the component log-probs are the state log-probs."""

    def log_prob(self, x: Tensor) -> Tensor:
        return self.component_log_prob(x)

    def m_step(self, stats: dict[str, Tensor]) -> None:  # type: ignore[override]
        super().m_step(stats["w"], stats["wx"], stats["wxx"])


# -- batches of sequences --------------------------------------------------------------------------


class _Batch:
    """A padded batch sorted by decreasing length, time-major: x (T, B, ...), lengths (B,), n_active[t]."""

    def __init__(self, x: Tensor, lengths: Tensor):
        order = torch.argsort(lengths, descending=True, stable=True)
        self.sorted = bool((order == torch.arange(len(order), device=order.device)).all())
        self.order = order
        lengths = lengths[order]
        x = x if self.sorted else x[order]
        self.x = x.transpose(0, 1)  # (T, B, ...)
        self.lengths = lengths
        self.T, self.B = self.x.shape[:2]
        steps = torch.arange(self.T, device=lengths.device)
        self.mask = steps[:, None] < lengths[None, :]  # (T, B)
        self.n_active = self.mask.sum(1).tolist()  # rows with length > t: a prefix, since sorted

    def unsort(self, t: Tensor) -> Tensor:
        """Undo the length sort on a batch-first tensor."""
        if self.sorted:
            return t
        out = torch.empty_like(t)
        out[self.order] = t
        return out


# -- the model -------------------------------------------------------------------------------------


class HiddenMarkovModel(nn.Module):
    """An HMM with Gaussian (diag/full), categorical or Gaussian-mixture emissions, on padded batches.

    Args:
        n_states: number of hidden states K.
        emission: "gaussian", "categorical" or "gmm" (a mixture of `n_mix` Gaussians per state).
        n_features: dimension D of Gaussian/gmm observations.
        n_symbols: alphabet size M of categorical observations (symbols 0..M-1).
        covariance_type: "diag" or "full", for gaussian/gmm.
        n_mix: mixture components per state (gmm).
        reg_covar: added to every variance in the M-step, so a collapsing state never makes a singular covariance.

    Inputs everywhere are ``x`` as a padded batch (B, T, D) float (categorical: (B, T) integers)
    with optional ``lengths`` (B,) (default: all T), or a list of (T_i, D) / (T_i,) sequences.
    A single unbatched sequence ((T, D), or (T,) for categorical) is a batch of one.

    Example::

        hmm = HiddenMarkovModel(3, "categorical", n_symbols=5)
        x, _ = hmm.sample(4, 50, seed=0)          # (4, 50) symbols
        hmm.log_prob(x, torch.tensor([50, 20, 1, 0]))  # (4,), the last is 0.0 (empty sequence)
    """

    def __init__(self, n_states: int, emission: str = "gaussian", *, n_features: int | None = None,
                 n_symbols: int | None = None, covariance_type: str = "diag", n_mix: int = 1,
                 reg_covar: float = 1e-6):
        super().__init__()
        check_int("n_states", n_states, 1)
        if emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {', '.join(EMISSIONS)}, got {emission!r}")
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}, got {covariance_type!r}")
        if not isinstance(reg_covar, (int, float)) or reg_covar < 0:
            raise ValueError(f"reg_covar must be a number >= 0, got {reg_covar!r}")
        self.n_states, self.emission_type = n_states, emission
        self.covariance_type, self.n_mix, self.reg_covar = covariance_type, n_mix, float(reg_covar)
        self.n_features, self.n_symbols = n_features, n_symbols
        self.start_logits = nn.Parameter(torch.zeros(n_states))
        self.trans_logits = nn.Parameter(torch.zeros(n_states, n_states))
        if emission == "categorical":
            self.emission = CategoricalEmission(n_states, check_int("n_symbols", n_symbols, 1))
        elif emission == "gaussian":
            self.emission = _GaussianStateEmission(n_states, check_int("n_features", n_features, 1),
                                                   covariance_type, self.reg_covar)
        else:
            self.emission = MixtureEmission(n_states, check_int("n_mix", n_mix, 1),
                                            check_int("n_features", n_features, 1), covariance_type, self.reg_covar)

    # -- parameters ----------------------------------------------------------------------------

    @property
    def startprob(self) -> Tensor:
        return F.softmax(self.start_logits, 0)

    @property
    def transmat(self) -> Tensor:
        return F.softmax(self.trans_logits, 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.start_logits.dtype

    @classmethod
    def from_params(cls, startprob: Any, transmat: Any, *, means: Any = None, covariances: Any = None,
                    emission_probs: Any = None, mixture_weights: Any = None, reg_covar: float = 1e-6,
                    dtype: torch.dtype | None = None) -> "HiddenMarkovModel":
        """An HMM with given probabilities: categorical if `emission_probs` (K, M); gmm if `mixture_weights`
        (K, M) with means (K, M, D) and covariances (K, M, D) diag or (K, M, D, D) full; else gaussian with
        means (K, D) and covariances (K, D) diag or (K, D, D) full. dtype: float64 if the inputs are."""
        start = torch.as_tensor(startprob)
        dtype = dtype or (start.dtype if start.is_floating_point() else torch.get_default_dtype())
        t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        start, trans = t(startprob), t(transmat)
        k = len(start)
        if trans.shape != (k, k):
            raise ValueError(f"transmat must have shape ({k}, {k}), got {tuple(trans.shape)}")
        if emission_probs is not None:
            probs = t(emission_probs)
            hmm = cls(k, "categorical", n_symbols=probs.shape[1]).to(dtype)
            with torch.no_grad():
                hmm.emission.logits.copy_(_log_probs(probs))
        elif mixture_weights is not None:
            weights, mu, cov = t(mixture_weights), t(means), t(covariances)
            hmm = cls(k, "gmm", n_features=mu.shape[-1], n_mix=weights.shape[1], reg_covar=reg_covar,
                      covariance_type="full" if cov.dim() == 4 else "diag").to(dtype)
            with torch.no_grad():
                hmm.emission.mix_logits.copy_(_log_probs(weights))
            hmm.emission.gaussians.set_params(mu.reshape(-1, mu.shape[-1]), cov.reshape(-1, *cov.shape[2:]))
        else:
            mu, cov = t(means), t(covariances)
            hmm = cls(k, "gaussian", n_features=mu.shape[-1], reg_covar=reg_covar,
                      covariance_type="full" if cov.dim() == 3 else "diag").to(dtype)
            hmm.emission.set_params(mu, cov)
        with torch.no_grad():
            hmm.start_logits.copy_(_log_probs(start))
            hmm.trans_logits.copy_(_log_probs(trans))
        return hmm

    def n_parameters(self) -> int:
        """Free parameters (for BIC): start (K-1), transitions K(K-1), and the emissions'."""
        k = self.n_states
        return (k - 1) + k * (k - 1) + self.emission.n_parameters()

    # -- input checks --------------------------------------------------------------------------

    @property
    def max_steps(self) -> int:
        """The most (padded) steps one call reads: the recursions hold a few floats per step and state, so the
        cap is ``MAX_VALUES`` over the states (2M steps at 64 states: all of tinyshakespeare as one sequence)."""
        return MAX_VALUES // self.n_states

    def _batch(self, x: Any, lengths: Any = None, name: str = "x") -> _Batch:
        """Validate and pad the input into a sorted, time-major batch."""
        categorical = self.emission_type == "categorical"
        item_dims = 0 if categorical else 1
        if isinstance(x, (list, tuple)):
            if lengths is not None:
                raise ValueError("lengths must be None when x is a list of sequences (their lengths are used)")
            if len(x) == 0:
                raise ValueError(f"{name} must hold at least one sequence, got an empty list")
            seqs = [as_tensor(f"{name}[{i}]", s, finite=False) for i, s in enumerate(x)]
            if categorical:
                seqs = [s.reshape(-1) if s.dim() == 0 else s for s in seqs]
            lengths = torch.tensor([len(s) for s in seqs])
            bad = [i for i, s in enumerate(seqs) if s.dim() != 1 + item_dims]
            if bad:
                raise ValueError(f"{name}[{bad[0]}] must have {1 + item_dims} dimensions, got {tuple(seqs[bad[0]].shape)}")
            x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True) if int(lengths.max()) > 0 else \
                torch.zeros(len(seqs), 0, *seqs[0].shape[1:], dtype=seqs[0].dtype)
        x = as_tensor(name, x, finite=False)  # finiteness is checked on the steps inside the lengths
        if x.dim() == 1 + item_dims:  # one unbatched sequence
            x = x.unsqueeze(0)
        if x.dim() != 2 + item_dims:
            shape = "(B, T)" if categorical else "(B, T, D)"
            raise ValueError(f"{name} must be a padded batch {shape} or a list of sequences, got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{name} must hold at least one sequence, got an empty batch")
        check_work(name, x.shape[0] * x.shape[1], self.max_steps, "padded steps in one call")
        x = x.to(self.start_logits.device)
        lengths = self._lengths(lengths, x.shape[0], x.shape[1], x.device)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
        x = self._check_values(x, mask, name)
        return _Batch(x, lengths)

    def _lengths(self, lengths: Any, b: int, t: int, device: torch.device) -> Tensor:
        if lengths is None:
            return torch.full((b,), t, dtype=torch.long, device=device)
        lengths = as_tensor("lengths", lengths, device=device)
        if lengths.shape != (b,) or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be {b} integers (one per sequence), got {tuple(lengths.shape)} {lengths.dtype}")
        if b and (lengths.min() < 0 or lengths.max() > t):
            raise ValueError(f"lengths must be in 0..{t} (the padded length), got {lengths.min().item()}..{lengths.max().item()}")
        return lengths.long()

    def _check_values(self, x: Tensor, mask: Tensor, name: str) -> Tensor:
        """Finite floats with D features, or integer symbols in 0..M-1; padding is zeroed (never read)."""
        if self.emission_type == "categorical":
            integral = not (x.is_complex() or x.dtype == torch.bool) and (
                not x.is_floating_point() or bool(torch.isfinite(x[mask]).all() and torch.equal(x[mask], x[mask].round())))
            if not integral:
                raise ValueError(f"{name} must hold integer symbols 0..{self.n_symbols - 1}, got dtype {x.dtype}")
            x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).long()
            if x.numel() and (x.min() < 0 or x.max() >= self.n_symbols):
                raise ValueError(f"{name} holds symbols outside the vocabulary 0..{self.n_symbols - 1}: "
                                 f"got {x.min().item()}..{x.max().item()}")
            return x
        if x.shape[-1] != self.n_features:
            raise ValueError(f"{name} must have {self.n_features} features in its last dimension, got {x.shape[-1]}")
        x = x.to(self.dtype) if x.dtype != self.dtype else x
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} must be finite: it holds NaN or inf")
        return x

    # -- emissions -----------------------------------------------------------------------------

    def _emission_log_prob(self, batch: _Batch) -> Tensor:
        """log p(x_t | z_t = k) for every step at once, states first: (K, T*B), steps time-major."""
        return self.emission.log_prob(batch.x.reshape(batch.T * batch.B, *batch.x.shape[2:]))

    @staticmethod
    def _time_major(log_e: Tensor, batch: _Batch) -> Tensor:
        """(K, T*B) -> (T, B, K), the layout of the recursions."""
        return log_e.T.contiguous().view(batch.T, batch.B, log_e.shape[0])

    @staticmethod
    def _scaled_emissions(log_e: Tensor, batch: _Batch) -> tuple[Tensor, Tensor]:
        """exp(log e - max_k log e) (T, B, K) in [0, 1] and the shift (T, B): the loop never sees a log.

        Shifted log-probabilities are floored at log(smallest normal number): below it exp returns
        denormals, which are 30x slower in every later product and carry no precision anyway.
        """
        shift = log_e.amax(0).detach()  # (T*B,)
        floor = _emission_floor(log_e.dtype)
        e = torch.exp((log_e - shift).clamp_min(floor)) if torch.is_grad_enabled() else \
            (log_e - shift).clamp_min_(floor).exp_()
        return e.T.contiguous().view(batch.T, batch.B, e.shape[0]), shift.view(batch.T, batch.B)

    # -- forward algorithm: log_prob -----------------------------------------------------------

    @_flushed
    def log_prob(self, x: Any, lengths: Any = None) -> Tensor:
        """log p(x_1..x_T) per sequence (B,), in nats; 0 for an empty sequence. Differentiable."""
        batch = self._batch(x, lengths)
        log_e = self._emission_log_prob(batch)
        return batch.unsort(self._forward_loglik(log_e, batch))

    def _forward_loglik(self, log_e: Tensor, batch: _Batch) -> Tensor:
        """Scaled forward pass (no buffers written in place, so autograd works): (B,) log-likelihoods."""
        e, shift = self._scaled_emissions(log_e, batch)  # (T, B, K), (T, B)
        if batch.T == 0:
            return shift.new_zeros(batch.B)
        with _flush_denormals():
            norms = _forward_norms(e, self.startprob, self.transmat, batch.n_active)
        rows = batch.mask.nonzero()[:, 1]  # batch index of each valid step, in time-major order
        log_norm = torch.log(norms.squeeze(1)).double()  # float64 sums: 100,000 steps lose no digits
        ll = (shift.double() * batch.mask).sum(0).index_add(0, rows, log_norm).to(e.dtype)
        tiny = (norms.squeeze(1) < _underflow(e.dtype, self.n_states)).to(e.dtype).detach()
        bad = e.new_zeros(batch.B).index_add(0, rows, tiny) > 0
        if bad.any():  # an underflowed normaliser: redo those sequences exactly in the log domain
            ll = torch.where(bad, self._forward_log_domain(self._time_major(log_e, batch), batch), ll)
        return ll

    def _forward_log_domain(self, log_e: Tensor, batch: _Batch) -> Tensor:
        """The forward algorithm with log-sum-exp at every step (slow, never underflows): (B,)."""
        log_trans = F.log_softmax(self.trans_logits, 1)
        log_alpha = F.log_softmax(self.start_logits, 0) + log_e[0]  # (B, K)
        final = log_alpha.new_zeros(batch.B)
        for t in range(batch.T):
            if t > 0:
                step = torch.logsumexp(log_alpha[:, :, None] + log_trans, 1) + log_e[t]
                log_alpha = torch.where(batch.mask[t, :, None], step, log_alpha)
            ends = batch.lengths == t + 1
            final = torch.where(ends, torch.logsumexp(log_alpha, 1), final)
        return final

    # -- forward-backward: posteriors and EM statistics ------------------------------------------

    @torch.no_grad()
    def _forward_backward(self, log_e: Tensor, batch: _Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Posteriors gamma (T, B, K), summed transition posteriors xi (K, K), log-likelihoods (B,)."""
        e, shift = self._scaled_emissions(log_e, batch)
        trans, n_active = self.transmat, batch.n_active
        T, B, K = e.shape
        alpha, beta, w = torch.zeros_like(e), torch.ones_like(e), torch.zeros_like(e)
        norm = e.new_ones(T, B, 1)  # the scaling factors c_t; 1 on padding
        norms, es = norm.unbind(0), e.unbind(0)  # per-step views, made once
        with _flush_denormals():
            _forward_buffers(alpha.unbind(0), norms, es, self.startprob, trans, n_active)
            _backward_buffers(beta.unbind(0), w.unbind(0), norms, es, trans, n_active)
        ll = (torch.log(norm.squeeze(-1)).double() + shift.double() * batch.mask).sum(0).to(e.dtype)  # (B,)
        xi = trans * (alpha[:-1].reshape(-1, K).T @ w[1:].reshape(-1, K)) if T > 1 else trans.new_zeros(K, K)
        gamma = alpha.mul_(beta)  # (T, B, K), eq. 27; zero on padding, where alpha is
        bad = (norm.squeeze(-1) < _underflow(e.dtype, K)).any(0)  # (B,)
        if bad.any():
            gamma, xi, ll = self._log_domain_repair(self._time_major(log_e, batch), batch, bad, gamma, xi, ll)
        return gamma, xi, ll

    def _log_domain_repair(self, log_e: Tensor, batch: _Batch, bad: Tensor, gamma: Tensor, xi: Tensor,
                           ll: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Recompute the sequences whose scaled pass underflowed in the log domain (rare, slow, exact)."""
        log_trans = F.log_softmax(self.trans_logits, 1)
        mask = batch.mask & bad[None, :]  # (T, B)
        T, B, K = log_e.shape
        la = log_e.new_full((T, B, K), -math.inf)
        la[0] = F.log_softmax(self.start_logits, 0) + log_e[0]
        for t in range(1, T):
            la[t] = torch.logsumexp(la[t - 1][:, :, None] + log_trans, 1) + log_e[t]
        lb = log_e.new_zeros(T, B, K)
        for t in range(T - 1, 0, -1):
            step = torch.logsumexp(log_trans + (log_e[t] + lb[t])[:, None, :], 2)
            lb[t - 1] = torch.where(batch.mask[t, :, None], step, lb[t - 1])
        last = (batch.lengths - 1).clamp_min(0)
        ll_log = torch.logsumexp(la[last, torch.arange(B)], 1)
        ll_log = torch.where(batch.lengths > 0, ll_log, torch.zeros_like(ll_log))
        g = torch.exp(la + lb - ll_log[None, :, None]) * mask[..., None]
        gamma = torch.where(bad[None, :, None], g, gamma)
        x = la[:-1, :, :, None] + log_trans + (log_e[1:] + lb[1:])[:, :, None, :] - ll_log[None, :, None, None]
        x = torch.exp(x) * mask[1:, :, None, None]  # (T-1, B, K, K)
        good = ~bad  # the scaled xi is nan from the bad rows: recompute the good rows' part
        if good.any():
            sub = _SubBatch(batch, good)
            good_xi = self._forward_backward(log_e[:, good].permute(2, 0, 1).reshape(K, -1), sub)[1]  # (K, T*B')
        else:
            good_xi = torch.zeros_like(xi)
        return gamma, good_xi + x.sum((0, 1)), torch.where(bad, ll_log, ll)

    @_flushed
    def posterior(self, x: Any, lengths: Any = None) -> Tensor:
        """p(z_t = k | x) (B, T, K) by forward-backward; rows of padding (t >= length) are 0."""
        batch = self._batch(x, lengths)
        gamma, _, _ = self._forward_backward(self._emission_log_prob(batch), batch)
        return batch.unsort(gamma.transpose(0, 1))

    @_flushed
    def predict(self, x: Any, lengths: Any = None) -> Tensor:
        """The most likely state at each step (B, T) (posterior decoding); -1 on padding."""
        batch = self._batch(x, lengths)
        gamma, _, _ = self._forward_backward(self._emission_log_prob(batch), batch)
        states = torch.where(batch.mask, gamma.argmax(-1), -1)
        return batch.unsort(states.T)

    # -- Viterbi ---------------------------------------------------------------------------------

    @torch.no_grad()
    @_flushed
    def viterbi(self, x: Any, lengths: Any = None) -> tuple[Tensor, Tensor]:
        """The most likely state path (B, T) (-1 on padding) and its joint log-probability log p(x, z) (B,)."""
        batch = self._batch(x, lengths)
        log_e = self._time_major(self._emission_log_prob(batch), batch)  # (T, B, K)
        log_trans = F.log_softmax(self.trans_logits, 1)
        T, B, K = log_e.shape
        if T == 0:
            return torch.full((B, 0), -1, dtype=torch.long), log_e.new_zeros(B)
        delta = torch.empty_like(log_e)  # delta_t(j), eq. 32-33a; back-pointers are recomputed when backtracking
        torch.add(F.log_softmax(self.start_logits, 0), log_e[0], out=delta[0])
        with _flush_denormals():
            _viterbi_forward(delta.unbind(0), log_e.unbind(0), log_trans, batch.n_active)
        last = (batch.lengths - 1).clamp_min(0)
        ends = delta[last, torch.arange(B, device=delta.device)]  # (B, K): each row at its last step
        final = ends.argmax(1)  # the first maximum, as hmmlearn
        score = ends.gather(1, final[:, None]).squeeze(1)
        paths = _backtrack(delta.cpu().numpy(), log_trans.detach().cpu().numpy(), final.cpu().numpy(), batch.n_active)
        paths = torch.from_numpy(paths).to(log_e.device)  # (T, B)
        empty = batch.lengths == 0
        score = torch.where(empty, torch.zeros_like(score), score)
        return batch.unsort(paths.T.contiguous()), batch.unsort(score)

    # -- EM --------------------------------------------------------------------------------------

    @torch.no_grad()
    @_flushed
    def e_step(self, x: Any, lengths: Any = None) -> dict[str, Tensor]:
        """Baum-Welch sufficient statistics summed over the batch: "start" (K,), "trans" (K, K), the emission's,
        "log_likelihood" (sum over sequences) and "count" (number of emitted steps, so log_likelihood / count
        is nats per step and BIC counts observations, as hmmlearn's does)."""
        batch = self._batch(x, lengths)
        log_e = self._emission_log_prob(batch)
        gamma, xi, ll = self._forward_backward(log_e, batch)
        flat_gamma = gamma.reshape(-1, self.n_states).T  # (K, T*B)
        flat_x = batch.x.reshape(batch.T * batch.B, *batch.x.shape[2:])
        stats = {"start": gamma[0].sum(0) if batch.T else gamma.new_zeros(self.n_states), "trans": xi}
        stats.update(self.emission.stats(flat_x, flat_gamma))
        stats["log_likelihood"] = ll.sum()
        stats["count"] = batch.lengths.sum().to(ll.dtype)
        return stats

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor]) -> None:
        """Closed-form Baum-Welch update from summed statistics (Rabiner eq. 40); unvisited states keep theirs."""
        start = stats["start"].to(torch.float64)
        if start.sum() > 0:
            self.start_logits.copy_(_log_probs(start / start.sum()))
        trans = stats["trans"].to(torch.float64)
        total = trans.sum(1, keepdim=True)
        live = total.squeeze(1) > 0
        self.trans_logits[live] = _log_probs(trans / total.clamp_min(1e-300)).to(self.dtype)[live]
        self.emission.m_step({k: v for k, v in stats.items() if k not in ("start", "trans")})

    @torch.no_grad()
    def initialize(self, x: Any, lengths: Any = None, *, seed: int = 0) -> None:
        """Data-driven starting parameters: uniform start, near-uniform random transitions, emissions from the frames."""
        batch = self._batch(x, lengths)
        frames = batch.x[batch.mask]  # (N, ...) valid steps only
        if len(frames) == 0:
            raise ValueError("x must hold at least one step to initialise from, got only empty sequences")
        gen = generator(seed, frames.device)
        k = self.n_states
        rand = torch.rand(k, k, generator=gen, device=frames.device, dtype=torch.float64)
        trans = 0.5 / k + 0.5 * rand / rand.sum(1, keepdim=True)
        self.start_logits.fill_(0.0)
        self.trans_logits.copy_(trans.log())
        self.emission.initialize(frames, gen)

    def fit(self, x: Any, lengths: Any = None, *, max_iter: int = 100, tol: float = 1e-4,
            batch_size: int | None = None, method: str = "em", lr: float = 0.05, init: bool = True,
            seed: int = 0, verbose: bool = False) -> "HiddenMarkovModel":
        """Fit by Baum-Welch EM (``method="em"``) or Adam on -log p(x) (``"gradient"``); returns self.

        `x` is a batch, a list of sequences, or an iterable of batches (a DataLoader yielding ``x`` or
        ``(x, lengths)``): EM then accumulates the statistics of every batch before each M-step, so
        data larger than memory gives the exact full-batch update. `batch_size` splits a batch into
        chunks of that many sequences the same way. Stops when the log-likelihood per step improves by
        less than `tol`. ``self.history_`` holds the log-likelihood per step before each M-step.
        """
        if method not in ("em", "gradient"):
            raise ValueError(f"method must be 'em' or 'gradient', got {method!r}")
        check_int("max_iter", max_iter, 1)
        check_float("tol", tol)  # negative: every iteration runs
        batches = self._fit_batches(x, lengths, batch_size)
        if init:
            first = batches[0]
            self.initialize(*first, seed=seed)
        self.history_: list[float] = []
        step = self._em_step if method == "em" else self._gradient_step(lr)
        for it in range(max_iter):
            ll = step(batches)
            self.history_.append(ll)
            if verbose:
                print(f"iteration {it}: log-likelihood per step {ll:.6f}")
            if len(self.history_) > 1 and abs(ll - self.history_[-2]) < tol:
                break
        return self

    def _fit_batches(self, x: Any, lengths: Any, batch_size: int | None) -> list[tuple]:
        is_batches = isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(b, (list, tuple)) for b in x)
        if isinstance(x, (Tensor, list, tuple, np.ndarray)) and not is_batches:
            if batch_size is None:
                return [(x, lengths)]
            check_int("batch_size", batch_size, 1)
            lens = None if lengths is None else torch.as_tensor(lengths)
            return [(x[i:i + batch_size], None if lens is None else lens[i:i + batch_size])
                    for i in range(0, len(x), batch_size)]
        batches = [tuple(b) if self._is_x_lengths(b) else (b, None) for b in x]
        if not batches:
            raise ValueError("x must yield at least one batch, got an empty iterable")
        return batches

    def _is_x_lengths(self, b: Any) -> bool:
        """Whether a loader's batch is a pair (padded x, lengths) rather than a list of two sequences."""
        if not (isinstance(b, (tuple, list)) and len(b) == 2 and isinstance(b[0], Tensor)):
            return False
        padded_dims = 2 if self.emission_type == "categorical" else 3
        lens = b[1]
        return b[0].dim() == padded_dims and (lens is None or (isinstance(lens, Tensor) and lens.dim() == 1
                                                               and not lens.is_floating_point()))

    def _em_step(self, batches: Iterable[tuple]) -> float:
        stats: dict[str, Tensor] | None = None
        for xb, lb in batches:
            s = {k: v.to(torch.float64) for k, v in self.e_step(xb, lb).items()}
            stats = s if stats is None else {k: stats[k] + s[k] for k in s}
        assert stats is not None
        self.m_step(stats)
        return (stats["log_likelihood"] / stats["count"].clamp_min(1)).item()

    def _gradient_step(self, lr: float):
        opt = torch.optim.Adam(self.parameters(), lr=lr)

        def step(batches: Iterable[tuple]) -> float:
            total, count = 0.0, 0
            opt.zero_grad()
            for xb, lb in batches:
                batch = self._batch(xb, lb)
                ll = self._forward_loglik(self._emission_log_prob(batch), batch).sum()
                steps = int(batch.lengths.sum())
                (-ll / max(steps, 1)).backward()
                total, count = total + ll.item(), count + steps
            opt.step()
            return total / max(count, 1)

        return step

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, length: int, *, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """n sequences of `length` steps: observations (n, length, D) (categorical: (n, length) long) and states."""
        check_int("n", n, 1)
        check_int("length", length, 0)
        check_work("n", n * length, MAX_SAMPLE_STEPS, "steps (n x length)")
        check_work("n", n * length * (self.n_features or 1), MAX_VALUES, "values (n x length x features)")
        device = self.start_logits.device
        gen = generator(seed, device)
        start_cdf = self.startprob.double().cumsum(0)
        trans_cdf = self.transmat.double().cumsum(1)
        u = torch.rand(n, length, generator=gen, device=device, dtype=torch.float64)
        states = torch.zeros(n, length, dtype=torch.long, device=device)
        last = self.n_states - 1
        for t in range(length):
            cdf = start_cdf.expand(n, -1).contiguous() if t == 0 else trans_cdf[states[:, t - 1]]
            states[:, t] = torch.searchsorted(cdf, u[:, t:t + 1].contiguous()).squeeze(1).clamp_max(last)
        return self.emission.sample(states, gen), states


class _SubBatch(_Batch):
    """The rows `keep` of an already sorted batch (still sorted, time-major)."""

    def __init__(self, batch: _Batch, keep: Tensor):  # noqa: D107 - no super().__init__: already prepared
        self.x, self.lengths = batch.x[:, keep], batch.lengths[keep]
        self.order, self.sorted = torch.arange(int(keep.sum())), True
        self.T, self.B = batch.T, int(keep.sum())
        self.mask = batch.mask[:, keep]
        self.n_active = self.mask.sum(1).tolist()


def _forward_norms(e: Tensor, start: Tensor, trans: Tensor, n_active: Sequence[int]) -> Tensor:
    """Scaled forward recursion (Rabiner eq. 91-92), functional for autograd: the scaling factors of every
    valid step, time-major, concatenated ((sum_t n_t, 1)); alpha_t itself is dropped after each step."""
    alpha = start * e[0, : n_active[0]]  # (n, K)
    norm = alpha.sum(1, keepdim=True)
    alpha = alpha / norm
    norms = [norm]
    for t in range(1, len(e)):
        n = n_active[t]
        if n == 0:
            break
        if n < len(alpha):
            alpha = alpha[:n]  # sequences that ended drop out: the batch is sorted by length
        alpha = (alpha @ trans) * e[t, :n]  # (n, K)
        norm = alpha.sum(1, keepdim=True)
        alpha = alpha / norm
        norms.append(norm)
    return torch.cat(norms)


def _forward_buffers(a: Sequence[Tensor], c: Sequence[Tensor], e: Sequence[Tensor], start: Tensor, trans: Tensor,
                     n_active: Sequence[int]) -> None:
    """The same recursion written in place into per-step views a[t] (B, K) and c[t] (B, 1) (no allocation)."""
    n0 = n_active[0]
    torch.mul(start, e[0][:n0], out=a[0][:n0])
    torch.sum(a[0][:n0], 1, keepdim=True, out=c[0][:n0])
    a[0][:n0].div_(c[0][:n0])
    B = len(a[0])
    for t in range(1, len(a)):
        n = n_active[t]
        if n == 0:
            break
        cur, s = (a[t], c[t]) if n == B else (a[t][:n], c[t][:n])
        torch.mm(a[t - 1] if n == B else a[t - 1][:n], trans, out=cur)
        cur.mul_(e[t] if n == B else e[t][:n])
        torch.sum(cur, 1, keepdim=True, out=s)
        cur.div_(s)


def _backward_buffers(b: Sequence[Tensor], w: Sequence[Tensor], c: Sequence[Tensor], e: Sequence[Tensor],
                      trans: Tensor, n_active: Sequence[int]) -> None:
    """Scaled backward recursion (eq. 93) in place: w_t = e_t * beta_t / c_t, beta_{t-1} = w_t A^T.

    beta starts at 1 everywhere, which is right at each sequence's last step; w_t is kept for the
    transition posteriors xi_t(i, j) = alpha_t(i) A_ij w_{t+1}(j) (eq. 37 with scaling)."""
    trans_t = trans.T.contiguous()
    B = len(b[0])
    for t in range(len(b) - 1, 0, -1):
        n = n_active[t]
        if n == 0:
            continue
        wt = w[t] if n == B else w[t][:n]
        torch.mul(e[t] if n == B else e[t][:n], b[t] if n == B else b[t][:n], out=wt)
        wt.div_(c[t] if n == B else c[t][:n])
        torch.mm(wt, trans_t, out=b[t - 1] if n == B else b[t - 1][:n])


def _viterbi_forward(delta: Sequence[Tensor], log_e: Sequence[Tensor], log_trans: Tensor,
                     n_active: Sequence[int]) -> None:
    """delta_t(j) = max_i delta_{t-1}(i) + log A_ij + log e_t(j) (eq. 33a), written into delta[t] (B, K).

    The scores are laid out (K_from, n, K_to) so the max over predecessors is an elementwise max of
    K slabs (a max over a short last dimension, with indices, is ~50x slower on CPU)."""
    B = len(delta[0])
    for t in range(1, len(delta)):
        n = n_active[t]
        if n == 0:
            break
        prev, cur = (delta[t - 1], delta[t]) if n == B else (delta[t - 1][:n], delta[t][:n])
        scores = prev.T.contiguous()[:, :, None] + log_trans[:, None, :]  # (K, n, K), contiguous in this order
        torch.amax(scores, 0, out=cur)
        cur.add_(log_e[t] if n == B else log_e[t][:n])


def _backtrack(delta: np.ndarray, log_trans: np.ndarray, final: np.ndarray, n_active: Sequence[int]) -> np.ndarray:
    """Best paths (T, B), -1 on padding: z_T = the best final state, z_{t-1} = argmax_i delta_{t-1}(i) + log A_{i z_t}
    (eq. 34-35), the same sums as the forward max, so the same choice; ties go to the lowest state, as in hmmlearn."""
    T, B, _ = delta.shape
    paths = np.full((T, B), -1, dtype=np.int64)
    cur = final.copy()
    into = np.ascontiguousarray(log_trans.T)  # into[j] = log A[:, j]
    for t in range(T - 1, -1, -1):
        n = n_active[t]
        if n == 0:
            continue
        paths[t, :n] = cur[:n]
        if t > 0:
            cur[:n] = np.argmax(delta[t - 1, :n] + into[cur[:n]], axis=1)
    return paths
