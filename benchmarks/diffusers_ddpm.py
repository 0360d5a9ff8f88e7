"""genzoo's DDPM against diffusers' UNet2DModel + DDIMScheduler: size-matched networks, the same timesteps.

    python benchmarks/diffusers_ddpm.py                          # 3 sampling / 10 training repeats
    python benchmarks/diffusers_ddpm.py --quick --threads 1      # 1 / 3 repeats
    python benchmarks/diffusers_ddpm.py --quick --json out.json
    python benchmarks/diffusers_ddpm.py --quick --diffusers-channels-last --batches 64

Protocol (everything in this one process, fp32, the same torch thread count for both libraries):

0. Networks, one pair per shape (28x28x1 and 32x32x3), both unconditional, predicting eps, with
   self-attention at the lowest resolution: genzoo ``DDPM(base=32, channel_mults=[1, 2, 2],
   attention_heads=4)`` against ``UNet2DModel(block_out_channels=(24, 48, 48), layers_per_block=1,
   AttnDownBlock2D / UNetMidBlock2D / AttnUpBlock2D at the lowest level, 4 heads, norm_num_groups=8)``.
   diffusers' blocks hold more convolutions per level (two residual blocks per up level, a conv in
   every upsampler), so its widths are narrower: the parameter counts agree within 10% and the FLOPs
   of one forward within about 7% (both printed), which is what "equal per-step math" means here.
   FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one image (CPU attention counted too).
1. Parity on identical weights: genzoo's own UNet is the eps-model of both samplers (the packaged,
   trained ddpm-mnist-5k, and each untrained attention UNet with its zero-initialised output layers
   perturbed, whose x0 predictions are mostly clipped): genzoo's DDIM chain (``DDPM.denoise``) and
   diffusers' ``DDIMScheduler.step`` with genzoo's betas as ``trained_betas``, clip_sample to [-1, 1],
   ``use_clipped_model_output=True`` (genzoo recomputes eps from the clipped x0), set_alpha_to_one
   (the last step returns x0) and "leading" timesteps on both sides (diffusers' DDIM is inconsistent
   with "linspace": diffusers issues #11347, #12633). One 50-step trajectory from the same x_T; the
   max abs difference of x_0 in [-1, 1]; then again with diffusers' alphas_cumprod replaced by genzoo's
   (float64 cumprod rounded once, where diffusers takes a float32 cumprod of the float32 betas).
2. Training: one forward + backward + AdamW step (lr 1e-4, torch defaults) of the eps MSE at batch 64
   and 256 from random t and noise: ``DDPM.loss`` for genzoo; ``add_noise`` + ``UNet2DModel`` +
   ``mse_loss`` (diffusers' train_unconditional example) for diffusers. No EMA on either side.
3. Sampling: images/s of 50 DDIM steps, "leading" timesteps, at batch 64 and 256: ``DDPM.denoise``
   (the chain ``DDPM.sample`` runs) for genzoo; ``DDIMPipeline(..., output_type="pt")`` for diffusers.
4. Timing: best of `repeats` after one warm-up (a 2-step run for sampling), genzoo and diffusers
   interleaved so both meet the same neighbours; wall seconds and this process's CPU seconds. The
   ratios are genzoo/diffusers in speed (>1: genzoo faster), from CPU seconds (on a shared machine
   wall time mostly measures the neighbours); wall ratios are in the JSON. Achieved GFLOP/s is counted
   FLOPs per CPU second, next to this machine's fp32 matmul peak (a 2048x2048 matmul, same threads).
   genzoo's UNet runs its activations in channels_last by itself; diffusers' stays in its default
   NCHW unless ``--diffusers-channels-last`` (its weights in channels_last, so its activations follow).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import table  # noqa: E402  (benchmarks/images.py)

SHAPES = ((1, 28), (3, 32))  # (channels, image size)
STEPS = 50
GENZOO = dict(base=32, channel_mults=[1, 2, 2], attention_heads=4)
DIFFUSERS = dict(block_out_channels=(24, 48, 48), layers_per_block=1, norm_num_groups=8, attention_head_dim=12,
                 down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))  # 48 / 12 = 4 heads, as genzoo's


# -- the two networks ----------------------------------------------------------------------------


def genzoo_ddpm(channels: int, size: int):
    """genzoo's DDPM with its zero-initialised output layers perturbed, so samples are not trivial."""
    from zoo.layers.unet import SelfAttention
    from zoo.models.diffusion import DDPM

    torch.manual_seed(0)
    ddpm = DDPM(image_size=size, channels=channels, **GENZOO)
    zeroed = [ddpm.unet.out[-1]] + [m.proj for m in ddpm.unet.modules() if isinstance(m, SelfAttention)]
    for layer in zeroed:
        torch.nn.init.normal_(layer.weight, std=0.05)
    ddpm.ema.load_state_dict(ddpm.unet.state_dict())
    return ddpm


