"""Expectation-maximisation as a Lightning system, for every model with sufficient statistics.

One EM iteration is one training epoch (pomegranate's pattern, made distributed):

1. E-step per batch: ``stats = net.e_step(*inputs)``, a dict of tensors summed over the batch
   (always with ``"log_likelihood"``, the summed per-sample log-likelihood, and ``"count"``);
   the system adds them up over the epoch (in float64, so long epochs lose no precision).
2. At the end of the epoch's last batch the statistics are summed across processes
   (one all-reduce under DDP), then ``net.m_step(stats)`` sets the new parameters, before
   validation, so ``val/log_likelihood`` scores the parameters of this epoch.

Because the M-step sees exact sums, 2 processes give the same parameters as 1. The one trap is
``DistributedSampler``, which pads the epoch with repeated samples when N is not divisible by the
world size; each rank drops its padded samples before the E-step (see ``_real_samples``).

Each M-step counts as one global step, so checkpoints are written every iteration (last.ckpt, and the
best ``val/log_likelihood``), and a run resumed from one continues the iterations where they stopped.

Initialisation (k-means++ for a mixture, ...) runs once before the first epoch via
``net.initialize(*inputs)`` on the first ``init_samples`` training samples read in dataset order
(not sampler order), so every rank, and a 1-process run, starts from the same parameters.

A net trained here needs ``e_step``, ``m_step``, ``initialize`` and ``log_prob``; ``n_parameters``
(free parameters, for BIC) is optional. Subclasses adapt batches through ``_inputs``.

Example (recipe): ``genzoo fit --config recipes/gmm-digits.yaml``; in Python::

    system = EMSystem(net=zoo.models.gmm.GMM(n_components=8))
    L.Trainer(max_epochs=20).fit(system, datamodule=DigitsDataModule())
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from zoo.models.base import GenerativeModel
from zoo.systems.base import GenerativeSystem


class EMSystem(GenerativeSystem):
    """Trains ``net`` by EM: sufficient statistics per batch, M-step at epoch end, summed across DDP ranks.

    Logs ``train/log_likelihood`` (per sample, of the parameters the epoch started with),
    ``train/bic`` (when the net has ``n_parameters``), and ``{val,test}/log_likelihood`` per sample.

    Args:
        net: the model to train (a GenerativeModel with ``e_step``/``m_step``/``initialize``/``log_prob``).
        init_samples: how many training samples (in dataset order) ``net.initialize`` sees; 0 skips it
            (the net keeps the parameters it was built or loaded with).
        init_from: a pretrained name or folder to continue from (skips initialisation).
    """

    def __init__(self, net: GenerativeModel | None = None, init_samples: int = 100_000,
                 init_from: str | None = None):
        if isinstance(init_samples, bool) or not isinstance(init_samples, int) or init_samples < 0:
            raise ValueError(f"init_samples must be an integer >= 0, got {init_samples!r}")
        if net is None:
            raise ValueError("net is required: the model to train by EM (with init_from, any net of its class)")
        super().__init__(net, init_from)
        self.automatic_optimization = False  # EM has no optimiser: the M-step sets parameters in closed form
        self.save_hyperparameters(ignore=["net"])  # records the arguments of the outermost subclass
        self.init_samples, self.init_from = init_samples, init_from
        self._stats: dict[str, Tensor] | None = None
        self._seen = 0  # real samples this rank has passed to the E-step this epoch

    # -- hooks for subclasses ------------------------------------------------------------------

    def _inputs(self, batch: Any) -> tuple:
        """The positional arguments of ``net.e_step``/``net.log_prob`` for one batch (default: ``(batch[0],)``)."""
        return (batch[0],) if isinstance(batch, (tuple, list)) else (batch,)

    def _init_inputs(self, inputs: list[tuple]) -> tuple:
        """Join the ``_inputs`` of several batches into the arguments of ``net.initialize`` (default: torch.cat)."""
        return tuple(torch.cat(parts) for parts in zip(*inputs))

    # -- initialisation ------------------------------------------------------------------------

    def on_train_start(self) -> None:
        resuming = self.trainer.ckpt_path is not None  # the checkpoint holds the parameters EM continues from
        if self.init_samples and not self.init_from and not resuming and hasattr(self.net, "initialize"):
            self.net.initialize(*self._init_inputs(self._first_samples(self.init_samples)))
        super().on_train_start()  # fine-tuning: validate the parent first

    def _first_samples(self, n: int) -> list[tuple]:
        """The `_inputs` of the first `n` training samples in dataset order: identical on every rank."""
        loader = self.trainer.train_dataloader
        loader = getattr(loader, "iterables", loader)  # a CombinedLoader wraps the user's loader
        if isinstance(loader, dict | list):
            raise ValueError("EMSystem trains on one train dataloader, got several")
        ordered = DataLoader(loader.dataset, batch_size=loader.batch_size or 1, shuffle=False,
                             collate_fn=loader.collate_fn)
        inputs, taken = [], 0
        for batch in ordered:
            batch = self.trainer.strategy.batch_to_device(batch, self.device)
            args = self._inputs(batch)
            inputs.append(_head(args, n - taken))
            taken += min(_length(args), n - taken)
            if taken >= n:
                break
        return inputs

    # -- the EM epoch --------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._stats, self._seen = None, 0

    def training_step(self, batch, batch_idx) -> None:
        inputs = self._inputs(batch)
        keep = self._real_samples(_length(inputs))
        if keep == 0:
            return None
        with torch.no_grad():
            stats = self.net.e_step(*_head(inputs, keep))
        stats = {k: v.detach().to(torch.float64) for k, v in stats.items()}
        self._stats = stats if self._stats is None else {k: self._stats[k] + v for k, v in stats.items()}
        return None

    def _real_samples(self, batch_len: int) -> int:
        """How many of this batch's samples are real, not DistributedSampler padding (which sits at the end)."""
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        self._seen += batch_len
        if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
            return batch_len
        n = len(sampler.dataset)
        real_here = max(0, math.ceil((n - sampler.rank) / sampler.num_replicas))  # rank r reads r, r+W, ... < n
        return max(0, batch_len - max(0, self._seen - real_here))

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        loop = self.trainer.fit_loop.epoch_loop
        if loop.batch_progress.is_last_batch or batch_idx + 1 >= self.trainer.num_training_batches:
            self._maximise()

    def on_train_epoch_end(self) -> None:
        self._maximise()  # a no-op unless the epoch ended early (e.g. a stopping callback)

    def _maximise(self) -> None:
        """Sum the epoch's statistics across processes, run the M-step, log log-likelihood and BIC."""
        if self._stats is None:
            return
        stats = self._all_reduce_sum(self._stats)
        self._stats = None
        count = stats["count"].item()
        if count <= 0:
            return
        self.net.m_step(stats)
        self._count_step()
        ll = stats["log_likelihood"].item()
        metrics = {"train/log_likelihood": ll / count}
        if hasattr(self.net, "n_parameters"):
            metrics["train/bic"] = -2 * ll + self.net.n_parameters * math.log(count)
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=False, batch_size=1)
        self.log("train_ll", metrics["train/log_likelihood"], prog_bar=True, logger=False, on_epoch=True)

    def _count_step(self) -> None:
        """Count the M-step as the optimiser step EM has instead: Lightning's global step is then the number of
        EM iterations (checkpoint names, ``max_steps``), and checkpoint callbacks, which save only when the
        global step moved, save every iteration. The counter is part of the loop state a checkpoint restores."""
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()

    def _all_reduce_sum(self, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        """One all-reduce of every statistic, flattened into a single float64 vector."""
        if self.trainer.world_size == 1:
            return stats
        keys = sorted(stats)
        flat = torch.cat([stats[k].reshape(-1) for k in keys])
        flat = self.trainer.strategy.reduce(flat, reduce_op="sum")
        out, offset = {}, 0
        for k in keys:
            size = stats[k].numel()
            out[k], offset = flat[offset:offset + size].view_as(stats[k]), offset + size
        return out

    # -- evaluation ----------------------------------------------------------------------------

    def _shared_step(self, batch, stage: str) -> None:
        inputs = self._inputs(batch)
        n = _length(inputs)
        if n == 0:
            return None
        ll = self.net.log_prob(*inputs).double().mean()
        self.log(f"{stage}/log_likelihood", ll, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        return None

    def configure_optimizers(self):
        return None  # EM needs none; gradient training of the same nets is a plain optimiser loop


def _length(inputs: tuple) -> int:
    """Batch size of a tuple of batch-first arguments (tensors or lists)."""
    return len(inputs[0])


def _head(inputs: tuple, k: int) -> tuple:
    """The first `k` samples of every batch-first argument."""
    return tuple(a[:k] if a is not None else None for a in inputs)
