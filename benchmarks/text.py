"""Text family benchmarks, side by side in one process (so a busy machine slows both sides alike).

    python benchmarks/text.py train      # training step: nanoGPT's loop and model vs genzoo's Lightning recipe
    python benchmarks/text.py generate   # our generate vs transformers' generate, same weights, batch 1 and 16
    python benchmarks/text.py quality    # nanoGPT's model and ours, 2,000 iterations of nanoGPT's loop, val loss
    python benchmarks/text.py parts      # where the step's time goes: Llama's parts swapped for cheaper stand-ins

Each side runs in turn, repeated (``--repeats``), and the best run of each is reported with the
ratio. Wall-clock and CPU time are both given: on a shared machine CPU time is the steadier measure.
Thread count: ``--threads`` (default: torch's), the same for both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.data.text import TextDataModule
from zoo.systems.gpt import warmup_cosine

# -- nanoGPT's model (model.py, GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False)) -----


class NanoLayerNorm(nn.Module):
    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class NanoBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool):
        super().__init__()
        self.ln_1, self.ln_2 = NanoLayerNorm(n_embd, bias), NanoLayerNorm(n_embd, bias)
        self.attn = NanoAttention(n_embd, n_head, bias)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=bias), nn.GELU(), nn.Linear(4 * n_embd, n_embd, bias=bias))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, vocab_size: int = 65, block_size: int = 64, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, bias: bool = False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(NanoBlock(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = NanoLayerNorm(n_embd, bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


class GenzooGPT(nn.Module):
    """genzoo's GPT (the recipe's configuration) behind nanoGPT's interface, model(idx, targets) -> loss,
    so nanoGPT's loop trains it: separates the model's cost and quality from Lightning's."""

    def __init__(self, vocab_size: int = 66):
        super().__init__()
        from zoo.models.gpt import GPT

        self.net = GPT(vocab_size=vocab_size)

    def forward(self, idx, targets):
        return self.net.loss(idx, targets)


