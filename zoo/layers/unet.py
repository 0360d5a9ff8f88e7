"""Image building blocks (plain torch): a small UNet with time and class embeddings.

The UNet follows DDPM's (Ho et al. 2020) in miniature: residual blocks with GroupNorm and
SiLU, the timestep's sinusoidal embedding added inside every block, one down/up-sampling
level per entry of ``channel_mults``. A class embedding (with one extra "null" row used for
classifier-free guidance, Ho & Salimans 2022) is added to the time embedding. With
``context_dim``, a text's token states condition it as in Stable Diffusion (Rombach et al. 2022):
cross-attention from the image positions to the tokens after every residual block below the top
resolution, and the text's pooled vector added to the time embedding (as Imagen, Saharia et al. 2022). With
``attention_heads`` > 0, a self-attention block (GroupNorm, multi-head attention over the H*W
positions, a residual add; DDPM used it at 16x16) follows the residual block of the lowest
down level, the middle and the lowest up level: the lowest resolution, where global context is
cheapest: its cost grows with (H*W)^2.

Example::

    net = UNet(channels=1, base=32, channel_mults=(1, 2), num_classes=10)
    eps = net(torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([3, 3, 10, 10]))  # 10 = null
    rgb = UNet(channels=3, base=32, channel_mults=(1, 2, 2), attention_heads=4)  # attention at 8x8 of 32x32
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
        # in place where autograd allows (it checks): no GroupNorm or conv backward needs its own output, and
        # fewer fresh activations means fewer page faults on CPU; the arithmetic, and so the output, is the same
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h += self.emb(emb)[:, :, None, None]  # (N, c_out, H, W)
        h = self.conv2(self.dropout(F.silu(self.norm2(h), inplace=True)))
        h += self.skip(x)
        return h


class SelfAttention(nn.Module):
    """x (N, C, H, W) -> x + proj(attention(GroupNorm(x))): multi-head self-attention over the H*W positions.

    The output projection starts at zero, so a fresh block is the identity (as the UNet's last conv).
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention over {channels} channels needs heads dividing it, got {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = self.norm(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.qkv(y).view(n, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (N, heads, HW, d)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, h * w, c)  # (N, HW, C)
        return x + self.proj(y).transpose(1, 2).reshape(n, c, h, w)


class CrossAttention(nn.Module):
    """x (N, C, H, W), context (N, T, D), mask (N, T) -> x + proj(attention(GroupNorm(x) -> context)): each image
    position attends to the context's tokens where `mask` is True. Zero-initialised output: a fresh block is the
    identity."""

    def __init__(self, channels: int, context_dim: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"cross-attention over {channels} channels needs heads dividing it, got {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        n, c, h, w = x.shape
        d = c // self.heads
        q = self.q(self.norm(x).flatten(2).transpose(1, 2)).view(n, h * w, self.heads, d).transpose(1, 2)  # (N, H, HW, d)
        k, v = self.kv(context).view(n, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (N, heads, T, d) each
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (N, heads, HW, d)
        return x + self.proj(y.transpose(1, 2).reshape(n, h * w, c)).transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    """eps or v from (x_t, t, class): (N, C, H, W) -> (N, C, H, W); H and W divisible by 2^(levels-1).

    Args:
        channels: image channels.
        base: channels of the first level; level i has ``base * channel_mults[i]``.
        channel_mults: one entry per resolution (each after the first halves H and W).
        num_classes: classes of the class embedding (plus one null class), or None for unconditional.
        dropout: inside residual blocks.
        attention_heads: 0 for none; else the heads of the self-attention blocks at the lowest resolution
            (after the lowest down level's, the middle and the lowest up level's residual block).
        context_dim: the width of a text's token states to condition on (None: no text); cross-attention
            with `cross_attention_heads` heads follows every residual block below the top resolution.
    """

    def __init__(self, channels: int = 1, base: int = 32, channel_mults: tuple[int, ...] = (1, 2),
                 num_classes: int | None = None, dropout: float = 0.0, attention_heads: int = 0,
                 context_dim: int | None = None, cross_attention_heads: int = 4):
        super().__init__()
        emb_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None  # last row: null class
        self.pooled_proj = nn.Linear(context_dim, emb_dim) if context_dim else None
        self.base = base
        widths = [base * m for m in channel_mults]
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        lowest = len(widths) - 1

        def attention(i: int, c: int) -> nn.Module:  # parameter-free where there is none: old state dicts load
            return SelfAttention(c, attention_heads) if attention_heads and i == lowest else nn.Identity()

        def cross(i: int, c: int) -> nn.Module:  # every level but the top, where H*W positions cost the most
            return CrossAttention(c, context_dim, cross_attention_heads) if context_dim and i > 0 else None

        self.cross_down, self.cross_up = nn.ModuleDict(), nn.ModuleDict()  # by level; empty without text
        # each level: [residual block, down/upsampling, attention]; attention last so the keys of the first two
        # are those of checkpoints without attention
        self.down = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(c, w, emb_dim, dropout),
                                            nn.Conv2d(w, w, 3, stride=2, padding=1) if i < lowest else nn.Identity(),
                                            attention(i, w)]))
            if cross(i, w) is not None:
                self.cross_down[str(i)] = cross(i, w)
            c = w
        self.mid = ResBlock(c, c, emb_dim, dropout)
        self.mid_attention = attention(lowest, c)
        self.mid_cross = cross(lowest, c) if lowest > 0 else None
        self.up = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([ResBlock(c + w, w, emb_dim, dropout),
                                          nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity(),
                                          attention(i, w)]))
            if cross(i, w) is not None:
                self.cross_up[str(i)] = cross(i, w)
            c = w
        self.out = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(inplace=True),
                                 nn.Conv2d(c, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start as the zero predictor: a calm first step
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None,
                text: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
        """`text`: (states (N, T, D), mask (N, T) True at real tokens, pooled (N, D)) of a text-conditioned UNet."""
        emb = self.time_mlp(timestep_embedding(t, self.base))  # (N, E)
        if self.class_emb is not None:
            emb = emb + self.class_emb(labels)
        if self.pooled_proj is not None:
            states, mask, pooled = text
            emb = emb + self.pooled_proj(pooled)

        def cross(blocks: nn.ModuleDict, i: int, h: Tensor) -> Tensor:
            return blocks[str(i)](h, states, mask) if str(i) in blocks else h

        # activations in channels_last (NHWC): oneDNN's native convolution layout on CPU, so no convolution
        # reorders its input and output (1.1-1.4x on one CPU thread at batch 64-256, with the in-place ops);
        # the second call covers one-channel images, whose NCHW strides already pass for channels_last
        h = self.stem(x.contiguous(memory_format=torch.channels_last)).contiguous(memory_format=torch.channels_last)
        skips = []
        for i, (block, downsample, attention) in enumerate(self.down):
            h = cross(self.cross_down, i, attention(block(h, emb)))
            skips.append(h)
            h = downsample(h)
        h = self.mid_attention(self.mid(h, emb))
        if self.mid_cross is not None:
            h = self.mid_cross(h, states, mask)
        for j, (block, upsample, attention) in enumerate(self.up):
            i = len(self.up) - 1 - j
            h = upsample(cross(self.cross_up, i, attention(block(torch.cat([h, skips.pop()], dim=1), emb))))
        return self.out(h).contiguous()  # (N, C, H, W), NCHW as it came

