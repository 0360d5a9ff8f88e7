"""Naive Bayes as generative torch layers: p(x, y) = p(y) prod_d p(x_d | y), fitted in closed form.

Four feature models, as in scikit-learn (whose numbers they reproduce):

- ``GaussianNaiveBayes``: x_d | y ~ N(mu_yd, sigma_yd^2), variances padded by ``var_smoothing`` times
  the largest feature variance;
- ``MultinomialNaiveBayes``: counts x | y ~ Multinomial(sum_d x_d, theta_y), Laplace/Lidstone ``alpha``;
- ``BernoulliNaiveBayes``: binary x_d | y ~ Bernoulli(p_yd) (x > ``binarize`` is 1);
- ``CategoricalNaiveBayes``: symbols x_d in {0..n_categories-1} | y ~ Categorical(theta_yd).

Fitting only sums sufficient statistics (class counts, per-class feature sums), so ``partial_fit``
streams over batches, ``e_step``/``m_step`` plug into ``zoo.systems.em.EMSystem`` (one epoch is the
whole fit, and DDP sums the statistics), and sparse counts (torch sparse or scipy CSR) never
densify. The parameters are unconstrained (class logits, means and log-variances, feature logits),
so every log-probability is differentiable and gradient training works too.

Example::

    nb = GaussianNaiveBayes(num_classes=10, n_features=64).fit(x, labels)   # x (N, 64), labels (N,)
    nb.predict(x), nb.predict_proba(x)            # (N,), (N, 10)
    nb.log_prob(x, labels=labels), nb.log_prob(x)  # joint log p(x, y) and marginal log p(x), (N,)
    nb.sample(5, labels=3, seed=0)                # (5, 64) features of class 3
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import MAX_VALUES, as_tensor, check_int, check_labels, check_work, generator
from zoo.layers._fast import logsumexp, softmax

Stats = dict[str, Tensor]


def _to_torch(x: Any) -> Tensor:
    """A tensor from a tensor, an array, or a scipy sparse matrix; sparse input becomes torch CSR.

    A canonical scipy CSR matrix (sorted, no duplicates: what scipy builds by default) is wrapped
    without a copy: its arrays are shared, and nothing here writes to them.
    """
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):  # scipy.sparse, without importing scipy
        csr = x if x.format == "csr" and x.has_canonical_format else x.tocsr(copy=True)
        csr.sum_duplicates()  # canonical: sorted columns, no repeated entries (a no-op when already so)
        return _csr(torch.from_numpy(csr.indptr), torch.from_numpy(csr.indices), torch.from_numpy(csr.data),
                    csr.shape)
    x = as_tensor("x", x, finite=False)  # finiteness is checked on the stored values, sparse or dense
    if x.layout == torch.sparse_coo:  # CSR products are ~15x faster than COO ones on CPU
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return x.coalesce().to_sparse_csr()
    return x


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape) -> Tensor:
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on creation
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=tuple(shape), check_invariants=False)


def _rows(x: Tensor) -> Tensor:
    """Row index of every stored value of a CSR tensor: (nnz,) int64."""
    crow = x.crow_indices()
    return torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())


class BaseNaiveBayes(nn.Module):
    """The shared machinery: class prior, closed-form (streaming) fit, prediction, densities, sampling."""

    #: which statistics a subclass sums per class, besides the class counts
    stat_names: tuple[str, ...] = ()

    def __init__(self, num_classes: int, n_features: int, fit_prior: bool = True):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.n_features = check_int("n_features", n_features, 1)
        self.fit_prior = bool(fit_prior)
        self.class_logits = nn.Parameter(torch.zeros(num_classes))  # log p(y) up to a constant
        self.register_buffer("class_count", torch.zeros(num_classes, dtype=torch.float64))

    # -- checks ----------------------------------------------------------------------------------

    def _check_x(self, x: Any) -> Tensor:
        x = _to_torch(x)
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (N, {self.n_features}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch: expected at least one sample")
        values = x.values() if x.layout == torch.sparse_csr else x
        if values.is_floating_point() and not torch.isfinite(values).all():
            raise ValueError("x contains NaN or inf: expected finite values")
        return x

    def _check_labels(self, labels: Any, n: int) -> Tensor:
        """`labels` (one class or n classes, any integer array) as a (n,) long tensor."""
        return check_labels(labels, n, self.num_classes, device=self.class_logits.device)

    # -- fitting -----------------------------------------------------------------------------------

    @torch.no_grad()
    def sufficient_statistics(self, x: Any, labels: Any) -> Stats:
        """Class counts and per-class feature sums of a batch (float64), the input of ``m_step``."""
        x = self._check_x(x)
        y = self._check_labels(labels, x.shape[0])
        stats = {"class_count": torch.bincount(y, minlength=self.num_classes).double()}
        stats.update(self._feature_stats(x, y))
        return stats

    @torch.no_grad()
    def e_step(self, x: Any, labels: Any) -> Stats:
        """``sufficient_statistics`` plus count and log_likelihood (sum of log p(x, y) under the current parameters)."""
        stats = self.sufficient_statistics(x, labels)
        joint = self.log_prob(x, labels=labels)
        stats["count"] = torch.tensor(float(len(joint)), dtype=torch.float64, device=joint.device)
        stats["log_likelihood"] = joint.sum(dtype=torch.float64)
        return stats

    @torch.no_grad()
    def m_step(self, stats: Stats) -> None:
        """Set every parameter from summed statistics (those of all data seen: this is the whole fit)."""
        count = stats["class_count"].to(self.class_count)
        if count.sum() <= 0:
            raise ValueError("no samples: the statistics count zero examples")
        self.class_count.copy_(count)
        for name in self.stat_names:
            getattr(self, name).copy_(stats[name])
        prior = count / count.sum() if self.fit_prior else torch.full_like(count, 1 / self.num_classes)
        self.class_logits.copy_(prior.clamp_min(1e-300).log())
        self._set_feature_params()

    def partial_fit(self, x: Any, labels: Any) -> "BaseNaiveBayes":
        """Add a batch to the statistics seen so far and refit: streaming, exact."""
        new = self.sufficient_statistics(x, labels)
        old = {"class_count": self.class_count, **{k: getattr(self, k) for k in self.stat_names}}
        self.m_step({k: old[k] + new[k] for k in new})
        return self

    def fit(self, x: Any, labels: Any = None) -> "BaseNaiveBayes":
        """Fit from scratch on (x, labels), or on an iterable of (x, labels) batches (a DataLoader) without labels."""
        self.class_count.zero_()
        for name in self.stat_names:
            getattr(self, name).zero_()
        batches = [(x, labels)] if labels is not None else x
        for bx, by in batches:
            self.partial_fit(bx, by)
        if self.class_count.sum() == 0:
            raise ValueError("x is empty: expected at least one batch of samples")
        return self

    # -- the model -----------------------------------------------------------------------------------

    def joint_log_prob(self, x: Any) -> Tensor:
        """log p(x, y=c) for every sample and class: (N, C) (scikit-learn's joint log-likelihood)."""
        x = self._check_x(x)
        return torch.log_softmax(self.class_logits, 0) + self._class_log_likelihood(x)

    def log_prob(self, x: Any, labels: Any = None) -> Tensor:
        """Joint log p(x, y) per sample (N,) when labels are given, else marginal log p(x) = logsumexp_c log p(x, c)."""
        joint = self.joint_log_prob(x)
        if labels is None:
            return logsumexp(joint, 1) + self._log_normaliser(x)
        y = self._check_labels(labels, len(joint))
        return joint.gather(1, y.unsqueeze(1)).squeeze(1) + self._log_normaliser(x)

    def forward(self, x: Any) -> Tensor:
        return self.predict_proba(x)

    def predict_proba(self, x: Any) -> Tensor:
        """p(y = c | x): (N, C)."""
        return softmax(self.joint_log_prob(x), 1)

    def predict(self, x: Any) -> Tensor:
        """The most probable class of each sample: (N,) int64."""
        return self.joint_log_prob(x).argmax(1)

    @torch.no_grad()
    def sample(self, n: int, *, labels: Any = None, seed: int | None = None, **kwargs: Any) -> Tensor:
        """n feature vectors (n, D) drawn from p(x | y); labels: a class, n classes, or None (drawn from p(y))."""
        check_int("n", n, 1)
        check_work("n", n * self.n_features, MAX_VALUES, "feature values")
        gen = generator(seed, self.class_logits.device)
        if labels is None:
            labels = torch.multinomial(torch.softmax(self.class_logits.float(), 0), n, replacement=True, generator=gen)
        return self._sample_features(self._check_labels(labels, n), gen, **kwargs)

    def _log_normaliser(self, x: Tensor) -> Tensor | float:
        """Terms of log p(x | y) that do not depend on y (left out of ``joint_log_prob``, as scikit-learn does)."""
        return 0.0

    # -- implemented by each feature model -------------------------------------------------------------

    def _feature_stats(self, x: Tensor, y: Tensor) -> Stats:
        raise NotImplementedError

    def _set_feature_params(self) -> None:
        raise NotImplementedError

    def _class_log_likelihood(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _sample_features(self, y: Tensor, gen: torch.Generator | None, **kwargs: Any) -> Tensor:
        raise NotImplementedError


def _dense_float(x: Tensor, dtype: torch.dtype) -> Tensor:
    return (x.to_dense() if x.layout != torch.strided else x).to(dtype)


def _per_class_sum(x: Tensor, y: Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """sum over samples of class c of x_n, for every c: (C, D) in `dtype`; x dense or sparse."""
    if x.layout == torch.strided:
        return torch.zeros(num_classes, x.shape[1], dtype=dtype, device=x.device).index_add_(0, y, x.to(dtype))
    d = x.shape[1]
    cell = torch.repeat_interleave(y * d, x.crow_indices().diff()) + x.col_indices()  # (nnz,) flat (class, feature)
    sums = torch.bincount(cell, weights=x.values().to(dtype), minlength=num_classes * d)  # one pass, no atomics
    return sums.view(num_classes, d)


def _matmul(x: Tensor, w: Tensor) -> Tensor:
    """x (N, D) dense or sparse @ w (D, C)."""
    if x.layout == torch.strided:
        return x.to(w.dtype) @ w
    return _csr(x.crow_indices(), x.col_indices(), x.values().to(w.dtype), x.shape) @ w


class GaussianNaiveBayes(BaseNaiveBayes):
    """Gaussian features (scikit-learn's GaussianNB). `var_smoothing` x max feature variance pads every variance.

    Example::

        nb = GaussianNaiveBayes(10, 64).fit(x, labels)
        nb.sample(4, labels=7, seed=0)   # (4, 64): mu_7 + sigma_7 * z
    """

    stat_names = ("sum_x", "sum_xx")

    def __init__(self, num_classes: int, n_features: int, var_smoothing: float = 1e-9, fit_prior: bool = True):
        super().__init__(num_classes, n_features, fit_prior)
        if not var_smoothing >= 0:
            raise ValueError(f"var_smoothing must be >= 0, got {var_smoothing!r}")
        self.var_smoothing = float(var_smoothing)
        self.means = nn.Parameter(torch.zeros(num_classes, n_features))
        self.log_var = nn.Parameter(torch.zeros(num_classes, n_features))
        for name in self.stat_names:
            self.register_buffer(name, torch.zeros(num_classes, n_features, dtype=torch.float64))

    def _check_x(self, x: Any) -> Tensor:
        x = super()._check_x(x)
        return _dense_float(x, self.means.dtype)

    def _feature_stats(self, x: Tensor, y: Tensor) -> Stats:
        """Per-class sums of x and x^2, accumulated in chunks of centred data (exact in float64, fast in float32)."""
        shift = x[: 1024].mean(0)  # (D,) centring keeps sum x^2 - (sum x)^2 / n free of cancellation
        s1 = s2 = 0
        for cx, cy in zip(x.split(65536), y.split(65536)):
            cx = cx - shift
            s1 = s1 + _per_class_sum(cx, cy, self.num_classes, cx.dtype).double()
            s2 = s2 + _per_class_sum(cx.square_(), cy, self.num_classes, cx.dtype).double()
        n = torch.bincount(y, minlength=self.num_classes).double().unsqueeze(1)  # (C, 1)
        shift = shift.double()
        return {"sum_x": s1 + n * shift, "sum_xx": s2 + 2 * shift * s1 + n * shift.square()}

    def _set_feature_params(self) -> None:
        n = self.class_count.clamp_min(1).unsqueeze(1)  # (C, 1)
        means = self.sum_x / n
        var = (self.sum_xx / n - means.square()).clamp_min(0)  # (C, D)
        total = self.class_count.sum()
        all_var = self.sum_xx.sum(0) / total - (self.sum_x.sum(0) / total).square()  # (D,) variance of all x
        var = var + self.var_smoothing * all_var.max().clamp_min(0)
        self.means.copy_(means)
        self.log_var.copy_(var.clamp_min(1e-300).log())

    def _class_log_likelihood(self, x: Tensor) -> Tensor:
        inv = torch.exp(-self.log_var)  # (C, D) 1 / sigma^2
        m = self.means
        quad = x.square() @ inv.T - 2 * x @ (m * inv).T + (m.square() * inv).sum(1)  # (N, C)
        return -0.5 * (quad + self.log_var.sum(1) + self.n_features * math.log(2 * math.pi))

    def _sample_features(self, y: Tensor, gen: torch.Generator | None) -> Tensor:
        z = torch.randn(len(y), self.n_features, generator=gen, dtype=self.means.dtype, device=self.means.device)
        return self.means[y] + z * torch.exp(0.5 * self.log_var[y])


class _CountNaiveBayes(BaseNaiveBayes):
    """Shared by the multinomial and Bernoulli models: count features, dense or sparse, smoothed by `alpha`."""

    stat_names = ("feature_count",)

    def __init__(self, num_classes: int, n_features: int, alpha: float = 1.0, fit_prior: bool = True):
        super().__init__(num_classes, n_features, fit_prior)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.feature_logits = nn.Parameter(torch.zeros(num_classes, n_features))
        self.register_buffer("feature_count", torch.zeros(num_classes, n_features, dtype=torch.float64))

    def _feature_stats(self, x: Tensor, y: Tensor) -> Stats:
        return {"feature_count": _per_class_sum(x, y, self.num_classes)}


class MultinomialNaiveBayes(_CountNaiveBayes):
    """Word counts and the like (scikit-learn's MultinomialNB); sparse x stays sparse.

    ``log_prob`` includes the multinomial coefficient log(n! / prod_d x_d!), so it is a true log
    probability of the count vector given its total; ``joint_log_prob`` leaves it out (as scikit-learn).

    Example::

        nb = MultinomialNaiveBayes(2, 1000).fit(counts, labels) # counts: (N, 1000) ints, dense or CSR
        nb.sample(3, labels=1, total_count=50, seed=0)          # (3, 1000) counts summing to 50
    """

    def _check_x(self, x: Any) -> Tensor:
        x = super()._check_x(x)
        values = x.values() if x.layout != torch.strided else x
        if (values < 0).any() or (values.is_floating_point() and (values != values.round()).any()):
            raise ValueError("x must hold non-negative integer counts")
        return x

    def _set_feature_params(self) -> None:
        smoothed = self.feature_count + self.alpha
        self.feature_logits.copy_((smoothed / smoothed.sum(1, keepdim=True)).clamp_min(1e-300).log())

    def _class_log_likelihood(self, x: Tensor) -> Tensor:
        return _matmul(x, torch.log_softmax(self.feature_logits, 1).T)  # (N, C): sum_d x_d log theta_cd

    def _log_normaliser(self, x: Any) -> Tensor:
        x = self._check_x(x)
        if x.layout == torch.strided:
            xd = x.double()
            return (torch.lgamma(xd.sum(1) + 1) - torch.lgamma(xd + 1).sum(1)).to(self.feature_logits.dtype)
        rows, values = _rows(x), x.values().double()
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=values.device).index_add_(0, rows, values)
        per_value = torch.zeros_like(total).index_add_(0, rows, torch.lgamma(values + 1))
        return (torch.lgamma(total + 1) - per_value).to(self.feature_logits.dtype)

    def _sample_features(self, y: Tensor, gen: torch.Generator | None, total_count: int = 100) -> Tensor:
        check_int("total_count", total_count, 1)
        probs = torch.softmax(self.feature_logits.float(), 1)[y]  # (n, D)
        draws = torch.multinomial(probs, total_count, replacement=True, generator=gen)  # (n, total) feature ids
        return torch.zeros(len(y), self.n_features, device=probs.device).scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float32))


