"""A small decoder-only transformer (Llama's layout: Touvron et al. 2023) for text generation.

The blocks are pre-norm with RMSNorm, rotary position embeddings (RoPE, Su et al. 2021) and a
SwiGLU MLP, no biases, the output head tied to the token embedding. On nanoGPT's "baby GPT"
configuration (4 layers, 4 heads, 128 dims, block 64, 2,000 iterations) this reaches a validation
loss of ~1.68 nats/char where GPT-2's blocks (LayerNorm, learned positions, GELU) reach ~1.89 with
the same parameter count, optimiser and data (measured side by side: see the model card).

The weights use transformers' Llama names and layout (``model.layers.0.self_attn.q_proj.weight`` is
(out, in)), and config.json also carries LlamaConfig's fields, so a saved folder *is* a transformers
checkpoint::

    transformers.AutoModelForCausalLM.from_pretrained(folder)        # LlamaForCausalLM, same logits
    transformers.pipeline("text-generation", model=folder)           # no custom code

The module itself is plain torch (``F.scaled_dot_product_attention``), so loading and sampling never
import transformers. RoPE is one complex multiply: q and k are computed with their weight rows in
``pair_order``, which puts each rotated pair side by side (the stored weights keep transformers' order). Generation has its own lean loop: a preallocated KV cache, one token per step,
the Gumbel-max trick for sampling; it is several times faster than transformers' ``generate`` on
small models, where Python overhead per step dominates.

**Context window**: a prompt may hold up to ``n_positions`` tokens (more is a ValueError). When
prompt + generated text fill the window, generation slides: the cache is rebuilt from the last
``n_positions // 2`` tokens and decoding goes on, so every token sees between ``n_positions // 2``
and ``n_positions`` tokens of context (nanoGPT slides one token at a time, recomputing the window
every step; this costs one short prefill per ``n_positions // 2`` tokens instead).

**Sequences that end**: with a SMILES tokenizer (``zoo.tokenizers.smiles_tokenizer``) every sequence is
``<bos> ... <eos>``: prompts start from ``<bos>``, a text ends at its first ``<eos>`` (generation stops when
every text has ended), and ``log_prob`` includes the probability of ending. ``sample(n)`` then returns
``n`` whole molecules (SMILES strings). Such a sequence is at most the window long, the prompt included
(``max_new_tokens`` is capped there): the model was trained on whole sequences inside the window, so one that
has not ended when the window is full is returned as it is rather than continued from half of itself (MOSES's
longest SMILES is 57 characters, fewer tokens; ``gpt-moses``'s window is 64). Rows that have ended leave the
batch as it decodes, so a batch costs its mean length rather than its longest, and on CPUs with bfloat16 matrix
instructions (AMX, AVX512-BF16) batches of 64 or more decode in bfloat16: together ~3x faster than float32 for
every row (``GPT._ended``).

Example::

    gpt = zoo.load("gpt-shakespeare-char")
    gpt.generate("ROMEO:", max_new_tokens=100, temperature=0.8, seed=0)   # the continuation, a str
    gpt.generate(["ROMEO:", "JULIET:"], max_new_tokens=50, top_k=20)     # a list of str
    for piece in gpt.stream("ROMEO:", max_new_tokens=100):                # text as it is produced
        print(piece, end="")
    gpt.sample(2, seed=0, prompt="ROMEO:")                                # prompt + continuation
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_float, check_int, check_seed, check_work
from zoo.models import contract
from zoo.models.base import GenerativeModel
from zoo.models.contract import PROGRESS, Option, progress_bar

# -- building blocks ---------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Llama's LlamaRMSNorm)."""

    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and _FUSED_RMS_NORM and x.is_cpu and x.dtype == self.weight.dtype:
            return _RMSNormFunction.apply(x, self.weight, self.eps)
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


#: temperatures below this decode greedily: the token ratios at 1e-4 are exp(-1e4 x logit gap), greedy in effect,
#: and 1/temperature (folded into the head) would overflow float32 near 1e-38
GREEDY_BELOW = 1e-4
#: the most characters one ``log_prob`` call scores (all of tinyshakespeare fits): a cap on its time
MAX_SCORED_CHARS = 2 ** 21

#: torch's one-kernel RMSNorm forward (it returns rstd too), which ``_RMSNormFunction`` needs (recent torch only)
_FUSED_RMS_NORM = hasattr(torch.ops.aten, "_fused_rms_norm")


class _RMSNormFunction(torch.autograd.Function):
    """RMSNorm with a backward made of LayerNorm's fused backward kernel, on CPU: there torch has no fused
    RMSNorm backward and differentiates ``rms_norm`` op by op (about ten passes over the activations),
    which made it the largest part of the training step that GPT-2's block does not have. With a zero
    mean, LayerNorm's input gradient is RMSNorm's minus rstd * mean(g * w), added back here; its weight
    gradient is RMSNorm's as it is. Same gradients (to rounding), a 2-7% faster training step on 2 cores."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        y, rstd = torch.ops.aten._fused_rms_norm(x, [x.shape[-1]], weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x, weight, rstd = ctx.saved_tensors
        C = x.shape[-1]
        grad_x, grad_weight, _ = torch.ops.aten.native_layer_norm_backward(
            grad, x, [C], torch.zeros_like(rstd), rstd, weight, None, [True, True, False])
        row_sums = torch.mv(grad.reshape(-1, C), weight).view(rstd.shape)  # sum over C of grad * weight
        return torch.addcmul(grad_x, rstd, row_sums, value=1.0 / C), grad_weight, None


def rope_table(n_positions: int, head_dim: int, theta: float) -> Tensor:
    """(n_positions, head_dim / 2, 2): cos and sin of each position's angle for each rotated pair (float32;
    a real table, so that ``Module.to(dtype)`` converts it; ``rotations`` views it as complex)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(n_positions, dtype=torch.float64), inv_freq)  # (n_positions, head_dim / 2)
    return torch.stack([angles.cos(), angles.sin()], -1).float()


def rotations(table: Tensor) -> Tensor:
    """e^(i angle) (..., head_dim / 2) of `table` rows (..., head_dim / 2, 2), complex64 (complex128 for float64)."""
    return torch.view_as_complex(table.to(torch.promote_types(table.dtype, torch.float32)).contiguous())


