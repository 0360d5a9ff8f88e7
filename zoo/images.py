"""Image grids as PNG, with PIL and numpy only (torchvision is an optional extra)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def make_grid(images: torch.Tensor, nrow: int | None = None, scale: int = 4, pad: int = 1):
    """A PIL image tiling `images` (N, C, H, W) in [0, 1], `nrow` per row, each upscaled `scale` times."""
    from PIL import Image

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.ones((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32) * 0.5
    for i, img in enumerate(images.detach().float().clamp(0, 1).cpu().numpy()):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = img
    pixels = (grid * 255).round().astype(np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)
    return Image.fromarray(pixels[0] if c == 1 else pixels.transpose(1, 2, 0))


def save_arrays(arrays: dict, path: str | Path) -> Path:
    """Write numpy `arrays` as a compressed .npz at `path`, atomically (an existing file is replaced whole
    or not at all); returns the path."""
    import io

    import numpy as np

    from zoo.hub import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
    return path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 4) -> Path:
    """Write `images` (N, C, H, W) in [0, 1] as one PNG grid; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, nrow, scale).save(path, format="PNG")
    return path
