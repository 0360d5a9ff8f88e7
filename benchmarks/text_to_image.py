"""Prompt-to-image sampling speed: genzoo's TextDDPM against the class-conditional DDPM of the same UNet, and
against diffusers' UNet2DConditionModel (Stable Diffusion's UNet) of about the same size, one process.

    python benchmarks/text_to_image.py                     # the packaged ddpm-mnist-5k-text, batches 64 and 256
    python benchmarks/text_to_image.py --quick --threads 1 --json out.json

Protocol (fp32, the same torch thread count for everything):

1. Networks. genzoo: the packaged ``ddpm-mnist-5k-text`` (its UNet cross-attends to the prompt's token states
   below the top resolution); the class-conditional ``DDPM`` with the same UNet widths and no cross-attention
   (random weights: speed only), what the issue's target compares with; and the packaged ``ddpm-mnist-5k`` (a
   narrower UNet, for reference). diffusers: ``UNet2DConditionModel`` with the same widths, one layer per
   block, cross-attention (``CrossAttnDownBlock2D``/``CrossAttnUpBlock2D``) at the same two lower levels,
   ``cross_attention_dim`` = the text encoder's width, fed genzoo's text encoder states and mask; diffusers'
   transformer blocks add self-attention and a feed-forward around each cross-attention, so it does more per
   step: its parameters and FLOPs per forward are printed beside genzoo's.
2. Work: `steps` DDIM steps with classifier-free guidance 3 (every network runs the conditional and the null
   rows as one doubled batch), one prompt per image drawn from the evaluation prompts, at each batch size.
   genzoo: ``model.sample`` end to end (the prompts' encoder pass included); the class-conditional DDPM:
   ``sample(labels=...)``; diffusers: the same encoder pass, then its UNet in ``DDIMScheduler``'s loop.
3. The encoder alone: milliseconds per prompt, one prompt per call, and per batch.
4. Timing: best of `repeats` after a warm-up; CPU seconds of this process (wall seconds in the JSON); ratios
   are speeds relative to genzoo's TextDDPM (> 1: genzoo faster).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
import warnings

import torch


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) of `fn()` over `repeats` runs after one warm-up."""
    fn()
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        c, w = cpu_seconds(), time.perf_counter()
        fn()
        best_cpu, best_wall = min(best_cpu, cpu_seconds() - c), min(best_wall, time.perf_counter() - w)
    return best_cpu, best_wall


