"""Denoising diffusion (DDPM, Ho et al. 2020) with DDIM sampling (Song et al. 2021), epsilon or
v prediction (Salimans & Ho 2022), linear or cosine noise schedules (Nichol & Dhariwal 2021) and
classifier-free guidance (Ho & Salimans 2022).

Images come in and go out in [0, 1]; the network works in [-1, 1]. Sampling uses the
exponential moving average of the weights (``self.ema``), which the system updates after
every optimiser step.

Example::

    ddpm = DDPM(num_classes="data")                      # untrained, sizes from the data: recipes/ddpm-digits.yaml
    ddpm = zoo.load("ddpm-digits")
    x = ddpm.sample(16, labels=3, steps=50, guidance=2.0, seed=0)   # (16, 1, 8, 8): sixteen threes
    x = ddpm.sample(16, sampler="ddpm", steps=1000, seed=0)        # ancestral sampling, the full chain
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.checks import check_int
from zoo.layers.ema import ema_update
from zoo.layers.unet import UNet
from zoo.models.base import GenerativeModel, check_num_classes, image_data_args
from zoo.models.contract import LABELS, PROGRESS, Option, progress_bar

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")
SAMPLERS = ("ddim", "ddpm")
SPACINGS = ("linspace", "leading", "trailing")

# -- the noise schedule: a plain config object --------------------------------------------------


@dataclass(frozen=True)
class NoiseSchedule:
    """How much noise each of `timesteps` forward steps adds; ``alphas_cumprod()`` is ᾱ_t for t = 0..T-1.

    linear: β_t from `beta_start` to `beta_end` (DDPM). cosine: ᾱ_t = cos²((t/T + s)/(1 + s)·π/2), s=0.008
    (Nichol & Dhariwal 2021), β_t clipped at 0.999.
    """

    kind: str = "cosine"
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule kind must be one of {SCHEDULES}, got {self.kind!r}")
        check_int("schedule timesteps", self.timesteps, 2, 100_000)
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"schedule needs 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")

    def betas(self) -> Tensor:
        """β_t for t = 0..T-1, float64 (what diffusers' schedulers take as ``trained_betas``)."""
        if self.kind == "linear":
            return torch.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=torch.float64)
        s, steps = 0.008, torch.arange(self.timesteps + 1, dtype=torch.float64) / self.timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)

    def alphas_cumprod(self) -> Tensor:
        return torch.cumprod(1 - self.betas(), 0).float()


# -- the model ---------------------------------------------------------------------------------