class BernoulliNaiveBayes(_CountNaiveBayes):
    """Binary features (scikit-learn's BernoulliNB): x > `binarize` counts as 1; sparse x stays sparse.

    Example::

        nb = BernoulliNaiveBayes(10, 64, binarize=0.5).fit(x, labels)
        nb.sample(4, labels=0, seed=0)   # (4, 64) in {0, 1}
    """

    def __init__(self, num_classes: int, n_features: int, alpha: float = 1.0, binarize: float | None = 0.0,
                 fit_prior: bool = True):
        super().__init__(num_classes, n_features, alpha, fit_prior)
        self.binarize = binarize

    def _check_x(self, x: Any) -> Tensor:
        x = super()._check_x(x)
        if self.binarize is None:
            values = x.values() if x.layout != torch.strided else x
            if ((values != 0) & (values != 1)).any():
                raise ValueError("x must be binary (0 or 1) when binarize is None")
            return x
        if x.layout == torch.strided:
            return (x > self.binarize).to(self.feature_logits.dtype)
        values = (x.values() > self.binarize).to(self.feature_logits.dtype)
        return _csr(x.crow_indices(), x.col_indices(), values, x.shape)

    def _set_feature_params(self) -> None:
        p = (self.feature_count + self.alpha) / (self.class_count.unsqueeze(1) + 2 * self.alpha)
        p = p.clamp(1e-300, 1 - 1e-16)
        self.feature_logits.copy_(p.log() - (-p).log1p())  # logit p

    def _class_log_likelihood(self, x: Tensor) -> Tensor:
        log_p = torch.nn.functional.logsigmoid(self.feature_logits)  # (C, D)
        log_q = torch.nn.functional.logsigmoid(-self.feature_logits)
        return _matmul(x, (log_p - log_q).T) + log_q.sum(1)  # (N, C): sum x log p + (1 - x) log q

    def _sample_features(self, y: Tensor, gen: torch.Generator | None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(self.feature_logits.float())[y], generator=gen)


