"""An exponential moving average of weights (plain torch): what the DDPM samples with and the GAN's EMA generator."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source, parameter by parameter; buffers are copied."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
