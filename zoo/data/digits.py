"""scikit-learn's handwritten digits: 1,797 greyscale 8x8 images, pixel values 0..16, labels 0..9.

Split (fixed by `seed`, default 0): a seeded permutation of all 1,797 images,
then the first 1,257 for train, the next 270 for validation and the last 270 for
test. Pixels are scaled to [0, 1] as value / 16, so each pixel takes one of 17 levels.
"""

from __future__ import annotations

from functools import lru_cache

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

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


class DigitsDataModule(L.LightningDataModule):
    """Digits as (image (1, 8, 8) float in [0, 1], label int64) batches; shared by every image family."""

    num_classes = 10
    image_shape = (1, 8, 8)
    levels = 17

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.save_hyperparameters()
        self.datasets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = TensorDataset(*digits_split(split, self.hparams.seed))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, drop_last=False,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

