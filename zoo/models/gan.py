"""Generative adversarial networks: DCGAN (Radford et al. 2016) sized by the image shape, with the
non-saturating (Goodfellow et al. 2014), hinge (Lim & Ye 2017) and WGAN-GP (Gulrajani et al. 2017)
losses, spectral normalisation (Miyato et al. 2018), a projection discriminator for class-conditional
models (Miyato & Koyama 2018), and an exponential moving average of the generator for sampling
(Yazıcı et al. 2019).

Images come in and go out in [0, 1]; the networks work in [-1, 1]. The discriminator is part of
the model (and of its checkpoint), so a pretrained GAN can be fine-tuned; sampling uses only the
EMA generator.

Example::

    gan = GAN(num_classes="data")                        # untrained, sizes from the data: recipes/dcgan-digits.yaml
    gan = zoo.load("dcgan-digits")
    x = gan.sample(16, labels=3, seed=0)                 # (16, 1, 8, 8): sixteen threes
    z = torch.randn(2, gan.latent_dim)
    gan.interpolate(z[0], z[1], steps=8, labels=3)       # (8, 1, 8, 8): a walk in latent space
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import as_tensor, check_int, check_vectors
from zoo.layers.ema import ema_update
from zoo.models.base import GenerativeModel, check_num_classes, image_data_args
from zoo.models.contract import LABELS

LOSSES = ("ns", "hinge", "wgan-gp")

# -- building blocks ---------------------------------------------------------------------------


def _stages(image_size: int) -> tuple[int, int]:
    """(start size, number of 2x stages): halve while even and above 4, e.g. 8 -> (4, 1), 32 -> (4, 3), 28 -> (7, 2)."""
    size, stages = image_size, 0
    while size % 2 == 0 and size > 4:
        size, stages = size // 2, stages + 1
    return size, max(stages, 0)


class Generator(nn.Module):
    """z (N, latent) [+ class embedding] -> image (N, C, H, W) in [-1, 1]: linear, then upsample+conv stages."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, hidden: int, num_classes: int | None):
        super().__init__()
        self.start, stages = _stages(image_size)
        widths = [hidden * 2 ** (stages - i) for i in range(stages + 1)]  # e.g. 8x8: [2h (4x4), h (8x8)]
        self.class_emb = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.fc = nn.Sequential(nn.Linear(latent_dim * (2 if num_classes else 1), widths[0] * self.start**2),
                                nn.BatchNorm1d(widths[0] * self.start**2), nn.ReLU())
        layers: list[nn.Module] = [nn.Conv2d(widths[0], widths[0], 3, padding=1), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.width = widths[0]

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.class_emb is not None:
            z = torch.cat([z, self.class_emb(labels)], dim=1)  # (N, 2 * latent)
        h = self.fc(z).view(len(z), self.width, self.start, self.start)
        return self.body(h)


class Discriminator(nn.Module):
    """image (N, C, H, W) in [-1, 1] [+ labels] -> a realness score (N,): strided convs, then a linear head.

    Conditional: the projection discriminator, score = ψ(φ(x)) + <embed(y), φ(x)>.
    """

    def __init__(self, channels: int, image_size: int, hidden: int, num_classes: int | None, spectral_norm: bool):
        super().__init__()
        start, stages = _stages(image_size)
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        widths = [hidden * 2**i for i in range(stages + 1)]  # e.g. 8x8: [h (8x8), 2h (4x4)]
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
                       sn(nn.Conv2d(c_out, c_out, 3, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.Flatten())  # (N, F)
        features = widths[-1] * start**2
        self.head = sn(nn.Linear(features, 1))
        self.class_emb = sn(nn.Embedding(num_classes, features)) if num_classes else None

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        phi = self.body(x)  # (N, F)
        score = self.head(phi).squeeze(1)
        if self.class_emb is not None:
            score = score + (self.class_emb(labels) * phi).sum(1)
        return score  # (N,)


# -- losses (used by zoo.systems.gan) ----------------------------------------------------------


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """The critic's loss from its scores on real and generated images (before any gradient penalty)."""
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log σ(D(x)) - log(1 - σ(D(G(z))))
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()  # wgan-gp: the Wasserstein critic


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """The generator's loss from the critic's scores on its images."""
    return F.softplus(-fake).mean() if kind == "ns" else -fake.mean()


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
    """WGAN-GP: E[(||∇_x̂ D(x̂)|| - 1)²] at random points x̂ between real and generated images."""
    t = torch.rand(len(real), 1, 1, 1, device=real.device)
    mix = torch.lerp(real, fake.detach(), t).requires_grad_(True)  # (N, C, H, W)
    (grad,) = torch.autograd.grad(critic(mix, labels).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


# -- the model ---------------------------------------------------------------------------------


class GAN(GenerativeModel):
    """DCGAN generator + discriminator (+ EMA generator); class-conditional if `num_classes`.

    Args:
        image_size, channels: the image shape; the networks have one 2x stage per halving of image_size
            down to 4 (or an odd size).
        latent_dim: size of z ~ N(0, I).
        hidden: width of the discriminator's first layer (and the generator's last).
        num_classes: None for unconditional; else a class embedding in G and a projection in D.
        spectral_norm: spectral normalisation of every discriminator layer.
        ema_decay: decay of the generator's moving average used for sampling.
    """

    family = "gan"
    outputs = "images"
    conditions = (LABELS,)

    data_sizes = ("image_size", "channels")

    def __init__(self, image_size: int | None = None, channels: int | None = None, latent_dim: int = 32,
                 hidden: int = 32, num_classes: int | Literal["data"] | None = None, spectral_norm: bool = True,
                 ema_decay: float = 0.999):
        """Sizes left None come from the data; ``num_classes``: None unconditional, "data" the data's classes."""
        for name, value, low in [("image_size", image_size, 4), ("channels", channels, 1),
                                 ("latent_dim", latent_dim, 1), ("hidden", hidden, 1)]:
            if value is not None:
                check_int(name, value, low, 1 << 16)
        check_num_classes(num_classes)
        if not isinstance(spectral_norm, bool):
            raise ValueError(f"spectral_norm must be true or false, got {spectral_norm!r}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        super().__init__(image_size=image_size, channels=channels, latent_dim=latent_dim, hidden=hidden,
                         num_classes=num_classes, spectral_norm=spectral_norm, ema_decay=ema_decay)
        self.image_shape = (channels, image_size, image_size)
        self.latent_dim, self.num_classes, self.ema_decay = latent_dim, num_classes, ema_decay
        if self.pending:
            return
        self.generator = Generator(latent_dim, channels, image_size, hidden, num_classes)
        self.discriminator = Discriminator(channels, image_size, hidden, num_classes, spectral_norm)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()

    @classmethod
    def data_args(cls, spec, init_args):
        return image_data_args(spec, init_args)

    def train(self, mode: bool = True) -> "GAN":
        super().train(mode)
        self.generator_ema.eval()  # always: its batch-norm statistics are copied, never updated
        return self

    def update_ema(self) -> None:
        ema_update(self.generator_ema, self.generator, self.ema_decay)

    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (N, C, H, W) in [0, 1] from latents z (N, latent_dim), by the EMA generator."""
        z = check_vectors("z", z, self.latent_dim, device=self.device)
        labels = self.check_labels(labels, len(z))
        if labels is None and self.num_classes:
            raise ValueError(f"labels are required: this GAN is conditional on {self.num_classes} classes")
        return (self.generator_ema(z, labels) + 1) / 2

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, labels: Tensor | None) -> Tensor:
        """`n` images (n, C, H, W) in [0, 1]; a conditional GAN draws labels uniformly unless given (one int or n)."""
        gen = self._generator(seed)
        if labels is None and self.num_classes:
            labels = torch.randint(self.num_classes, (n,), generator=gen, device=self.device)
        z = torch.randn(n, self.latent_dim, generator=gen, device=self.device)
        return self.generate(z, labels)

    def latent(self, seed: int) -> Tensor:
        """The latent (latent_dim,) that ``sample(1, seed=seed, labels=y)`` decodes when labels are given
        (without labels a conditional GAN draws its label from the seed first): a start or end of ``interpolate``."""
        return torch.randn(1, self.latent_dim, generator=self._generator(seed), device=self.device)[0]

    @torch.no_grad()
    def interpolate(self, z0: Tensor, z1: Tensor, steps: int = 8, labels: int | None = None) -> Tensor:
        """Images at `steps` points on the line from latent z0 to z1 (each (latent_dim,)), (steps, C, H, W)."""
        check_int("steps", steps, 2, 1000)
        ends = []
        for name, z in (("z0", z0), ("z1", z1)):
            z = as_tensor(name, z, dtype=torch.get_default_dtype(), device=self.device)
            if z.shape != (self.latent_dim,):
                raise ValueError(f"{name} must be one latent of shape ({self.latent_dim},), got {tuple(z.shape)}")
            ends.append(z)
        t = torch.linspace(0, 1, steps, device=self.device)[:, None]
        z = torch.lerp(ends[0][None], ends[1][None], t)  # (steps, latent)
        return self.generate(z, None if labels is None else self.check_labels(labels, steps))
