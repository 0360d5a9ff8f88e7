import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.systems.vae import VAESystem

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*vae-digits.yaml"))
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_smoke_fit_exports_a_loadable_model(recipe, tmp_path):
    run_lightning(["fit", "--config", str(recipe), "--trainer.default_root_dir", str(tmp_path), *TINY])
    run = tmp_path / "version_0"
    model = zoo.load(str(run / "pretrained"))
    assert model.sample(4, seed=0).shape == (4, 1, 8, 8)
    assert model.extra_config["datamodule"]["name"] == "digits"
    assert model.extra_config["data_spec"]["name"] == "sklearn-digits"
    assert model.extra_config["system"]["init_args"]["iwae_k"] == 1000
    assert (run / "metrics.csv").read_text().count("val/elbo") == 1
    assert list((run / "samples").glob("*.png"))  # the grid of the last epoch


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path):
    system = VAESystem(init_from="vae-digits")
    pretrained = zoo.load("vae-digits")
    assert all(torch.equal(a, b) for a, b in zip(system.net.state_dict().values(), pretrained.state_dict().values()))
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "vae-digits.yaml"), "--model.init_from", "vae-digits",
                   "--trainer.default_root_dir", str(tmp_path), *TINY])
    run = tmp_path / "version_0"
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    delta = max((last[f"net.{k}"] - v).abs().max().item() for k, v in pretrained.state_dict().items())
    assert 0 < delta < 0.05  # training moved it, a little
    zoo.load(str(run / "pretrained"))  # the export: the best validation checkpoint, the parent (step 0) included
    assert "the best validation checkpoint: epoch" in (run / "pretrained" / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown model 'vae-digts'"):
        VAESystem(init_from="vae-digts")


def test_ddp_with_two_cpu_processes(tmp_path):
    """The recipe runs unchanged under Lightning's DDP: 2 processes, gloo."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "recipes" / "vae-digits.yaml"),
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path), *TINY],
        capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log
    assert zoo.load(str(tmp_path / "version_0" / "pretrained")).sample(2, seed=0).shape == (2, 1, 8, 8)
