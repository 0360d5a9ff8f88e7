"""Gaussian mixture model as a torch layer: exact log-density, EM in log space, or gradient training.

    p(x) = sum_k pi_k N(x; mu_k, Sigma_k)

Every covariance is stored by the Cholesky factor of its *precision* (scikit-learn's
``precisions_cholesky_``): an upper-triangular P_k with P_k P_k^T = Sigma_k^{-1}, so

    log N(x; mu_k, Sigma_k) = -D/2 log 2pi + sum_d log P_k[d, d] - 1/2 ||(x - mu_k) P_k||^2

costs one matrix product and no solve. Parameters are unconstrained (log-weights, P_k with its
diagonal stored as a log), so ``-log_prob(x).mean()`` backpropagates to a valid mixture and the
layer can sit inside a bigger network. EM (Dempster et al. 1977) runs on the same parameters:
``e_step`` returns sufficient statistics summed over a batch (so they stream over a DataLoader and
add up across processes), ``m_step`` turns them into parameters in closed form.

Speed: the E-step of ``fit`` is two matrix products per chunk of rows. Each row's "design"
[packed x x^T (or x^2), x] is computed once per fit; log pi_k N(x; mu_k, Sigma_k) is then
design @ W + b (the quadratic form expanded), and the statistics r^T @ design give every
sum_n r_nk x_n x_n^T and sum_n r_nk x_n at once. Exponentials use exp2 (torch's CPU exp is slow on
underflowing arguments). float32 is the default: on the benchmark's data the final mean
log-likelihood per sample is within 1e-5 relative of float64's, and a test holds EM trajectories
within 1e-4; call ``.double()`` for float64.

Example::

    gmm = GaussianMixture(n_components=3, n_features=2)
    gmm.fit(x, max_iter=100, tol=1e-3, seed=0)    # x (N, 2)
    gmm.log_prob(x)                              # (N,) log p(x) in nats
    gmm.predict(x), gmm.sample(10, seed=0)       # (N,) components, (10, 2) samples
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from zoo.checks import MAX_VALUES, as_tensor, check_choice, check_float, check_int, check_work, generator
from zoo.layers._fast import LOG2E as _LOG2E
from zoo.layers._fast import exp2_cut, logsumexp, softmax

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
_CHUNK = 16384  # rows per E-step chunk: keeps the (rows, K) and (rows, K*D) intermediates a few MB


class GaussianMixture(nn.Module):
    """A mixture of `n_components` Gaussians in `n_features` dimensions (see the module docstring).

    Args:
        n_components: K, the number of Gaussians.
        n_features: D, the dimension of x.
        covariance_type: "full" (one D x D covariance each), "diag", "spherical" (one variance each)
            or "tied" (one D x D covariance shared by all).
        reg_covar: added to the covariance diagonal at each M-step, so no component collapses.
    """

    def __init__(self, n_components: int, n_features: int, covariance_type: str = "full", reg_covar: float = 1e-6):
        super().__init__()
        n_components, n_features = check_int("n_components", n_components, 1), check_int("n_features", n_features, 1)
        check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
        self.n_components, self.n_features = n_components, n_features
        self.covariance_type, self.reg_covar = covariance_type, check_float("reg_covar", reg_covar, 0)
        k, d = n_components, n_features
        self.logits = nn.Parameter(torch.zeros(k))  # log pi_k up to a constant
        self.means = nn.Parameter(torch.randn(k, d))
        shape = {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}[covariance_type]
        self.prec_chol_raw = nn.Parameter(torch.zeros(shape))  # P with log-diagonal: identity covariances
        self.history: list[float] = []  # mean log-likelihood per sample at each EM iteration of `fit`
        self.converged = False

    # -- parameters ----------------------------------------------------------------------------

    @property
    def weights(self) -> Tensor:
        return torch.softmax(self.logits, 0)  # (K,)

    @property
    def precisions_cholesky(self) -> Tensor:
        """P: (K, D, D) full, (D, D) tied (upper-triangular, positive diagonal); (K, D) diag; (K,) spherical."""
        raw = self.prec_chol_raw
        if self.covariance_type in ("full", "tied"):
            return raw.triu(1) + torch.diag_embed(raw.diagonal(dim1=-2, dim2=-1).exp())
        return raw.exp()

    @property
    def covariances(self) -> Tensor:
        """Sigma in scikit-learn's layout: (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical."""
        p = self.precisions_cholesky
        if self.covariance_type in ("full", "tied"):
            eye = torch.eye(self.n_features, dtype=p.dtype, device=p.device)
            p_inv = torch.linalg.solve_triangular(p, eye.expand_as(p), upper=True)
            return p_inv.mT @ p_inv  # (P P^T)^-1 = P^-T P^-1
        return p.pow(-2)

    @property
    def n_parameters(self) -> int:
        """Free parameters (for BIC/AIC), as scikit-learn counts them."""
        k, d = self.n_components, self.n_features
        cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k, "tied": d * (d + 1) // 2}
        return cov[self.covariance_type] + k * d + k - 1

    @classmethod
    def from_params(cls, weights: Any, means: Any, covariances: Any, covariance_type: str = "full",
                    reg_covar: float = 1e-6) -> "GaussianMixture":
        """A mixture with the given pi (K,), mu (K, D) and Sigma (scikit-learn's layout); dtype follows `means`.

        Start EM from them with ``fit(x, init=None)``.
        """
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.float()
        if means.dim() != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        gmm = cls(means.shape[0], means.shape[1], covariance_type, reg_covar).to(means.dtype)
        weights = torch.as_tensor(weights, dtype=means.dtype)
        if weights.shape != (gmm.n_components,) or (weights < 0).any() or not torch.isclose(
                weights.sum(), torch.ones((), dtype=weights.dtype), atol=1e-4):
            raise ValueError(f"weights must be {gmm.n_components} non-negative numbers summing to 1, got {weights}")
        cov = torch.as_tensor(covariances, dtype=means.dtype)
        with torch.no_grad():
            gmm.logits.copy_(weights.clamp_min(torch.finfo(means.dtype).tiny).log())
            gmm.means.copy_(means)
            gmm._set_covariances(cov, name="covariances")
        return gmm

    def _set_covariances(self, cov: Tensor, name: str = "covariances") -> None:
        """Store Sigma (scikit-learn's layout) as the log-diagonal Cholesky factor of its precision."""
        expected = tuple(self.prec_chol_raw.shape)
        if tuple(cov.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} for covariance_type={self.covariance_type!r}, "
                             f"got {tuple(cov.shape)}")
        if self.covariance_type in ("full", "tied"):
            p = _precision_cholesky(cov)
            raw = p.triu(1) + torch.diag_embed(p.diagonal(dim1=-2, dim2=-1).log())
        else:
            if not (cov > 0).all():
                raise ValueError(f"{name} must be positive, got a minimum of {cov.min().item()}")
            raw = -0.5 * cov.log()
        self.prec_chol_raw.copy_(raw)

    # -- densities -----------------------------------------------------------------------------

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log pi_k + log N(x; mu_k, Sigma_k) for every sample and component: (N, K)."""
        x = self._check(x)
        if len(x) == 0:
            return x.new_zeros(0, self.n_components)
        return torch.cat([self._weighted_log_prob(c) for c in x.split(_CHUNK // 4)])

    def _weighted_log_prob(self, x: Tensor) -> Tensor:
        """(N, D) -> (N, K): log pi_k + log N(x_n; mu_k, Sigma_k). The hot loop of EM."""
        k, d = self.n_components, self.n_features
        p = self.precisions_cholesky
        kind = self.covariance_type
        if kind == "full":  # ||x P_k - mu_k P_k||^2 with one (N, D) x (D, K*D) product
            y = x @ p.permute(1, 0, 2).reshape(d, k * d)  # (N, K*D)
            mp = (self.means.unsqueeze(1) @ p).reshape(1, k * d)  # (1, K*D): mu_k P_k
            maha = (y - mp).square_().view(len(x), k, d).sum(-1)  # (N, K)
            log_det = p.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
        elif kind == "tied":
            y = x @ p  # (N, D)
            mp = self.means @ p  # (K, D)
            maha = (y.square().sum(1, keepdim=True) - 2 * y @ mp.T + mp.square().sum(1)).clamp_min(0)  # (N, K)
            log_det = p.diagonal().log().sum().expand(k)
        else:
            prec = p.square() if kind == "diag" else p.square().unsqueeze(1).expand(k, d)  # (K, D) 1/sigma^2
            m = self.means
            maha = (x.square() @ prec.T - 2 * x @ (m * prec).T + (m.square() * prec).sum(1)).clamp_min(0)
            log_det = p.log().sum(-1) if kind == "diag" else d * p.log()
        return -0.5 * (d * math.log(2 * math.pi) + maha) + log_det + torch.log_softmax(self.logits, 0)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) per sample, (N,), in nats. Differentiable in the parameters."""
        return logsumexp(self.component_log_prob(x), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    def posterior(self, x: Tensor) -> Tensor:
        """Responsibilities p(component k | x_n): (N, K), rows sum to 1."""
        return softmax(self.component_log_prob(x), dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """The most probable component of each sample: (N,) int64."""
        return self.component_log_prob(x).argmax(1)

    def bic(self, x: Tensor) -> float:
        """Bayesian information criterion on x (lower is better): -2 log L + p log N."""
        return (-2 * self.log_prob(x).double().sum() + self.n_parameters * math.log(len(x))).item()

    def aic(self, x: Tensor) -> float:
        """Akaike information criterion on x (lower is better): -2 log L + 2 p."""
        return (-2 * self.log_prob(x).double().sum() + 2 * self.n_parameters).item()

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, return_components: bool = False):
        """n samples (n, D); with ``return_components`` also their components (n,). Same seed, same samples."""
        check_int("n", n, 1)
        check_work("n", n * self.n_features, MAX_VALUES, "values (n x n_features)")
        gen = generator(seed, self.means.device)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)  # (n,)
        z = torch.randn(n, self.n_features, generator=gen, dtype=self.means.dtype, device=self.means.device)
        p = self.precisions_cholesky
        if self.covariance_type in ("full", "tied"):
            eye = torch.eye(self.n_features, dtype=p.dtype, device=p.device)
            p_inv = torch.linalg.solve_triangular(p, eye.expand_as(p), upper=True)  # z P^-1 has covariance Sigma
            if self.covariance_type == "tied":
                x = z @ p_inv
            else:  # component by component: never an (n, D, D) stack of factors
                x = torch.empty_like(z)
                for k in comp.unique().tolist():
                    rows = comp == k
                    x[rows] = z[rows] @ p_inv[k]
        else:
            scale = 1 / (p if self.covariance_type == "diag" else p.unsqueeze(1))  # (K, D) or (K, 1)
            x = z * scale[comp]
        x = x + self.means[comp]
        return (x, comp) if return_components else x

    # -- EM ------------------------------------------------------------------------------------

    @torch.no_grad()
    def e_step(self, x: Tensor, design: Tensor | None = None) -> dict[str, Tensor]:
        """Sufficient statistics of a batch, summed over its samples (float64), for ``m_step``.

        Keys: count, log_likelihood (sum of log p(x_n)), nk (K,) = sum_n r_nk, sx (K, D) = sum_n r_nk x_n,
        and the second moments: sxx (K, D, D) full, (D, D) tied (sum_n x_n x_n^T), (K, D) diag, (K,) spherical.
        `design` optionally passes ``design(x)`` of an already checked x (constant over EM iterations)
        to skip recomputing it.
        """
        if design is None:  # a given design comes from checked data (fit's cache): no second pass over x
            x = self._check(x)
            design = self.design(x)
        if len(design) == 0:
            raise ValueError("x is an empty batch: expected at least one sample")
        weights, bias = self._design_weights()
        weights, bias = weights * _LOG2E, bias * _LOG2E  # base-2 logits: exp2 is far faster than exp on CPU
        f64, t = torch.float64, design.shape[1] - self.n_features
        ll, nk, moments = torch.zeros((), dtype=f64), 0, 0
        for f in design.split(_CHUNK):
            log2_r = torch.addmm(bias, f, weights)  # (C, K): log2 [pi_k N(x_n; mu_k, Sigma_k)], step E1
            top = log2_r.amax(1, keepdim=True)  # (C, 1)
            r = exp2_cut(log2_r.sub_(top))  # (C, K), unnormalised; no slow denormals
            total = r.sum(1, keepdim=True)  # (C, 1)
            r.mul_(total.reciprocal())  # responsibilities r_nk, step E2
            ll += (top + total.log2()).sum(dtype=f64) / _LOG2E  # log p(x_n) = logsumexp_k, in nats
            nk = nk + r.sum(0).to(f64)  # (K,): a pairwise sum in the data's dtype, then accumulated in float64
            moments = moments + (r.T @ f).to(f64)  # (K, T + D): sums of r_nk * [second moments, x_n], step E3
        return {"count": torch.tensor(float(len(design)), dtype=f64, device=design.device), "log_likelihood": ll,
                "nk": nk, "sx": moments[:, t:], "sxx": self._second_moments(moments[:, :t])}

    def design(self, x: Tensor) -> Tensor:
        """Per-sample features that make the E-step two matrix products: (N, T + D) = [second moments, x].

        The second moments are x_i x_j (i <= j) for full/tied, x_d^2 for diag, ||x||^2 for spherical,
        so log pi_k N(x; mu_k, Sigma_k) = design(x) @ W + b. Note: this expanded quadratic form loses
        accuracy to cancellation when the data sit far from the origin relative to their spread
        (~1e-6 relative in float32 on centred data); ``log_prob`` uses the stable form.
        """
        kind = self.covariance_type
        second = {"diag": lambda: x.square(), "spherical": lambda: x.square().sum(1, keepdim=True)}.get(
            kind, lambda: _packed_outer(x))()
        return torch.cat([second, x], dim=1)

    def _design_weights(self) -> tuple[Tensor, Tensor]:
        """W (T + D, K) and b (K,) with log pi_k + log N(x; mu_k, Sigma_k) = design(x) @ W + b."""
        p, m, d, kind = self.precisions_cholesky, self.means, self.n_features, self.covariance_type
        if kind in ("full", "tied"):
            prec = p @ p.mT  # (K, D, D) or (D, D): Lambda = P P^T
            prec = prec.expand(self.n_components, d, d) if kind == "tied" else prec
            i, j = torch.triu_indices(d, d, device=p.device)
            quad = prec[:, i, j] * torch.where(i == j, 1.0, 2.0).to(p.dtype)  # (K, T): x^T Lambda x, packed
            lin = (prec @ m.unsqueeze(2)).squeeze(2)  # (K, D): Lambda mu
            log_det = p.diagonal(dim1=-2, dim2=-1).log().sum(-1).expand(self.n_components)
        else:
            prec = p.square().unsqueeze(1)  # (K, 1): 1 / sigma_k^2 (spherical)
            if kind == "diag":
                prec = p.square()  # (K, D)
            quad, lin = prec, m * prec
            log_det = p.log().sum(-1) if kind == "diag" else d * p.log()
        const = (lin * m).sum(1)  # (K,): mu^T Lambda mu
        weights = torch.cat([-0.5 * quad, lin], dim=1).T.contiguous()  # (T + D, K)
        bias = -0.5 * (d * math.log(2 * math.pi) + const) + log_det + torch.log_softmax(self.logits, 0)
        return weights, bias

    def _second_moments(self, packed: Tensor) -> Tensor:
        """(K, T) summed second moments -> the ``sxx`` layout of ``e_step``."""
        if self.covariance_type == "full":
            return _unpack_symmetric(packed, self.n_features)  # (K, D, D)
        if self.covariance_type == "tied":
            return _unpack_symmetric(packed.sum(0, keepdim=True), self.n_features)[0]  # (D, D): sum_n x x^T
        return packed.squeeze(1) if self.covariance_type == "spherical" else packed

    @torch.no_grad()
    def m_step(self, stats: dict[str, Tensor]) -> None:
        """Closed-form parameters from summed statistics (computed in float64, stored in the layer's dtype)."""
        dtype = self.means.dtype
        nk = stats["nk"].double() + 10 * torch.finfo(dtype).eps  # (K,) no empty component divides by 0
        means = stats["sx"].double() / nk.unsqueeze(1)  # (K, D)
        sxx, d = stats["sxx"].double(), self.n_features
        kind = self.covariance_type
        if kind == "full":
            cov = sxx / nk.view(-1, 1, 1) - means.unsqueeze(2) * means.unsqueeze(1)  # (K, D, D)
        elif kind == "tied":
            cov = (sxx - (nk.view(-1, 1, 1) * means.unsqueeze(2) * means.unsqueeze(1)).sum(0)) / nk.sum()
        elif kind == "diag":
            cov = sxx / nk.unsqueeze(1) - means.square()  # (K, D)
        else:
            cov = (sxx / nk - means.square().sum(1)) / d  # (K,)
        if kind in ("full", "tied"):
            cov = (cov + cov.mT) / 2 + self.reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)
        else:
            cov = cov.clamp_min(0) + self.reg_covar
        self.logits.copy_((nk / nk.sum()).log().to(dtype))
        self.means.copy_(means.to(dtype))
        self._set_covariances(cov.to(dtype) if kind not in ("full", "tied") else cov)

    @torch.no_grad()
    def initialize(self, x: Tensor, init: str = "kmeans++", seed: int | None = None) -> None:
        """Parameters from hard assignments of x: "kmeans++" seeding, "kmeans" (seeding + Lloyd), or "random"."""
        x = self._check(x)
        if len(x) < self.n_components:
            raise ValueError(f"x has {len(x)} samples, fewer than n_components={self.n_components}")
        gen = generator(0 if seed is None else seed, x.device)
        if init in ("kmeans++", "kmeans"):
            centers = kmeans_plus_plus(x, self.n_components, gen)
            if init == "kmeans":
                centers = lloyd(x, centers)
            r = torch.nn.functional.one_hot(_nearest(x, centers), self.n_components).to(x.dtype)
        elif init == "random":
            r = torch.rand(len(x), self.n_components, generator=gen, device=x.device, dtype=x.dtype)
            r = r / r.sum(1, keepdim=True)
        else:
            raise ValueError(f"init must be 'kmeans++', 'kmeans', 'random' or None, got {init!r}")
        self.m_step(self.stats_from_responsibilities(x, r))

    def stats_from_responsibilities(self, x: Tensor, r: Tensor) -> dict[str, Tensor]:
        """``m_step``'s statistics from responsibilities r (N, K): memory (N, K) + the moments ((K, D, D) full),
        where ``e_step``'s fast path holds (N, D(D+1)/2) second moments of a batch (use this for large D)."""
        kind = self.covariance_type
        sxx = {"full": lambda: torch.einsum("nk,nd,ne->kde", r, x, x), "tied": lambda: x.T @ x,
               "diag": lambda: r.T @ x.square(), "spherical": lambda: r.T @ x.square().sum(1)}[kind]()
        return {"nk": r.sum(0).double(), "sx": (r.T @ x).double(), "sxx": sxx.double()}

    def fit(self, x: Tensor | Iterable, max_iter: int = 100, tol: float = 1e-3, init: str | None = "kmeans++",
            batch_size: int | None = None, seed: int | None = None, init_samples: int = 100_000,
            progress: bool = False) -> "GaussianMixture":
        """EM until the mean log-likelihood per sample improves by less than `tol` (or `max_iter` iterations; a
        negative `tol` runs them all).

        `x` is a tensor (N, D) or, for data larger than memory, a re-iterable of batches (a DataLoader;
        a batch may be a tensor or a tuple whose first item is x). Each iteration streams over the
        batches (`batch_size` rows at a time for a tensor), sums the sufficient statistics, then runs
        one M-step: exact EM, whatever the batch size. `init=None` keeps the current parameters
        (e.g. from ``from_params``); otherwise see ``initialize``, run on the first `init_samples` rows.
        Records ``history`` (mean log-likelihood per sample before each M-step) and ``converged``.
        """
        check_int("max_iter", max_iter, 1)
        check_float("tol", tol)  # negative: every iteration runs
        batches = self._batches(x, batch_size)
        if init is not None:
            self.initialize(_first_rows(batches, init_samples), init=init, seed=seed)
        self.history, self.converged = [], False
        iterations = range(max_iter)
        if progress:
            from tqdm.auto import tqdm

            iterations = tqdm(iterations, desc="EM", unit="iter")
        for _ in iterations:
            stats = None
            for b, design in batches:
                s = self.e_step(b, design)
                stats = s if stats is None else {k: stats[k] + v for k, v in s.items()}
            self.m_step(stats)
            self.history.append(stats["log_likelihood"].item() / stats["count"].item())
            if len(self.history) > 1 and abs(self.history[-1] - self.history[-2]) < tol:
                self.converged = True
                break
        return self

    def _batches(self, x: Tensor | Iterable, batch_size: int | None) -> "_Batches":
        if _is_table(x):
            x = self._check(x)
            if len(x) < self.n_components:
                raise ValueError(f"x has {len(x)} samples, fewer than n_components={self.n_components}")
            if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                           or batch_size < 1):
                raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
            return _Batches(self, list(x.split(batch_size or len(x))))
        return _Batches(self, x)

    # -- input checks --------------------------------------------------------------------------

    def _check(self, x: Tensor) -> Tensor:
        x = as_tensor("x", x, dtype=self.means.dtype, device=self.means.device)
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (N, {self.n_features}), got {tuple(x.shape)}")
        return x

    def extra_repr(self) -> str:
        return f"{self.n_components}, {self.n_features}, covariance_type={self.covariance_type!r}"