def pair_order(n_head: int, head_dim: int) -> Tensor:
    """The (n_head * head_dim,) order of q's and k's features that puts each pair RoPE rotates together,
    (i, i + head_dim / 2) in transformers' "rotate half" layout, side by side: [0, D/2, 1, D/2 + 1, ...] per head."""
    pairs = torch.arange(head_dim).view(2, head_dim // 2).t().reshape(-1)
    return (torch.arange(n_head)[:, None] * head_dim + pairs).reshape(-1)


def rotate(x: Tensor, rotation: Tensor) -> Tensor:
    """RoPE on x (..., D) whose features are in ``pair_order``: the D/2 pairs as complex numbers, times
    `rotation` (broadcastable to (..., D/2)). One complex multiply each way, computed in float32 at least."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    return torch.view_as_real(torch.view_as_complex(wide.unflatten(-1, (-1, 2))) * rotation).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions; fills a KV cache when asked."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.register_buffer("pair_order", pair_order(n_head, n_embd // n_head), persistent=False)
        self.q_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.k_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.v_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.o_proj = nn.Linear(n_embd, n_embd, bias=False)

    def forward(self, x: Tensor, rotation: Tensor, cache: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None) -> Tensor:
        """`rotation`: RoPE's e^(i angle) of each position, broadcastable to (B, T, H, D/2); `cache`: (keys,
        values) buffers (B, H, n_positions, D) to fill with this window's (generation's prefill; keys in
        ``pair_order``); `mask`: (B, 1, T, T) booleans replacing the causal mask (left padding).

        q's and k's weight rows are taken in ``pair_order`` (a gather of the small weight, not of the
        activations), so RoPE is one complex multiply; attention does not change, as q and k share the order."""
        B, T, C = x.shape
        H = self.n_head
        q, k = (F.linear(x, proj.weight[self.pair_order]).view(B, T, H, C // H) for proj in (self.q_proj, self.k_proj))
        q, k = rotate(q, rotation).transpose(1, 2), rotate(k, rotation).transpose(1, 2)  # (B, H, T, D) each
        v = self.v_proj(x).view(B, T, H, C // H).transpose(1, 2)
        if cache is not None:
            cache[0][:, :, :T] = k
            cache[1][:, :, :T] = v
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=p)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, n_embd: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=False)
        self.up_proj = nn.Linear(n_embd, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, n_embd: int, n_head: int, hidden: int, dropout: float, eps: float):
        super().__init__()
        self.input_layernorm = RMSNorm(n_embd, eps)
        self.self_attn = Attention(n_embd, n_head, dropout)
        self.post_attention_layernorm = RMSNorm(n_embd, eps)
        self.mlp = MLP(n_embd, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, rotation: Tensor, cache: tuple[Tensor, Tensor] | None = None,
                mask: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.self_attn(self.input_layernorm(x), rotation, cache, mask))
        return x + self.drop(self.mlp(self.post_attention_layernorm(x)))


def swiglu_hidden(n_embd: int) -> int:
    """The SwiGLU width with the parameters of a 4 x n_embd GELU MLP: 8/3 n_embd, rounded up to a multiple of 8."""
    return 8 * math.ceil(8 * n_embd / 3 / 8)


# -- the model ---------------------------------------------------------------------------------


class GPT(GenerativeModel):
    """Decoder-only transformer (Llama layout) with its tokenizer; generates text.

    Args:
        vocab_size: tokens in the vocabulary. ``None`` in a recipe: the system takes it from the
            datamodule's tokenizer before training (never typed twice); a GPT with ``None`` has no weights yet.
        n_positions: the context window (block size), in tokens.
        n_embd, n_layer, n_head: width, depth and attention heads (``n_embd % n_head == 0``, even head size).
        intermediate_size: the SwiGLU MLP's width; ``None``: 8/3 n_embd rounded up to a multiple of 8
            (the parameters of GPT-2's 4 x n_embd MLP).
        dropout: on the embeddings, the attention weights and both residual branches while training.
        rms_norm_eps: RMSNorm's epsilon.
        rope_theta: the rotary embedding's base.
        temperature: the sampling temperature ``sample``, ``generate`` and ``stream`` use when given none (and
            transformers' generation_config.json): a trained model's own best setting, e.g. 0.9 for a molecule
            generator whose card measured it; 1 samples the learned distribution itself.
    """

    family = "gpt"
    #: the most tokens one generate/stream/sample call produces per text
    max_new_tokens_cap = 10_000
    outputs = "text"
    conditions = (Option("prompt", str, "", help="the text to continue; empty: start from a newline"),)
    sample_options = (
        Option("max_new_tokens", int, 200, low=1, high="max_new_tokens_cap", help="new tokens per text"),
        Option("temperature", float, None, low=0, help="0 (or below 1e-4) = greedy; default: the model's"),
        Option("top_k", int, None, low=1, help="keep the k likeliest tokens"),
        Option("top_p", float, None, low=0, high=1, open_low=True,
               help="nucleus: keep the likeliest tokens whose probability adds up to p"),
        PROGRESS,
    )

    def __init__(self, vocab_size: int | None = None, n_positions: int = 64, n_embd: int = 128, n_layer: int = 4,
                 n_head: int = 4, intermediate_size: int | None = None, dropout: float = 0.0,
                 rms_norm_eps: float = 1e-6, rope_theta: float = 10000.0, temperature: float = 1.0):
        intermediate_size = swiglu_hidden(n_embd) if intermediate_size is None else intermediate_size
        for name, value in [("n_positions", n_positions), ("n_embd", n_embd), ("n_layer", n_layer),
                            ("n_head", n_head), ("intermediate_size", intermediate_size)] + (
                [("vocab_size", vocab_size)] if vocab_size is not None else []):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_int("n_layer", n_layer, 1, 256)  # each layer is Python objects: a cap before any is built
        if n_embd % n_head or (n_embd // n_head) % 2:
            raise ValueError(f"n_embd ({n_embd}) must be n_head ({n_head}) times an even head size (rotary "
                             f"embeddings rotate pairs)")
        if not (check_float("dropout", dropout, 0, 1) < 1):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        check_float("rope_theta", rope_theta, 1, open_low=True)
        check_float("rms_norm_eps", rms_norm_eps, 0, 1, open_low=True)
        check_float("temperature", temperature, 0)
        super().__init__(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                         n_head=n_head, intermediate_size=intermediate_size, dropout=dropout,
                         rms_norm_eps=rms_norm_eps, rope_theta=rope_theta, temperature=float(temperature))
        self.temperature = float(temperature)
        self.vocab_size, self.n_positions, self.n_embd, self.n_layer, self.n_head = (
            vocab_size, n_positions, n_embd, n_layer, n_head)
        self.tokenizer = None  # a tokenizers.Tokenizer; saved as tokenizer.json
        if vocab_size is None:
            return
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(vocab_size, n_embd),
            drop=nn.Dropout(dropout),
            layers=nn.ModuleList(Block(n_embd, n_head, intermediate_size, dropout, rms_norm_eps)
                                 for _ in range(n_layer)),
            norm=RMSNorm(n_embd, rms_norm_eps),
        ))
        # (n_positions, head size / 2, 2): derived, not saved
        self.register_buffer("rope", rope_table(n_positions, n_embd // n_head, rope_theta), persistent=False)
        for name, p in self.named_parameters():  # GPT-2's init: N(0, 0.02), residual projections / sqrt(2 n_layer)
            if p.dim() == 2:
                scaled = name.endswith(("o_proj.weight", "down_proj.weight"))
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer) if scaled else 0.02)

    data_sizes = ("vocab_size",)

    @classmethod
    def data_args(cls, spec, init_args):
        if spec.vocab_size is None:
            raise ValueError(f"a GPT reads token ids; the data {spec.name!r} has no tokenizer (vocab_size)")
        window = init_args.get("n_positions", 64)
        if spec.max_length is not None and spec.max_length - 1 > window:
            raise ValueError(f"the data {spec.name!r} has sequences of up to {spec.max_length} tokens: n_positions "
                             f"must be at least {spec.max_length - 1}, got {window}")
        return {"vocab_size": spec.vocab_size}

    def set_tokenizer(self, tokenizer) -> None:
        """Attach the tokenizer that maps text to this model's ids (sizes must agree)."""
        if self.vocab_size is not None and tokenizer.get_vocab_size() != self.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} tokens but the model's vocab_size is "
                             f"{self.vocab_size}")
        self.tokenizer = tokenizer

    # -- the network -------------------------------------------------------------------------

    def forward(self, idx: Tensor) -> Tensor:
        """Logits (B, T, vocab) of the next token at every position of `idx` (B, T), T <= n_positions."""
        if self.vocab_size is None:
            self._check_built()
        T = idx.shape[1]
        if T > self.n_positions:
            raise ValueError(f"idx has {T} tokens, more than the context window n_positions={self.n_positions}")
        m = self.model
        x = m.drop(m.embed_tokens(idx))  # (B, T, C)
        rotation = rotations(self.rope[:T, None])  # (T, 1, D/2)
        for block in m.layers:
            x = block(x, rotation)
        return self._head(x)

    def _head(self, x: Tensor) -> Tensor:
        """Logits (..., vocab) of hidden states (..., C): the final norm, then the head tied to the embedding."""
        return F.linear(self.model.norm(x), self.model.embed_tokens.weight)

    def loss(self, idx: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy (nats per token) of `targets` (B, T) given `idx` (B, T)."""
        logits = self(idx)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    # -- text in, text out -------------------------------------------------------------------

    def _tok(self):
        if self.tokenizer is None:
            raise ValueError("this GPT has no tokenizer; attach one with set_tokenizer or load a saved model")
        return self.tokenizer

    @property
    def end_id(self) -> int | None:
        """The token that ends a sequence (``<eos>`` of a SMILES tokenizer), None for text that runs on."""
        from zoo.tokenizers import end_id

        return end_id(self._tok())

    def encode(self, text: str, name: str = "prompt") -> list[int]:
        """Token ids of `text` as a prompt: ``<bos>`` first for sequences that end; for text, the empty text is
        the start token (a newline)."""
        from zoo.tokenizers import start_id

        if not isinstance(text, str):
            raise ValueError(f"{name} must be a str, got {type(text).__name__}")
        start = start_id(self._tok())
        if self.end_id is not None:
            ids = [start, *self._tok().encode(text).ids] if text else [start]
        else:
            ids = self._tok().encode(text).ids if text else [start]
        if len(ids) > self.n_positions:
            raise ValueError(f"{name} is {len(ids)} tokens long, more than the context window "
                             f"n_positions={self.n_positions}; shorten it")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok().decode(list(ids), skip_special_tokens=False)

    @torch.no_grad()
    def log_prob(self, texts: str | Sequence[str], *, prompt: str = "") -> Tensor:
        """log p(text | prompt) in nats, (N,), under the distribution ``sample(prompt=...)`` draws from: the sum
        over the text's tokens, each given the ones before it (the first given the prompt, or the start token
        when the prompt is empty; prompt and text are tokenized apart). A text longer than the window is
        scored in windows that slide by half a window. For sequences that end (molecules) the text's ``<eos>``
        is scored too: log p(SMILES) is that of the whole molecule."""
        texts = [texts] if isinstance(texts, str) else list(texts) if isinstance(texts, (list, tuple)) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise ValueError(f"texts must be a non-empty str or a non-empty list of non-empty str, got {texts!r:.80}")
        check_work("texts", sum(map(len, texts)), MAX_SCORED_CHARS, "characters to score in one call")
        context, end = self.encode(prompt), ([self.end_id] if self.end_id is not None else [])
        out = []
        for text in texts:
            ids = torch.tensor([*context, *self._tok().encode(text).ids, *end], device=self.device)
            out.append(self._sequence_log_prob(ids, first=len(context)))
        return torch.stack(out)

    def _sequence_log_prob(self, ids: Tensor, first: int = 1) -> Tensor:
        """The sum of log p(ids[t] | ids[:t]) over t >= first, with at most a window of context each."""
        total, scored, stride = ids.new_zeros((), dtype=torch.float), first, max(1, self.n_positions // 2)
        while scored < len(ids):  # score tokens [scored, end) with up to a window of context before them
            # the first window holds the whole prompt (at most n_positions tokens) and as much text as fits
            end = min(len(ids), max(self.n_positions + 1, scored + stride) if scored == first else scored + stride)
            start = max(0, end - 1 - self.n_positions)
            window = ids[start:end]  # the last token is only a target
            logp = self(window[None, :-1]).log_softmax(-1)[0]  # (L, vocab)
            targets = window[1:]
            lp = logp.gather(1, targets[:, None])[:, 0]  # (L,)
            total = total + lp[scored - start - 1:].sum()
            scored = end
        return total

    # -- generation --------------------------------------------------------------------------

    def _check_generation(self, max_new_tokens: int, temperature: float | None, top_k: int | None,
                          top_p: float | None) -> float:
        """The generation settings against the declared sampling options (their types and ranges); returns the
        temperature to decode with (None: the model's): below ``GREEDY_BELOW`` it is 0 (greedy), where
        1/temperature would overflow."""
        values = contract.check_options(self, "generate", dict(max_new_tokens=max_new_tokens, temperature=temperature,
                                                               top_k=top_k, top_p=top_p), self.sample_options)
        temperature = self.temperature if values["temperature"] is None else values["temperature"]
        return 0.0 if temperature < GREEDY_BELOW else temperature

    def _prompt_batch(self, prompts: str | Sequence[str]) -> tuple[list[list[int]], bool]:
        single = isinstance(prompts, str)
        prompts = [prompts] if single else list(prompts) if isinstance(prompts, (list, tuple)) else prompts
        if not isinstance(prompts, list) or not prompts:
            raise ValueError(f"prompts must be a str or a non-empty list of str, got {prompts!r}")
        if len(prompts) > self.max_samples:
            raise ValueError(f"prompts must hold at most {self.max_samples} texts, got {len(prompts)}")
        return [self.encode(p, "prompts" if not single else "prompt") for p in prompts], single

    @torch.inference_mode()
    def generate_ids(self, prompts: list[list[int]], max_new_tokens: int, temperature: float | None = None,
                     top_k: int | None = None, top_p: float | None = None,
                     seed: int | None = None) -> Iterator[Tensor]:
        """Yield the next token of every prompt, (B,), `max_new_tokens` times. The core decode loop.

        1. prefill: the (left-padded) prompts through the network once, filling the KV cache;
        2. each step: pick a token from the last logits, feed it at the next position (``_Decoder.step``);
        3. when the window is full, rebuild the cache from the last half window (see the module docstring).
        """
        temperature = self._check_generation(max_new_tokens, temperature, top_k, top_p)
        gen = self._generator(seed)
        B, W, dev = len(prompts), self.n_positions, self.device
        lengths = [len(p) for p in prompts]
        T = max(lengths)
        idx = torch.tensor([[0] * (T - n) + p for p, n in zip(prompts, lengths)], device=dev)  # (B, T)
        decoder = _Decoder(self, B, temperature)
        kvs = decoder.caches
        pad = torch.tensor([T - n for n in lengths], device=dev) if min(lengths) < T else None
        slides = T + max_new_tokens > W + 1  # keep the window's tokens only if it will fill up
        if slides:
            window = torch.zeros(B, W, dtype=idx.dtype, device=dev)  # (B, W) the tokens in the cache
            window[:, :T] = idx
        noise = _GumbelNoise(B, self.vocab_size, gen, dev, decoder.head.dtype) if temperature > 0 else None
        banned = self._never_generated()
        logits, pos = self._prefill(idx, kvs, pad, temperature)
        for step in range(max_new_tokens):
            if banned is not None:
                logits.index_fill_(1, banned, -math.inf)
            token = pick(logits, top_k, top_p, noise)  # (B,)
            yield token
            if step + 1 == max_new_tokens:
                return
            if pos == W:  # window full: rebuild the cache from the last half window (+ this token)
                keep = max(1, W // 2)
                kept = torch.cat([window[:, W + 1 - keep:], token[:, None]], 1)  # (B, keep)
                window[:, :keep] = kept
                if pad is not None:  # rows whose prompt padding is still inside the kept tokens
                    pad = (pad - (W + 1 - keep)).clamp_(min=0)
                    pad = pad if bool(pad.any()) else None
                logits, pos = self._prefill(kept, kvs, pad, temperature)
                continue
            if slides:
                window.select(1, pos).copy_(token)
            logits = decoder.step(token, pos, pad)
            pos += 1

    def _never_generated(self) -> Tensor | None:
        """The ids generation never picks: ``<pad>`` and ``<bos>`` of sequences that end (structure, not text)."""
        from zoo.tokenizers import BOS, PAD

        if self.end_id is None:
            return None
        ids = [i for i in (self._tok().token_to_id(PAD), self._tok().token_to_id(BOS)) if i is not None]
        return torch.tensor(ids, device=self.device)

    def _prefill(self, idx: Tensor, kvs: list[tuple[Tensor, Tensor]], pad: Tensor | None, temperature: float) -> tuple[Tensor, int]:
        """Run the prompt window through the blocks, filling the caches; logits of its last token, / temperature."""
        m, T = self.model, idx.shape[1]
        rotation = rotations(self.rope[:T, None])  # (T, 1, D/2)
        mask = None
        if pad is not None:  # each row's first real token is position 0; padded keys are masked out
            positions = (torch.arange(T, device=idx.device)[None, :] - pad[:, None]).clamp(min=0)  # (B, T)
            rotation = rotations(self.rope[positions][:, :, None])  # (B, T, 1, D/2)
            keys = torch.arange(T, device=idx.device)
            mask = (keys[None, :] <= keys[:, None])[None, None] & (keys[None, :] >= pad[:, None])[:, None, None]
            mask = mask | torch.eye(T, dtype=torch.bool, device=idx.device)  # (B, 1, T, T); pads see themselves
        x = m.embed_tokens(idx)  # (B, T, C)
        for block, kv in zip(m.layers, kvs):
            x = block(x, rotation, kv, mask)
        logits = self._head(x[:, -1])  # (B, vocab)
        return (logits / temperature if temperature not in (0, 1) else logits), T

    def generate(self, prompts: str | Sequence[str], max_new_tokens: int = 200, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, stop: str | Sequence[str] | None = None,
                 seed: int | None = None, progress: bool | None = False) -> str | list[str]:
        """The continuation of each prompt (without the prompt): a str for a str, a list for a list.

        `temperature`: None is the model's (``temperature``), 0 greedy; `top_k` keeps the k likeliest tokens,
        `top_p` the smallest set whose probability reaches p (nucleus). `stop`: a string (or several); each text ends before the first
        occurrence. An empty prompt starts from the start token (a newline). Same seed, same text.
        `progress`: a bar over the new tokens (None: only on a terminal).
        """
        ids, single = self._prompt_batch(prompts)
        stops = _check_stop(stop)
        rows = self.rows_per_call()
        parts = range(0, len(ids), rows)  # one part unless the KV caches of all prompts would pass the budget
        seeds = [seed] * len(parts) if len(parts) == 1 or seed is None else torch.randint(  # each part from `seed`
            2 ** 62, (len(parts),), generator=torch.Generator().manual_seed(check_seed(seed))).tolist()
        texts = []
        for start, part_seed in zip(parts, seeds):
            part = ids[start:start + rows]
            if not stops:
                texts += [self.decode(row) for row in self._generated(part, max_new_tokens, temperature, top_k, top_p,
                                                                      part_seed, progress)]
                continue
            done = [""] * len(part)
            for pieces in self._text_pieces(part, max_new_tokens, temperature, top_k, top_p, part_seed, stops):
                done = [t + p for t, p in zip(done, pieces)]
            texts += done
        return texts[0] if single else texts

    #: the memory one generate call's KV caches may take (float32): more prompts are decoded in parts
    KV_CACHE_BUDGET = 2 ** 30

    def rows_per_call(self) -> int:
        """How many prompts one decoding pass takes: its KV caches, n_layer x n_positions x (keys, values) x
        n_embd floats per row, within ``KV_CACHE_BUDGET`` (2,730 rows for gpt-moses, 11.8 GB for 30,000 at once)."""
        per_row = self.n_layer * self.n_positions * 2 * self.n_embd * 4
        return max(1, self.KV_CACHE_BUDGET // per_row)

    def stream(self, prompt: str, max_new_tokens: int = 200, temperature: float | None = None,
               top_k: int | None = None,
               top_p: float | None = None, stop: str | Sequence[str] | None = None,
               seed: int | None = None) -> Iterator[str]:
        """Like ``generate`` for one prompt, yielding the text piece by piece as tokens are produced
        (a piece may be empty while a multi-byte character is incomplete). ``"".join`` = ``generate``."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
        ids, _ = self._prompt_batch(prompt)
        for pieces in self._text_pieces(ids, max_new_tokens, temperature, top_k, top_p, seed, _check_stop(stop)):
            if pieces[0]:
                yield pieces[0]

    def _generated(self, ids, max_new_tokens, temperature, top_k, top_p, seed, progress=False) -> list[list[int]]:
        """The new tokens of each prompt; for sequences that end, each cut before its ``<eos>``, and decoding
        stops once every sequence has ended."""
        end, T = self.end_id, len(ids[0])
        if end is not None and all(len(p) == T for p in ids):  # within the window: see "Sequences that end"
            return self._ended(ids, min(max_new_tokens, self.n_positions + 1 - T), temperature, top_k, top_p, seed,
                               progress=progress)
        tokens, ended = [], torch.zeros(len(ids), dtype=torch.bool, device=self.device)
        steps = self.generate_ids(ids, max_new_tokens, temperature, top_k, top_p, seed)
        for token in progress_bar(steps, progress, "sampling tokens", total=max_new_tokens):
            tokens.append(token)
            if end is not None and bool((ended := ended | (token == end)).all()):
                break
        rows = torch.stack(tokens, 1).tolist()
        return [row[:row.index(end)] if end in row else row for row in rows] if end is not None else rows

    #: ``_ended`` drops the rows that have ended once they are this share of the rows still decoding
    drop_share = 1 / 8
    #: and decodes in bfloat16 from this many rows, on a CPU that has bfloat16 matrix instructions
    bfloat16_rows = 64

    @torch.inference_mode()
    def _ended(self, ids: list[list[int]], max_new_tokens: int, temperature: float, top_k: int | None,
               top_p: float | None, seed: int | None, drop_share: float | None = None,
               bfloat16: bool | None = None, progress: bool | None = False) -> list[list[int]]:
        """``_generated`` for sequences that end, from prompts of one length that fit the window with their
        continuations (no padding, no slide): ``generate_ids``' loop, but rows that have ended leave the batch.

        1. prefill, then each step: pick a token per decoding row and record it in its prompt's row;
        2. once the rows that have ended are `drop_share` of those decoding (None: ``GPT.drop_share``; inf:
           never), ``_Decoder.keep`` copies the others' caches and decoding goes on with them alone.

        A batch then costs about its mean length instead of its longest: molecules of MOSES average ~36
        tokens, the longest of 1,000 ~60. Each row takes its prompt's row of the whole batch's Gumbel noise, so
        the tokens are those of decoding every row to the end (to the rounding of other batch sizes): dropping
        rows changes the speed, never the samples. `bfloat16` (None: ``bfloat16_rows`` or more rows and
        ``_native_bfloat16``) decodes with ``_BFloat16Decoder``, which does change them (slightly).

        Sampling 1,000 molecules of a MOSES GPT (4 x 192) on a shared 2-core Xeon with AMX, one thread (best of
        3): 142 molecules/s decoding every row in float32, 193 dropping rows, 380 decoding every row in
        bfloat16, 474 doing both (``drop_share`` 1/8; 1/4 and 1/2 measured within the noise of it).
        """
        temperature = self._check_generation(max_new_tokens, temperature, top_k, top_p)
        gen = self._generator(seed)
        B, dev, end = len(ids), self.device, self.end_id
        drop_share = self.drop_share if drop_share is None else drop_share
        if bfloat16 is None:
            bfloat16 = (B >= self.bfloat16_rows and _native_bfloat16(torch.device(dev))
                        and self.model.embed_tokens.weight.dtype in (torch.float32, torch.bfloat16))
        decoder = (_BFloat16Decoder if bfloat16 else _Decoder)(self, B, temperature)
        noise = _GumbelNoise(B, self.vocab_size, gen, dev, decoder.head.dtype) if temperature > 0 else None
        banned = self._never_generated()
        logits, pos = self._prefill(torch.tensor(ids, device=dev), decoder.caches, None, temperature)
        out = torch.full((B, max_new_tokens), end, device=dev)  # (B, steps): rows that left read as ended
        rows, ended = None, torch.zeros(B, dtype=torch.bool, device=dev)  # prompt of each decoding row (None: all)
        for step in progress_bar(range(max_new_tokens), progress, "sampling tokens"):
            logits.index_fill_(1, banned, -math.inf)
            token = pick(logits, top_k, top_p, noise, rows)  # (B',)
            if rows is None:
                out[:, step] = token
            else:
                out[:, step].index_copy_(0, rows, token)
            n_ended = int((ended := ended | (token == end)).sum())
            if n_ended == len(ended) or step + 1 == max_new_tokens:
                break
            if n_ended >= drop_share * len(ended):
                decoding = (~ended).nonzero()[:, 0]
                decoder.keep(decoding, pos)
                rows = decoding if rows is None else rows[decoding]
                token, ended = token[decoding], ended[decoding]
            logits = decoder.step(token, pos, None)
            pos += 1
        return [row[:row.index(end)] if end in row else row for row in out[:, :step + 1].tolist()]

    def _text_pieces(self, ids, max_new_tokens, temperature, top_k, top_p, seed, stops) -> Iterator[list[str]]:
        """New text per prompt at each step, cut at stop strings; ends early when every text has stopped.

        Decoding the whole continuation each step and emitting what is new is exact for byte-level BPE,
        where a character may span tokens; text that may be the start of a stop string is held back
        until it is not (or generation ends)."""
        generated = [[] for _ in ids]
        emitted = [""] * len(ids)
        done = [False] * len(ids)
        end = self.end_id
        for token in self.generate_ids(ids, max_new_tokens, temperature, top_k, top_p, seed):
            pieces = []
            for i, t in enumerate(token.tolist()):
                if done[i] or t == end:  # a sequence that ends: its text so far is all of it
                    if not done[i]:
                        done[i] = True
                        pieces.append(self.decode(generated[i])[len(emitted[i]):])
                        generated[i] = None
                    else:
                        pieces.append("")
                    continue
                generated[i].append(t)
                text = self.decode(generated[i])
                cut = min((j for j in (text.find(s, max(0, len(emitted[i]) - len(s))) for s in stops) if j >= 0),
                          default=-1)
                if cut >= 0:
                    safe, done[i] = cut, True
                    generated[i] = None  # finished: the text is text[:cut]
                else:
                    safe = len(text) - _held_back(text, stops)
                    if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next byte
                        safe = min(safe, len(text) - 1)
                pieces.append(text[len(emitted[i]):safe])
                emitted[i] = text[:safe]
            yield pieces
            if all(done):
                return
        yield ["" if done[i] else self.decode(generated[i])[len(emitted[i]):] for i in range(len(ids))]

    @torch.no_grad()
    def _sample(self, n: int, *, seed: int | None, prompt: str, max_new_tokens: int, temperature: float,
                top_k: int | None, top_p: float | None, progress: bool | None) -> list[str]:
        """`n` texts, each the prompt followed by its sampled continuation (`genzoo sample --prompt`)."""
        texts = self.generate([prompt] * n, max_new_tokens, temperature, top_k, top_p, seed=seed, progress=progress)
        return [prompt + t for t in texts]

    # -- the Hub format: also a transformers Llama checkpoint -----------------------------------

    def derived_config(self) -> dict[str, Any]:
        """LlamaConfig's fields (transformers keeps genzoo's own keys as extra attributes)."""
        from zoo.tokenizers import start_id

        start = start_id(self.tokenizer) if self.tokenizer is not None else None
        a = self.init_args
        return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": self.vocab_size,
                "hidden_size": self.n_embd, "intermediate_size": a["intermediate_size"],
                "num_hidden_layers": self.n_layer, "num_attention_heads": self.n_head,
                "num_key_value_heads": self.n_head, "head_dim": self.n_embd // self.n_head, "hidden_act": "silu",
                "max_position_embeddings": self.n_positions, "rms_norm_eps": a["rms_norm_eps"],
                "rope_parameters": {"rope_type": "default", "rope_theta": a["rope_theta"]},
                "attention_bias": False, "mlp_bias": False, "attention_dropout": a["dropout"],
                "initializer_range": 0.02, "tie_word_embeddings": True,
                "bos_token_id": start, "eos_token_id": None, "pad_token_id": start, "dtype": "float32"}

    def extra_files(self) -> dict[str, bytes]:
        import json

        from zoo.tokenizers import tokenizer_files

        if self.tokenizer is None:
            return {}
        start = self.derived_config()["bos_token_id"]
        generation = {"do_sample": True, "temperature": self.temperature, "top_k": 0, "max_length": self.n_positions,
                      "bos_token_id": start, "pad_token_id": start, "eos_token_id": None}
        return {**tokenizer_files(self.tokenizer, self.n_positions),
                "generation_config.json": (json.dumps(generation, indent=2) + "\n").encode()}

    def load_extra_files(self, files: dict[str, bytes]) -> None:
        from tokenizers import Tokenizer

        if "tokenizer.json" in files:
            self.set_tokenizer(Tokenizer.from_str(files["tokenizer.json"].decode("utf-8")))


