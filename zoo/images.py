"""Image files in and out with PIL and numpy only (torchvision is an optional extra): grids as PNG, and one
image file decoded to the (C, H, W) uint8 a model of that shape reads (``decode``, bomb-checked first)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

#: the largest image (in pixels) genzoo decodes: larger is refused from its header (PIL's own bomb check)
MAX_PIXELS = 8192 * 8192


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


def decode(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image file -> uint8 (channels, image_size, image_size): shorter side resized, centre crop."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"{path}: {w}x{h} pixels, more than the {MAX_PIXELS:,} genzoo decodes "
                             "(a decompression bomb?)")
        img.seek(0)  # a GIF's first frame
        img = img.convert("L" if channels == 1 else "RGB")
        scale = image_size / min(w, h)
        size = (max(image_size, round(w * scale)), max(image_size, round(h * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