class CategoricalNaiveBayes(BaseNaiveBayes):
    """Discrete symbols per feature (scikit-learn's CategoricalNB): x_d in 0..n_categories-1.

    Example::

        nb = CategoricalNaiveBayes(10, 64, n_categories=17).fit(levels, labels)   # digits' 17 grey levels
        nb.sample(2, labels=4, seed=0)   # (2, 64) int64 symbols
    """

    stat_names = ("category_count",)

    def __init__(self, num_classes: int, n_features: int, n_categories: int, alpha: float = 1.0,
                 fit_prior: bool = True):
        super().__init__(num_classes, n_features, fit_prior)
        self.n_categories = check_int("n_categories", n_categories, 2)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.category_logits = nn.Parameter(torch.zeros(num_classes, n_features, n_categories))
        self.register_buffer("category_count", torch.zeros(num_classes, n_features, n_categories, dtype=torch.float64))

    def _check_x(self, x: Any) -> Tensor:
        x = super()._check_x(x)
        x = _dense_float(x, torch.float64) if x.layout != torch.strided else x
        if x.is_floating_point() and (x != x.round()).any():
            raise ValueError("x must hold integer symbols")
        if (x < 0).any() or (x >= self.n_categories).any():
            raise ValueError(f"x must hold symbols in 0..{self.n_categories - 1}, got {x.min().item()}..{x.max().item()}")
        return x.long()

    def _feature_stats(self, x: Tensor, y: Tensor) -> Stats:
        d, v = self.n_features, self.n_categories
        flat = (y.unsqueeze(1) * d + torch.arange(d, device=x.device)) * v + x  # (N, D) index into (C, D, V)
        counts = torch.bincount(flat.reshape(-1), minlength=self.num_classes * d * v)
        return {"category_count": counts.view(self.num_classes, d, v).double()}

    def _set_feature_params(self) -> None:
        smoothed = self.category_count + self.alpha
        self.category_logits.copy_((smoothed / smoothed.sum(2, keepdim=True)).clamp_min(1e-300).log())

    def _class_log_likelihood(self, x: Tensor) -> Tensor:
        log_theta = torch.log_softmax(self.category_logits, 2)  # (C, D, V)
        one_hot = torch.nn.functional.one_hot(x, self.n_categories).to(log_theta.dtype)  # (N, D, V)
        return one_hot.flatten(1) @ log_theta.flatten(1).T  # (N, C)

    def _sample_features(self, y: Tensor, gen: torch.Generator | None) -> Tensor:
        probs = torch.softmax(self.category_logits.float(), 2)[y]  # (n, D, V)
        return torch.multinomial(probs.flatten(0, 1), 1, generator=gen).view(len(y), self.n_features)
