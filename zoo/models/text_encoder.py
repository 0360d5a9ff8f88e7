"""A small text encoder for prompts: the zoo's transformer blocks (``zoo.models.gpt.Block``), bidirectional.

No pretrained text encoder can be downloaded offline, so text-to-image models (``zoo.models.text_diffusion``)
bring their own: a character-level transformer over lowercased prompts. A prompt becomes ``<start>`` then
one token per character; characters outside ``alphabet`` become ``<unk>`` (documented, never an error);
the empty prompt is ``<start>`` alone, which is what classifier-free guidance's "null" prompt is.
``encode`` returns the token states (what a UNet cross-attends to), their mask and a pooled vector (the
final ``<start>`` state).

It learns to read before the denoiser trains (``TextDiffusionSystem``'s first phase): three small heads
predict the digit and the attribute words a caption names (``zoo.captions``; "not named" is a class), so
``read`` tells what a prompt says, testably. Then it is frozen, as Imagen freezes T5.

Example::

    enc = zoo.load("ddpm-mnist-5k-text").text_encoder
    states, mask, pooled = enc.encode(["a thick 7 leaning right", ""])   # (2, T, 64), (2, T), (2, 64)
    enc.read("a thick 7 leaning right")     # {"digit": 7, "thickness": "thick", "slant": "leaning right"}
    enc.save_pretrained("my-encoder"); zoo.load("my-encoder")              # loadable alone
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.captions import ATTRIBUTES
from zoo.checks import check_int
from zoo.models.base import GenerativeModel
from zoo.models.gpt import Block, RMSNorm, rope_table, rotations, swiglu_hidden

#: the characters of the default vocabulary (prompts are lowercased first)
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ,.:;!?'-"
PAD, UNK, START = 0, 1, 2
#: what the reading heads predict: the digit (10 = not named) and each attribute's bin (3 = not named)
READS = {"digit": 11, **{a: len(w) + 1 for a, w in ATTRIBUTES.items()}}


class TextEncoder(GenerativeModel):
    """Character transformer encoder: prompts -> token states (N, T, n_embd), a mask and a pooled vector.

    Args:
        alphabet: the characters with their own token (others are ``<unk>``).
        n_positions: the most tokens of a prompt, ``<start>`` included; longer prompts are cut with a warning.
        n_embd, n_layer, n_head: width, depth and heads of the blocks.
        dropout: while training.
    """

    family = "text-encoder"
    outputs = "embeddings"

    def __init__(self, alphabet: str = ALPHABET, n_positions: int = 96, n_embd: int = 64, n_layer: int = 2,
                 n_head: int = 4, dropout: float = 0.0):
        if not isinstance(alphabet, str) or not 1 <= len(alphabet) <= 1000 or len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must be 1 to 1000 distinct characters, got {alphabet!r:.80}")
        check_int("n_positions", n_positions, 2, 4096)
        check_int("n_embd", n_embd, 8, 4096)
        check_int("n_layer", n_layer, 1, 64)
        check_int("n_head", n_head, 1, 64)
        if n_embd % n_head or (n_embd // n_head) % 2:
            raise ValueError(f"n_embd {n_embd} must divide by n_head {n_head} into an even head size")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        super().__init__(alphabet=alphabet, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                         dropout=dropout)
        self.n_positions, self.n_embd = n_positions, n_embd
        self.ids = {c: i + 3 for i, c in enumerate(alphabet)}
        self.wte = nn.Embedding(len(alphabet) + 3, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, swiglu_hidden(n_embd), dropout, 1e-5) for _ in range(n_layer))
        self.norm = RMSNorm(n_embd, 1e-5)
        self.heads = nn.ModuleDict({name: nn.Linear(n_embd, k) for name, k in READS.items()})
        self.register_buffer("rope", rope_table(n_positions, n_embd // n_head, 10_000.0), persistent=False)

    def tokenize(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Token ids (N, T) and mask (N, T) (True at real tokens) of `prompts`, right-padded to the longest."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a list of str, got {prompts!r:.80}")
        rows = [[START] + [self.ids.get(c, UNK) for c in p.lower()] for p in prompts]
        if any(len(r) > self.n_positions for r in rows):
            longest = max(len(p) for p in prompts)
            warnings.warn(f"a prompt of {longest} characters is cut to the text encoder's {self.n_positions - 1}",
                          stacklevel=3)
            rows = [r[:self.n_positions] for r in rows]
        width = max(map(len, rows))
        ids = torch.tensor([r + [PAD] * (width - len(r)) for r in rows], device=self.device)
        return ids, ids != PAD

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Token states (N, T, n_embd) (zeros at padding) and the pooled vector (N, n_embd) of token ids."""
        x = self.wte(ids)  # (N, T, C)
        attend = (mask[:, None, :, None] & mask[:, None, None, :]) | torch.eye(ids.shape[1], dtype=torch.bool,
                                                                                 device=ids.device)  # (N, 1, T, T)
        rotation = rotations(self.rope[:ids.shape[1]])[None, :, None]  # (1, T, 1, D/2)
        for block in self.blocks:
            x = block(x, rotation, None, attend)
        x = self.norm(x) * mask[..., None]
        return x, x[:, 0]

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """(states (N, T, n_embd), mask (N, T), pooled (N, n_embd)) of `prompts`: what a UNet is conditioned on."""
        ids, mask = self.tokenize(prompts)
        states, pooled = self(ids, mask)
        return states, mask, pooled

    def reading_loss(self, prompts: Sequence[str], targets: Tensor) -> Tensor:
        """Cross-entropy of the heads against `targets` (N, 3): digit (10 = not named), thickness, slant (3 = not)."""
        _, _, pooled = self.encode(prompts)
        return sum(F.cross_entropy(head(pooled), targets[:, i].to(pooled.device))
                   for i, head in enumerate(self.heads.values()))

    @torch.no_grad()
    def read(self, prompt: str) -> dict[str, int | str | None]:
        """What the encoder understands `prompt` to say: {"digit": 0..9 or None, "thickness": word or None, ...}."""
        _, _, pooled = self.encode([prompt])
        out: dict[str, int | str | None] = {}
        for name, head in self.heads.items():
            k = int(head(pooled)[0].argmax())
            words = ATTRIBUTES.get(name)
            out[name] = (None if k == 10 else k) if words is None else (None if k == len(words) else words[k])
        return out

    def sample(self, n: int, *, seed: int | None = None, **options):
        raise TypeError("a TextEncoder encodes prompts (encode, read); it does not sample")
