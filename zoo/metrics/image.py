"""FID, KID and Inception Score of generated images, computed by torchmetrics, and the real-data floor.

The features come from the registered feature extractor that the data's spec names (see features.py;
``"digits-classifier"`` for the digits); ``ImageMetrics.extractor`` names it behind the numbers. The keys:

- ``fid``: Fréchet distance between Gaussians fitted to real and generated features (lower is better).
- ``kid``: kernel (polynomial, degree 3) MMD² of the features, unbiased, mean over random subsets
  (lower is better; it can dip below 0 for near-identical distributions).
- ``is``: Inception Score, exp E[KL(p(y|x) || p(y))] from the classifier's logits (higher is better;
  at most the number of classes).
- ``cond_acc``: for class-conditional models, how often the classifier agrees with the requested label.

The **real-data floor** is the same metrics for the training images against the real split:
what a perfect generator would score with this many samples (FID of two finite samples of
one distribution is not 0).

Example::

    model = zoo.load("ddpm-digits")
    real, _ = digits_split("test")
    generator_metrics(model, real, "digits-classifier", n=2000, seed=0, sample_kwargs={"steps": 20})  # {"fid": ...}
    real_data_floor(digits_split("train")[0], real, "digits-classifier")
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import as_tensor
from zoo.metrics.features import ClassifierFeatures, check_extractor

#: the largest number of generated samples a metric call draws (memory and time stay bounded)
MAX_SAMPLES = 50_000


class ImageMetrics(nn.Module):
    """FID, KID and IS from torchmetrics around one feature extractor; ``update(x, real)`` then ``compute()``.

    Args:
        extractor: a registered feature extractor's name (``DataSpec.feature_extractor``) or a classifier (an
            image folder's own, ``fit_classifier``): its penultimate features feed FID and KID, its logits the
            Inception Score. Or pass both modules instead:
        features: the extractor for FID and KID; its ``num_features`` sets the metric state, and a
            mismatched output size is a ValueError.
        logits: the extractor for the Inception Score.
        image_shape: (C, H, W) of the images, to check the extractors once.
        kid_subsets, is_splits: torchmetrics' averaging (KID subsets; IS splits).
    """

    def __init__(self, extractor: str | nn.Module | None = None, *, image_shape: tuple[int, ...],
                 features: nn.Module | None = None, logits: nn.Module | None = None,
                 kid_subsets: int = 50, is_splits: int = 10):
        super().__init__()
        import warnings

        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        if extractor is not None:
            features, logits = ClassifierFeatures(extractor, "features"), ClassifierFeatures(extractor, "logits")
        if features is None or logits is None:
            raise ValueError("ImageMetrics needs a registered feature extractor (extractor='digits-classifier') "
                             "or both features and logits modules")
        for name, extractor in (("features", features), ("logits", logits)):
            size = getattr(extractor, "num_features", None)
            if not isinstance(size, int):
                raise ValueError(f"{name} extractor must have an integer num_features attribute, got {size!r}")
            check_extractor(extractor, image_shape, size)
        self.num_features = features.num_features
        self.extractor = getattr(features, "name", type(features).__name__)
        with warnings.catch_warnings():  # KID and IS warn that they keep features in memory: ours are small
            warnings.simplefilter("ignore", UserWarning)
            self.fid = FrechetInceptionDistance(feature=features, reset_real_features=False)
            self.kid = KernelInceptionDistance(feature=features, subsets=kid_subsets, reset_real_features=False)
            self.inception = InceptionScore(feature=logits, splits=is_splits)

    def update(self, images: Tensor, real: bool) -> None:
        """Add a batch (N, C, H, W) in [0, 1] of real or generated images."""
        self.fid.update(images, real=real)
        self.kid.update(images, real=real)
        if not real:
            self.inception.update(images)

    def reset_generated(self) -> None:
        """Forget the generated images, keep the real ones (for the next evaluation of a training run)."""
        self.fid.reset()
        self.kid.reset()
        self.inception.reset()

    def compute(self, seed: int = 0) -> dict[str, float]:
        """{"fid", "kid", "is"}; KID's subsets and IS's split order are drawn with `seed`."""
        n_real, n_fake = int(self.fid.real_features_num_samples), int(self.fid.fake_features_num_samples)
        if n_real < 2 or n_fake < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated images, got {n_real} and {n_fake}")
        self.kid.subset_size = min(1000, n_real, n_fake)
        with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
            torch.manual_seed(seed)
            kid, _ = self.kid.compute()
            inception, _ = self.inception.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid), "is": float(inception)}


#: the most pixel values (N x C x H x W) one batch of sampling or feature extraction holds: memory is bounded by
#: elements, not images (500 images of 28x28, 42 of 3x128x128)
MAX_BATCH_ELEMENTS = 1 << 22


def batch_size_for(shape: tuple[int, ...], most: int = 500) -> int:
    """Images of `shape` (C, H, W) per batch: at most `most`, at most MAX_BATCH_ELEMENTS values."""
    return max(1, min(most, MAX_BATCH_ELEMENTS // max(1, math.prod(shape))))


def _batches(images: Tensor, size: int | None = None):
    size = size or batch_size_for(tuple(images.shape[1:]))
    for start in range(0, len(images), size):
        yield images[start:start + size]


@torch.no_grad()
def compare(generated: Tensor, real: Tensor, extractor: str | nn.Module | None = None,
            metrics: ImageMetrics | None = None, seed: int = 0) -> dict[str, float]:
    """FID/KID/IS of `generated` images against `real` ones (both (N, C, H, W) in [0, 1]), in bounded batches."""
    metrics = metrics or ImageMetrics(extractor, image_shape=tuple(real.shape[1:]))
    for batch in _batches(real):
        metrics.update(batch, real=True)
    for batch in _batches(generated):
        metrics.update(batch, real=False)
    return metrics.compute(seed)


def real_data_floor(train: Tensor, real: Tensor, extractor: str | nn.Module | None = None, metrics: ImageMetrics | None = None,
                    seed: int = 0) -> dict[str, float]:
    """FID/KID/IS of the training images (as if generated) against `real`: the floor a perfect generator reaches."""
    return compare(train, real, extractor, metrics, seed)


@torch.no_grad()
def generate(model: nn.Module, n: int, seed: int = 0, batch_size: int | None = None,
             sample_kwargs: dict[str, Any] | None = None, progress: bool | None = None) -> tuple[Tensor, Tensor | None]:
    """`n` samples of `model` in seeded batches (default: ``batch_size_for`` its image shape), class-balanced
    (label i % num_classes) if it is conditional; a tqdm bar on a terminal (`progress` None) or if True."""
    from tqdm.auto import tqdm

    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_SAMPLES:
        raise ValueError(f"n must be an integer in 2..{MAX_SAMPLES}, got {n!r}")
    classes = getattr(model, "num_classes", None)
    labels = torch.arange(n) % classes if classes else None
    shape = getattr(model, "image_shape", None)
    batch_size = batch_size or (batch_size_for(tuple(shape)) if shape else 500)
    images = []
    starts = range(0, n, batch_size)
    bar = tqdm(starts, desc=f"sampling {n:,} images for the metrics", leave=False,
               disable=None if progress is None else not progress)
    for i, start in enumerate(bar):
        extra = {} if labels is None else {"labels": labels[start:start + batch_size]}
        images.append(model.sample(min(batch_size, n - start), seed=seed + i, **extra, **(sample_kwargs or {})))
    return torch.cat(images).cpu(), labels


@torch.no_grad()
def generator_metrics(model: nn.Module, real: Tensor, extractor: str | nn.Module | None = None, n: int = 2000, seed: int = 0,
                      sample_kwargs: dict[str, Any] | None = None, metrics: ImageMetrics | None = None,
                      progress: bool | None = None) -> dict[str, float]:
    """FID/KID/IS of `n` seeded samples of `model` against the `real` images (N, C, H, W) in [0, 1].

    Conditional models (``num_classes``) are sampled class-balanced and also get ``cond_acc``, the
    fraction of samples the feature extractor (a classifier of the same classes) assigns to the requested label.
    """
    images, labels = generate(model, n, seed, sample_kwargs=sample_kwargs, progress=progress)
    out = compare(images, real, extractor, metrics, seed)
    if labels is not None and extractor is not None:
        out["cond_acc"] = conditional_accuracy(images, labels, extractor)
    return out


@torch.no_grad()
def conditional_accuracy(images: Tensor, labels: Tensor, classifier: str | nn.Module) -> float:
    """The fraction of `images` (N, C, H, W) that `classifier` (a registered extractor's name, or a model
    with ``predict``) puts in class `labels`."""
    from zoo.metrics.features import load_extractor

    classifier = load_extractor(classifier) if isinstance(classifier, str) else classifier
    images, labels = as_tensor("images", images), as_tensor("labels", labels)
    if images.dim() != 4 or labels.shape != (len(images),):
        raise ValueError(f"images must be a batch (N, C, H, W) with one of labels (N,) each, got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    predicted = torch.cat([classifier.predict(batch) for batch in _batches(images)]).cpu()
    return float((predicted == labels.cpu()).float().mean())


def inception_metrics(weights_path: str | None = None, **kwargs: Any) -> dict[str, nn.Module]:
    """torchmetrics' standard InceptionV3 FID/KID/IS for natural RGB images (needs torch-fidelity and its weights).

    `weights_path` is torchmetrics' ``feature_extractor_weights_path`` (a local FID Inception checkpoint), so
    machines without internet can use it. Not used for digits: 8x8 digits are not what InceptionV3 has seen.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    return {"fid": FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=weights_path,
                                            **kwargs),
            "kid": KernelInceptionDistance(feature=2048, normalize=True, **kwargs),
            "is": InceptionScore(normalize=True, **kwargs)}
