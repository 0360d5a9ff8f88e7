"""scikit-learn's handwritten digits: 1,797 greyscale 8x8 images, pixel values 0..16, labels 0..9.

Split (fixed by `seed`, default 0): a seeded permutation of all 1,797 images,
then the first 1,257 for train, the next 270 for validation and the last 270 for
test. Pixels are scaled to [0, 1] as value / 16, so each pixel takes one of 17 levels.

Data augmentation with a generative model: ``DigitsDataModule(synthetic="ddpm-digits")`` adds
``synthetic_per_class`` samples of each digit from a class-conditional model to the training split. The
datamodule receives that model (``provide_synthetic(zoo.load(name))``; ``genzoo fit`` hands it over) rather
than loading it
(validation and test stay real), and ``train_per_class`` keeps only the first k real training images of
each digit, to study a small labelled set. From a recipe::

    genzoo fit --config recipes/digits-classifier.yaml --data.train_per_class 10 \
        --data.synthetic ddpm-digits --data.synthetic_per_class 100
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import TensorDataset

from zoo.data.images import ImageDataModule, check_normal_classes
from zoo.data.spec import DataSpec

SPLITS = ("train", "val", "test")
SIZES = {"train": 1257, "val": 270, "test": 270}


@lru_cache(maxsize=8)
def _split_indices(seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(sum(SIZES.values()))
    bounds = np.cumsum([0, *SIZES.values()])
    return {split: order[a:b] for split, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}


def digits_split(split: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (images (N, 1, 8, 8) float32 in [0, 1], labels (N,) int64)."""
    from sklearn.datasets import load_digits

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = load_digits()
    idx = _split_indices(seed)[split]
    images = torch.from_numpy(data.images[idx] / 16.0).float().unsqueeze(1)
    return images, torch.from_numpy(data.target[idx]).long()


#: what the digits are (zoo.data.spec): the only place that knows their sizes
SPEC = DataSpec(kind="image", name="sklearn-digits", image_shape=(1, 8, 8), num_classes=10,
                class_names=tuple("0123456789"), levels=17, feature_extractor="digits-classifier",
                description="scikit-learn's 1,797 handwritten digits, 8x8 pixels of 17 grey levels (0..16), "
                            "split 1,257 / 270 / 270 (seed 0)")


class DigitsDataModule(ImageDataModule):
    """Digits as (image (1, 8, 8) float in [0, 1], label int64) batches; shared by every image family."""

    spec = SPEC

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0, train_per_class: int | None = None,
                 synthetic: str | None = None, synthetic_per_class: int = 100, synthetic_seed: int = 0,
                 normal_classes: list[int] | None = None):
        """`train_per_class`: keep the first k training images of each digit (None: all 1,257); `synthetic`:
        the name (or folder) of a class-conditional model whose `synthetic_per_class` samples of each digit,
        drawn with `synthetic_seed`, join the training split; the model itself comes in through
        ``provide_synthetic``; `normal_classes`: train and val only on these digits (a one-class anomaly
        detector's normal data; test keeps all)."""
        super().__init__()
        check_normal_classes(normal_classes, self.spec.num_classes)
        self.save_hyperparameters()
        self.datasets: dict[str, TensorDataset] = {}
        self.synthetic_model = None

    def provide_synthetic(self, model) -> None:
        """Hand over the model `synthetic` names (a data module receives models, it does not load them)."""
        if model.num_classes != self.spec.num_classes:
            raise ValueError(f"synthetic must be a model conditional on the {self.spec.num_classes} digits; "
                             f"{self.hparams.synthetic!r} has num_classes={model.num_classes}")
        self.synthetic_model = model

    @classmethod
    def for_evaluation(cls, **saved_args) -> "DigitsDataModule":
        """As config.json records it, without synthetic training data (that would load another model):
        evaluation reads real images only."""
        return cls(**{**saved_args, "synthetic": None})

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.datasets:
                images, labels = digits_split(split, self.hparams.seed)
                if split == "train":
                    images, labels = self._training_data(images, labels)
                self.datasets[split] = TensorDataset(images, labels)
        self._keep_normal(self.hparams.normal_classes)

    def _training_data(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The real training images (the first `train_per_class` of each digit), then the synthetic ones."""
        h = self.hparams
        if h.train_per_class is not None:
            keep = torch.cat([torch.nonzero(labels == c)[:h.train_per_class, 0] for c in range(self.spec.num_classes)])
            keep = keep.sort().values  # the split's order, not class by class
            images, labels = images[keep], labels[keep]
        if h.synthetic is None:
            return images, labels
        model = self.synthetic_model
        if model is None:
            raise ValueError(f"synthetic={h.synthetic!r} names a model: hand it over with "
                             f"provide_synthetic(zoo.load({h.synthetic!r})) (genzoo fit does this)")
        fake, fake_labels = model.labelled_samples(h.synthetic_per_class, seed=h.synthetic_seed)
        if fake.shape[1:] != images.shape[1:]:
            raise ValueError(f"synthetic model {h.synthetic!r} makes images of shape {tuple(fake.shape[1:])}, "
                             f"not the digits' {tuple(images.shape[1:])}")
        return torch.cat([images, fake.float().cpu()]), torch.cat([labels, fake_labels.cpu()])