def nanogpt_train(model: nn.Module, data: torch.Tensor, steps: int, *, max_iters: int = 2000, batch: int = 12,
                  block: int = 64, clock=None, every: int = 0, on_eval=None) -> float:
    """nanoGPT's train.py loop (CPU, no compile, no grad accumulation); returns seconds for `steps` steps after 5 warm-up
    (not counting ``on_eval(iterations_done, seconds_so_far)``, called every `every` iterations when given)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    offsets = torch.arange(block)
    start = None
    for it in range(steps + 5):
        if it == 5:
            start = (clock or time.perf_counter)()
        for group in opt.param_groups:
            group["lr"] = 1e-3 * warmup_cosine(it, 100, max_iters, 0.1)
        ix = torch.randint(len(data) - block, (batch,))
        x, y = data[ix[:, None] + offsets], data[ix[:, None] + offsets + 1]
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if every and (it + 1) % every == 0 and start is not None:
            paused = (clock or time.perf_counter)()
            on_eval(it + 1, paused - start)
            start += (clock or time.perf_counter)() - paused  # evaluation time is not training time
    return (clock or time.perf_counter)() - start


@torch.no_grad()
def full_val_loss(loss_fn, data: torch.Tensor, block: int = 64) -> float:
    """Mean loss over every non-overlapping window of the validation tokens (what GPTSystem logs)."""
    n = (len(data) - 1) // block
    x = data[: n * block].view(n, block)
    y = data[1: n * block + 1].view(n, block)
    return sum(loss_fn(x[i:i + 256], y[i:i + 256]).item() * len(x[i:i + 256]) for i in range(0, n, 256)) / n


# -- commands ----------------------------------------------------------------------------------


def bench_train(args) -> dict:
    import tempfile

    import lightning as L

    from zoo.models.gpt import GPT
    from zoo.systems.gpt import GPTSystem

    dm = TextDataModule("tinyshakespeare", batches_per_epoch=args.steps + 5)
    dm.setup("fit")
    data = dm.encoded("train")
    results = {"nanogpt_loop": [], "nanogpt_loop_cpu": [], "genzoo_model_plain_loop": [], "lightning": [],
               "lightning_cpu": []}

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 5:
                self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_train_end(self, trainer, pl_module):
            self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    for _ in range(args.repeats):
        torch.manual_seed(0)
        t0 = time.process_time()
        results["nanogpt_loop"].append(nanogpt_train(NanoGPT(), data, args.steps))
        results["nanogpt_loop_cpu"].append(time.process_time() - t0)  # includes 5 warm-up steps
        torch.manual_seed(0)
        results["genzoo_model_plain_loop"].append(nanogpt_train(GenzooGPT(), data, args.steps))
        clock = Clock()
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps + 5, gradient_clip_val=1.0,
                            default_root_dir=tempfile.mkdtemp(prefix="genzoo-bench-"),
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, log_every_n_steps=50, callbacks=[clock])
        torch.manual_seed(0)
        trainer.fit(GPTSystem(GPT(), sample_tokens=0), datamodule=dm)
        results["lightning"].append(clock.wall)
        results["lightning_cpu"].append(clock.cpu * (args.steps + 5) / args.steps)
    tokens = args.steps * 12 * 64
    best = {k: min(v) for k, v in results.items()}
    return {"steps": args.steps, "threads": torch.get_num_threads(),
            "nanogpt_ms_per_iter": 1e3 * best["nanogpt_loop"] / args.steps,
            "lightning_ms_per_iter": 1e3 * best["lightning"] / args.steps,
            "genzoo_model_plain_loop_ms_per_iter": 1e3 * best["genzoo_model_plain_loop"] / args.steps,
            "nanogpt_tokens_per_s": tokens / best["nanogpt_loop"], "lightning_tokens_per_s": tokens / best["lightning"],
            "throughput_ratio_lightning_over_nanogpt": best["nanogpt_loop"] / best["lightning"],
            "cpu_time_ratio_lightning_over_nanogpt": best["nanogpt_loop_cpu"] / best["lightning_cpu"],
            "runs_s": results}


def bench_generate(args) -> dict:
    """Same weights in both: the pretrained gpt-shakespeare-char, its window widened to 16 + 500 tokens (rotary
    positions need no new weights) so that both attend to every token and neither slides (transformers cannot)."""
    import tempfile

    from transformers import AutoModelForCausalLM

    import zoo
    from zoo.models.gpt import GPT

    pretrained = zoo.load("gpt-shakespeare-char")
    prompt = "ROMEO:"
    n_new = args.new_tokens
    model = GPT(**{**pretrained.init_args, "n_positions": 16 + n_new}).eval()
    model.load_weights(pretrained.state_dict())
    model.set_tokenizer(pretrained.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        hf = AutoModelForCausalLM.from_pretrained(tmp).eval()
    ids = torch.tensor([model.encode(prompt)])
    settings = dict(temperature=0.8, top_k=args.top_k)

    def ours(b):
        return lambda: model.generate([prompt] * b, max_new_tokens=n_new, seed=0, **settings)

    def theirs(b):
        x = ids.expand(b, -1)

        def run():
            with torch.inference_mode():
                out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, min_new_tokens=n_new,
                                  do_sample=True, top_p=None, pad_token_id=0, **settings)
            assert out.shape[1] == x.shape[1] + n_new
        return run

    def ours_sliding(b):  # the shipped 64-token model: slides its window every 32 tokens
        return lambda: pretrained.generate([prompt] * b, max_new_tokens=n_new, seed=0, **settings)

    report = {"new_tokens": n_new, "threads": torch.get_num_threads(), **settings}
    for b in (1, 16):
        runs = {"genzoo": ours(b), "transformers": theirs(b), "genzoo_sliding_64": ours_sliding(b)}
        best = {name: (math.inf, math.inf) for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                w, c = time.perf_counter(), time.process_time()
                fn()
                w, c = time.perf_counter() - w, time.process_time() - c
                best[name] = (min(best[name][0], w), min(best[name][1], c))
        for name, (w, c) in best.items():
            report[f"b{b}_{name}_tokens_per_s"] = b * n_new / w
            report[f"b{b}_{name}_tokens_per_cpu_s"] = b * n_new / c
        report[f"b{b}_speedup_wall"] = best["transformers"][0] / best["genzoo"][0]
        report[f"b{b}_speedup_cpu"] = best["transformers"][1] / best["genzoo"][1]
    return report


def bench_quality(args) -> dict:
    """nanoGPT's model and genzoo's GPT, each trained 2,000 iterations by nanoGPT's loop from the same seed,
    scored the same way (every non-overlapping window of the validation split) every 250 iterations; and
    how soon genzoo's reaches nanoGPT's final loss (training seconds, evaluations excluded)."""
    dm = TextDataModule("tinyshakespeare")
    dm.setup("fit")
    vocab, val = dm.tokenizer.get_vocab_size(), dm.encoded("val")
    report = {"iterations": 2000, "seed": args.seed}
    for name, make in (("nanogpt", lambda: NanoGPT(vocab_size=vocab)), ("genzoo", lambda: GenzooGPT(vocab))):
        torch.manual_seed(args.seed)
        model, curve = make(), []

        def evaluate(iterations, seconds, model=model, curve=curve):
            model.eval()
            curve.append((iterations, round(seconds, 1), round(full_val_loss(model, val), 4)))
            model.train()

        report[f"{name}_train_s"] = nanogpt_train(model, dm.encoded("train"), 1995, every=250, on_eval=evaluate)
        report[f"{name}_curve_iterations_seconds_loss"] = curve
        report[f"{name}_val_loss"] = curve[-1][2]
    reached = [(i, t) for i, t, loss in report["genzoo_curve_iterations_seconds_loss"] if loss <= report["nanogpt_val_loss"]]
    report["genzoo_reaches_nanogpt_final_loss_at"] = {"iterations": reached[0][0], "seconds": reached[0][1]} if reached else None
    return report


def bench_parts(args) -> dict:
    """Where genzoo's training step spends the time that nanoGPT's does not: nanoGPT's loop timing nanoGPT's
    model, genzoo's, and genzoo's with parts of Llama's block swapped for stand-ins: LayerNorm (one fused
    kernel each way, what a fused RMSNorm would cost) for RMSNorm, no rotation at all for RoPE, and GPT-2's
    GELU MLP (same parameters, two matmuls) for SwiGLU. With all three swapped it is GPT-2's block, the
    control: it should time like nanoGPT's. Also genzoo with torch's own ``rms_norm`` backward, to show what
    genzoo's RMSNorm backward saves. Timing only: the stand-ins are not trained."""
    import contextlib
    from unittest import mock

    import zoo.models.gpt as gpt_module

    def genzoo(layer_norm: bool = False, gelu_mlp: bool = False) -> nn.Module:
        model = GenzooGPT()
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if layer_norm and isinstance(child, gpt_module.RMSNorm):
                    setattr(parent, name, nn.LayerNorm(child.weight.shape[0], eps=child.eps, bias=False))
                if gelu_mlp and isinstance(child, gpt_module.MLP):
                    C = child.gate_proj.in_features
                    setattr(parent, name, nn.Sequential(nn.Linear(C, 4 * C, bias=False), nn.GELU(),
                                                        nn.Linear(4 * C, C, bias=False)))
        return model

    def without_rope():
        return mock.patch.object(gpt_module, "rotate", lambda x, rotation: x)

    def torch_rms_norm():  # torch's own rms_norm and its op-by-op backward, in place of genzoo's RMSNorm backward
        return mock.patch.object(gpt_module.RMSNorm, "forward",
                                 lambda self, x: F.rms_norm(x, (x.shape[-1],), self.weight, self.eps))

    variants = {"nanogpt": (NanoGPT, None), "genzoo": (genzoo, None),
                "genzoo_with_torch_rms_norm_backward": (genzoo, torch_rms_norm),
                "genzoo_layernorm_for_rmsnorm": (lambda: genzoo(layer_norm=True), None),
                "genzoo_without_rope": (genzoo, without_rope),
                "genzoo_gelu_mlp_for_swiglu": (lambda: genzoo(gelu_mlp=True), None),
                "genzoo_layernorm_and_without_rope": (lambda: genzoo(layer_norm=True), without_rope),
                "genzoo_all_three_swapped": (lambda: genzoo(layer_norm=True, gelu_mlp=True), without_rope)}
    dm = TextDataModule("tinyshakespeare")
    dm.setup("fit")
    data = dm.encoded("train")
    best = {name: math.inf for name in variants}
    for _ in range(args.repeats):
        for name, (make, patch) in variants.items():
            torch.manual_seed(0)
            model = make()
            with patch() if patch else contextlib.nullcontext():
                best[name] = min(best[name], nanogpt_train(model, data, args.steps))
            del model
    report = {"steps": args.steps, "threads": torch.get_num_threads()}
    for name, seconds in best.items():
        report[f"{name}_ms_per_iter"] = 1e3 * seconds / args.steps
        report[f"{name}_throughput_over_nanogpt"] = best["nanogpt"] / seconds
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "generate", "quality", "parts"])
    parser.add_argument("--steps", type=int, default=100, help="training steps timed (train)")
    parser.add_argument("--new-tokens", type=int, default=500, help="new tokens per text (generate)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k of both generates (default: none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1337, help="seed of the quality run (nanoGPT's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"train": bench_train, "generate": bench_generate, "quality": bench_quality,
              "parts": bench_parts}[args.what](args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
