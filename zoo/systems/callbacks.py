"""Training callbacks shared by every family, and the checkpointing every `genzoo fit` uses.

``RunCheckpoint`` keeps ``checkpoints/last.ckpt`` (every epoch, EM iterations included) and the best
validation checkpoint; ``AtomicCheckpointIO`` writes each of them all-or-nothing. ``genzoo fit`` adds
both unless the recipe brings its own (zoo.cli.ZooCLI).
"""

from __future__ import annotations

import glob
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from zoo.hub import fsync_dir, write_atomic
from zoo.images import make_grid
from zoo.systems.base import run_dir


class SampleGrid(L.Callback):
    """Every `every_n_epochs` validation epochs, save a PNG grid of `n` seeded samples to ``<log_dir>/samples/``.

    The same seed every time, so the grids show how one set of latents evolves. Also logged
    to TensorBoard when that logger is in use. `prompts` (text-to-image models): the grid's prompts,
    repeated to fill it: one prompt per column.
    """

    def __init__(self, every_n_epochs: int = 5, n: int = 64, seed: int = 0, prompts: list[str] | None = None):
        if every_n_epochs < 1 or n < 1:
            raise ValueError(f"every_n_epochs and n must be >= 1, got {every_n_epochs} and {n}")
        if prompts is not None and (not prompts or not all(isinstance(p, str) for p in prompts)):
            raise ValueError(f"prompts must be a non-empty list of str, got {prompts!r:.80}")
        self.every_n_epochs, self.n, self.seed, self.prompts = every_n_epochs, n, seed, prompts

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
        kwargs = {}
        if self.prompts and "prompt" in net.sample_conditions():
            kwargs["prompt"] = [self.prompts[i % len(self.prompts)] for i in range(self.n)]
        images = net.sample(self.n, seed=self.seed, **kwargs)
        net.train(was_training)
        grid = make_grid(images, nrow=len(self.prompts) if kwargs else None)
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


# -- checkpoints -----------------------------------------------------------------------------------

#: What "best" means, by the validation metric a run logs (the first of these it logs): the loss of gradient
#: systems (GPT, diffusion, classifier), the ELBO of VAEs, the log-likelihood of EM systems, else the FID of an
#: ImageQuality callback (the GAN: its critic losses do not rank samples). A run logging none keeps last.ckpt only.
BEST_METRICS = (("val/loss", "min"), ("val/elbo", "max"), ("val/log_likelihood", "max"), ("val/fid", "min"))


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` at the end of every training epoch, and ``checkpoints/best-epoch=E-step=S.ckpt``:
    the best validation so far, judged right after each validation.

    Unlike a plain ModelCheckpoint it saves whether or not the global step moved (a fine-tuning's validation
    at step 0 is a candidate), writes last.ckpt every epoch whether or not it was the best (also when validation
    runs every n epochs), carries the best across a resume into the new run folder (the old folder's file stays
    the best until beaten; nothing outside this run's folder is deleted), and records the validation metrics
    logged with the best checkpoint, for the card of the model exported from it (GenerativeSystem.on_fit_end).

    Args:
        monitor, mode: the metric and "min"/"max"; ``"auto"``: the first of ``BEST_METRICS`` the system logs.
            None keeps last.ckpt only.
    """

    def __init__(self, monitor: str | None = "auto", mode: str = "min", filename: str = "best-{epoch}-{step}",
                 dirpath: str | None = None):
        self._auto = monitor == "auto"
        super().__init__(dirpath=dirpath, filename=filename, monitor=None if self._auto else monitor, mode=mode,
                         save_last=True, save_top_k=0 if monitor is None else 1, enable_version_counter=False)
        self._saved_end_of = None  # (epoch, global step) of the last last.ckpt
        self.best_epoch: int | None = None
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor="auto" if self._auto else self.monitor)

    def _skip(self, trainer: L.Trainer) -> bool:
        return bool(trainer.fast_dev_run) or trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking

    def _resolve_monitor(self, trainer: L.Trainer) -> None:
        if not self._auto or self.monitor is not None:
            return
        logged = trainer.callback_metrics
        found = next(((name, mode) for name, mode in BEST_METRICS if name in logged), None)
        if found is None:
            return
        self.monitor, self.mode = found
        self.kth_value = torch.tensor(math.inf if self.mode == "min" else -math.inf)
        rank_zero_info(f"Keeping the best checkpoint by {self.monitor} ({'lower' if self.mode == 'min' else 'higher'}"
                       " is better) and last.ckpt in " + str(self.dirpath))

    def on_train_batch_end(self, *args, **kwargs) -> None:
        pass  # no step- or time-based saving: last at epoch ends, best after validations

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._skip(trainer) or self.save_top_k == 0:
            return
        self._resolve_monitor(trainer)
        candidates = self._monitor_candidates(trainer)
        if self.monitor is None or self.monitor not in candidates:
            return
        before = self.best_model_path
        self._save_monitor_checkpoint(trainer, candidates)
        if self.best_model_path != before:
            self.best_epoch, self.best_step = int(candidates["epoch"]), int(candidates["step"])
            self.best_metrics = {k: float(v) for k, v in candidates.items()
                                 if k.startswith("val/") and v.numel() == 1}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        end_of = (trainer.current_epoch, trainer.global_step)
        if self._skip(trainer) or end_of == self._saved_end_of:
            return
        self._saved_end_of = end_of
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass  # last.ckpt is written at every epoch end; a run stopped mid-epoch keeps the last complete epoch

    def best(self) -> dict[str, Any] | None:
        """The best checkpoint: its path, epoch, step, the monitored metric and its score, and the validation
        metrics logged with it; None before the first validation (or without a monitor)."""
        if not self.best_model_path or self.best_model_score is None:
            return None
        return {"path": self.best_model_path, "epoch": self.best_epoch, "step": self.best_step,
                "monitor": self.monitor, "score": float(self.best_model_score), "metrics": dict(self.best_metrics)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "mode": self.mode, "best_epoch": self.best_epoch,
                "best_step": self.best_step, "best_metrics": self.best_metrics}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Everything, also when this run writes to a new folder (a resume does): the best so far stays the
        one to beat."""
        if self._auto and state_dict.get("monitor"):
            self.monitor, self.mode = state_dict["monitor"], state_dict.get("mode", self.mode)
        for key in ("best_model_score", "best_model_path", "kth_best_model_path", "kth_value", "best_k_models",
                    "best_epoch", "best_step", "best_metrics"):
            if key in state_dict:
                setattr(self, key, state_dict[key])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, all-or-nothing on any local filesystem: the checkpoint goes to a temporary
    file in its own folder, is flushed to disk, then renamed over the target (os.replace, atomic on POSIX), and
    the folder is synced. A kill at any moment leaves the previous checkpoint or the new one, never a truncated
    file. (Lightning's own writer stages in the system temp folder, so on another filesystem its final move is a
    copy that a kill can cut short.) A temporary file a killed write left is removed by the next write of the same
    checkpoint. Remote paths go to Lightning's writer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a write that was killed
            stale.unlink(missing_ok=True)
        write_atomic(path, lambda f: torch.save(checkpoint, f))
        fsync_dir(path.parent)
