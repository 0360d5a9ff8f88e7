"""logsumexp and softmax through exp2: the same results as torch's, much faster on CPU when terms underflow.

torch's CPU ``exp`` leaves its vectorised path for arguments below about -87 (results that
underflow float32), which is the common case here: the log-probability of a far-away mixture
component or an unlikely class. ``exp2`` stays fast, so these helpers scale by log2(e) and use it.
Both are differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOG2E = 1.4426950408889634  # log2(e)


def _shifted_exp(a: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """(exp(a - max), max) along `dim`, the max detached and finite."""
    top = a.amax(dim, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return torch.exp2((a - top) * LOG2E), top


def logsumexp(a: Tensor, dim: int) -> Tensor:
    """log sum_i exp(a_i) along `dim` (that dimension removed)."""
    e, top = _shifted_exp(a, dim)
    return (e.sum(dim, keepdim=True).log() + top).squeeze(dim)


def softmax(a: Tensor, dim: int) -> Tensor:
    """exp(a_i) / sum_j exp(a_j) along `dim`."""
    e, _ = _shifted_exp(a, dim)
    return e / e.sum(dim, keepdim=True)
