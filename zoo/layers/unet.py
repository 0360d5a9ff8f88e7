"""Image building blocks (plain torch): a small UNet with time and class embeddings.

The UNet follows DDPM's (Ho et al. 2020) in miniature: residual blocks with GroupNorm and
SiLU, the timestep's sinusoidal embedding added inside every block, one down/up-sampling
level per entry of ``channel_mults``. A class embedding (with one extra "null" row used for
classifier-free guidance, Ho & Salimans 2022) is added to the time embedding.

Example::

    net = UNet(channels=1, base=32, channel_mults=(1, 2), num_classes=10)
    eps = net(torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([3, 3, 10, 10]))  # 10 = null
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of (N,) timesteps -> (N, dim), as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (N, half)
    return torch.cat([args.cos(), args.sin()], dim=1)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    """x (N, c_in, H, W), emb (N, E) -> (N, c_out, H, W): two 3x3 convs, the embedding added in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # (N, c_out, H, W)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class UNet(nn.Module):
    """eps or v from (x_t, t, class): (N, C, H, W) -> (N, C, H, W); H and W divisible by 2^(levels-1).

    Args:
        channels: image channels.
        base: channels of the first level; level i has ``base * channel_mults[i]``.
        channel_mults: one entry per resolution (each after the first halves H and W).
        num_classes: classes of the class embedding (plus one null class), or None for unconditional.
        dropout: inside residual blocks.
    """

    def __init__(self, channels: int = 1, base: int = 32, channel_mults: tuple[int, ...] = (1, 2),
                 num_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        emb_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None  # last row: null class
        self.base = base
        widths = [base * m for m in channel_mults]
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(c, w, emb_dim, dropout),
                                            nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity()]))
            c = w
        self.mid = ResBlock(c, c, emb_dim, dropout)
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([ResBlock(c + w, w, emb_dim, dropout),
                                          nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity()]))
            c = w
        self.out = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start as the zero predictor: a calm first step
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base))  # (N, E)
        if self.class_emb is not None:
            emb = emb + self.class_emb(labels)
        h, skips = self.stem(x), []
        for block, downsample in self.down:
            h = block(h, emb)
            skips.append(h)
            h = downsample(h)
        h = self.mid(h, emb)
        for block, upsample in self.up:
            h = upsample(block(torch.cat([h, skips.pop()], dim=1), emb))
        return self.out(h)

