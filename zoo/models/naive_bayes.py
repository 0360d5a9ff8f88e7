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

from zoo.checks import as_tensor, check_float, check_int, check_range
from zoo.layers import naive_bayes as layers
from zoo.models.base import GenerativeModel
from zoo.models.contract import LABELS

KINDS = ("gaussian", "multinomial", "bernoulli", "categorical")


class NaiveBayes(GenerativeModel):
    """A naive Bayes classifier over flattened images (``image_shape``) with `num_classes` classes.

    Args:
        kind: the feature model, one of "gaussian", "multinomial", "bernoulli", "categorical".
        num_classes: number of classes.
        image_shape: shape of one image (C, H, W), pixels in [0, 1]; None: from the data.
        levels: grey levels of the images (symbols of "categorical", counts of "multinomial").
        var_smoothing: "gaussian" only: variance padding, a fraction of the largest pixel variance.
        alpha: additive smoothing of the count models.
    """

    family = "nb"
    outputs = "images"
    conditions = (LABELS,)

    data_sizes = ("num_classes", "image_shape", "levels")

    def __init__(self, kind: str = "gaussian", num_classes: int | None = None, image_shape: Sequence[int] | None = None,
                 levels: int | None = None, var_smoothing: float = 1e-9, alpha: float = 1.0):
        """Sizes left None come from the data."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if image_shape is not None:
            image_shape = [int(s) for s in image_shape]
            if not image_shape or min(image_shape) < 1:
                raise ValueError(f"image_shape must be a list of positive sizes, got {image_shape!r}")
        if num_classes is not None:
            check_int("num_classes", num_classes, 2, 100_000)
        if levels is not None:
            check_int("levels", levels, 2, 1 << 16)
        check_float("var_smoothing", var_smoothing, 0)  # both checked whatever the kind: a value is never ignored
        check_float("alpha", alpha, 0)
        super().__init__(kind=kind, num_classes=num_classes, image_shape=image_shape, levels=levels,
                         var_smoothing=var_smoothing, alpha=alpha)
        self.kind, self.num_classes, self.image_shape, self.levels = kind, num_classes, image_shape, levels
        if self.pending:
            return
        d = math.prod(image_shape)
        self.nb = {"gaussian": lambda: layers.GaussianNaiveBayes(num_classes, d, var_smoothing),
                   "multinomial": lambda: layers.MultinomialNaiveBayes(num_classes, d, alpha),
                   "bernoulli": lambda: layers.BernoulliNaiveBayes(num_classes, d, alpha, binarize=0.5),
                   "categorical": lambda: layers.CategoricalNaiveBayes(num_classes, d, levels, alpha)}[kind]()

    @classmethod
    def data_args(cls, spec, init_args):
        if spec.kind != "image" or spec.num_classes is None:
            raise ValueError(f"naive Bayes here classifies labelled images; the data {spec.name!r} is {spec.kind}"
                             f"{'' if spec.num_classes else ' without classes'}")
        return {"num_classes": spec.num_classes, "image_shape": list(spec.image_shape), "levels": spec.levels}

    def _features(self, x: Tensor) -> Tensor:
        """Images (N, *image_shape) in [0, 1] -> the layer's features (N, D)."""
        d = self.nb.n_features
        x = as_tensor("x", x, dtype=self.nb.class_logits.dtype, device=self.nb.class_logits.device)
        if x.dim() < 2 or math.prod(x.shape[1:]) != d or len(x) == 0:
            raise ValueError(f"x must have shape (N, {self.image_shape}) with N >= 1, got {tuple(x.shape)}")
        x = check_range("x", x.reshape(len(x), d), 0, 1, "pixel values")
        if self.kind in ("categorical", "multinomial"):
            return (x * (self.levels - 1)).round().long()
        return x

    # -- the generative API ----------------------------------------------------------------------

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, labels: Tensor | None) -> Tensor:
        """n images (n, *image_shape) in [0, 1] from p(x | y); labels: one class, n classes, or None (p(y))."""
        if self.kind == "multinomial":  # counts summing to the average total ink of a training image
            total = max(1, round(self._mean_total()))
            return self._to_images(self.nb.sample(n, labels=labels, seed=seed, total_count=total))
        return self._to_images(self.nb.sample(n, labels=labels, seed=seed))

    def _mean_total(self) -> float:
        count = self.nb.class_count.sum().clamp_min(1)
        return (self.nb.feature_count.sum() / count).item()

    def _to_images(self, features: Tensor) -> Tensor:
        if self.kind in ("categorical", "multinomial"):
            features = features.float() / (self.levels - 1)
        return features.float().clamp(0, 1).view(len(features), *self.image_shape)

    def log_prob(self, x: Tensor, labels: Any = None) -> Tensor:
        """Joint log p(x, y) per image when labels are given, else the marginal log p(x); nats."""
        x = self._features(x)
        return self.nb.log_prob(x, labels=self.check_labels(labels, len(x)))

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
