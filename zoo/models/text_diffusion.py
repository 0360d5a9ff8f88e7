"""Text-to-image diffusion: a DDPM whose UNet cross-attends to a prompt (Rombach et al. 2022, in miniature).

The prompt goes through the model's own ``TextEncoder`` (``zoo.models.text_encoder``, a character
transformer that learns to read captions before the denoiser trains, then frozen); its token states
condition every UNet level below the top by cross-attention and its pooled vector joins the time
embedding. Classifier-free guidance (Ho & Salimans 2022) contrasts each prompt with the empty one,
the "null" prompt the model learns by dropping captions in training.

Prompts (``zoo.captions`` describes the vocabulary the pretrained model was trained on):

- the empty prompt draws an unconditional sample (any digit, any style);
- characters outside the encoder's alphabet are read as ``<unk>``; prompts are lowercased;
- a prompt longer than the encoder's context (``text_encoder.n_positions`` - 1 characters) is cut, with a warning;
- a prompt naming no digit draws a digit of the model's choosing in the style asked for;
- a contradictory prompt ("a thick thin 3") warns (``zoo.captions.read_prompt``) and draws whatever the model
  makes of it, typically the last word's style.

Example::

    model = zoo.load("ddpm-mnist-5k-text")
    x = model.sample(8, prompt="a thick 7 leaning right", guidance=3.0, steps=50, seed=0)   # (8, 1, 28, 28)
    x = model.sample(3, prompt=["a thin 2", "five, bold", ""], seed=0)                      # one prompt each
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.captions import read_prompt
from zoo.checks import check_int
from zoo.layers.unet import UNet
from zoo.models.base import image_data_args
from zoo.models.contract import PROGRESS, PROMPTS_TYPE, Option
from zoo.models.diffusion import DDPM, SAMPLERS
from zoo.models.text_encoder import TextEncoder

#: the most prompts one ``sample`` call takes (each is encoded once, however many samples share it)
MAX_PROMPTS = 10_000


class TextDDPM(DDPM):
    """A DDPM conditioned on prompts through cross-attention; its ``text_encoder`` is a ``TextEncoder``.

    Args:
        image_size, channels, base, channel_mults, dropout, schedule, prediction, ema_decay, attention_heads:
            as ``DDPM``'s.
        guidance: the default classifier-free guidance scale (1 = the prompt alone, no contrast with the null one).
        text_encoder: the ``TextEncoder``'s init args (its alphabet, n_positions, n_embd, n_layer, n_head).
        cross_attention_heads: heads of the UNet's cross-attention (dividing every width below the top level).
    """

    family = "text-diffusion"
    outputs = "images"
    conditions = (Option("prompt", PROMPTS_TYPE, "",
                         help='what to draw, e.g. "a thick 7 leaning right"; empty: an unconditional sample'),)
    sample_options = (
        Option("steps", int, 50, low=1, high="schedule.timesteps", help="denoising steps; fewer is faster"),
        Option("guidance", float, None, low=0, help="classifier-free guidance scale, 1 = the prompt alone; "
                                                    "default: the model's"),
        Option("sampler", str, "ddim", choices=SAMPLERS, help="ddim: deterministic; ddpm: ancestral"),
        PROGRESS,
    )

    def __init__(self, image_size: int | None = None, channels: int | None = None, base: int = 32,
                 channel_mults: list[int] = (1, 2, 2), dropout: float = 0.0, schedule: dict[str, Any] | None = None,
                 prediction: str = "eps", guidance: float = 3.0, ema_decay: float = 0.999, attention_heads: int = 0,
                 text_encoder: dict[str, Any] | None = None, cross_attention_heads: int = 4):
        check_int("cross_attention_heads", cross_attention_heads, 1, 64)
        encoder = TextEncoder(**(text_encoder or {}))  # checks its args; small, so built even when pending
        mults = list(channel_mults)
        if any(base * m % cross_attention_heads for m in mults[1:]):
            raise ValueError(f"cross_attention_heads {cross_attention_heads} must divide every width below the top "
                             f"level, {[base * m for m in mults[1:]]}")
        self._context_dim, self._cross_heads = encoder.n_embd, cross_attention_heads
        super().__init__(image_size=image_size, channels=channels, base=base, channel_mults=channel_mults,
                         dropout=dropout, num_classes=None, schedule=schedule, prediction=prediction,
                         guidance=guidance, ema_decay=ema_decay, attention_heads=attention_heads)
        del self.init_args["num_classes"]
        self.init_args.update(text_encoder=dict(encoder.init_args), cross_attention_heads=cross_attention_heads)
        self.text_encoder = encoder

    def _build_unet(self) -> UNet:
        a = self.init_args
        return UNet(a["channels"], a["base"], tuple(a["channel_mults"]), None, a["dropout"], a["attention_heads"],
                    context_dim=self._context_dim, cross_attention_heads=self._cross_heads)

    @classmethod
    def data_args(cls, spec, init_args):
        if not spec.captions:
            raise ValueError(f"a text-to-image model trains on captioned images; the data {spec.name!r} has no "
                             "captions (use mnist-5k-captions, zoo.data.captions)")
        return image_data_args(spec, {})

    # -- prompts ---------------------------------------------------------------------------

    def check_prompts(self, prompt: Any, n: int) -> list[str]:
        """`prompt` as n str: one str for every sample, or a list of n str; anything else is a ValueError."""
        if isinstance(prompt, str):
            prompts = [prompt] * n
        elif isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise ValueError(f"prompt must be a str or a list of str, got {type(prompt).__name__}")
        if len(prompts) != n:
            raise ValueError(f"prompt must be one str or a list of n={n} str, got a list of {len(prompts)}")
        if len(set(prompts)) > MAX_PROMPTS:
            raise ValueError(f"prompt may hold at most {MAX_PROMPTS} different texts per call, got {len(set(prompts))}")
        for p in dict.fromkeys(prompts):
            read_prompt(p)  # warns on contradictions ("a thick thin 3")
        return prompts

    def _encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """The UNet's text condition for `prompts`: one encoder pass per distinct prompt, rows gathered."""
        row = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
        states, mask, pooled = self.text_encoder.encode(list(row))
        index = torch.tensor([row[p] for p in prompts], device=states.device)
        return states[index], mask[index], pooled[index]

    # -- training --------------------------------------------------------------------------

    def loss(self, x: Tensor, prompts: Sequence[str] | None = None, p_uncond: float = 0.1,
             generator: torch.Generator | None = None) -> Tensor:
        """The denoising MSE given the prompts (N str); each is replaced by the empty prompt with probability
        `p_uncond`, so the network learns the null prompt of classifier-free guidance."""
        x0 = x * 2 - 1
        n = len(x0)
        prompts = list(prompts) if prompts is not None else [""] * n
        drop = torch.rand(n, generator=generator, device=x0.device) < p_uncond
        prompts = ["" if d else p for p, d in zip(prompts, drop.tolist())]
        t = torch.randint(0, self.schedule.timesteps, (n,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        ab = self.alphas_cumprod[t].view(n, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.text_encoder.wte.weight.requires_grad):
            text = self._encode(prompts)
        target = noise if self.prediction == "eps" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
        return F.mse_loss(self.unet(xt, t, text=text), target)

    # -- sampling --------------------------------------------------------------------------

    def _predict(self, xt: Tensor, tt: Tensor, cond: Any, guidance: float) -> Tensor:
        """`cond`: the prompts' text condition, with the null prompt's rows after them when guiding (2N rows)."""
        if guidance == 1.0:
            return self.ema(xt, tt, text=cond)
        c, u = self.ema(torch.cat([xt, xt]), tt.repeat(2), text=cond).chunk(2)
        return u + guidance * (c - u)

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, prompt: list[str], steps: int, guidance: float | None,
                sampler: str, progress: bool | None) -> Tensor:
        """`n` images (n, C, H, W) in [0, 1], one per prompt, from `steps` denoising steps (see ``DDPM._sample``)."""
        gen = self._generator(seed)
        guidance = self.guidance if guidance is None else guidance
        if not any(prompt):
            guidance = 1.0  # every prompt is the null one: nothing to contrast
        text = self._encode(prompt if guidance == 1.0 else [*prompt, *[""] * n])
        x = torch.randn(n, *self.image_shape, generator=gen, device=self.device)
        x = self._chain(x, self.timesteps(steps), text, guidance, 0.0 if sampler == "ddim" else 1.0, gen, progress,
                        f"{sampler} sampling")
        return (x + 1) / 2