CHANNELS_LAST = False  # --diffusers-channels-last: diffusers' weights in channels_last (genzoo's activations are)


def diffusers_unet(channels: int, size: int):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, **DIFFUSERS)
    return unet.to(memory_format=torch.channels_last) if CHANNELS_LAST else unet  # activations follow the weights


def diffusers_scheduler(ddpm):
    """diffusers' DDIM on genzoo's schedule, with genzoo's sampler settings."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=ddpm.schedule.timesteps, trained_betas=ddpm.schedule.betas().tolist(),
                         clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0,
                         prediction_type="epsilon", timestep_spacing="leading")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call (forward, and backward if `fn` runs one), CPU attention included."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    cpu_attention = {  # torch counts the CUDA attention kernels only
        aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad, q, k, v, *a, **kw: sdpa_backward_flop_count(grad, q, k, v),
    }
    with FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        fn()
    return counter.get_total_flops()


# -- timing --------------------------------------------------------------------------------------


def race(fns: dict[str, Callable[[], object]], repeats: int,
         warmups: dict[str, Callable[[], object]] | None = None) -> dict[str, dict[str, float]]:
    """Best wall and CPU seconds of each function over `repeats` interleaved rounds, after a warm-up call."""
    for name, fn in fns.items():
        (warmups or fns)[name]()
    best = {name: {"wall_s": float("inf"), "cpu_s": float("inf")} for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            best[name] = {"wall_s": min(best[name]["wall_s"], wall), "cpu_s": min(best[name]["cpu_s"], cpu)}
    return best


def matmul_peak(repeats: int, n: int = 2048) -> dict[str, float]:
    """GFLOP/s of an n x n fp32 matmul with the current thread count (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = race({"matmul": lambda: a @ b}, repeats)["matmul"]
    return {"n": n, "gflops_wall": 2 * n**3 / t["wall_s"] / 1e9, "gflops_cpu": 2 * n**3 / t["cpu_s"] / 1e9}


# -- 0. networks, 1. parity ----------------------------------------------------------------------


def network_rows() -> list[dict]:
    rows = []
    for channels, size in SHAPES:
        ddpm, unet = genzoo_ddpm(channels, size), diffusers_unet(channels, size)
        x, t = torch.randn(1, channels, size, size), torch.tensor([500])
        with torch.no_grad():
            flops = {"genzoo": count_flops(lambda: ddpm.ema(x, t)), "diffusers": count_flops(lambda: unet(x, t))}
        params = {"genzoo": n_params(ddpm.unet), "diffusers": n_params(unet)}
        for lib, config in [("genzoo", GENZOO), ("diffusers", DIFFUSERS)]:
            rows.append({"shape": f"{size}x{size}x{channels}", "library": lib, "params": params[lib],
                         "mflop_per_forward": flops[lib] / 1e6, "config": json.dumps(config)})
        rows[-1]["params_vs_genzoo"] = params["diffusers"] / params["genzoo"]
        rows[-1]["flops_vs_genzoo"] = flops["diffusers"] / flops["genzoo"]
    return rows


@torch.no_grad()
def parity_rows(n: int = 8) -> list[dict]:
    """The packaged ddpm-mnist-5k (trained: few x0 clipped) and the benchmark's untrained attention UNets."""
    import zoo

    cases = [("ddpm-mnist-5k (trained)", zoo.load("ddpm-mnist-5k"))]
    cases += [(f"attention UNet {size}x{size}x{channels} (untrained)", genzoo_ddpm(channels, size).eval())
              for channels, size in SHAPES]
    rows = []
    for name, ddpm in cases:
        labels = torch.arange(n) % ddpm.num_classes if ddpm.num_classes else None

        def eps_model(x, t):  # genzoo's own UNet (its EMA weights, which genzoo samples with), for both samplers
            return ddpm.ema(x, t.expand(n), labels)

        ts = ddpm.timesteps(STEPS, "leading")
        x_T = torch.randn(n, *ddpm.image_shape, generator=torch.Generator().manual_seed(0))
        ours = ddpm.denoise(x_T, ts, labels=labels, guidance=1.0)
        row = {"model": name, "steps": STEPS, "spacing": "leading", "first_timesteps": str(ts[:3])[:-1] + ", ...]"}
        for schedule in ("trained_betas", "same_alphas_cumprod"):
            scheduler = diffusers_scheduler(ddpm)
            if schedule == "trained_betas":
                row["alphas_cumprod_max_abs_diff"] = (scheduler.alphas_cumprod - ddpm.alphas_cumprod).abs().max().item()
            else:
                scheduler.alphas_cumprod = ddpm.alphas_cumprod.clone()
            scheduler.set_timesteps(STEPS)
            if scheduler.timesteps.tolist() != ts:
                raise AssertionError(f"diffusers' leading timesteps {scheduler.timesteps.tolist()[:5]}... differ "
                                     f"from genzoo's {ts[:5]}...")
            x, clipped = x_T, []
            for t in scheduler.timesteps:
                out = scheduler.step(eps_model(x, t), t, x, eta=0.0, use_clipped_model_output=True)
                clipped.append((out.pred_original_sample.abs() >= 1).float().mean().item())
                x = out.prev_sample
            row[f"max_abs_diff_{schedule}"] = (x - ours).abs().max().item()
        row["x0_clipped_fraction"] = sum(clipped) / len(clipped)  # how often clipping decided a pixel
        rows.append(row)
    return rows


# -- 2. training, 3. sampling --------------------------------------------------------------------


def training_rows(batches: tuple[int, ...], repeats: int, peak: float) -> list[dict]:
    rows = []
    for channels, size in SHAPES:
        ddpm, unet = genzoo_ddpm(channels, size).train(), diffusers_unet(channels, size).train()
        scheduler = diffusers_scheduler(ddpm)
        opt_g, opt_d = torch.optim.AdamW(ddpm.unet.parameters(), 1e-4), torch.optim.AdamW(unet.parameters(), 1e-4)

        def genzoo_loss(x):
            return ddpm.loss(x)

        def diffusers_loss(x):  # diffusers' examples/unconditional_image_generation/train_unconditional.py
            x0 = x * 2 - 1
            noise = torch.randn(x0.shape)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),))
            return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)

        def step(opt, loss_fn, x):
            opt.zero_grad()
            loss_fn(x).backward()
            opt.step()

        one = torch.rand(1, channels, size, size)
        flops = {"genzoo": count_flops(lambda: genzoo_loss(one).backward()),
                 "diffusers": count_flops(lambda: diffusers_loss(one).backward())}
        for batch in batches:
            x = torch.rand(batch, channels, size, size)
            best = race({"genzoo": lambda: step(opt_g, genzoo_loss, x),
                         "diffusers": lambda: step(opt_d, diffusers_loss, x)}, repeats)
            rows.append(speed_row(f"{size}x{size}x{channels}", batch, best, flops, batch, peak, per="ms_per_step"))
    return rows


