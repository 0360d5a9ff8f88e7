"""Your own data: a 30-line 32x32 RGB datamodule trains the VAE and DDPM recipes (callbacks on) and
``genzoo eval`` evaluates the result; nothing assumes 8x8 digits."""

import json
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo.cli import main, run_lightning

ROOT = Path(__file__).resolve().parents[2]

OWN_DATA = textwrap.dedent('''
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.data.spec import DataSpec


    class Squares(L.LightningDataModule):
        """32x32 RGB images of one coloured square each, 256 levels; the label is its colour (3 classes)."""

        spec = DataSpec(kind="image", name="squares", image_shape=(3, 32, 32), num_classes=3, levels=256,
                        class_names=("red", "green", "blue"), description="coloured squares, 32x32 RGB")

        def __init__(self, n: int = 48, batch_size: int = 16, seed: int = 0):
            super().__init__()
            self.save_hyperparameters()

        def setup(self, stage=None):
            g = torch.Generator().manual_seed(self.hparams.seed)
            labels = torch.randint(3, (self.hparams.n,), generator=g)
            x = torch.zeros(self.hparams.n, 3, 32, 32)
            for i, (c, (r, k)) in enumerate(zip(labels, torch.randint(0, 24, (self.hparams.n, 2), generator=g))):
                x[i, c, r:r + 8, k:k + 8] = 1.0
            self.data = TensorDataset(x, labels)

        def train_dataloader(self):
            return DataLoader(self.data, batch_size=self.hparams.batch_size, shuffle=True)

        val_dataloader = test_dataloader = lambda self: DataLoader(self.data, batch_size=self.hparams.batch_size)
''')

TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu", "--trainer.check_val_every_n_epoch", "1"]


@pytest.fixture
def own_data(tmp_path, monkeypatch):
    (tmp_path / "own_data.py").write_text(OWN_DATA)
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tmp_path / "data.yaml"
    recipe.write_text("data:\n  class_path: own_data.Squares\n  init_args:\n    n: 48\n")
    return recipe


@pytest.mark.parametrize("recipe, extra", [
    ("vae-digits", ["--model.iwae_k", "4"]),
    ("cvae-digits", ["--model.iwae_k", "4"]),
    ("ddpm-digits", ["--model.net.base", "8", "--model.metric_steps", "2", "--trainer.callbacks+=ImageQuality",
                     "--trainer.callbacks.n=8", "--trainer.callbacks.every_n_epochs=1"]),
])
def test_a_recipe_trains_on_32x32_rgb_and_genzoo_eval_evaluates_it(recipe, extra, own_data, tmp_path, capsys):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / f"{recipe}.yaml"), "--data", "own_data.Squares",
                   "--data.n", "48", "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY, *extra])
    folder = tmp_path / "runs" / "version_0" / "pretrained"
    model = zoo.load(str(folder))
    assert model.image_shape == (3, 32, 32) and model.sample(2, seed=0).shape == (2, 3, 32, 32)
    assert model.num_classes == (None if recipe == "vae-digits" else 3)  # num_classes: data -> the data's 3
    config = json.loads((folder / "config.json").read_text())
    assert "datamodule" not in config  # the user's own class is never named in a saved folder
    assert config["data_spec"]["name"] == "squares" and config["data_spec"]["image_shape"] == [3, 32, 32]
    assert list((tmp_path / "runs" / "version_0" / "samples").glob("*.png"))
    capsys.readouterr()
    assert main(["eval", str(folder), "--config", str(own_data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert ("elbo" in metrics) if "vae" in recipe else ("loss" in metrics)
    assert "fid" not in metrics  # the squares name no feature extractor: no FID rather than a wrong one
    assert main(["eval", str(folder)]) == 2  # no registered datamodule recorded: one line, how to evaluate it
    assert "records no registered datamodule" in capsys.readouterr().err


def test_num_classes_null_on_the_command_line_makes_an_unconditional_model(tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "cvae-digits.yaml"), "--model.net.num_classes", "null",
                   "--trainer.default_root_dir", str(tmp_path), *TINY])
    assert zoo.load(str(tmp_path / "version_0" / "pretrained")).num_classes is None


def test_a_size_that_disagrees_with_the_data_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"image_size=16 but the data has 8"):
        run_lightning(["fit", "--config", str(ROOT / "recipes" / "vae-digits.yaml"), "--model.net.image_size", "16",
                       "--trainer.default_root_dir", str(tmp_path), *TINY])


def test_no_recipe_types_a_size_the_data_determines():
    import yaml

    sizes = {"image_size", "channels", "levels", "image_shape", "n_symbols", "vocab_size", "n_features", "vocab"}
    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        net = yaml.safe_load(recipe.read_text())["model"]["init_args"].get("net") or {}
        net = net.get("init_args", net)
        typed = {k: v for k, v in net.items() if k in sizes and v != "data"}
        typed.update({k: v for k, v in net.items() if k == "num_classes" and v not in ("data", None)})
        assert not typed, f"{recipe.name} types {typed}: the data determines them"
