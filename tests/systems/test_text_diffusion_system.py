"""The captioned 5k MNIST and the text-to-image recipe: real Trainer runs, tiny."""

import random
from pathlib import Path

import pytest
import torch

import zoo
from zoo.captions import ATTRIBUTES, HELD_OUT, held_out_mask, read_prompt, words
from zoo.captions import captioned as captioned_text
from zoo.cli import run_lightning
from zoo.data.images import CaptionedMnist5kDataModule
from zoo.models.text_encoder import TextEncoder

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "ddpm-mnist-5k-text.yaml"


@pytest.fixture(scope="module")
def captioned():
    dm = CaptionedMnist5kDataModule(batch_size=16)
    dm.setup()
    return dm


def test_the_held_out_combinations_are_not_in_training(captioned):
    train = captioned.datasets["train"]
    x = torch.stack([train[i][0] for i in range(len(train))])
    assert not held_out_mask(train.labels, words(x)).any()
    assert 3_600 < len(train) < 4_000  # the 4,000 training digits less the held-out ones
    assert len(captioned.datasets["test"]) == 500  # the test split is whole


def test_batches_carry_captions_that_say_the_digit(captioned):
    x, captions, named = next(iter(captioned.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and len(captions) == 16 and named.shape == (16, 3)
    for text, target in zip(captions, named.tolist()):
        assert read_prompt(text)["digit"] == target[0]
    test = captioned.datasets["test"]
    assert [test[i][1] for i in range(5)] == [test[i][1] for i in range(5)]  # fixed outside training
    assert captioned.spec.captions and captioned.spec.name == "mnist-5k-captions"
    assert {d for d, _, _ in HELD_OUT} <= set(range(10)) and all(t in ATTRIBUTES["thickness"] for _, t, _ in HELD_OUT)


def test_the_recipe_smoke_fits_reads_captions_and_exports_a_text_to_image_model(tmp_path):
    """ddpm-mnist-5k-text: the encoder's reading phase, then the denoiser; the export samples from prompts."""
    run_lightning(["fit", "--config", str(RECIPE), "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.default_root_dir", str(tmp_path), "--model.net.base", "8",
                   "--model.net.text_encoder", '{"n_embd": 16, "n_layer": 1, "n_head": 2}',
                   "--model.net.cross_attention_heads", "2", "--model.encoder_steps", "150",
                   "--model.encoder_batch_size", "64", "--data.batch_size", "8", "--trainer.callbacks", "[]"])
    model = zoo.load(str(tmp_path / "version_0" / "pretrained"))
    assert model.extra_config["datamodule"]["name"] == "mnist-5k-captions"
    assert model.sample(2, prompt="a thick 7", steps=2, seed=0).shape == (2, 1, 28, 28)
    # the reading phase taught the encoder: its loss on fresh captions is well below an untrained one's
    rng = random.Random(0)
    pairs = [captioned_text(rng.randrange(10), {"thickness": rng.randrange(3), "slant": rng.randrange(3)}, rng)
             for _ in range(200)]
    texts, targets = [p for p, _ in pairs], torch.tensor([t for _, t in pairs])
    with torch.no_grad():
        trained = model.text_encoder.reading_loss(texts, targets).item()
        untrained = TextEncoder(**model.text_encoder.init_args).reading_loss(texts, targets).item()
    assert trained < 0.8 * untrained
