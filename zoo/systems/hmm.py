"""Training a hidden Markov model by Baum-Welch: one epoch = one EM iteration (see zoo.systems.em).

Batches are ``(x, lengths)`` (zoo.data.sequences). The statistics' ``count`` is the number of
emitted steps, so ``train/log_likelihood`` is nats per step and BIC counts observations. Validation
and test log ``log_likelihood`` and ``nll`` per step (per character for text), summed over every
sequence before dividing, so the number is that of the whole split.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from zoo.models.hmm import HMM
from zoo.systems.em import EMSystem


class HMMSystem(EMSystem):
    """Baum-Welch for ``zoo.models.hmm.HMM`` on ``(x, lengths)`` batches; DDP sums the statistics.

    A datamodule whose spec has a ``vocab`` (CharSequenceDataModule) hands it to a categorical HMM at setup
    (n_symbols too), so the saved model reads and writes text.

    Args:
        net: the HMM to train (default: 32 states over the data's characters).
        init_samples: training sequences (in dataset order) the initialisation sees.
        init_from: a pretrained name or folder to continue from.
    """

    def __init__(self, net: HMM | None = None, init_samples: int = 100_000, init_from: str | None = None):
        super().__init__(net if net is not None or init_from else HMM(32, "categorical"),
                         init_samples, init_from)

    def _inputs(self, batch: Any) -> tuple:
        x, lengths = batch
        return x, lengths

    def _init_inputs(self, inputs: list[tuple]) -> tuple:
        """Pad every batch to the longest, then join them: (x (N, T_max, ...), lengths (N,))."""
        t_max = max(x.shape[1] for x, _ in inputs)
        xs = [torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, t_max - x.shape[1])) for x, _ in inputs]
        return torch.cat(xs), torch.cat([lengths for _, lengths in inputs])

    def _shared_step(self, batch: Any, stage: str) -> None:
        x, lengths = self._inputs(batch)
        steps = int(lengths.sum())
        if steps == 0:
            return None
        ll: Tensor = self.net.log_prob(x, lengths).double().sum() / steps
        for name, value in (("log_likelihood", ll), ("nll", -ll)):
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, sync_dist=True, batch_size=steps)
        return None
