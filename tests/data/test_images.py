import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
import zoo.images
from zoo.data import images as images_module
from zoo.data.images import ImageFolderDataModule, Mnist5kDataModule, mnist_5k_split


def write_folder(root, classes=("cat", "dog"), per_class=10, size=(40, 30), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def test_class_folders_give_labels_a_seeded_balanced_split_and_a_spec(tmp_path):
    root = write_folder(tmp_path / "pets")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    dm = ImageFolderDataModule(str(root), image_size=16, channels=3, seed=1)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\) of the .* split: broken.png"):
        dm.setup()
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 20 and sizes["val"] >= 2 and sizes["test"] >= 2
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert set(torch.cat([b[1] for b in dm.train_dataloader()]).tolist()) == {0, 1}
    spec = dm.spec
    assert (spec.image_shape, spec.num_classes, spec.class_names, spec.levels) == ((3, 16, 16), 2, ("cat", "dog"), 256)
    again = ImageFolderDataModule(str(root), image_size=16, channels=3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.setup()
    assert torch.equal(again.datasets["test"].images, dm.datasets["test"].images)  # seeded


def test_resize_shorter_side_then_centre_crop_and_grey(tmp_path):
    img = np.zeros((20, 40), dtype=np.uint8)
    img[:, 10:30] = 255  # a white band in the middle of a wide image
    (tmp_path / "a").mkdir()
    Image.fromarray(img, "L").save(tmp_path / "a" / "x.png")
    out = images_module.decode(tmp_path / "a" / "x.png", 10, 1)
    assert out.shape == (1, 10, 10) and out.dtype == np.uint8
    assert out[0, :, 2:8].min() > 200  # the centre crop keeps the band
    assert images_module.decode(tmp_path / "a" / "x.png", 30, 3).shape == (3, 30, 30)  # upscaled


def test_own_train_val_test_folders_and_unlabelled_images(tmp_path):
    for split in ("train", "val", "test"):
        write_folder(tmp_path / "own" / split, per_class=3, seed=len(split))
    dm = ImageFolderDataModule(str(tmp_path / "own"), image_size=8)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [6, 6, 6]
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(12):
        Image.fromarray(np.full((9, 9, 3), i * 20, np.uint8)).save(flat / f"{i}.jpg")
    spec = ImageFolderDataModule(str(flat), image_size=8).spec
    assert spec.num_classes is None and spec.class_names is None


def test_streaming_reads_the_same_images_as_the_cache(tmp_path):
    root = write_folder(tmp_path / "pets", per_class=5)
    cached, streamed = (ImageFolderDataModule(str(root), image_size=8, cache_bytes=c) for c in (2 << 30, 0))
    cached.setup(), streamed.setup()
    assert isinstance(streamed.datasets["val"], images_module._Files)
    for (a, la), (b, lb) in zip(cached.val_dataloader(), streamed.val_dataloader()):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_bad_folders_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()
    with pytest.raises(ValueError, match="is not a folder of images"):
        ImageFolderDataModule(str(tmp_path / "missing")).setup()
    mixed = write_folder(tmp_path / "mixed", per_class=2)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(mixed / "loose.png")
    with pytest.raises(ValueError, match="mixes images and class folders"):
        ImageFolderDataModule(str(mixed)).setup()
    junk = tmp_path / "junk" / "a"
    junk.mkdir(parents=True)
    for i in range(10):
        (junk / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable image"), pytest.warns(UserWarning):
        ImageFolderDataModule(str(tmp_path / "junk")).setup()
    bomb = write_folder(tmp_path / "bomb", per_class=10)
    monkeypatch.setattr(zoo.images, "MAX_PIXELS", 100)
    with pytest.raises(ValueError, match=r"40x30 pixels, more than the 100 genzoo decodes"):
        ImageFolderDataModule(str(bomb)).setup()
    with pytest.raises(ValueError, match="channels must be 1 \\(grey\\) or 3"):
        ImageFolderDataModule(str(bomb), channels=2)


def test_a_recipe_trains_on_a_folder_of_your_own_pngs(tmp_path):
    from pathlib import Path

    from zoo.cli import run_lightning

    root = write_folder(tmp_path / "pets", per_class=10)
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "cvae-digits.yaml"
    run_lightning(["fit", "--config", str(recipe), "--data", "zoo.data.images.ImageFolderDataModule",
                   "--data.root", str(root), "--data.image_size", "16", "--model.iwae_k", "4",
                   "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.default_root_dir", str(tmp_path / "runs")])
    model = zoo.load(str(tmp_path / "runs" / "version_0" / "pretrained"))
    assert model.num_classes == 2 and model.sample(2, labels=1, seed=0).shape == (2, 3, 16, 16)
    assert model.extra_config["data_spec"]["class_names"] == ["cat", "dog"]


def test_mnist_5k_split_is_fixed_balanced_and_disjoint():
    parts = {s: mnist_5k_split(s) for s in ("train", "val", "test")}
    assert [len(parts[s][0]) for s in ("train", "val", "test")] == [4000, 500, 500]
    for s, (x, y) in parts.items():
        assert x.shape[1:] == (1, 28, 28) and torch.bincount(y).tolist() == [len(y) // 10] * 10, s
    train, test = parts["train"][0].flatten(1), parts["test"][0].flatten(1)
    assert not (torch.cdist(test[:50], train) == 0).any()  # no test image is also a training image
    dm = Mnist5kDataModule(batch_size=100)
    dm.setup()
    x, y = next(iter(dm.test_dataloader()))
    assert torch.equal(x, parts["test"][0][:100]) and dm.spec.name == "mnist-5k" and dm.spec.levels == 256


def test_normal_classes_keep_train_and_val_to_the_normal_digits_and_test_whole():
    dm = Mnist5kDataModule(normal_classes=[3, 5])
    dm.setup()
    for split, size in (("train", 800), ("val", 100)):
        labels = torch.stack([dm.datasets[split][i][1] for i in range(len(dm.datasets[split]))])
        assert len(labels) == size and set(labels.tolist()) == {3, 5}, split
    assert len(dm.datasets["test"]) == 500  # every digit: the anomalies are scored there
    dm.setup()  # a second stage keeps them as they are
    assert len(dm.datasets["train"]) == 800
    for bad in ([], [10], ["3"], 3):
        with pytest.raises(ValueError, match="normal_classes must be"):
            Mnist5kDataModule(normal_classes=bad)


def test_the_one_class_recipe_trains_a_detector_that_genzoo_score_uses(tmp_path):
    """The README's one-class commands: fit on digit 0 only, then score the test split (0 normal) by AUROC."""
    from pathlib import Path

    from sklearn.metrics import roc_auc_score

    from zoo.cli import main

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "gmm-mnist-5k-oneclass.yaml"
    assert main(["fit", "--config", str(recipe), "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path)]) == 0
    x, y = mnist_5k_split("test")
    np.save(tmp_path / "test.npy", x.numpy())
    out = tmp_path / "scores.csv"
    assert main(["score", str(tmp_path / "version_0" / "pretrained"), str(tmp_path / "test.npy"), "--out", str(out)]) == 0
    scores = np.loadtxt(out, delimiter=",", skiprows=1)[:, 1]
    assert roc_auc_score((y != 0).numpy(), scores) > 0.97  # 0.995 measured: digit 0 against the other nine


@pytest.mark.parametrize("recipe, extra", [
    ("nb-mnist-5k", []),
    ("gmm-mnist-5k", ["--trainer.max_epochs", "2", "--model.net.n_components", "2", "--model.init_samples", "200"]),
    ("vae-mnist-5k", ["--trainer.max_epochs", "1", "--model.net.hidden", "4", "--model.net.latent_dim", "2",
                      "--model.iwae_k", "2"]),
    ("ddpm-mnist-5k", ["--trainer.max_epochs", "1", "--model.net.base", "8", "--trainer.check_val_every_n_epoch", "1"]),
    ("dcgan-mnist-5k", ["--trainer.max_epochs", "1", "--model.net.hidden", "4", "--model.net.latent_dim", "4",
                        "--trainer.check_val_every_n_epoch", "1"]),
])
def test_the_mnist_5k_recipes_smoke_fit(recipe, extra, tmp_path):
    from pathlib import Path

    from zoo.cli import run_lightning

    run_lightning(["fit", "--config", str(Path(__file__).resolve().parents[2] / "recipes" / f"{recipe}.yaml"),
                   "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.default_root_dir", str(tmp_path), *extra])
    model = zoo.load(str(tmp_path / "version_0" / "pretrained"))
    assert model.sample(2, seed=0, **({"labels": 3} if model.sample_conditions() else {})).shape == (2, 1, 28, 28)
    assert model.extra_config["datamodule"]["name"] == "mnist-5k"


@pytest.mark.parametrize("recipe, extra", [
    ("ddpm-imagefolder", ["--model.net.base", "8"]),
    ("vae-imagefolder", ["--model.net.hidden", "4", "--model.net.latent_dim", "2", "--model.iwae_k", "2"]),
    ("dcgan-imagefolder", ["--model.net.hidden", "4", "--model.net.latent_dim", "4"]),
])
def test_the_imagefolder_recipes_train_sample_and_evaluate_on_your_folder(recipe, extra, tmp_path, capsys):
    """The README's steps: fit a recipe on a folder of RGB PNGs (FID from the folder's own classifier), then
    `genzoo sample --label NAME` and `genzoo eval --config` on the exported model."""
    from pathlib import Path

    from zoo.cli import main

    root = write_folder(tmp_path / "pets", per_class=10)
    config = Path(__file__).resolve().parents[2] / "recipes" / f"{recipe}.yaml"
    assert main(["fit", "--config", str(config), "--data.root", str(root), "--data.image_size", "16",
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.check_val_every_n_epoch", "1",
                 "--trainer.callbacks.n", "20", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path / "runs"),
                 *extra]) == 0
    run = tmp_path / "runs" / "version_0"
    logged = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val/fid" in logged and "val/is" in logged  # the folder-classifier's FID of the quality callback
    model = zoo.load(str(run / "pretrained"))
    assert model.extra_config["data_spec"]["feature_extractor"] == "folder-classifier"
    assert model.sample(2, seed=0).shape == (2, 3, 16, 16)
    options = ["--label", "dog"] if model.sample_conditions() else []
    assert main(["sample", str(run / "pretrained"), "--n", "4", "--out", str(tmp_path / "grid.png"), *options]) == 0
    assert (tmp_path / "grid.png").is_file()
    capsys.readouterr()
    assert main(["eval", str(run / "pretrained"), "--config", str(run / "config.yaml"), "--json"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index("{"):])
    assert metrics["feature_extractor"].startswith("folder-classifier") and metrics["fid"] > 0 < metrics["floor_fid"]


def test_fine_tuning_on_a_folder_of_another_shape_is_one_line_naming_both(tmp_path, capsys):
    from pathlib import Path

    from zoo.cli import main

    root = write_folder(tmp_path / "pets", per_class=4)
    config = Path(__file__).resolve().parents[2] / "recipes" / "ddpm-imagefolder.yaml"
    assert main(["fit", "--config", str(config), "--data.root", str(root), "--model.init_from", "ddpm-mnist-5k",
                 "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("genzoo fit: error: init_from='ddpm-mnist-5k' was trained on image_size=28, channels=1, "
                          "num_classes=10, but the data 'pets' has image_size=32, channels=3, num_classes=2")
    assert not (tmp_path / "runs" / "version_0" / "pretrained").exists()


def test_a_label_name_the_model_does_not_know_is_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["sample", "ddpm-mnist-5k", "--label", "cat", "--n", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "--label 'cat': ddpm-mnist-5k takes one of 0, 1, 2" in capsys.readouterr().err


@pytest.mark.parametrize("recipe, extra", [
    ("gmm-mnist-5k", ["--trainer.max_epochs", "2", "--model.net.n_components", "2", "--model.init_samples", "200"]),
    ("nb-mnist-5k", []),
])
def test_the_probabilistic_families_train_on_a_folder_of_rgb_images(recipe, extra, tmp_path):
    """GMM and naive Bayes model the pixels of 32x32 RGB images as they do MNIST's (sizes from the folder)."""
    from pathlib import Path

    from zoo.cli import main

    root = write_folder(tmp_path / "pets", per_class=10)
    config = Path(__file__).resolve().parents[2] / "recipes" / f"{recipe}.yaml"
    assert main(["fit", "--config", str(config), "--data", "zoo.data.images.ImageFolderDataModule",
                 "--data.root", str(root), "--data.image_size", "32", "--data.batch_size", "8",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--trainer.default_root_dir", str(tmp_path / "runs"), *extra]) == 0
    model = zoo.load(str(tmp_path / "runs" / "version_0" / "pretrained"))
    x = model.sample(2, seed=0)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(model.log_prob(x)).all()
