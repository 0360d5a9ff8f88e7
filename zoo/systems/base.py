"""What every system shares: fine-tuning from a pretrained name, and exporting the trained model.

A system owns a model (``self.net``, a ``GenerativeModel``) and everything training
needs around it. At the end of ``fit`` the model is written in the Hub layout to
``<log_dir>/pretrained``, ready for ``zoo.load``, ``genzoo eval`` and ``genzoo push``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    def setup(self, stage: str) -> None:
        """Fill the model's data-derived sizes from the datamodule's spec, before the optimiser sees the weights."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        spec = getattr(datamodule, "spec", None)
        if spec is None:
            self.net._check_built()  # no spec to read sizes from: the net must have them all
            return
        fitted = self.net.fit_to_data(spec)
        if fitted is not self.net:
            filled = {k: v for k, v in fitted.init_args.items() if self.net.init_args.get(k) != v}
            rank_zero_info(f"{type(fitted).__name__} sizes from the data ({spec.name}): {filled}")
            self.net = fitted

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
        self.net.extra_config.update(self.saved_config(self.trainer.datamodule))
        self.net.save_pretrained(folder)
        rank_zero_info(f"Saved the trained model to {folder} (load it with zoo.load({str(folder)!r}))")

    def saved_config(self, datamodule: L.LightningDataModule | None) -> dict[str, Any]:
        """What config.json records beside the model: this system's hyperparameters and, if registered,
        the datamodule (by name) that evaluates it."""
        from zoo.registry import datamodule_name

        hparams = {k: v for k, v in self.hparams.items() if k not in ("net", "init_from") and not k.startswith("_")}
        out: dict[str, Any] = {"system": {"init_args": hparams}}
        spec = getattr(datamodule, "spec", None)
        if spec is not None:
            out["data_spec"] = spec.to_json()
        name = datamodule_name(type(datamodule)) if datamodule is not None else None
        if name is not None:
            out["datamodule"] = {"name": name, "init_args": {k: v for k, v in datamodule.hparams.items()
                                                             if not k.startswith("_")}}
        return out
