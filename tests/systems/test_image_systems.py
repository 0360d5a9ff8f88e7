"""Smoke fits of the GAN, diffusion and classifier recipes, the ImageQuality callback, and their systems' losses."""

import csv
import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.models.gan import GAN
from zoo.systems.gan import GANSystem
from zoo.data.digits import SPEC as DIGITS

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu", "--trainer.check_val_every_n_epoch", "1"]
SMALL_NETS = {"dcgan-digits": ["--model.net.hidden", "8", "--model.net.latent_dim", "4"],
              "ddpm-digits": ["--model.net.base", "8", "--model.metric_steps", "2"],
              "cvae-digits": ["--model.net.hidden", "8", "--model.iwae_k", "2"],  # the callback serves the VAE too
              "digits-classifier": ["--model.net.hidden", "4"], "mnist-5k-classifier": ["--model.net.hidden", "4"]}
QUALITY = json.dumps([{"class_path": "zoo.systems.callbacks.ImageQuality", "init_args": {"n": 40, "every_n_epochs": 1}}])


def logged(run: Path) -> dict[str, float]:
    """The last logged value of every metric in a run's metrics.csv."""
    values = {}
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v})
    return values


@pytest.mark.parametrize("name", ["dcgan-digits", "ddpm-digits", "cvae-digits", "digits-classifier",
                                  "mnist-5k-classifier"])
def test_recipe_smoke_fit_exports_a_loadable_model(name, tmp_path):
    extra = [] if name.endswith("classifier") else ["--trainer.callbacks", QUALITY]
    run_lightning(["fit", "--config", str(ROOT / "recipes" / f"{name}.yaml"), "--trainer.default_root_dir",
                   str(tmp_path), *TINY, *SMALL_NETS[name], *extra])
    run = tmp_path / "version_0"
    model = zoo.load(str(run / "pretrained"))
    metrics = logged(run)
    if name.endswith("classifier"):
        assert model.predict(torch.rand(2, *model.image_shape)).shape == (2,) and 0 <= metrics["val/acc"] <= 1
        return
    assert model.sample(3, seed=0, labels=3).shape == (3, 1, 8, 8)
    assert metrics["val/fid"] > 0 and 1 <= metrics["val/is"] <= 10 and 0 <= metrics["val/cond_acc"] <= 1
    assert "val/kid" in metrics


def test_gan_alternates_n_critic_discriminator_steps_per_generator_step():
    torch.manual_seed(0)
    system = GANSystem(GAN(latent_dim=4, hidden=4, num_classes=10).fit_to_data(DIGITS), loss="wgan-gp", n_critic=3)
    opt_g, opt_d = system.configure_optimizers()
    steps = {"g": 0, "d": 0}
    system.optimizers = lambda: (_Counting(opt_g, steps, "g"), _Counting(opt_d, steps, "d"))
    system.manual_backward = lambda loss: loss.backward()
    system.log_dict = lambda *a, **k: None
    ema_before = [p.clone() for p in system.net.generator_ema.parameters()]
    batch = (torch.rand(8, 1, 8, 8), torch.randint(10, (8,)))
    for i in range(6):
        system.training_step(batch, i)
    assert steps == {"d": 6, "g": 2}
    assert any(not torch.equal(a, b) for a, b in zip(system.net.generator_ema.parameters(), ema_before))
    assert all(p.requires_grad for p in system.net.discriminator.parameters())


class _Counting:
    def __init__(self, opt, counts, key):
        self.opt, self.counts, self.key = opt, counts, key

    def zero_grad(self, set_to_none=True):
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.counts[self.key] += 1
        self.opt.step()


@pytest.mark.parametrize("kwargs, message", [(dict(loss="wgan"), "loss must be one of"),
                                             (dict(n_critic=0), "n_critic must be an integer >= 1")])
def test_gan_system_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GANSystem(GAN(latent_dim=4, hidden=4).fit_to_data(DIGITS), **kwargs)
