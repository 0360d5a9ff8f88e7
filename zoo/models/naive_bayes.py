"""Naive Bayes classifiers of images as generative models: the zoo's face of ``zoo.layers.naive_bayes``.

A naive Bayes classifier is a generative model p(x, y) = p(y) prod_d p(x_d | y): it classifies
(``predict``), scores (``log_prob``, joint or marginal) and samples class-conditionally. Images in
[0, 1] become the features each kind expects: pixel values (gaussian), pixel > 0.5 (bernoulli),
grey levels 0..levels-1 as symbols (categorical) or as counts (multinomial).

Example::

    nb = zoo.load("nb-digits")
    nb.predict(images)                    # (N,) digit classes
    nb.sample(10, seed=0, labels=range(10))   # (10, 1, 8, 8): one of each digit
    nb.log_prob(images, labels)           # (N,) joint log p(x, y); without labels, log p(x)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from zoo.layers import naive_bayes as layers
from zoo.models.base import GenerativeModel

KINDS = ("gaussian", "multinomial", "bernoulli", "categorical")


class NaiveBayes(GenerativeModel):
    """A naive Bayes classifier over flattened images (``image_shape``) with `num_classes` classes.

    Args:
        kind: the feature model, one of "gaussian", "multinomial", "bernoulli", "categorical".
        num_classes: number of classes.
        image_shape: shape of one image, e.g. [1, 8, 8] (pixels in [0, 1]).
        levels: grey levels of the images (symbols of "categorical", counts of "multinomial").
        var_smoothing: "gaussian" only: variance padding, a fraction of the largest pixel variance.
        alpha: additive smoothing of the count models.
    """

    family = "nb"

    def __init__(self, kind: str = "gaussian", num_classes: int = 10, image_shape: Sequence[int] = (1, 8, 8),
                 levels: int = 17, var_smoothing: float = 1e-9, alpha: float = 1.0):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        image_shape = [int(s) for s in image_shape]
        if not image_shape or min(image_shape) < 1:
            raise ValueError(f"image_shape must be a list of positive sizes, got {image_shape!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        super().__init__(kind=kind, num_classes=num_classes, image_shape=image_shape, levels=levels,
                         var_smoothing=var_smoothing, alpha=alpha)
        self.kind, self.num_classes, self.image_shape, self.levels = kind, num_classes, image_shape, levels
        d = math.prod(image_shape)
        self.nb = {"gaussian": lambda: layers.GaussianNaiveBayes(num_classes, d, var_smoothing),
                   "multinomial": lambda: layers.MultinomialNaiveBayes(num_classes, d, alpha),
                   "bernoulli": lambda: layers.BernoulliNaiveBayes(num_classes, d, alpha, binarize=0.5),
                   "categorical": lambda: layers.CategoricalNaiveBayes(num_classes, d, levels, alpha)}[kind]()

    def _features(self, x: Tensor) -> Tensor:
        """Images (N, *image_shape) in [0, 1] -> the layer's features (N, D)."""
        d = self.nb.n_features
        if not isinstance(x, Tensor) or x.dim() < 2 or math.prod(x.shape[1:]) != d:
            raise ValueError(f"x must have shape (N, {self.image_shape}), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        x = x.reshape(len(x), d)
        if self.kind in ("categorical", "multinomial"):
            return (x.clamp(0, 1) * (self.levels - 1)).round().long()
        return x.to(self.nb.class_logits.dtype)

    def _labels(self, labels: Any, n: int) -> Tensor | None:
        if labels is None:
            return None
        if isinstance(labels, range):
            labels = list(labels)
        return self.nb._check_y(labels, n)

    # -- the generative API ----------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, labels: Any = None) -> Tensor:
        """n images (n, *image_shape) in [0, 1] from p(x | y); labels: one class, n classes, or None (p(y))."""
        n = self._check_n(n)
        y = self._labels(labels, n)
        if self.kind == "multinomial":  # counts summing to the average total ink of a training image
            return self._to_images(self.nb.sample(n, y=y, seed=seed, total_count=max(1, round(self._mean_total()))))
        return self._to_images(self.nb.sample(n, y=y, seed=seed))

    def _mean_total(self) -> float:
        count = self.nb.class_count.sum().clamp_min(1)
        return (self.nb.feature_count.sum() / count).item()

    def _to_images(self, features: Tensor) -> Tensor:
        if self.kind in ("categorical", "multinomial"):
            features = features.float() / (self.levels - 1)
        return features.float().clamp(0, 1).view(len(features), *self.image_shape)

    def log_prob(self, x: Tensor, labels: Any = None) -> Tensor:
        """Joint log p(x, y) per image when labels are given, else the marginal log p(x); nats."""
        return self.nb.log_prob(self._features(x), self._labels(labels, len(x)))

    def predict(self, x: Tensor) -> Tensor:
        return self.nb.predict(self._features(x))

    def predict_proba(self, x: Tensor) -> Tensor:
        return self.nb.predict_proba(self._features(x))

    # -- closed-form fitting (used by zoo.systems.naive_bayes) -------------------------------------

    def e_step(self, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
        return self.nb.e_step(self._features(x), labels)

    def m_step(self, stats: dict[str, Tensor]) -> None:
        self.nb.m_step(stats)

    def fit(self, x: Tensor, labels: Tensor) -> "NaiveBayes":
        self.nb.fit(self._features(x), labels)
        return self
