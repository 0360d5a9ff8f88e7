"""What every system shares: fine-tuning from a pretrained name, and exporting the trained model.

A system owns a model (``self.net``, a ``GenerativeModel``) and everything training
needs around it. At the end of ``fit`` the model is written in the Hub layout to
``<log_dir>/pretrained``, ready for ``zoo.load``, ``genzoo eval`` and ``genzoo push``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from zoo.models.base import GenerativeModel


def run_dir(trainer: L.Trainer) -> Path:
    """The run's folder (``<default_root_dir>/version_N``). Call it on every rank: under DDP it is a collective."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class GenerativeSystem(L.LightningModule):
    """Base LightningModule: subclasses implement ``_shared_step(batch, stage)`` and ``configure_optimizers``."""

    def __init__(self, net: GenerativeModel, init_from: str | None = None):
        super().__init__()
        if init_from:
            from zoo.registry import load

            pretrained = load(init_from)
            if not isinstance(pretrained, type(net)):
                raise ValueError(f"init_from={init_from!r} is a {type(pretrained).__name__}, "
                                 f"but this system trains a {type(net).__name__}")
            rank_zero_info(f"Fine-tuning from {init_from} (its architecture replaces the recipe's net)")
            net = pretrained.train()
        self.net = net

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._shared_step(batch, "test")

    def on_fit_end(self) -> None:
        """Save the trained model in the Hub layout, with the datamodule that evaluates it (rank 0 only)."""
        folder = run_dir(self.trainer) / "pretrained"  # on every rank: trainer.log_dir is a collective under DDP
        if not self.trainer.is_global_zero:
            return
        datamodule = self.trainer.datamodule
        if datamodule is not None:
            cls = type(datamodule)
            self.net.extra_config["datamodule"] = {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                                                   "init_args": {k: v for k, v in datamodule.hparams.items()
                                                                 if not k.startswith("_")}}
        self.net.save_pretrained(folder)
        rank_zero_info(f"Saved the trained model to {folder} (load it with zoo.load({str(folder)!r}))")