class DDPM(GenerativeModel):
    """A UNet denoiser over a noise schedule; class-conditional (with a null class) if `num_classes`.

    Args:
        image_size, channels: the image shape (image_size divisible by 2^(len(channel_mults)-1)).
        base, channel_mults, dropout: the UNet (zoo.layers.unet.UNet).
        attention_heads: 0 for a purely convolutional UNet; else self-attention with this many heads at the
            lowest resolution, where it helps (global context at the cheapest size): after the residual block
            of the lowest down level, the middle and the lowest up level. The lowest width,
            ``base * channel_mults[-1]``, must divide by it.
        num_classes: None for unconditional; else labels 0..num_classes-1 and a null class for guidance.
        schedule: a NoiseSchedule as a dict, e.g. {"kind": "cosine", "timesteps": 1000}.
        prediction: what the network predicts, "eps" (the noise) or "v" (√ᾱ·ε - √(1-ᾱ)·x0).
        guidance: the default classifier-free guidance scale w: ε = ε_∅ + w·(ε_y - ε_∅); 1 = conditional only.
        ema_decay: the decay of the weights' moving average used for sampling.
    """

    family = "diffusion"
    outputs = "images"
    conditions = (LABELS,)
    sample_options = (
        Option("steps", int, 50, low=1, high="schedule.timesteps", help="denoising steps; fewer is faster"),
        Option("guidance", float, None, low=0, conditional_only=True,
               help="classifier-free guidance scale, 1 = conditional only; default: the model's"),
        Option("sampler", str, "ddim", choices=SAMPLERS, help="ddim: deterministic; ddpm: ancestral"),
        PROGRESS,
    )

    data_sizes = ("image_size", "channels")

    def __init__(self, image_size: int | None = None, channels: int | None = None, base: int = 32,
                 channel_mults: list[int] = (1, 2), dropout: float = 0.0,
                 num_classes: int | Literal["data"] | None = None, schedule: dict[str, Any] | None = None,
                 prediction: str = "eps", guidance: float = 1.0, ema_decay: float = 0.999,
                 attention_heads: int = 0):
        """Sizes left None come from the data; ``num_classes``: None unconditional, "data" the data's classes."""
        for name, value, low in [("image_size", image_size, 2), ("channels", channels, 1), ("base", base, 8)]:
            if value is not None or name == "base":
                check_int(name, value, low, 1 << 16)
        channel_mults = list(channel_mults)
        if not 1 <= len(channel_mults) <= 8 or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 64
                                                   for m in channel_mults):
            raise ValueError(f"channel_mults must be 1 to 8 integers in 1..64, got {channel_mults!r:.80}")
        if image_size is not None and image_size % 2 ** (len(channel_mults) - 1):
            raise ValueError(f"image_size {image_size} must be divisible by 2^{len(channel_mults) - 1} "
                             f"(one halving per extra entry of channel_mults)")
        check_int("attention_heads", attention_heads, 0, 64)
        if attention_heads and base * channel_mults[-1] % attention_heads:
            raise ValueError(f"attention_heads {attention_heads} must divide the lowest width "
                             f"base * channel_mults[-1] = {base * channel_mults[-1]}")
        check_num_classes(num_classes)
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not 0 <= dropout < 1 or not 0 <= ema_decay < 1:
            raise ValueError(f"dropout and ema_decay must be in [0, 1), got {dropout!r} and {ema_decay!r}")
        self.schedule = NoiseSchedule(**(schedule or {}))
        super().__init__(image_size=image_size, channels=channels, base=base, channel_mults=channel_mults,
                         dropout=dropout, num_classes=num_classes, schedule=asdict(self.schedule),
                         prediction=prediction, guidance=self._check_guidance(float(guidance)), ema_decay=ema_decay,
                         attention_heads=attention_heads)
        self.image_shape = (channels, image_size, image_size)
        self.num_classes, self.prediction, self.guidance, self.ema_decay = num_classes, prediction, guidance, ema_decay
        if self.pending:
            return
        self.unet = self._build_unet()
        self.ema = copy.deepcopy(self.unet).requires_grad_(False)  # the weights sampling uses
        self.register_buffer("alphas_cumprod", self.schedule.alphas_cumprod(), persistent=False)  # (T,)

    def _build_unet(self) -> UNet:
        a = self.init_args
        return UNet(a["channels"], a["base"], tuple(a["channel_mults"]), a["num_classes"], a["dropout"],
                    a["attention_heads"])

    @classmethod
    def data_args(cls, spec, init_args):
        return image_data_args(spec, init_args)

    # -- input checks ----------------------------------------------------------------------

    @staticmethod
    def _check_guidance(guidance: float) -> float:
        if not math.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0 (1 = conditional only), got {guidance!r}")
        return guidance

    # -- training --------------------------------------------------------------------------

    def loss(self, x: Tensor, labels: Tensor | None = None, p_uncond: float = 0.1,
             generator: torch.Generator | None = None) -> Tensor:
        """Mean squared error of the eps/v prediction at uniform random t (Ho et al. 2020, eq. 14).

        x (N, C, H, W) in [0, 1]; with probability `p_uncond` a label is replaced by the null class, so the
        same network learns ε_∅ for classifier-free guidance.
        """
        x0 = x * 2 - 1  # (N, C, H, W) in [-1, 1]
        n = len(x0)
        t = torch.randint(0, self.schedule.timesteps, (n,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        ab = self.alphas_cumprod[t].view(n, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # q(x_t | x_0), eq. 4
        if labels is not None and self.num_classes:
            drop = torch.rand(n, device=x0.device, generator=generator) < p_uncond
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        target = noise if self.prediction == "eps" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
        return F.mse_loss(self.unet(xt, t, labels), target)

    def update_ema(self) -> None:
        ema_update(self.ema, self.unet, self.ema_decay)

    # -- sampling --------------------------------------------------------------------------

    def _predict(self, xt: Tensor, tt: Tensor, cond: Any, guidance: float) -> Tensor:
        """The guided network output (EMA weights) at timesteps tt (N,) given `cond`, here labels (N,) or None."""
        labels = cond
        if labels is None:
            return self.ema(xt, tt, None)
        if guidance == 1.0:
            return self.ema(xt, tt, labels)
        # one batched call for the conditional and the null-class predictions
        null = torch.full_like(labels, self.num_classes)
        c, u = self.ema(torch.cat([xt, xt]), tt.repeat(2), torch.cat([labels, null])).chunk(2)
        return u + guidance * (c - u)

    def _eps_x0(self, xt: Tensor, t: Tensor, cond: Any, guidance: float) -> tuple[Tensor, Tensor]:
        """Guided ε and the implied x0 (clipped to [-1, 1]) at one timestep t (a 0-dim tensor)."""
        ab = self.alphas_cumprod[t]
        out = self._predict(xt, t.expand(len(xt)), cond, guidance)
        if self.prediction == "eps":
            eps = out
            x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
        else:  # v = √ᾱ ε - √(1-ᾱ) x0
            x0 = ab.sqrt() * xt - (1 - ab).sqrt() * out
        x0 = x0.clamp(-1, 1)
        eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clipped x0
        return eps, x0

    def timesteps(self, steps: int, spacing: str = "linspace") -> list[int]:
        """`steps` timesteps, descending, that a sampler visits (DDIM's respacing).

        spacing "linspace" (what ``sample`` uses): evenly from T-1 down to 0. "leading": k·(T // steps) for
        k = steps-1..0, diffusers' default (its DDIMScheduler's ``timestep_spacing``), which never visits T-1.
        "trailing": round(T - k·T/steps) - 1 for k = 0..steps-1, which starts at T-1 (Lin et al. 2024).
        """
        T = self.schedule.timesteps
        check_int("steps", steps, 1, T)
        if spacing == "linspace":
            return torch.linspace(T - 1, 0, steps).round().long().unique_consecutive().tolist()
        if spacing == "leading":
            return [k * (T // steps) for k in range(steps - 1, -1, -1)]
        if spacing == "trailing":
            return [round(T - k * T / steps) - 1 for k in range(steps)]
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, labels: Tensor | None, steps: int, guidance: float | None,
                sampler: str, progress: bool | None) -> Tensor:
        """`n` images (n, C, H, W) in [0, 1] from `steps` denoising steps.

        sampler "ddim": deterministic DDIM (η = 0); "ddpm": ancestral sampling (η = 1, the DDPM posterior
        variance on the respaced chain). A conditional model draws labels uniformly unless `labels` (one
        int or n ints) is given; `guidance` (default: the model's) is the classifier-free guidance scale.
        `progress`: a tqdm bar (None: only on a terminal).
        """
        gen = self._generator(seed)
        guidance = self.guidance if guidance is None else guidance
        if labels is None and self.num_classes:
            labels = torch.randint(self.num_classes, (n,), generator=gen, device=self.device)
        x = torch.randn(n, *self.image_shape, generator=gen, device=self.device)  # x_T
        eta = 0.0 if sampler == "ddim" else 1.0
        x = self.denoise(x, self.timesteps(steps), labels=labels, guidance=guidance, eta=eta, generator=gen,
                         progress=progress, desc=f"{sampler} sampling")
        return (x + 1) / 2

    @torch.no_grad()
    def denoise(self, x: Tensor, timesteps: list[int], *, labels: Tensor | None = None,
                guidance: float | None = None, eta: float = 0.0, generator: torch.Generator | None = None,
                progress: bool | None = False, desc: str = "denoising") -> Tensor:
        """x_T (N, C, H, W) in the network's [-1, 1] scale -> x_0 over descending `timesteps` (``timesteps()``
        makes them): the chain ``sample`` runs, from a given start; eta 0 is DDIM, 1 ancestral. `labels` (N,) of a
        conditional model, `guidance` (default: the model's) as in ``sample``."""
        self._check_built()
        return self._chain(x, timesteps, labels, self.guidance if guidance is None else guidance, eta, generator,
                           progress, desc)

    def _chain(self, x: Tensor, timesteps: list[int], cond: Any, guidance: float, eta: float,
               generator: torch.Generator | None, progress: bool | None, desc: str) -> Tensor:
        """``denoise``'s loop, given the condition as the network takes it (``_predict``'s `cond`)."""
        for i, t in enumerate(progress_bar(timesteps, progress, desc)):
            x = self._step(x, t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, cond, guidance, eta, generator)
        return x

    def _step(self, x: Tensor, t: int, t_prev: int, cond: Any, guidance: float, eta: float,
              gen: torch.Generator | None) -> Tensor:
        """x_t -> x_{t_prev} (DDIM eq. 12); t_prev = -1 means the final step to x_0."""
        eps, x0 = self._eps_x0(x, torch.tensor(t, device=x.device), cond, guidance)
        if t_prev < 0:
            return x0
        ab, ab_prev = self.alphas_cumprod[t], self.alphas_cumprod[t_prev]
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=gen, device=x.device)
        return x