class _Decoder:
    """The one-token decode step of one generate call, written for few tensor ops and few weight bytes per
    token: the matmuls here are tiny, so each op's microseconds of overhead and the weights' trip through
    the cache set the speed, not FLOPs. Built once per call:

    - Each RMSNorm's weight is folded into the matrix that reads its output (norm(x) * w @ W = norm(x) @ wW),
      the temperature into the head; matrices are stored (in, out), as ``mm`` reads them.
    - RoPE is a complex multiplication, as in the blocks: q's and k's columns are in ``pair_order``, and,
      viewed as D/2 complex numbers, each head rotates in one in-place mul.
    - RMSNorm without weight is the LayerNorm of [x, -x] (mean 0, variance mean(x^2), the same eps), and
      ``F.layer_norm`` is one fused op where ``F.rms_norm`` is several: so the residual stream is a (B, 2, C)
      buffer holding x and -x, refreshed by a neg after each residual update.
    - Each layer's KV cache is one (B, n_positions, 2, H, D) tensor, a row's keys and values position after
      position: a step writes one contiguous (B, 2, H, D) slice, ``keep`` copies each kept row's first
      positions in one piece, and attention reads (B, H, L, D) views of it (CPU's flash attention is as fast
      on these as on a (2, B, H, W, D) cache in float32, ~25% faster in bfloat16: 1,000 rows, 35 positions).
    - Every intermediate has a buffer allocated here, and the views a step reads are taken here, once.

    It computes in float32 (or float64): complex arithmetic has no bfloat16 (``_BFloat16Decoder`` does).
    """

    def __init__(self, gpt: GPT, batch: int, temperature: float):
        m, embed = gpt.model, gpt.model.embed_tokens.weight
        C, H, W = gpt.n_embd, gpt.n_head, gpt.n_positions
        self.sizes = (C, H, m.layers[0].mlp.gate_proj.out_features, gpt.init_args["rms_norm_eps"])
        self.dtype = torch.promote_types(embed.dtype, torch.float32)
        scale = 1.0 / temperature if temperature not in (0, 1) else 1.0
        self.head = (embed * (m.norm.weight * scale)).t().to(self.dtype).contiguous()  # (C, vocab)
        self.matrices = self._matrices(gpt)  # per layer, in the order a step reads them
        cache_dtype = self.matrices[0][0].dtype
        self._allocate([embed.new_empty(batch, W, 2, H, C // H, dtype=cache_dtype) for _ in m.layers])

    def _matrices(self, gpt: GPT) -> list[tuple[Tensor, ...]]:
        """Per layer (qkv, o, gate_up, down) (in, out); also the embedding and the rotations a step reads."""
        layers, embed = [], gpt.model.embed_tokens.weight
        for b in gpt.model.layers:
            a, mlp = b.self_attn, b.mlp
            q, k = a.q_proj.weight[a.pair_order], a.k_proj.weight[a.pair_order]
            qkv = torch.cat([q, k, a.v_proj.weight]) * b.input_layernorm.weight
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * b.post_attention_layernorm.weight
            layers.append(tuple(w.t().to(self.dtype).contiguous()
                                for w in (qkv, a.o_proj.weight, gate_up, mlp.down_proj.weight)))
        self.embed = torch.cat([embed, -embed], 1).to(self.dtype)  # (vocab, 2C): x and -x
        self.rotation = rotations(gpt.rope.to(self.dtype))  # (W, D/2): e^(i angle) of each pair
        return layers

    def _allocate(self, kv_caches: list[Tensor]) -> None:
        """Decode with `kv_caches` (per layer (B, W, 2, H, D)): the step's buffers for their B rows."""
        C, H, hidden, eps = self.sizes
        self.kv_caches, self.shape = kv_caches, (kv_caches[0].shape[0], H, C // H)
        #: per layer (keys, values) (B, H, W, D) views, as the blocks' forward fills them (prefill)
        self.caches = [(c[:, :, 0].transpose(1, 2), c[:, :, 1].transpose(1, 2)) for c in kv_caches]
        #: per layer: its matrices, its cache, and that cache's (keys, values)
        self.layers = [(*w, c, *kv) for w, c, kv in zip(self.matrices, kv_caches, self.caches)]
        self.buffers = self._buffers(*self.shape, C, hidden, eps)

    def _buffers(self, B: int, H: int, D: int, C: int, hidden: int, eps: float) -> tuple:
        """The buffers of a step, and the views of them that it reads."""
        embed, dtype = self.embed, self.dtype
        stream = embed.new_empty(B, 2, C, dtype=dtype)  # x and -x
        out = embed.new_empty(B, 3 * C, dtype=dtype)  # q, k, v
        gate_up = embed.new_empty(B, 2 * hidden, dtype=dtype)
        return (
            stream, stream.view(B, 2 * C), stream[:, 0], stream[:, 1], (2, C), eps,
            out, torch.view_as_complex(out[:, :2 * C].view(B, 2, H, 1, D // 2, 2)),  # q and k as complex pairs
            out[:, :C].view(B, H, 1, D), out[:, C:].view(B, 2, H, D),  # q; k and v
            gate_up, gate_up[:, :hidden], gate_up[:, hidden:], (B, C))

    def keep(self, rows: Tensor, length: int) -> None:
        """Decode only `rows` (B',) of the batch from now on, their caches' first `length` positions kept."""
        kept = []
        for cache in self.kv_caches:
            B, per_row = cache.shape[0], length * cache[0, 0].numel()  # a row's first positions: contiguous
            new = cache.new_empty(len(rows), *cache.shape[1:])
            torch.index_select(cache.view(B, -1)[:, :per_row], 0, rows, out=new.view(len(rows), -1)[:, :per_row])
            kept.append(new)
        self._allocate(kept)

    def step(self, token: Tensor, pos: int, pad: Tensor | None) -> Tensor:
        """Logits (B, vocab) after feeding `token` (B,) at position `pos`. Locals and positional arguments
        only: at ~100 ops per token, Python's attribute lookups and keyword parsing are worth avoiding."""
        stream, flat, x, neg, norm_shape, eps, out, qk, q, kv, gate_up, gate, up, y_shape = self.buffers
        torch.index_select(self.embed, 0, token, out=flat)
        if pad is None:
            rotation, mask = self.rotation[pos], None  # (D/2,)
        else:
            B, _, D = self.shape
            rotation = self.rotation[(pos - pad).clamp_(min=0)].view(B, 1, 1, 1, D // 2)
            mask = (torch.arange(pos + 1, device=token.device)[None, :] >= pad[:, None])[:, None, None]  # (B,1,1,L)
        layer_norm, mm, attention, silu, length = torch.layer_norm, torch.mm, F.scaled_dot_product_attention, F.silu, pos + 1
        for wqkv, wo, wgu, wd, cache, keys, values in self.layers:
            mm(layer_norm(stream, norm_shape, None, None, eps, False).select(1, 0), wqkv, out=out)
            qk.mul_(rotation)  # RoPE on q and k
            cache.select(1, pos).copy_(kv)
            y = attention(q, keys.narrow(2, 0, length), values.narrow(2, 0, length), mask)  # (B, H, 1, D)
            torch.neg(x.addmm_(y.view(y_shape), wo), out=neg)
            mm(layer_norm(stream, norm_shape, None, None, eps, False).select(1, 0), wgu, out=gate_up)
            torch.neg(x.addmm_(silu(gate, inplace=True).mul_(up), wd), out=neg)
        return mm(layer_norm(stream, norm_shape, None, None, eps, False).select(1, 0), self.head)  # (B, vocab)


class _BFloat16Decoder(_Decoder):
    """``_Decoder`` with bfloat16 matrices, KV caches and attention, for sampling many molecules on CPUs that
    multiply bfloat16 natively (``_native_bfloat16``); the residual stream, the head and so the logits stay
    float32. Measured on 2 cores of such a Xeon (AMX), one thread, 1,000 rows: a (1000, 192) x (192, 960)
    matmul takes 0.8 ms in bfloat16 and 4 ms in float32, flash attention over 35 positions ~4 ms and ~13 ms
    (it reads half the bytes); below ~50 rows oneDNN's fixed costs make it no faster than float32. It
    differs from ``_Decoder`` in:

    - RoPE in real arithmetic (there is no bfloat16 complex): the matrix gives q and k twice, the second copy
      with each rotated pair swapped, (a, b) -> (b, a); rotated = qk * (cos, cos) + swapped * (-sin, sin).
    - ``F.rms_norm`` of the float32 stream x (on 1,000 rows ~3x faster than the [x, -x] LayerNorm), cast to
      bfloat16 for the matmul; a residual update is an ``mm`` into a bfloat16 buffer and an ``add_`` into x.

    No padding. On the 3,000-step MOSES GPT (4 x 192), teacher-forcing 1,000 sampled molecules, its logits
    (-29..15) differ from the network's by 0.006 on average, at most 0.23 (float32's decoder: 2e-5); the
    likeliest token is the same at 99.9% of positions, KL(float32 || bfloat16) is 3e-5 nats per token, and the
    validity (RDKit) of 3 x 1,000 samples 75.3% against 75.6% in float32.
    """

    def _matrices(self, gpt: GPT) -> list[tuple[Tensor, ...]]:
        layers, embed, C, H = [], gpt.model.embed_tokens.weight, gpt.n_embd, gpt.n_head
        swap = torch.arange(2 * C).view(C, 2).flip(1).reshape(-1)  # each pair's two columns, swapped
        for b in gpt.model.layers:
            a, mlp = b.self_attn, b.mlp
            qk = torch.cat([a.q_proj.weight[a.pair_order], a.k_proj.weight[a.pair_order]])
            qkv = torch.cat([qk[swap], qk, a.v_proj.weight]) * b.input_layernorm.weight  # swapped q, k; q, k, v
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * b.post_attention_layernorm.weight
            layers.append(tuple(w.t().to(torch.bfloat16).contiguous()
                                for w in (qkv, a.o_proj.weight, gate_up, mlp.down_proj.weight)))
        self.embed = embed.to(self.dtype)  # (vocab, C)
        cos, sin = gpt.rope.to(self.dtype).unbind(-1)  # (W, D/2) each
        sin = torch.stack([-sin, sin], -1).flatten(1)  # (W, D): the sign of each pair's two terms
        self.rotation = (cos.repeat_interleave(2, 1).repeat(1, 2 * H).to(torch.bfloat16),  # (W, 2C) for q and k
                         sin.repeat(1, 2 * H).to(torch.bfloat16))
        return layers

    def _buffers(self, B: int, H: int, D: int, C: int, hidden: int, eps: float) -> tuple:
        bf16 = torch.bfloat16
        x = self.embed.new_empty(B, C)  # the residual stream, float32
        out = x.new_empty(B, 5 * C, dtype=bf16)  # swapped q and k; q, k, v
        gate_up = x.new_empty(B, 2 * hidden, dtype=bf16)
        return (
            x, (C,), eps, x.new_empty(B, C, dtype=bf16), out, out[:, :2 * C], out[:, 2 * C:4 * C],
            out[:, 2 * C:3 * C].view(B, H, 1, D), out[:, 3 * C:].view(B, 2, H, D),  # q; k and v
            x.new_empty(B, C, dtype=bf16), gate_up, gate_up[:, :hidden], gate_up[:, hidden:], (B, C))

    def step(self, token: Tensor, pos: int, pad: Tensor | None = None) -> Tensor:
        """``_Decoder.step`` in bfloat16; `pad` must be None."""
        x, norm_shape, eps, normed, out, swapped, qk, q, kv, y_out, gate_up, gate, up, y_shape = self.buffers
        torch.index_select(self.embed, 0, token, out=x)
        cos, sin = self.rotation[0][pos], self.rotation[1][pos]  # (2C,)
        rms_norm, mm, attention, silu, length = F.rms_norm, torch.mm, F.scaled_dot_product_attention, F.silu, pos + 1
        for wqkv, wo, wgu, wd, cache, keys, values in self.layers:
            mm(normed.copy_(rms_norm(x, norm_shape, None, eps)), wqkv, out=out)
            qk.mul_(cos).addcmul_(swapped, sin)  # RoPE on q and k
            cache.select(1, pos).copy_(kv)
            y = attention(q, keys.narrow(2, 0, length), values.narrow(2, 0, length))  # (B, H, 1, D)
            x.add_(mm(y.view(y_shape), wo, out=y_out))
            mm(normed.copy_(rms_norm(x, norm_shape, None, eps)), wgu, out=gate_up)
            x.add_(mm(silu(gate, inplace=True).mul_(up), wd, out=y_out))
        return mm(rms_norm(x, norm_shape, None, eps), self.head)  # (B, vocab), float32


def _native_bfloat16(device: torch.device) -> bool:
    """Whether this is a CPU with bfloat16 matrix instructions (AMX or AVX512-BF16), where oneDNN's bfloat16
    matmuls are several times faster than float32 ones. torch's checks are private: without them, False."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    checks = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(check is not None and check() for check in checks)


# -- sampling ----------------------------------------------------------------------------------


class _GumbelNoise:
    """Gumbel noise for sampling, drawn `chunk` steps at a time: argmax(logits + G) with G = -log(Exp(1))
    is a draw from softmax(logits) (the Gumbel-max trick), so a step samples with one add and one argmax.
    Drawn in fixed chunks, a seeded run's first n tokens do not depend on max_new_tokens."""

    def __init__(self, batch: int, vocab: int, gen: torch.Generator | None, device, dtype, chunk: int = 64):
        self.shape, self.gen, self.device, self.dtype = (chunk, batch, vocab), gen, device, dtype
        self.buffer, self.i = None, chunk

    def next(self, rows: Tensor | None = None) -> Tensor:
        """The next step's noise (B, vocab), or that of `rows` of the batch only (the rows still decoding)."""
        if self.i == self.shape[0]:
            self.buffer = torch.empty(self.shape, device=self.device, dtype=self.dtype)
            self.buffer.exponential_(generator=self.gen).log_().neg_()  # (chunk, B, vocab)
            self.i = 0
        self.i += 1
        return self.buffer[self.i - 1] if rows is None else self.buffer[self.i - 1].index_select(0, rows)


def pick(logits: Tensor, top_k: int | None, top_p: float | None, noise: _GumbelNoise | None,
         rows: Tensor | None = None) -> Tensor:
    """One token per row of `logits` (B, vocab), already divided by the temperature: greedy without
    noise (temperature 0), else sampled among the `top_k` likeliest / the `top_p` nucleus; `rows`: the
    rows of the noise's batch that `logits` are (None: all of them)."""
    if noise is None:
        return logits.argmax(-1)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_p, order = logits.softmax(-1).sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p  # the tokens after the nucleus is full
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    return (logits + noise.next(rows)).argmax(-1)


def _held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop string."""
    longest = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


def _check_stop(stop: str | Sequence[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop) if isinstance(stop, (list, tuple)) else None
    if stops is None or not all(isinstance(s, str) and s for s in stops):
        raise ValueError(f"stop must be None, a non-empty str or a list of non-empty str, got {stop!r}")
    return stops
