"""Training a GAN with Lightning's manual optimisation: n_critic discriminator steps per generator step."""

from __future__ import annotations

import torch

from zoo.models.gan import GAN, LOSSES, discriminator_loss, generator_loss, gradient_penalty
from zoo.systems.base import GenerativeSystem


class GANSystem(GenerativeSystem):
    """Alternates critic and generator updates; logs {stage}/d_loss, g_loss, d_real, d_fake.

    Args:
        net: the GAN to train (generator, discriminator, EMA generator).
        loss: "ns" (non-saturating), "hinge" or "wgan-gp".
        n_critic: discriminator updates per generator update (5 is usual for WGAN-GP).
        lr_g, lr_d, betas: Adam settings of each network (two time-scale updates if lr_d > lr_g).
        gp_weight: weight of the gradient penalty (wgan-gp only).
        init_from: a pretrained name or folder to fine-tune.
    """

    def __init__(self, net: GAN | None = None, loss: str = "hinge", n_critic: int = 1, lr_g: float = 2e-4,
                 lr_d: float = 2e-4, betas: tuple[float, float] = (0.0, 0.9), gp_weight: float = 10.0,
                 init_from: str | None = None):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(f"n_critic must be an integer >= 1, got {n_critic!r}")
        super().__init__(net or GAN(), init_from)
        self.save_hyperparameters(ignore=["net"])
        self.automatic_optimization = False

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.net.num_classes else None

    def _critic_loss(self, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        net, kind = self.net, self.hparams.loss
        real = x * 2 - 1  # (N, C, H, W) in [-1, 1]
        fake = net.generator(torch.randn(len(x), net.latent_dim, device=x.device), labels).detach()
        d_real, d_fake = net.discriminator(real, labels), net.discriminator(fake, labels)
        loss = discriminator_loss(kind, d_real, d_fake)
        if kind == "wgan-gp" and torch.is_grad_enabled():
            loss = loss + self.hparams.gp_weight * gradient_penalty(net.discriminator, real, fake, labels)
        return {"d_loss": loss, "d_real": d_real.mean(), "d_fake": d_fake.mean()}

    def _generator_loss(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        net = self.net
        fake = net.generator(torch.randn(n, net.latent_dim, device=self.device), labels)
        return generator_loss(self.hparams.loss, net.discriminator(fake, labels))

    def training_step(self, batch, batch_idx):
        x, y = batch
        labels = self._labels(y)
        opt_g, opt_d = self.optimizers()
        out = self._critic_loss(x, labels)  # 1. one critic step on every batch
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(out["d_loss"])
        opt_d.step()
        if (batch_idx + 1) % self.hparams.n_critic == 0:  # 2. a generator step every n_critic batches
            self.net.discriminator.requires_grad_(False)
            g_loss = self._generator_loss(len(x), labels)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.net.discriminator.requires_grad_(True)
            self.net.update_ema()
            out["g_loss"] = g_loss
        self.log_dict({f"train/{k}": v.detach() for k, v in out.items()}, on_step=True, on_epoch=True, batch_size=len(x))

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        labels = self._labels(y)
        out = self._critic_loss(x, labels)
        out["g_loss"] = self._generator_loss(len(x), labels)
        self.log_dict({f"{stage}/{k}": v for k, v in out.items()}, on_epoch=True, sync_dist=True, batch_size=len(x))
        return out["d_loss"]

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.net.generator.parameters(), lr=self.hparams.lr_g, betas=betas)
        opt_d = torch.optim.Adam(self.net.discriminator.parameters(), lr=self.hparams.lr_d, betas=betas)
        return [opt_g, opt_d]