def _is_table(x: Any) -> bool:
    """Whether `x` is one table of rows (a tensor, an array, nested lists of numbers), not an iterable of batches."""
    if isinstance(x, Tensor) or hasattr(x, "__array__"):
        return True
    first = x[0] if isinstance(x, (list, tuple)) and x else None
    return isinstance(first, (int, float)) or (isinstance(first, (list, tuple)) and not (first and isinstance(first[0], Tensor)))


class _Batches:
    """Re-iterable (x, design(x) or None) batches; in-memory tensors keep their design matrix between iterations."""

    def __init__(self, gmm: GaussianMixture, source: Iterable):
        self.gmm, self.source = gmm, source
        self.cache = None
        if isinstance(source, list):  # in memory: compute the design once for every iteration
            self.cache = [(b, gmm.design(b) if len(b) * b.shape[1] ** 2 < 2 ** 28 else None) for b in source]

    def __iter__(self):
        if self.cache is not None:
            yield from self.cache
            return
        for batch in self.source:
            b = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield self.gmm._check(b), None


def _first_rows(batches: _Batches, n: int) -> Tensor:
    rows, taken = [], 0
    for b, _ in batches:
        rows.append(b[:n - taken])
        taken += len(rows[-1])
        if taken >= n:
            break
    if not rows:
        raise ValueError("x is empty: expected at least one batch of samples")
    return torch.cat(rows)


