import pytest
import torch

import zoo
from zoo.data.digits import SIZES, DigitsDataModule, digits_split


def test_split_sizes_scaling_and_determinism():
    splits = {s: digits_split(s) for s in ("train", "val", "test")}
    assert {s: len(x) for s, (x, _) in splits.items()} == SIZES == {"train": 1257, "val": 270, "test": 270}
    x, y = splits["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal((x * 16).round(), x * 16)  # exactly the 17 levels value / 16
    assert set(y.tolist()) == set(range(10))
    assert torch.equal(digits_split("test")[0], splits["test"][0])
    assert not torch.equal(digits_split("test", seed=1)[0], splits["test"][0])


def test_splits_are_disjoint_and_cover_the_dataset():
    rows = torch.cat([digits_split(s)[0].flatten(1) for s in ("train", "val", "test")])
    assert len(rows) == 1797


def test_datamodule_batches():
    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 270


def test_small_real_training_set_plus_synthetic_digits():
    real_x, real_y = digits_split("train")
    dm = DigitsDataModule(train_per_class=3, synthetic="cvae-digits", synthetic_per_class=4, synthetic_seed=1)
    with pytest.raises(ValueError, match=r"names a model: hand it over with provide_synthetic"):
        dm.setup("fit")  # a data module receives the model, it never loads one
    dm.provide_synthetic(zoo.load("cvae-digits"))
    dm.setup("fit")
    x, y = dm.datasets["train"].tensors
    assert len(x) == 10 * 3 + 10 * 4 and torch.bincount(y).tolist() == [7] * 10
    first_three = torch.cat([torch.nonzero(real_y == c)[:3, 0] for c in range(10)]).sort().values
    assert torch.equal(x[:30], real_x[first_three]) and torch.equal(y[:30], real_y[first_three])
    assert y[30:].tolist() == [c for c in range(10) for _ in range(4)]  # synthetic, class by class
    assert x[30:].shape == (40, 1, 8, 8) and 0 <= x[30:].min() and x[30:].max() <= 1
    assert len(dm.datasets["test"]) == 270 and len(dm.datasets["val"]) == 270  # real only
    again = DigitsDataModule(train_per_class=3, synthetic="cvae-digits", synthetic_per_class=4, synthetic_seed=1)
    again.provide_synthetic(zoo.load("cvae-digits"))
    again.setup("fit")
    assert torch.equal(again.datasets["train"].tensors[0], x)  # seeded


def test_synthetic_digits_need_a_conditional_digits_model():
    with pytest.raises(ValueError, match="conditional on the 10 digits.*'vae-digits' has num_classes=None"):
        DigitsDataModule(synthetic="vae-digits").provide_synthetic(zoo.load("vae-digits"))
    with pytest.raises(ValueError, match="train_per_class must be an integer in 1..1073741824, got 0"):
        DigitsDataModule(train_per_class=0)
    with pytest.raises(ValueError, match="labelled samples need a class-conditional model"):
        zoo.load("gmm-digits").labelled_samples(5)
    with pytest.raises(ValueError, match="per_class must be a positive integer, got 0"):
        zoo.load("nb-digits").labelled_samples(0)
    x, y = zoo.load("nb-digits").labelled_samples(2, seed=0)
    assert x.shape == (20, 1, 8, 8) and y.tolist() == [c for c in range(10) for _ in range(2)]


def test_genzoo_fit_hands_the_named_synthetic_model_to_the_datamodule(tmp_path):
    from pathlib import Path

    from zoo.cli import run_lightning

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "digits-classifier.yaml"
    run_lightning(["fit", "--config", str(recipe), "--data.train_per_class", "2", "--data.synthetic", "cvae-digits",
                   "--data.synthetic_per_class", "3", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.default_root_dir", str(tmp_path)])
    config = zoo.load(str(tmp_path / "version_0" / "pretrained")).extra_config
    assert config["datamodule"]["init_args"]["synthetic"] == "cvae-digits"  # recorded by name
