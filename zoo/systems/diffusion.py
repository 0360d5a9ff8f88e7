"""Training DDPM: the simple eps/v MSE loss with label dropout for classifier-free guidance, EMA weights."""

from __future__ import annotations

from typing import Any

import torch

from zoo.checks import check_int
from zoo.models.diffusion import DDPM
from zoo.systems.base import GenerativeSystem


class DiffusionSystem(GenerativeSystem):
    """Minimises the denoising loss; logs {train,val,test}/loss; updates the EMA weights after each step.

    Args:
        net: the DDPM to train.
        lr, weight_decay: AdamW settings; cosine decay of the learning rate to lr/10 over training.
        p_uncond: probability of replacing a label by the null class (classifier-free guidance training).
        metric_steps, metric_guidance: the DDIM steps and guidance scale (None: the model's) of the samples
            that FID/IS/KID are measured on, in training (ImageQuality callback) and by ``genzoo eval``.
        init_from: a pretrained name or folder to fine-tune.
    """

    def __init__(self, net: DDPM | None = None, lr: float = 1e-3, weight_decay: float = 0.0, p_uncond: float = 0.1,
                 metric_steps: int = 10, metric_guidance: float | None = None, init_from: str | None = None):
        if not 0 <= p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}")
        check_int("metric_steps", metric_steps, 1, 1000)
        super().__init__(net or DDPM(), init_from)
        self.save_hyperparameters(ignore=["net"])

    def metric_sample_kwargs(self) -> dict[str, Any]:
        """How FID/IS/KID samples are drawn: a few DDIM steps keep evaluation to seconds."""
        kwargs: dict[str, Any] = {"steps": self.hparams.metric_steps, "progress": False}
        if self.hparams.metric_guidance is not None and "guidance" in self.net.accepts():
            kwargs["guidance"] = self.hparams.metric_guidance
        return kwargs

    def _loss(self, batch, p_uncond: float) -> torch.Tensor:
        """The denoising loss of one (images, labels) batch, labels dropped with probability `p_uncond`."""
        x, y = batch
        return self.net.loss(x, y if self.net.num_classes else None, p_uncond=p_uncond)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x = batch[0]
        loss = self._loss(batch, self.hparams.p_uncond if stage == "train" else 0.0)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, sync_dist=not on_step, batch_size=len(x))
        self.log(f"{stage}_loss", loss, prog_bar=True, logger=False, on_step=on_step, on_epoch=True,
                 sync_dist=not on_step, batch_size=len(x))
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.net.update_ema()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.unet.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(steps)), eta_min=self.hparams.lr / 10)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