def flops(net, *args, **kwargs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(*args, **kwargs)
    return counter.get_total_flops()


def diffusers_unet(model):
    from diffusers import UNet2DConditionModel

    a = model.init_args
    widths = tuple(a["base"] * m for m in a["channel_mults"])
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(widths) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(widths) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=a["image_size"], in_channels=a["channels"], out_channels=a["channels"], block_out_channels=widths,
        down_block_types=down, up_block_types=up, layers_per_block=1, cross_attention_dim=model.text_encoder.n_embd,
        attention_head_dim=widths[1] // a["cross_attention_heads"], norm_num_groups=8).eval()


def diffusers_sampler(unet, model, prompts: list[str], steps: int, guidance: float):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=model.schedule.timesteps, trained_betas=model.schedule.betas().numpy(),
                              clip_sample=True, set_alpha_to_one=True)

    @torch.no_grad()
    def run():
        states, mask, _ = model._encode([*prompts, *[""] * len(prompts)])  # genzoo's encoder, one pass per prompt
        scheduler.set_timesteps(steps)
        x = torch.randn(len(prompts), *model.image_shape, generator=torch.Generator().manual_seed(0))
        for t in scheduler.timesteps:
            c, u = unet(torch.cat([x, x]), t, encoder_hidden_states=states, encoder_attention_mask=mask).sample.chunk(2)
            x = scheduler.step(u + guidance * (c - u), t, x).prev_sample
        return x

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ddpm-mnist-5k-text", help="the text-to-image model (name or folder)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps (10: what the metrics use)")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-diffusers", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    warnings.simplefilter("ignore")

    import zoo
    from zoo.captions import EVAL_TEMPLATES, prompt_for
    from zoo.metrics.text_to_image import combinations
    from zoo.models.diffusion import DDPM

    text = zoo.load(args.model)
    a = text.init_args
    same = DDPM(image_size=a["image_size"], channels=a["channels"], base=a["base"], channel_mults=a["channel_mults"],
                num_classes=10, schedule=a["schedule"], attention_heads=a["attention_heads"]).eval()
    packaged = zoo.load("ddpm-mnist-5k")
    unet = None if args.no_diffusers else diffusers_unet(text)
    rng = random.Random(0)
    pool = [prompt_for(*c, rng, EVAL_TEMPLATES) for c in combinations()]

    x1, t1 = torch.rand(1, *text.image_shape), torch.tensor([500])
    states, mask, pooled = text.text_encoder.encode([pool[0]])
    params = {"genzoo text UNet": sum(p.numel() for p in text.unet.parameters()),
              "genzoo class UNet (same widths)": sum(p.numel() for p in same.unet.parameters()),
              "genzoo ddpm-mnist-5k UNet": sum(p.numel() for p in packaged.unet.parameters()),
              "text encoder": sum(p.numel() for p in text.text_encoder.parameters())}
    gflops = {"genzoo text UNet": flops(text.unet, x1, t1, text=(states, mask, pooled)) / 1e9,
              "genzoo class UNet (same widths)": flops(same.unet, x1, t1, torch.tensor([3])) / 1e9,
              "genzoo ddpm-mnist-5k UNet": flops(packaged.unet, x1, t1, torch.tensor([3])) / 1e9}
    if unet is not None:
        params["diffusers UNet2DConditionModel"] = sum(p.numel() for p in unet.parameters())
        gflops["diffusers UNet2DConditionModel"] = flops(unet, x1, t1, encoder_hidden_states=states,
                                                         encoder_attention_mask=mask) / 1e9
    print(f"threads {torch.get_num_threads()}, {args.steps} DDIM steps, guidance {args.guidance}, best of {repeats}\n")
    print("| network | parameters | GFLOP per image per forward |\n|---|---|---|")
    for k in params:
        print(f"| {k} | {params[k]:,} | {gflops[k]:.4f} |" if k in gflops else f"| {k} | {params[k]:,} | |")

    one = [timed(lambda p=p: text.text_encoder.encode([p]), repeats)[0] for p in pool[:20]]
    batch = timed(lambda: text.text_encoder.encode(pool), repeats)[0]
    results = {"threads": torch.get_num_threads(), "steps": args.steps, "guidance": args.guidance,
               "parameters": params, "gflops": gflops, "encoder_ms_per_prompt": 1000 * min(one),
               "encoder_ms_per_prompt_batched": 1000 * batch / len(pool), "rows": []}
    print(f"\ntext encoder: {results['encoder_ms_per_prompt']:.2f} ms for one prompt, "
          f"{results['encoder_ms_per_prompt_batched']:.3f} ms per prompt in a batch of {len(pool)}\n")
    print("| batch | genzoo text-to-image (img/s) | class-conditional, same UNet (img/s) | ratio | "
          "ddpm-mnist-5k (img/s) | diffusers UNet2DConditionModel (img/s) | genzoo / diffusers |\n|---|---|---|---|---|---|---|")
    for b in args.batches:
        prompts = [pool[i % len(pool)] for i in range(b)]
        labels = torch.arange(b) % 10
        kw = {"steps": args.steps, "guidance": args.guidance, "progress": False, "seed": 0}
        runs = {"text": lambda: text.sample(b, prompt=prompts, **kw),
                "class": lambda: same.sample(b, labels=labels, **kw),
                "packaged": lambda: packaged.sample(b, labels=labels, **kw)}
        if unet is not None:
            runs["diffusers"] = diffusers_sampler(unet, text, prompts, args.steps, args.guidance)
        times = {k: timed(f, repeats) for k, f in runs.items()}
        speed = {k: b / cpu for k, (cpu, _) in times.items()}
        row = {"batch": b, "images_per_cpu_second": speed, "wall_seconds": {k: w for k, (_, w) in times.items()}}
        results["rows"].append(row)
        d = speed.get("diffusers")
        versus = ("", "") if d is None else (f"{d:.1f}", f"{speed['text'] / d:.2f}x")
        print(f"| {b} | {speed['text']:.1f} | {speed['class']:.1f} | {speed['text'] / speed['class']:.2f}x | "
              f"{speed['packaged']:.1f} | {versus[0]} | {versus[1]} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
