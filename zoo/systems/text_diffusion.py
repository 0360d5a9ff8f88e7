"""Training text-to-image diffusion in two phases: the text encoder learns to read captions, then the denoiser.

1. ``encoder_steps`` Adam steps of the encoder alone, on fresh captions of the training images: its
   heads must read back the digit and the attribute words each caption names (``TextEncoder.reading_loss``).
   Seconds on a CPU, and it gives the denoiser a text representation that already separates what matters.
2. The DDPM loss (``DiffusionSystem``), the encoder frozen (only the UNet is optimised, as Imagen keeps T5
   frozen); captions are dropped to the empty prompt with probability ``p_uncond`` for guidance.
"""

from __future__ import annotations

import random

import torch
from lightning.pytorch.utilities import rank_zero_info

from zoo.captions import NOTHING_NAMED
from zoo.checks import check_int
from zoo.models.text_diffusion import TextDDPM
from zoo.systems.diffusion import DiffusionSystem


class TextDiffusionSystem(DiffusionSystem):
    """``DiffusionSystem`` on (images, captions, named) batches, after the encoder's reading phase.

    Args:
        net: the TextDDPM to train.
        lr, weight_decay, p_uncond, metric_steps, metric_guidance, init_from: as ``DiffusionSystem``'s.
        encoder_steps: Adam steps of the encoder's reading phase (0: skip it; skipped too when fine-tuning or
            resuming, whose encoder has learnt already).
        encoder_lr, encoder_batch_size: that phase's learning rate and captions per step.
    """

    def __init__(self, net: TextDDPM | None = None, lr: float = 1e-3, weight_decay: float = 0.0,
                 p_uncond: float = 0.1, metric_steps: int = 10, metric_guidance: float | None = None,
                 init_from: str | None = None, encoder_steps: int = 2000, encoder_lr: float = 2e-3,
                 encoder_batch_size: int = 128):
        check_int("encoder_steps", encoder_steps, 0, 1_000_000)
        check_int("encoder_batch_size", encoder_batch_size, 1, 1 << 16)
        super().__init__(net or TextDDPM(), lr, weight_decay, p_uncond, metric_steps, metric_guidance, init_from)
        self.save_hyperparameters(ignore=["net"])

    def on_fit_start(self) -> None:
        super().on_fit_start()
        encoder = self.net.text_encoder
        resuming = self.trainer.ckpt_path is not None  # its encoder comes back with the checkpoint, taught
        if self.hparams.encoder_steps and not self.init_from and not resuming:
            self._teach_reading(encoder)
        encoder.requires_grad_(False).eval()

    def _teach_reading(self, encoder) -> None:
        """Phase 1: the encoder's heads read back what fresh captions of the training images name."""
        data = self.trainer.datamodule.datasets["train"]
        opt = torch.optim.AdamW(encoder.parameters(), lr=self.hparams.encoder_lr)
        encoder.train()
        batch, steps = self.hparams.encoder_batch_size, self.hparams.encoder_steps
        for step in range(steps):
            rows = [random.randrange(len(data)) for _ in range(batch)]
            pairs = [data.captioned(int(data.labels[i]), data.bins[i], random, p_noise=0.5) for i in rows]
            pairs += [("", NOTHING_NAMED)] * max(1, batch // 10)  # the null prompt reads as nothing
            loss = encoder.reading_loss([p for p, _ in pairs], torch.tensor([t for _, t in pairs]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 500 == 0 or step == steps - 1:
                rank_zero_info(f"text encoder, reading captions: step {step + 1}/{steps}, loss {loss.item():.4f}")
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # every rank: rank 0's encoder
            for t in encoder.state_dict().values():
                torch.distributed.broadcast(t, 0)

    def _loss(self, batch, p_uncond: float) -> torch.Tensor:
        """The denoising loss of one (images, captions, named) batch, captions dropped with probability `p_uncond`."""
        x, captions, _ = batch
        return self.net.loss(x, captions, p_uncond=p_uncond)