def sampling_rows(batches: tuple[int, ...], repeats: int, peak: float) -> list[dict]:
    from diffusers import DDIMPipeline

    rows = []
    for channels, size in SHAPES:
        ddpm, unet = genzoo_ddpm(channels, size).eval(), diffusers_unet(channels, size).eval()
        pipe = DDIMPipeline(unet=unet, scheduler=diffusers_scheduler(ddpm))
        pipe.set_progress_bar_config(disable=True)
        x, t = torch.randn(1, channels, size, size), torch.tensor([500])
        with torch.no_grad():
            flops = {"genzoo": count_flops(lambda: ddpm.ema(x, t)), "diffusers": count_flops(lambda: unet(x, t))}
        for batch in batches:
            def genzoo(steps=STEPS):
                x_T = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))
                return (ddpm.denoise(x_T, ddpm.timesteps(steps, "leading")) + 1) / 2

            def diffusers(steps=STEPS):
                return pipe(batch_size=batch, num_inference_steps=steps, eta=0.0, use_clipped_model_output=True,
                            output_type="pt", generator=torch.Generator().manual_seed(0)).images

            best = race({"genzoo": genzoo, "diffusers": diffusers}, repeats,
                        warmups={"genzoo": lambda: genzoo(2), "diffusers": lambda: diffusers(2)})
            rows.append(speed_row(f"{size}x{size}x{channels}", batch, best, flops, batch * STEPS, peak,
                                  per="images_per_s", images=batch))
    return rows