# -- helpers ----------------------------------------------------------------------------------


def _precision_cholesky(cov: Tensor) -> Tensor:
    """Upper-triangular P with P P^T = cov^-1, for (..., D, D) covariances; a singular one gets more jitter."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    jitter = 0.0
    scale = cov.diagonal(dim1=-2, dim2=-1).abs().mean().clamp_min(1e-12).item()
    for _ in range(12):
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if not info.any():
            return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).mT
        jitter = max(jitter * 10, scale * 1e-10)
    raise ValueError("covariances must be symmetric positive definite (even with added jitter)")


def _packed_outer(x: Tensor) -> Tensor:
    """Upper triangles of the rows' outer products x_n x_n^T: (N, D) -> (N, D(D+1)/2)."""
    i, j = torch.triu_indices(x.shape[1], x.shape[1], device=x.device)
    return x[:, i] * x[:, j]


def _unpack_symmetric(packed: Tensor, d: int) -> Tensor:
    """(K, D(D+1)/2) upper triangles -> (K, D, D) symmetric matrices."""
    i, j = torch.triu_indices(d, d, device=packed.device)
    out = packed.new_zeros(packed.shape[0], d, d)
    out[:, i, j] = packed
    out[:, j, i] = packed
    return out


def _nearest(x: Tensor, centers: Tensor) -> Tensor:
    """Index of the nearest center of each row, (N,), in chunks of squared distances."""
    c2 = centers.square().sum(1)  # (K,)
    return torch.cat([(c2 - 2 * b @ centers.T).argmin(1) for b in x.split(65536)])


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new center drawn with probability ~ D(x)^2."""
    n = len(x)
    centers = [x[torch.randint(n, (1,), generator=generator, device=x.device)].squeeze(0)]
    d2 = (x - centers[0]).square().sum(1)  # (N,)
    for _ in range(1, k):
        total = d2.sum()
        probs = d2 / total if total > 0 else torch.full_like(d2, 1 / n)
        idx = torch.multinomial(probs.float(), 1, generator=generator)
        centers.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, (x - centers[-1]).square().sum(1))
    return torch.stack(centers)  # (K, D)


def lloyd(x: Tensor, centers: Tensor, max_iter: int = 100) -> Tensor:
    """Lloyd's k-means iterations from `centers` until the assignments stop changing."""
    labels = None
    for _ in range(max_iter):
        new = _nearest(x, centers)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=len(centers)).to(x.dtype)  # (K,)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        centers = torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1), centers)
    return centers
