"""Image families side by side: sampling throughput, training step time, and FID against the real-data floor.

    python benchmarks/images.py                 # every packaged image model (a few minutes on 2 CPU cores)
    python benchmarks/images.py --quick         # fewer repeats, 500 samples for FID
    python benchmarks/images.py --threads 1 --json out.json

Everything runs in this one process with the same thread limit, so the rows compare fairly.

1. Sampling: images per second of ``model.sample(batch)`` at a fixed batch (best of `repeats`,
   after a warm-up), for every packaged image model; the diffusion model with DDIM at several step
   counts and with classifier-free guidance (two UNet calls per step). Also per CPU-second of this
   process, the number that means something on a shared machine.
2. Training: seconds per optimiser step of each family's loss at batch 64 (the GAN row is one
   discriminator and one generator step), best of `repeats`.
3. Quality: FID/KID/IS of `n` samples against the digits test split with the digits-classifier
   features, next to the real-data floor (training images against the test split); ``genzoo eval``
   gives the same numbers for n=2,000.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

IMAGE_MODELS = ("vae-digits", "cvae-digits", "dcgan-digits", "ddpm-digits")


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeats` calls, after one warm-up call.

    CPU seconds (this process's) stay meaningful on a machine shared with other jobs, where wall time
    mostly measures the neighbours.
    """
    fn()
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(times)


def sampling_rows(batch: int, repeats: int) -> list[dict]:
    import zoo

    rows = []
    for name in IMAGE_MODELS:
        model = zoo.load(name)
        settings = [({}, "")]
        if "steps" in model.accepts():  # an iterative sampler: time it at several step counts
            settings = [(dict(steps=s, progress=False), f"DDIM {s} steps") for s in (50, 20, 10)]
            settings.append((dict(steps=50, guidance=2.0, progress=False), "DDIM 50 steps, guidance 2"))
        for kwargs, how in settings:
            wall, cpu = best_of(lambda: model.sample(batch, seed=0, **kwargs), repeats)
            rows.append({"model": name, "sampler": how or "one pass", "images_per_s": batch / wall,
                         "images_per_cpu_s": batch / cpu})
    return rows


def training_rows(repeats: int) -> list[dict]:
    """Seconds per optimiser step at batch 64 for each family, with its recipe's architecture."""
    from zoo.data.digits import SPEC
    from zoo.models.diffusion import DDPM
    from zoo.models.gan import GAN
    from zoo.models.vae import VAE
    from zoo.systems.gan import GANSystem

    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(10, (64,))
    x = (x * 16).round() / 16  # 17 grey levels, like digits
    vae = VAE(latent_dim=16, hidden=32, num_classes="data").fit_to_data(SPEC)
    ddpm = DDPM(base=24, channel_mults=[1, 2], num_classes="data").fit_to_data(SPEC)
    gan = GANSystem(GAN(latent_dim=32, hidden=32, num_classes="data").fit_to_data(SPEC))
    opt_vae = torch.optim.AdamW(vae.parameters())
    opt_ddpm = torch.optim.AdamW(ddpm.unet.parameters())
    opt_g, opt_d = gan.configure_optimizers()

    def step(opt, loss_fn):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()

    def gan_step():
        step(opt_d, lambda: gan._critic_loss(x, y)["d_loss"])
        step(opt_g, lambda: gan._generator_loss(64, y))
        gan.net.update_ema()

    def ddpm_step():
        step(opt_ddpm, lambda: ddpm.loss(x, y))
        ddpm.update_ema()

    cases = {"vae (cvae-digits)": lambda: step(opt_vae, lambda: vae.elbo(x, y)["loss"]),
             "gan (dcgan-digits)": gan_step, "diffusion (ddpm-digits)": ddpm_step}
    rows = []
    for name, fn in cases.items():
        wall, cpu = best_of(fn, repeats)
        rows.append({"family": name, "ms_per_step": 1000 * wall, "cpu_ms_per_step": 1000 * cpu})
    return rows


def quality_rows(n: int) -> list[dict]:
    import zoo
    from zoo.data.digits import SPEC, digits_split
    from zoo.metrics import generator_metrics, real_data_floor
    from zoo.evaluate import build_system

    real, train = digits_split("test")[0], digits_split("train")[0]
    extractor = SPEC.feature_extractor
    floor = real_data_floor(train, real, extractor)
    rows = [{"model": "real data (train vs test)", **floor, "fid_ratio": 1.0}]
    for name in IMAGE_MODELS:
        model = zoo.load(name)
        system = build_system(model)
        kwargs = system.metric_sample_kwargs() if hasattr(system, "metric_sample_kwargs") else {}
        out = generator_metrics(model, real, extractor, n=n, seed=0, sample_kwargs=kwargs)
        rows.append({"model": name, **out, "fid_ratio": out["fid"] / floor["fid"]})
    return rows


def table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and 500 samples for FID")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=500, help="sampling batch (default 500)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, n = (2, 500) if args.quick else (5, 2000)
    print(f"# {platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}\n")
    results = {"sampling": sampling_rows(args.batch, repeats), "training": training_rows(repeats),
               "quality": quality_rows(n)}
    print(f"## Sampling throughput (batch {args.batch})\n")
    print(table(results["sampling"], ["model", "sampler", "images_per_s", "images_per_cpu_s"]))
    print("\n## Training step (batch 64)\n")
    print(table(results["training"], ["family", "ms_per_step", "cpu_ms_per_step"]))
    print(f"\n## Quality vs the real-data floor ({n} samples, digits-classifier features, test split)\n")
    print(table(results["quality"], ["model", "fid", "fid_ratio", "kid", "is", "cond_acc"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
