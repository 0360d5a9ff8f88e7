"""Training callbacks shared by every family."""

from __future__ import annotations

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from zoo.images import make_grid
from zoo.systems.base import run_dir


class SampleGrid(L.Callback):
    """Every `every_n_epochs` validation epochs, save a PNG grid of `n` seeded samples to ``<log_dir>/samples/``.

    The same seed every time, so the grids show how one set of latents evolves. Also logged
    to TensorBoard when that logger is in use.
    """

    def __init__(self, every_n_epochs: int = 5, n: int = 64, seed: int = 0):
        if every_n_epochs < 1 or n < 1:
            raise ValueError(f"every_n_epochs and n must be >= 1, got {every_n_epochs} and {n}")
        self.every_n_epochs, self.n, self.seed = every_n_epochs, n, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = epoch + 1 == trainer.max_epochs
        if trainer.sanity_checking or not ((epoch + 1) % self.every_n_epochs == 0 or last):
            return
        folder = run_dir(trainer) / "samples"  # on every rank: trainer.log_dir is a collective under DDP
        if not trainer.is_global_zero:
            return
        net = pl_module.net
        was_training = net.training
        net.eval()
        images = net.sample(self.n, seed=self.seed)
        net.train(was_training)
        grid = make_grid(images)
        path = folder / f"epoch={epoch:04d}.png"
        folder.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", np.asarray(grid), epoch, dataformats="HW" if grid.mode == "L" else "HWC")
