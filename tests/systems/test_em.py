import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.models.gmm import GMM
from zoo.systems.em import EMSystem
from zoo.systems.gmm import GMMSystem
from zoo.data.digits import SPEC as DIGITS

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.accelerator", "cpu"]
# Continuous pixels (no dequantisation noise, so runs are deterministic), float64, 3 EM iterations.
EXACT = ["--config", str(ROOT / "recipes" / "gmm-digits.yaml"), "--model.net", '{"levels": null}',
         "--model.net.n_components", "3", "--model.net.covariance_type", "diag", "--model.net.reg_covar", "0.01",
         "--trainer.max_epochs", "3", "--trainer.precision", "64-true", "--trainer.limit_val_batches", "0",
         "--trainer.callbacks", "[]", *QUIET]


def test_recipe_smoke_fit_logs_em_metrics_and_exports(tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "gmm-digits.yaml"), "--trainer.max_epochs", "2",
                   "--trainer.limit_val_batches", "1", "--model.net.n_components", "2",
                   "--trainer.default_root_dir", str(tmp_path), *QUIET])
    run = tmp_path / "version_0"
    model = zoo.load(str(run / "pretrained"))
    assert isinstance(model, GMM) and model.sample(3, seed=0).shape == (3, 1, 8, 8)
    csv = (run / "metrics.csv").read_text()
    assert csv.count("train/bic") == 1 and "val/log_likelihood" in csv


def test_ddp_two_processes_give_the_parameters_of_one(tmp_path):
    """1,257 training images: DistributedSampler pads rank 1 with a repeat, which the E-step must drop."""
    run_lightning(["fit", *EXACT, "--trainer.default_root_dir", str(tmp_path / "one")])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "fit", *EXACT, "--trainer.devices", "2",
                          "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    one = zoo.load(str(tmp_path / "one" / "version_0" / "pretrained")).state_dict()
    two = zoo.load(str(tmp_path / "two" / "version_0" / "pretrained")).state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-7, msg=key)
    assert not torch.equal(one["mixture.means"], GMM(n_components=3).fit_to_data(DIGITS).mixture.means)  # it trained
    lines = (tmp_path / "one" / "version_0" / "metrics.csv").read_text().splitlines()
    col = lines[0].split(",").index("train/log_likelihood")
    lls = [float(row.split(",")[col]) for row in lines[1:] if row.split(",")[col]]
    assert len(lls) == 3 and all(b >= a - 1e-9 * abs(a) for a, b in zip(lls, lls[1:])), lls  # EM never decreases


def test_em_system_needs_a_net():
    with pytest.raises(ValueError, match="net is required"):
        EMSystem()
    with pytest.raises(ValueError, match="init_samples must be an integer >= 0"):
        GMMSystem(init_samples=-1)
