"""What every system shares: fine-tuning from a pretrained name, and exporting the trained model.

A system owns a model (``self.net``, a ``GenerativeModel``) and everything training
needs around it. At the end of ``fit`` the model is written in the Hub layout to
``<log_dir>/pretrained``, ready for ``zoo.load``, ``genzoo eval`` and ``genzoo push``, with
this run's own card (zoo.cards): its recipe, data, parent, training time, hardware and metrics.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from zoo.models.base import DataMismatch, GenerativeModel


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
            pretrained.card = None  # the parent's card describes the parent's run: never export it as this one's
            net = pretrained.train()
        self.net = net
        self.init_from = init_from
        self._fit_started: float | None = None

    def setup(self, stage: str) -> None:
        """Fill the model's data-derived sizes from the datamodule's spec, before the optimiser sees the weights."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        spec = getattr(datamodule, "spec", None)
        if spec is None:
            self.net._check_built()  # no spec to read sizes from: the net must have them all
            return
        try:
            fitted = self.net.fit_to_data(spec)
        except DataMismatch as e:
            if not self.init_from:
                raise
            ours, theirs = (", ".join(f"{k}={pair[i]!r}" for k, pair in e.wrong.items()) for i in (0, 1))
            raise ValueError(f"init_from={self.init_from!r} was trained on {ours}, but the data {spec.name!r} has "
                             f"{theirs}: fine-tune on data of the model's shape, or train from scratch "
                             "(without --model.init_from)") from None
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

    def on_fit_start(self) -> None:
        """Start the clock of this run's card (a subclass overriding this hook calls super)."""
        self._fit_started = time.perf_counter()

    def on_fit_end(self) -> None:
        """Save the trained model in the Hub layout, with the datamodule that evaluates it and this run's own
        card (rank 0 only)."""
        folder = run_dir(self.trainer) / "pretrained"  # on every rank: trainer.log_dir is a collective under DDP
        if not self.trainer.is_global_zero:
            return
        self.net.extra_config.update(self.saved_config(self.trainer.datamodule))
        self.net.card = self._run_card(folder)
        self.net.save_pretrained(folder, card=self.net.card)
        rank_zero_info(f"Saved the trained model to {folder} (load it with zoo.load({str(folder)!r}))")

    def _run_card(self, folder: Path) -> str:
        """This fit's card: its config, data, parent, wall clock, hardware and the last val (or test) metrics it
        logged. Everything comes from this run; nothing from the parent's card."""
        from zoo.cards import Run, hardware, render_card

        trainer = self.trainer
        spec = getattr(trainer.datamodule, "spec", None)
        logged = trainer.callback_metrics
        stage, split = next(((s, n) for s, n in (("val", "validation"), ("test", "test"))
                             if any(k.startswith(f"{s}/") for k in logged)), ("val", "validation"))
        metrics = {k.split("/", 1)[1]: float(v) for k, v in sorted(logged.items()) if k.startswith(f"{stage}/")}
        batches = sum(trainer.num_val_batches) if stage == "val" else sum(trainer.num_test_batches)
        epochs = trainer.current_epoch
        # FID/KID/IS come from an image-quality callback: the one that logs to this split and draws `n` samples
        quality = next((cb for cb in trainer.callbacks if getattr(cb, "split", None) == stage and hasattr(cb, "n")),
                       None)
        config = folder.parent / "config.yaml"  # LightningCLI's record of the whole run (not run_dir: a collective)
        seconds = time.perf_counter() - self._fit_started if self._fit_started is not None else None
        took = (f"{seconds:,.{0 if seconds >= 10 else 1}f} s wall for {epochs} epoch{'s' * (epochs != 1)} of "
                "`genzoo fit` (validation included)") if seconds is not None else None
        seed = os.environ.get("PL_GLOBAL_SEED")
        name = f"{self.net.family}-{spec.name if spec is not None else 'custom'}"
        resumed = (("resumed from", f"`{trainer.ckpt_path}` (the training time counts this session only)"),) \
            if trainer.ckpt_path else ()
        run = Run(
            name=f"{name}-finetuned" if self.init_from else name,
            recipe=str(config) if config.is_file() else None,
            config_text=config.read_text() if config.is_file() else None,
            parent=str(self.init_from) if self.init_from else None,
            seed=int(seed) if seed is not None and seed.lstrip("-").isdigit() else None,
            hardware=hardware(self.device.type, trainer.world_size),
            training_time=took,
            split=split,
            measured_by=f"the last {'validation' if stage == 'val' else 'test'} loop this `genzoo fit` ran ({batches} "
                        f"batch{'es' * (batches != 1)}; Lightning's means over them)",
            n_generated=getattr(quality, "n", None),
            sample_kwargs=self.metric_sample_kwargs() if hasattr(self, "metric_sample_kwargs") else {},
            load_as=str(folder),
            rows=resumed,
        )
        return render_card(self.net, spec, metrics, run)

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
