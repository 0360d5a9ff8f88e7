"""Training the digits classifier (the image metrics' feature extractor): cross-entropy, accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.models.classifier import DigitsClassifier
from zoo.systems.base import GenerativeSystem


def random_shift(x: torch.Tensor, max_shift: int = 1) -> torch.Tensor:
    """Shift each image (N, C, H, W) by up to `max_shift` pixels (zero fill): digits move, classes stay."""
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    idx = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[idx, torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]


class ClassifierSystem(GenerativeSystem):
    """Minimises cross-entropy (with ±`shift` pixel shifts on train); logs {stage}/loss and {stage}/acc.

    Args:
        net: the DigitsClassifier to train.
        lr, weight_decay: AdamW settings; cosine decay of the learning rate over training.
        shift: random translation of training images in pixels (0 turns augmentation off).
        noise: the largest amplitude of uniform pixel noise added to training images (each image draws its own
            amplitude in [0, noise]; clipped to [0, 1]): an extractor that generated images' speckled
            backgrounds do not throw off (0 turns it off).
        init_from: a pretrained folder to fine-tune.
    """

    def __init__(self, net: DigitsClassifier | None = None, lr: float = 3e-3, weight_decay: float = 1e-4,
                 shift: int = 1, noise: float = 0.0, init_from: str | None = None):
        if shift < 0:
            raise ValueError(f"shift must be >= 0, got {shift}")
        if not 0 <= noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {noise!r}")
        super().__init__(net or DigitsClassifier(), init_from)
        self.save_hyperparameters(ignore=["net"])

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        if stage == "train" and self.hparams.shift:
            x = random_shift(x, self.hparams.shift)
        if stage == "train" and self.hparams.get("noise"):
            amplitude = self.hparams.noise * torch.rand(len(x), 1, 1, 1, device=x.device)
            x = (x + amplitude * torch.rand_like(x)).clamp(0, 1)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        on_step = stage == "train"
        metrics = {f"{stage}/loss": loss, f"{stage}/acc": (logits.argmax(1) == y).float().mean()}
        self.log_dict(metrics, on_step=on_step, on_epoch=True, sync_dist=not on_step, batch_size=len(x))
        self.log(f"{stage}_acc", metrics[f"{stage}/acc"], prog_bar=True, logger=False, on_step=on_step,
                 on_epoch=True, sync_dist=not on_step, batch_size=len(x))
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(steps)), eta_min=self.hparams.lr / 20)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
