"""Variational autoencoder (Kingma & Welling 2014), β-VAE (Higgins et al. 2017) and
class-conditional VAE (Sohn et al. 2015), with the IWAE bound (Burda et al. 2016) as log p(x).

Pixels are discrete (digits take 17 grey levels), so p(x|z) is a categorical
distribution over ``levels`` values per pixel: log p(x) is then a true log
probability in nats, comparable across models and never a density in disguise.
Images come in and go out in [0, 1] (level / (levels - 1)).

Example::

    vae = VAE(latent_dim=16)                       # untrained; train with recipes/vae-digits.yaml
    vae = zoo.load("vae-digits")
    x = vae.sample(16, seed=0)                     # (16, 1, 8, 8), the mean image of p(x|z)
    vae.log_prob(x)                                # (16,) IWAE estimate of log p(x), k=1000
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_images, check_int, check_vectors, check_work
from zoo.models.base import GenerativeModel, check_num_classes, image_data_args
from zoo.models.contract import ESTIMATE_SEED, LABELS, Option

# -- building blocks ---------------------------------------------------------------------------


class Encoder(nn.Module):
    """x (B, C, H, W) [+ one-hot label planes] -> mean and log-variance of q(z|x), each (B, latent)."""

    def __init__(self, channels: int, size: int, hidden: int, latent_dim: int, num_classes: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels + num_classes, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, 2 * hidden, 4, stride=2, padding=1), nn.SiLU(),  # (B, 2h, H/2, W/2)
        )
        self.head = nn.Linear(2 * hidden * (size // 2) ** 2, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.head(self.conv(x).flatten(1)).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)


class Decoder(nn.Module):
    """z (B, latent) [+ one-hot label] -> logits of p(x|z), (B, C, levels, H, W)."""

    def __init__(self, channels: int, size: int, hidden: int, latent_dim: int, num_classes: int, levels: int):
        super().__init__()
        self.shape = (2 * hidden, size // 2, size // 2)
        self.channels, self.levels = channels, levels
        self.fc = nn.Sequential(nn.Linear(latent_dim + num_classes, math.prod(self.shape)), nn.SiLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * hidden, hidden, 4, stride=2, padding=1), nn.SiLU(),  # (B, h, H, W)
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, channels * levels, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        logits = self.deconv(self.fc(z).view(-1, *self.shape))  # (B, C * L, H, W)
        return logits.view(len(z), self.channels, self.levels, *logits.shape[-2:])


# -- the model ---------------------------------------------------------------------------------

#: importance samples of the IWAE estimate of log p(x) (more: tighter and slower)
IWAE_K = Option("k", int, 1000, low=1, high=100_000, help="importance samples of the IWAE estimate")
#: a cap on one log_prob call's decoder passes (images x k x classes summed over): minutes, not days
MAX_DECODES = 10 ** 7


class VAE(GenerativeModel):
    """Convolutional VAE with a Gaussian latent and categorical pixels; conditional if `num_classes`."""

    family = "vae"
    outputs = "images"
    conditions = (LABELS,)
    log_prob_options = (IWAE_K, ESTIMATE_SEED)

    data_sizes = ("image_size", "channels", "levels")

    def __init__(self, image_size: int | None = None, channels: int | None = None, levels: int | None = None,
                 latent_dim: int = 16, hidden: int = 32, num_classes: int | Literal["data"] | None = None):
        """Sizes left None come from the data (``levels``: 17 for digits' 0..16, 256 for 8-bit images);
        ``num_classes``: None unconditional, "data" conditional on the data's classes."""
        for name, value, low in [("image_size", image_size, 2), ("channels", channels, 1), ("levels", levels, 2),
                                 ("latent_dim", latent_dim, 1), ("hidden", hidden, 1)]:
            if value is not None:
                check_int(name, value, low, 1 << 16)
        if image_size is not None and image_size % 2:
            raise ValueError(f"image_size must be even, got {image_size}")
        check_num_classes(num_classes)
        super().__init__(image_size=image_size, channels=channels, levels=levels, latent_dim=latent_dim,
                         hidden=hidden, num_classes=num_classes)
        self.image_shape = (channels, image_size, image_size)
        self.levels, self.latent_dim, self.num_classes = levels, latent_dim, num_classes
        if self.pending:
            return
        n_cond = num_classes or 0
        self.encoder = Encoder(channels, image_size, hidden, latent_dim, n_cond)
        self.decoder = Decoder(channels, image_size, hidden, latent_dim, n_cond, levels)

    @classmethod
    def data_args(cls, spec, init_args):
        return image_data_args(spec, init_args, levels=True)

    # -- input checks ----------------------------------------------------------------------

    def check_images(self, x: Tensor, name: str = "x") -> Tensor:
        """x as a float (N, C, H, W) batch in [0, 1] (level / (levels - 1)); one (C, H, W) image becomes a batch of one."""
        return check_images(name, x, self.image_shape, device=self.device)

    def _one_image(self, x: Tensor, name: str) -> Tensor:
        """One image as a batch of one; a batch of several is refused (which of them was meant?)."""
        x = self.check_images(x, name)
        if len(x) != 1:
            raise ValueError(f"{name} must be one image {self.image_shape}, got a batch of {len(x)}")
        return x

    def _with_label(self, t: Tensor, labels: Tensor | None) -> Tensor:
        """Append one-hot labels: as constant planes to images, as features to vectors."""
        if labels is None:
            return t
        onehot = F.one_hot(labels, self.num_classes).to(t.dtype)
        if t.dim() == 4:
            onehot = onehot[:, :, None, None].expand(-1, -1, *t.shape[-2:])
        return torch.cat([t, onehot], dim=1)

    # -- encoder / decoder -----------------------------------------------------------------

    def encode(self, x: Tensor, labels: Any = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (N, latent_dim)."""
        x = self.check_images(x)
        return self.encoder(self._with_label(x, self.check_labels(labels, len(x), required=True)))

    def decoder_logits(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return self.decoder(self._with_label(z, labels))  # (N, C, L, H, W)

    def decode(self, z: Tensor, labels: Any = None) -> Tensor:
        """The mean image E[x|z] in [0, 1], (N, C, H, W)."""
        z = check_vectors("z", z, self.latent_dim, device=self.device)
        labels = self.check_labels(labels, len(z), required=True)
        probs = self.decoder_logits(z, labels).softmax(dim=2)
        grey = torch.linspace(0, 1, self.levels, device=z.device, dtype=probs.dtype)
        return torch.einsum("bclhw,l->bchw", probs, grey)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Any = None) -> Tensor:
        mean, _ = self.encode(x, labels)
        return self.decode(mean, labels)

    @torch.no_grad()
    def interpolate(self, x0: Tensor, x1: Tensor, steps: int = 8, labels: int | None = None) -> Tensor:
        """Decode `steps` points on the line between the latent means of two images, (steps, C, H, W)."""
        check_int("steps", steps, 2, 1000)
        z0, _ = self.encode(self._one_image(x0, "x0"), labels)
        z1, _ = self.encode(self._one_image(x1, "x1"), labels)
        t = torch.linspace(0, 1, steps, device=z0.device)[:, None]
        return self.decode(torch.lerp(z0, z1, t), labels)

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, labels: Tensor | None) -> Tensor:
        """`n` images (n, C, H, W) in [0, 1]: z ~ N(0, I), decoded to the mean of p(x|z).

        A conditional VAE draws each label uniformly unless `labels` (one int or n ints) is given.
        """
        gen = self._generator(seed)
        if labels is None and self.num_classes:
            labels = torch.randint(self.num_classes, (n,), generator=gen, device=self.device)
        z = torch.randn(n, self.latent_dim, generator=gen, device=self.device)
        return self.decode(z, labels)

    # -- likelihoods -----------------------------------------------------------------------

    def pixel_log_prob(self, x: Tensor, logits: Tensor) -> Tensor:
        """log p(x|z) summed over pixels, (N,): x (N, C, H, W) in [0, 1], logits (N, C, L, H, W)."""
        levels = (x * (self.levels - 1)).round().long().unsqueeze(2)  # (N, C, 1, H, W)
        return logits.log_softmax(dim=2).gather(2, levels).flatten(1).sum(1)

    def elbo(self, x: Tensor, labels: Tensor | None = None, beta: float = 1.0) -> dict[str, Tensor]:
        """One-sample ELBO terms per example: {"elbo", "recon_nll", "kl", "loss" (mean of recon + β·KL)}."""
        mean, logvar = self.encoder(self._with_label(x, labels))
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon_nll = -self.pixel_log_prob(x, self.decoder_logits(z, labels))
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return {"elbo": -(recon_nll + kl), "recon_nll": recon_nll, "kl": kl, "loss": (recon_nll + beta * kl).mean()}

    @torch.no_grad()
    def log_prob(self, x: Tensor, labels: Any = None, *, k: int = 1000, seed: int | None = None) -> Tensor:
        """IWAE estimate of log p(x) (or log p(x|y) given labels) in nats, (N,), with k importance samples.

        A conditional VAE without labels gives log p(x) = logsumexp_y log p(x|y) - log(num_classes)
        (uniform class prior), so anomaly scores need no labels.
        """
        x = self.check_images(x)
        k = IWAE_K.check(k, "VAE.log_prob")
        labels = self.check_labels(labels, len(x))
        classes = self.num_classes if labels is None and self.num_classes else 1
        check_work("k", len(x) * k * classes, MAX_DECODES, "decoder passes (images x k x classes)")
        if labels is None and self.num_classes:  # the same noise for every class: seeded calls add up exactly
            per_class = torch.stack([self._iwae(x, torch.full((len(x),), c, device=x.device), k, self._generator(seed))
                                     for c in range(self.num_classes)], dim=1)  # (N, classes)
            return per_class.logsumexp(1) - math.log(self.num_classes)
        return self._iwae(x, labels, k, self._generator(seed))

    def _iwae(self, x: Tensor, labels: Tensor | None, k: int, gen: torch.Generator | None) -> Tensor:
        # 1. q(z|x) once per image; 2. k samples z_i in chunks that fit in memory;
        # 3. log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x); 4. log p(x) ≈ logsumexp_i log w_i - log k.
        mean, logvar = self.encoder(self._with_label(x, labels))
        std = (0.5 * logvar).exp()
        # decode at most ~4k images at once, and at most 2^24 pixel logits (64 MB: 32x32 RGB at 256 levels)
        per_image = len(x) * math.prod(self.image_shape) * self.levels
        chunk = max(1, min(4096 // len(x), (1 << 24) // per_image))
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn(m, *mean.shape, generator=gen, device=x.device, dtype=mean.dtype)  # (m, N, latent)
            z = mean + eps * std
            flat = z.reshape(-1, self.latent_dim)
            rep = lambda t: t.expand(m, *t.shape).reshape(-1, *t.shape[1:])  # noqa: E731 (m*N, ...)
            log_px_z = self.pixel_log_prob(rep(x), self.decoder_logits(flat, None if labels is None else rep(labels)))
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
            log_w.append(log_px_z.view(m, -1) + log_pz - log_qz)  # (m, N)
        return torch.cat(log_w).logsumexp(0) - math.log(k)
