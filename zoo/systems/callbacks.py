"""Training callbacks shared by every family."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

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


class ImageQuality(L.Callback):
    """Every `every_n_epochs` validation epochs (and the last), log FID, KID and IS of `n` samples against `split`.

    Features come from the feature extractor the datamodule's spec names (zoo.metrics; none named: the
    callback says so once and logs nothing); logged as ``{split}/fid``, ``{split}/kid``, ``{split}/is`` and,
    for class-conditional models, ``{split}/cond_acc``. Samples are drawn as the system's
    ``metric_sample_kwargs()`` says (e.g. DDIM steps), seeded, the same every time.
    """

    def __init__(self, every_n_epochs: int = 10, n: int = 1000, seed: int = 0, split: str = "val"):
        if every_n_epochs < 1 or n < 2:
            raise ValueError(f"every_n_epochs must be >= 1 and n >= 2, got {every_n_epochs} and {n}")
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        self.every_n_epochs, self.n, self.seed, self.split = every_n_epochs, n, seed, split
        self._metrics = None
        self._extractor: str | torch.nn.Module | None = None  # the spec's name, then the network itself

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        spec = getattr(trainer.datamodule, "spec", None)
        self._extractor = spec.feature_extractor if spec is not None else None
        if self._extractor is None:
            rank_zero_warn(f"ImageQuality: the data ({spec.name if spec else 'no spec'}) names no feature extractor, "
                           "so no FID/KID/IS is logged")

    def _real_metrics(self, trainer: L.Trainer):
        """The metric object with the real split's features added once (kept across evaluations)."""
        from zoo.metrics import ImageMetrics

        if self._metrics is None:
            from zoo.metrics import metric_extractor

            self._extractor = metric_extractor(trainer.datamodule)  # an image folder trains its own here, once
            loader = getattr(trainer.datamodule, f"{self.split}_dataloader")()
            real = torch.cat([batch[0] for batch in loader])  # (N, C, H, W) in [0, 1]
            self._metrics = ImageMetrics(self._extractor, image_shape=tuple(real.shape[1:]))
            self._metrics.update(real, real=True)
        self._metrics.reset_generated()
        return self._metrics

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from zoo.metrics import conditional_accuracy, generate

        epoch = trainer.current_epoch
        if self._extractor is None or trainer.sanity_checking or not (
                (epoch + 1) % self.every_n_epochs == 0 or epoch + 1 == trainer.max_epochs):
            return
        net = pl_module.net
        kwargs = pl_module.metric_sample_kwargs() if hasattr(pl_module, "metric_sample_kwargs") else {}
        was_training = net.training
        net.eval()
        images, labels = generate(net, self.n, self.seed, sample_kwargs=kwargs)  # same on every rank
        net.train(was_training)
        metrics = self._real_metrics(trainer)
        metrics.update(images, real=False)
        values = metrics.compute(self.seed)
        if labels is not None:
            values["cond_acc"] = conditional_accuracy(images, labels, self._extractor)
        pl_module.log_dict({f"{self.split}/{k}": v for k, v in values.items()}, sync_dist=False)
