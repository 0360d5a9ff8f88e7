"""What every system shares: fine-tuning from a pretrained name, resumable checkpoints, and the export.

A system owns a model (``self.net``, a ``GenerativeModel``) and everything training
needs around it. At the end of ``fit`` the model is written in the Hub layout to
``<log_dir>/pretrained``, ready for ``zoo.load``, ``genzoo eval`` and ``genzoo push``, with
this run's own card (zoo.cards): its recipe, data, parent, training time, hardware and metrics.

Three things make training repeatable and safe to interrupt:

1. Checkpoints hold the random state (torch, CUDA, numpy, Python), which is also the data order (the zoo's
   loaders shuffle with torch's global RNG); a resumed fit puts it back before its first epoch's data
   iterator starts, so a run killed and resumed from its ``last.ckpt`` ends with the very weights of an
   uninterrupted one (on the same hardware and settings).
2. Fine-tuning (``init_from``) validates the parent before the first step, so "best" can be the parent.
3. The export is the best validation checkpoint when the run kept one (zoo.systems.callbacks.RunCheckpoint),
   and its card says which epoch and step that was; otherwise the weights at the end of training.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
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
        self._resume_rng: dict[str, Any] | None = None  # the random state a resumed fit restored, until it trains
        self._exported_from: dict[str, Any] | None = None  # the best checkpoint the export holds (see on_fit_end)

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

    def on_train_start(self) -> None:
        """Fine-tuning: validate the parent before the first step (logged at step 0, and a candidate for the
        best checkpoint), unless this run resumes one. A subclass overriding this hook calls super."""
        trainer = self.trainer
        if not self.init_from or trainer.ckpt_path is not None or not trainer.enable_validation:
            return
        first_loop_iter = trainer._logger_connector._first_loop_iter
        trainer.validating = True  # as Lightning's training epoch loop runs validation
        trainer.fit_loop.epoch_loop.val_loop.run()
        trainer.training = True
        trainer._logger_connector._first_loop_iter = first_loop_iter

    # -- resuming: the random state, hence the data order -------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the global random state (a subclass overriding this hook calls super).

        It is also the data order: the zoo's loaders shuffle with torch's global RNG (a sampler with no generator
        of its own draws its seed from it when the epoch's iterator starts), so this state decides the next
        epoch's order as well as its noise. Checkpoints are written at epoch ends (RunCheckpoint), where the
        sampler's position is the start. A loader with its own generator keeps its state by being stateful
        (torchdata's StatefulDataLoader: Lightning saves its ``state_dict`` in the checkpoint)."""
        checkpoint["genzoo_rng"] = self._resume_rng or rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit: put the random state back now, before Lightning starts the first resumed epoch's data
        iterator (it does so while setting up, before any epoch hook). Until that epoch starts, a checkpoint
        written (Lightning re-runs some epoch-end hooks on restart) records this state, not a later one."""
        state = checkpoint.get("genzoo_rng")
        if state is None or self._trainer is None or self.trainer.state.fn != "fit":
            return
        set_rng_state(state)
        self._resume_rng = state

    def on_train_epoch_start(self) -> None:
        """The resumed epoch has started: checkpoints record the live random state again. A subclass overriding
        this hook calls super."""
        self._resume_rng = None

    # -- the export -----------------------------------------------------------------------------

    def on_fit_end(self) -> None:
        """Save the trained model in the Hub layout, with the datamodule that evaluates it and this run's own
        card (rank 0 only): the best validation checkpoint's weights when the run kept one."""
        folder = run_dir(self.trainer) / "pretrained"  # on every rank: trainer.log_dir is a collective under DDP
        if not self.trainer.is_global_zero:
            return
        self._exported_from = self._load_best_checkpoint()
        self.net.extra_config.update(self.saved_config(self.trainer.datamodule))
        self.net.card = self._run_card(folder)
        self.net.save_pretrained(folder, card=self.net.card)
        which = (f"the best validation checkpoint, epoch {self._exported_from['epoch']} step "
                 f"{self._exported_from['step']}" if self._exported_from else "the weights at the end of training")
        rank_zero_info(f"Saved the trained model ({which}) to {folder} (load it with zoo.load({str(folder)!r}))")

    def _load_best_checkpoint(self) -> dict[str, Any] | None:
        """Load the weights of the run's best validation checkpoint into this system; what it was (epoch, step,
        metric, the validation metrics logged with it), or None when the run kept no best checkpoint."""
        best = getattr(self.trainer.checkpoint_callback, "best", None)
        info = best() if callable(best) else None
        if not info or not Path(info["path"]).is_file():
            return None
        checkpoint = torch.load(info["path"], map_location=self.device, weights_only=True)
        self.load_state_dict(checkpoint["state_dict"])
        return info

    def _run_card(self, folder: Path) -> str:
        """This fit's card: its config, data, parent, wall clock, hardware and the last val (or test) metrics it
        logged. Everything comes from this run; nothing from the parent's card."""
        from zoo.cards import Run, hardware, render_card

        trainer = self.trainer
        spec = getattr(trainer.datamodule, "spec", None)
        best = self._exported_from
        logged = best["metrics"] if best else trainer.callback_metrics
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
        weights = (f"the best validation checkpoint: epoch {best['epoch']}, step {best['step']} "
                   f"(`{best['monitor']}` {best['score']:.6g}; `{Path(best['path']).name}`)" if best else
                   f"the end of training: epoch {max(epochs - 1, 0)}, step {trainer.global_step}")
        measured = (f"the validation loop of that checkpoint ({batches} batch{'es' * (batches != 1)}; Lightning's "
                    "means over them)" if best else
                    f"the last {'validation' if stage == 'val' else 'test'} loop this `genzoo fit` ran ({batches} "
                    f"batch{'es' * (batches != 1)}; Lightning's means over them)")
        run = Run(
            name=f"{name}-finetuned" if self.init_from else name,
            recipe=str(config) if config.is_file() else None,
            config_text=config.read_text() if config.is_file() else None,
            parent=str(self.init_from) if self.init_from else None,
            seed=int(seed) if seed is not None and seed.lstrip("-").isdigit() else None,
            hardware=hardware(self.device.type, trainer.world_size),
            training_time=took,
            split=split,
            measured_by=measured,
            n_generated=getattr(quality, "n", None),
            sample_kwargs=self.metric_sample_kwargs() if hasattr(self, "metric_sample_kwargs") else {},
            load_as=str(folder),
            rows=(("weights", weights), *resumed),
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


# -- the random state in checkpoints -----------------------------------------------------------------
# Stored as tensors, ints and lists, so a checkpoint loads with torch.load(weights_only=True).


def rng_state() -> dict[str, Any]:
    """The global random state of torch (and CUDA, when in use), numpy and Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