def speed_row(shape: str, batch: int, best: dict, flops: dict, flop_units: int, peak: float, *, per: str,
              images: int | None = None) -> dict:
    """One table row: per-library time (or images/s), genzoo/diffusers speed ratios, GFLOP/s and % of peak."""
    row = {"shape": shape, "batch": batch}
    for lib in ("genzoo", "diffusers"):
        wall, cpu = best[lib]["wall_s"], best[lib]["cpu_s"]
        if per == "ms_per_step":
            row[f"{lib}_ms"], row[f"{lib}_cpu_ms"] = 1000 * wall, 1000 * cpu
        else:
            row[f"{lib}_img_s"], row[f"{lib}_img_cpu_s"] = images / wall, images / cpu
        row[f"{lib}_gflop_s"] = flops[lib] * flop_units / cpu / 1e9
        row[f"{lib}_of_peak"] = row[f"{lib}_gflop_s"] / peak
    row["speed_ratio"] = best["diffusers"]["cpu_s"] / best["genzoo"]["cpu_s"]
    row["speed_ratio_wall"] = best["diffusers"]["wall_s"] / best["genzoo"]["wall_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 sampling and 3 training repeats (default 3 and 10)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256], help="batch sizes (default 64 256)")
    parser.add_argument("--diffusers-channels-last", action="store_true",
                        help="diffusers' UNet in channels_last too (not its default; genzoo's UNet runs NHWC itself)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global CHANNELS_LAST
    CHANNELS_LAST = args.diffusers_channels_last
    import diffusers

    sample_repeats, train_repeats = (1, 3) if args.quick else (3, 10)
    batches = tuple(args.batches)
    print(f"# genzoo vs diffusers {diffusers.__version__}{' (channels_last)' if CHANNELS_LAST else ''}: DDPM UNets, "
          f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}\n")
    print("Protocol: size-matched UNets with attention at the lowest level; parity = one 50-step DDIM trajectory, "
          "same weights and x_T, 'leading' timesteps; training = forward+backward+AdamW step; sampling = 50 DDIM "
          f"steps; best of {train_repeats} (training) / {sample_repeats} (sampling) interleaved runs after a warm-up; "
          "ratios = genzoo/diffusers speed from CPU seconds (>1: genzoo faster); GFLOP/s = FlopCounterMode FLOPs "
          "per CPU second. Details: python benchmarks/diffusers_ddpm.py --help\n", flush=True)
    peak = matmul_peak(3 if args.quick else 5)
    results = {"matmul_peak": peak, "networks": network_rows(), "parity": parity_rows()}
    print(f"## Networks (matmul peak: {peak['gflops_cpu']:.1f} GFLOP/s per CPU second, fp32 {peak['n']}^2)\n")
    print(table(results["networks"], ["shape", "library", "params", "mflop_per_forward", "params_vs_genzoo",
                                      "flops_vs_genzoo", "config"]))
    print("\n## Parity: one 50-step DDIM trajectory on genzoo's UNet, genzoo's sampler vs diffusers' DDIMScheduler\n")
    small = [{k: f"{v:.2e}" if k.startswith(("max_abs", "alphas")) else v for k, v in r.items()}
             for r in results["parity"]]
    print(table(small, ["model", "steps", "spacing", "first_timesteps", "alphas_cumprod_max_abs_diff",
                        "max_abs_diff_trained_betas", "max_abs_diff_same_alphas_cumprod", "x0_clipped_fraction"]),
          flush=True)
    results["training"] = training_rows(batches, train_repeats, peak["gflops_cpu"])
    print("\n## Training step (forward + backward + AdamW), ms\n")
    print(table(results["training"], ["shape", "batch", "genzoo_ms", "genzoo_cpu_ms", "diffusers_ms",
                                      "diffusers_cpu_ms", "speed_ratio", "genzoo_gflop_s", "genzoo_of_peak",
                                      "diffusers_gflop_s", "diffusers_of_peak"]), flush=True)
    results["sampling"] = sampling_rows(batches, sample_repeats, peak["gflops_cpu"])
    print(f"\n## Sampling: {STEPS} DDIM steps, images/s\n")
    print(table(results["sampling"], ["shape", "batch", "genzoo_img_s", "genzoo_img_cpu_s", "diffusers_img_s",
                                      "diffusers_img_cpu_s", "speed_ratio", "genzoo_gflop_s", "genzoo_of_peak",
                                      "diffusers_gflop_s", "diffusers_of_peak"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
