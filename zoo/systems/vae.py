"""Training the VAE: the ELBO (β-weighted) with validation ELBO each epoch, and the IWAE bound on test."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.checks import check_int
from zoo.models.vae import VAE
from zoo.systems.base import GenerativeSystem


class VAESystem(GenerativeSystem):
    """Maximises the ELBO; logs {train,val,test}/elbo, recon_nll, kl; test also iwae (log p(x)) and recon_mse.

    Args:
        net: the VAE to train (its init arguments are the model's config).
        beta: weight of the KL term (β-VAE); 1 is the true ELBO.
        lr, weight_decay: AdamW settings; the learning rate follows a cosine decay over training.
        iwae_k: importance samples for the test log-likelihood.
        init_from: a pretrained name or folder to fine-tune (its architecture replaces `net`).
    """

    def __init__(self, net: VAE | None = None, beta: float = 1.0, lr: float = 2e-3, weight_decay: float = 0.0,
                 iwae_k: int = 1000, init_from: str | None = None):
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        check_int("iwae_k", iwae_k, 1, 100_000)  # importance samples per test image: a cap on evaluation time
        super().__init__(net or VAE(), init_from)
        self.save_hyperparameters(ignore=["net"])

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        labels = y if self.net.num_classes else None
        out = self.net.elbo(x, labels, beta=self.hparams.beta)
        on_step = stage == "train"
        metrics = {f"{stage}/{k}": out[k].mean() for k in ("elbo", "recon_nll", "kl")}
        if stage == "test":
            metrics["test/iwae"] = self.net._iwae(x, labels, self.hparams.iwae_k, None).mean()
            mean, _ = self.net.encoder(self.net._with_label(x, labels))
            metrics["test/recon_mse"] = F.mse_loss(self.net.decode(mean, labels), x)
        self.log_dict(metrics, on_step=on_step, on_epoch=True, sync_dist=not on_step, batch_size=len(x))
        self.log(f"{stage}_elbo", metrics[f"{stage}/elbo"], prog_bar=True, logger=False, on_step=on_step,
                 on_epoch=True, sync_dist=not on_step, batch_size=len(x))
        return out["loss"]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(steps)), eta_min=self.hparams.lr / 10)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
