"""Feature extractors for torchmetrics' FID, KID and Inception Score.

torchmetrics accepts any ``nn.Module`` as ``feature``: FID and KID read its output as the
features to compare (``num_features`` tells FID the size of its state), the Inception
Score reads it as class logits. A feature extractor is a registered pretrained classifier
(``zoo.list_models(task="feature-extractor")``), named by a dataset's spec
(``DataSpec.feature_extractor``); ``ClassifierFeatures`` wraps it for both uses, so every number
of a dataset comes from one network: ``"digits-classifier/features"`` (penultimate activations)
or ``"digits-classifier/logits"``.

Example::

    from torchmetrics.image.fid import FrechetInceptionDistance
    fid = FrechetInceptionDistance(feature=ClassifierFeatures(load_extractor("digits-classifier")))
    fid.update(real_images, real=True); fid.update(fake_images, real=False); fid.compute()
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from zoo.data.spec import FOLDER_CLASSIFIER
from zoo.models.classifier import DigitsClassifier

OUTPUTS = ("features", "logits")

#: a folder classifier trains for this many epochs of its images (batch 64), within these step bounds:
#: about 10 s for 200 images of 32x32 RGB on one CPU thread, about 2 minutes for 50,000
FOLDER_CLASSIFIER_EPOCHS, FOLDER_CLASSIFIER_STEPS = 20, (100, 1000)


@lru_cache(maxsize=4)
def load_extractor(name: str) -> DigitsClassifier:
    """A registered feature extractor by name, in eval mode, frozen (loaded once per process)."""
    from zoo.registry import _unknown, list_models, load

    known = list_models(task="feature-extractor")
    if name not in known:
        raise ValueError(_unknown("feature extractor", name, known))
    return load(name).requires_grad_(False)


def fit_classifier(images: Tensor, labels: Tensor, *, seed: int = 0, steps: int | None = None,
                   progress: bool | None = None) -> DigitsClassifier:
    """A DigitsClassifier (hidden 16) trained on (images (N, C, H, W) uint8 or in [0, 1], labels (N,)): the
    feature extractor of a folder whose images no registered extractor describes.

    Seeded (the same images give the same network): AdamW 3e-3, cosine decay, batch 64, `steps` steps
    (default: FOLDER_CLASSIFIER_EPOCHS epochs within FOLDER_CLASSIFIER_STEPS), no augmentation. Returned
    frozen, in eval mode.
    """
    if steps is None:
        low, high = FOLDER_CLASSIFIER_STEPS
        steps = min(high, max(low, FOLDER_CLASSIFIER_EPOCHS * -(-len(images) // 64)))
    classes = int(labels.max()) + 1
    if len(images) < 2 or classes < 2:
        raise ValueError(f"a feature classifier needs images of at least 2 classes, got {len(images)} images of "
                         f"{classes} class(es)")
    with torch.inference_mode(False), torch.enable_grad():  # also when called from a validation loop
        return _fit_classifier(images, labels, classes, seed, steps, progress)


def _fit_classifier(images: Tensor, labels: Tensor, classes: int, seed: int, steps: int,
                    progress: bool | None) -> DigitsClassifier:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = DigitsClassifier(image_size=images.shape[-1], channels=images.shape[1], num_classes=classes, hidden=16)
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=1.5e-4)
    clf.train()
    for _ in tqdm(range(steps), desc="training the folder's feature classifier", leave=False,
                  disable=None if progress is None else not progress):
        idx = torch.randint(len(images), (min(64, len(images)),), generator=gen)
        x = images[idx].float() / (255 if not images.is_floating_point() else 1)
        loss = nn.functional.cross_entropy(clf(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return clf.eval().requires_grad_(False)


def metric_extractor(datamodule) -> "str | DigitsClassifier | None":
    """The feature extractor of a datamodule's image metrics: the one it provides (an image folder trains its own,
    ``FOLDER_CLASSIFIER``), else the registered one its spec names, else None (no FID)."""
    own = getattr(datamodule, "metric_extractor", None)
    return own() if own is not None else datamodule.spec.feature_extractor


class ClassifierFeatures(nn.Module):
    """A frozen classifier as a torchmetrics feature extractor: images (N, C, H, W) in [0, 1] -> (N, num_features).

    Args:
        classifier: a registered feature extractor's name (``"digits-classifier"``) or a classifier.
        output: "features" (penultimate layer, for FID and KID) or "logits" (for the Inception Score).
    """

    def __init__(self, classifier: DigitsClassifier | str, output: str = "features"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        name = classifier if isinstance(classifier, str) else type(classifier).__name__
        self.classifier = (load_extractor(classifier) if isinstance(classifier, str) else classifier).eval()
        self.classifier.requires_grad_(False)
        self.output = output
        self.num_features = self.classifier.num_features if output == "features" else self.classifier.num_classes
        self.name = f"{name}/{output}"

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)  # always eval: batch norm statistics and dropout stay frozen

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.is_floating_point() and (images.min() < 0 or images.max() > 1):
            raise ValueError(f"images must be in [0, 1], got range [{images.min().item():.3g}, {images.max().item():.3g}]")
        clf = self.classifier
        out = clf.features(images) if self.output == "features" else clf(images)
        return out.float()  # (N, num_features)


def check_extractor(extractor: nn.Module, image_shape: tuple[int, ...], num_features: int) -> None:
    """Raise a ValueError unless `extractor` maps a (1, *image_shape) image to (1, num_features)."""
    device = next(extractor.parameters(), torch.empty(0)).device
    with torch.no_grad():
        out = extractor(torch.zeros(1, *image_shape, device=device))
    if out.dim() != 2 or out.shape[1] != num_features:
        raise ValueError(f"the feature extractor outputs shape {tuple(out.shape)} for one image, but the metric state "
                         f"holds num_features={num_features}: pass an extractor with that many outputs")
