"""Gaussian mixture model of images (or feature vectors): the zoo's face of ``zoo.layers.GaussianMixture``.

Digits pixels are discrete (17 grey levels), and a density on discrete data is unbounded (a
component can collapse onto a value). With ``levels`` set, the mixture models *dequantised*
pixels y = (level + u) / levels, u ~ U[0, 1)^D (Theis et al. 2016), and ``log_prob`` reports a
true log *probability* of the discrete image in nats:

    log P(x) = log E_u[p(y)] + D log(1/levels) >= log (1/k) sum_i p(y_i) - D log levels   (k uniform draws)

so it is comparable with the VAE's IWAE log p(x). Samples are quantised back to levels / (levels - 1).

Example::

    gmm = zoo.load("gmm-digits")
    images = gmm.sample(16, seed=0)        # (16, 1, 8, 8) in [0, 1], 17 grey levels
    gmm.log_prob(images)                   # (16,) log P(x) in nats
    fresh = GMM(n_components=10, covariance_type="diag")   # train: genzoo fit --config recipes/gmm-digits.yaml
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from zoo.checks import as_tensor, check_choice, check_float, check_int, check_range, generator
from zoo.layers.mixture import COVARIANCE_TYPES, GaussianMixture
from zoo.models.base import FROM_DATA, GenerativeModel
from zoo.models.contract import ESTIMATE_SEED, PerInstance


class GMM(GenerativeModel):
    """A Gaussian mixture over flattened images (``image_shape``) or vectors (``n_features``).

    Args:
        n_components, covariance_type, reg_covar: those of ``GaussianMixture``.
        image_shape: shape of one image (C, H, W); with `n_features` also None, both come from the data.
        n_features: dimension of plain vectors (ignored when ``image_shape`` is given).
        levels: number of discrete grey levels of x in [0, 1] (dequantised, see the module docstring);
            None for continuous data.
        eval_draws: uniform draws k per image in ``log_prob`` (more = a tighter bound).
    """

    family = "gmm"
    outputs = PerInstance("images", lambda gmm: "images" if gmm.image_shape else "vectors")
    log_prob_options = (ESTIMATE_SEED,)  # the dequantisation noise of discrete images

    def __init__(self, n_components: int = 10, covariance_type: str = "full", reg_covar: float = 1e-6,
                 image_shape: Sequence[int] | None = None, n_features: int | None = None,
                 levels: int | Literal["data"] | None = FROM_DATA, eval_draws: int = 64):
        """With neither `image_shape` nor `n_features` given, both come from the data (images or a table), and
        ``levels: data`` takes the data's pixel levels (None: continuous values)."""
        check_int("n_components", n_components, 1, 100_000)
        check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
        check_float("reg_covar", reg_covar, 0)
        if image_shape is not None:
            image_shape = [int(s) for s in image_shape]
            if not image_shape or min(image_shape) < 1:
                raise ValueError(f"image_shape must be a list of positive sizes, got {image_shape!r}")
            n_features = math.prod(image_shape)
        elif n_features is not None:
            check_int("n_features", n_features, 1, 1 << 24)
        if levels is not None and levels != FROM_DATA:
            check_int("levels", levels, 2, 1 << 16)
        check_int("eval_draws", eval_draws, 1, 100_000)  # a cap on the time of one log_prob call
        super().__init__(n_components=n_components, covariance_type=covariance_type, reg_covar=reg_covar,
                         image_shape=image_shape, n_features=None if image_shape else n_features, levels=levels,
                         eval_draws=eval_draws)
        self.image_shape, self.levels, self.eval_draws = image_shape, levels, eval_draws
        if self.pending:
            return
        self.mixture = GaussianMixture(n_components, n_features, covariance_type, reg_covar)

    @property
    def pending(self) -> bool:
        a = self.init_args
        return (a["image_shape"] is None and a["n_features"] is None) or a["levels"] == FROM_DATA

    @classmethod
    def data_args(cls, spec, init_args):
        if spec.kind == "image":
            out = {"image_shape": list(spec.image_shape), "levels": spec.levels}
        elif spec.kind == "tabular":
            out = {"n_features": spec.n_features, "levels": None}
        else:
            raise ValueError(f"a GMM models images or tables; the data {spec.name!r} is {spec.kind}")
        if init_args.get("levels") is None:
            out.pop("levels")  # continuous by choice
        return out

    @property
    def n_parameters(self) -> int:
        return self.mixture.n_parameters

    # -- data <-> mixture space ----------------------------------------------------------------

    def _flatten(self, x: Tensor) -> Tensor:
        """(N, *image_shape) or (N, D) -> (N, D) in the mixture's dtype."""
        d = self.mixture.n_features
        x = as_tensor("x", x, dtype=self.mixture.means.dtype, device=self.mixture.means.device)
        if x.dim() < 2 or math.prod(x.shape[1:]) != d or len(x) == 0:
            raise ValueError(f"x must have shape (N, {self.image_shape or d}) with N >= 1 and {d} values per sample, "
                             f"got {tuple(x.shape)}")
        x = x.reshape(len(x), d)
        return check_range("x", x, 0, 1, "pixel values") if self.image_shape else x

    def _dequantise(self, x: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """Discrete x in [0, 1] -> y = (level + u) / levels with u ~ U[0, 1); continuous x unchanged."""
        if self.levels is None:
            return x
        level = (x * (self.levels - 1)).round()
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        return (level + u) / self.levels

    # -- the generative API --------------------------------------------------------------------

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None) -> Tensor:
        """n images (n, *image_shape) in [0, 1] (quantised to `levels`), or vectors (n, D)."""
        y = self.mixture.sample(n, seed=seed)
        if self.levels is not None:
            y = (y * self.levels).floor().clamp(0, self.levels - 1) / (self.levels - 1)
        return y.view(n, *self.image_shape) if self.image_shape else y

    def log_prob(self, x: Tensor, *, seed: int | None = None) -> Tensor:
        """log P(x) per sample in nats (a k-draw lower bound for discrete images, exact for continuous)."""
        x = self._flatten(x)
        if self.levels is None:
            return self.mixture.log_prob(x)
        gen = self._generator(seed)
        draws = torch.stack([self.mixture.log_prob(self._dequantise(x, gen)) for _ in range(self.eval_draws)])
        return torch.logsumexp(draws, 0) - math.log(self.eval_draws) - x.shape[1] * math.log(self.levels)

    # -- EM (used by zoo.systems.em.EMSystem) --------------------------------------------------

    def e_step(self, x: Tensor) -> dict[str, Tensor]:
        """Sufficient statistics of a batch (fresh dequantisation noise each call)."""
        stats = self.mixture.e_step(self._dequantise(self._flatten(x)))
        if self.levels is not None:  # report log-probabilities of the discrete images (single-draw bound)
            stats["log_likelihood"] = stats["log_likelihood"] - stats["count"] * x[0].numel() * math.log(self.levels)
        return stats

    def m_step(self, stats: dict[str, Tensor]) -> None:
        self.mixture.m_step(stats)

    def initialize(self, x: Tensor, init: str = "kmeans", seed: int = 0) -> None:
        """k-means (k-means++ seeding + Lloyd) on x, with seeded dequantisation: the same on every process."""
        gen = generator(seed, x.device)
        self.mixture.initialize(self._dequantise(self._flatten(x), gen), init=init, seed=seed)
