"""Conformance over every family, every recipe and every pretrained name (timm's and litgpt's style):
create, fill sizes from the data, save/load identity, init args equal to the signature, recipes parse and
smoke-fit, and golden output slices of the packaged checkpoints (diffusers' expected_slice)."""

import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.cli import run_lightning
from zoo.data.digits import SPEC as DIGITS
from zoo.data.digits import digits_split
from zoo.data.spec import DataSpec
from zoo.registry import FAMILIES, create
from zoo.tokenizers import char_tokenizer

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TEXT = "To be, or not to be, that is the question.\n"

#: a small model of each family, its data-derived sizes left to the data
SMALL = {
    "vae": dict(latent_dim=4, hidden=8, num_classes="data"),
    "gan": dict(latent_dim=8, hidden=8, num_classes="data"),
    "diffusion": dict(base=8, num_classes="data", schedule={"timesteps": 50}),
    "gpt": dict(n_positions=16, n_embd=16, n_layer=1, n_head=2),
    "gmm": dict(n_components=2),
    "hmm": dict(n_states=3),
    "nb": dict(),
    "classifier": dict(hidden=4),
    "text-diffusion": dict(base=8, channel_mults=[1, 2], schedule={"timesteps": 50},
                           text_encoder={"n_embd": 16, "n_layer": 1, "n_head": 2}, cross_attention_heads=2),
}
SPECS = {"gpt": DataSpec(kind="text", name="to-be", vocab_size=char_tokenizer(TEXT).get_vocab_size()),
         "text-diffusion": DataSpec(kind="image", name="captioned-digits", image_shape=(1, 8, 8), num_classes=10,
                                    levels=17, captions=True),
         "hmm": DataSpec(kind="sequence", name="to-be", vocab="".join(sorted(set(TEXT))))}


def built(family: str):
    torch.manual_seed(0)
    fresh = create(family, **SMALL[family])
    assert fresh.pending  # no weights until the data says its sizes
    model = fresh.fit_to_data(SPECS.get(family, DIGITS))
    if family == "gpt":
        model.set_tokenizer(char_tokenizer(TEXT))
    return model.eval()


def test_every_family_is_covered():
    assert set(SMALL) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sizes_come_from_the_data_and_init_args_equal_the_signature(family):
    model = built(family)
    assert not model.pending and sum(p.numel() for p in model.parameters()) > 0
    signature = [p for p in inspect.signature(type(model).__init__).parameters if p != "self"]
    assert sorted(model.init_args) == sorted(signature)  # every argument is saved, nothing else
    json.dumps(model.init_args)  # and JSON-able
    assert model.fit_to_data(SPECS.get(family, DIGITS)) is model  # sizes agree: nothing rebuilt


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_load_identity(family, tmp_path):
    model = built(family)
    model.save_pretrained(tmp_path / "a")
    loaded = zoo.load(str(tmp_path / "a"))
    assert type(loaded) is type(model) and loaded.init_args == model.init_args and not loaded.training
    own, again = model.state_dict(), loaded.state_dict()
    assert own.keys() == again.keys() and all(torch.equal(own[k], again[k]) for k in own)
    if model.outputs != "labels":
        fast = {k: v for k, v in {"steps": 2, "max_new_tokens": 4, "length": 5}.items() if k in model.accepts()}
        a, b = model.sample(2, seed=0, **fast), loaded.sample(2, seed=0, **fast)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    loaded.save_pretrained(tmp_path / "b")
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


#: seeded outputs of the packaged checkpoints: a change of sampling code or weights shows here first
GOLDEN = {
    "vae-digits": ({}, [0.3738, 0.8075, 0.1186, 0.0, 0.0, 0.0886]),
    "cvae-digits": ({}, [0.0788, 0.6267, 0.0263, 0.0, 0.0001, 0.5648]),
    "dcgan-digits": ({}, [0.0385, 0.9398, 0.7314, 0.0001, 0.0002, 0.3556]),
    "ddpm-digits": ({"steps": 5}, [0.3876, 0.6968, 0.1683, 0.0011, 0.0003, 0.5474]),
    "gmm-digits": ({}, [0.1875, 0.0, 0.8125, 0.125, 0.0, 0.1875]),
    "nb-digits": ({}, [0.6826, 0.8474, 0.6309, 0.0524, 0.2528, 0.4712]),
    "gpt-shakespeare-char": ({"max_new_tokens": 20}, "thablassiony her the"),
    "hmm-shakespeare-char": ({"length": 20}, "l a lowmyuten sepect"),
    "gpt-moses": ({}, "COCCCNC(=O)c1cc2cccc"),
    "vae-mnist-5k": ({}, [0.0, 0.0, 0.0, 0.0001, 0.2256, 0.9737]),
    "ddpm-mnist-5k": ({"steps": 5}, [0.5337, 0.0406, 0.9573, 0.9763, 1.0, 0.9317]),
    "gmm-mnist-5k": ({}, [1.0, 0.5804, 1.0, 0.0, 0.0, 0.0]),
    "nb-mnist-5k": ({}, [1.0, 0.3014, 1.0, 0.0149, 0.2216, 0.0]),
    "dcgan-mnist-5k": ({}, [0.8591, 0.8827, 0.7894, 0.6387, 0.5811, 0.4579]),
    "ddpm-mnist-5k-text": ({"steps": 5, "prompt": "a thick 7 leaning right"},
                           [0.0061, 0.0619, 0.0206, 0.0, 0.0761, 0.0095]),
}
#: where a slice starts in the flattened samples (default 20): 28x28 digits are blank near the corner
SLICE_AT = {"vae-mnist-5k": 400, "ddpm-mnist-5k": 400, "gmm-mnist-5k": 400, "nb-mnist-5k": 400,
            "dcgan-mnist-5k": 400, "ddpm-mnist-5k-text": 400}


def test_every_generator_has_a_golden_slice():
    assert set(GOLDEN) == set(zoo.list_models(task="generator"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_slices(name):
    options, expected = GOLDEN[name]
    out = zoo.load(name).sample(2, seed=0, **options)
    if isinstance(expected, str):
        assert out[0][:len(expected)] == expected
    else:
        start = SLICE_AT.get(name, 20)
        torch.testing.assert_close(out.flatten()[start:start + 6], torch.tensor(expected), atol=2e-4, rtol=0)


def test_the_feature_extractors_golden_slices(digits_test):
    from zoo.data.images import mnist_5k_split

    logits = zoo.load("digits-classifier")(digits_test[0][:1]).flatten()[:5]
    torch.testing.assert_close(logits, torch.tensor([-0.6063, -7.1538, 15.3267, -2.9137, -1.937]), atol=2e-3, rtol=0)
    logits = zoo.load("mnist-5k-classifier")(mnist_5k_split("test")[0][:1]).flatten()[:5]
    torch.testing.assert_close(logits, torch.tensor([12.6467, -14.0528, 0.8557, -7.5511, -6.7423]), atol=2e-3, rtol=0)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_against_the_signatures(recipe, capsys):
    with pytest.raises(SystemExit) as done:
        run_lightning(["fit", "--config", str(recipe), "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"].startswith("zoo.systems.")
    assert config["data"]["class_path"].startswith("zoo.data.")


#: where each recipe is smoke-fitted from the command line (a tiny real Trainer run that exports a loadable model)
SMOKE_FITS = {
    "vae-digits": "systems/test_vae_system.py", "cvae-digits": "systems/test_image_systems.py",
    "dcgan-digits": "systems/test_image_systems.py", "ddpm-digits": "systems/test_image_systems.py",
    "digits-classifier": "systems/test_image_systems.py", "gmm-digits": "systems/test_em.py",
    "gpt-shakespeare-char": "systems/test_gpt_system.py", "gpt-shakespeare-bpe": "systems/test_gpt_system.py",
    "gpt-shakespeare-char-finetune": "systems/test_gpt_system.py",
    "hmm-shakespeare-char": "systems/test_hmm_system.py", "nb-digits": "test_conformance.py",
    "mnist-5k-classifier": "systems/test_image_systems.py", "nb-mnist-5k": "data/test_images.py",
    "gmm-mnist-5k": "data/test_images.py", "vae-mnist-5k": "data/test_images.py",
    "ddpm-mnist-5k": "data/test_images.py", "dcgan-mnist-5k": "data/test_images.py",
    "ddpm-imagefolder": "data/test_images.py", "vae-imagefolder": "data/test_images.py",
    "dcgan-imagefolder": "data/test_images.py", "gpt-moses": "data/test_molecules.py",
    "hmm-moses": "data/test_molecules.py", "ddpm-mnist-5k-text": "systems/test_text_diffusion_system.py",
    "gmm-mnist-5k-oneclass": "data/test_images.py",
}


def test_every_recipe_has_a_smoke_fit():
    assert set(SMOKE_FITS) == {r.stem for r in RECIPES}
    for recipe, test_file in SMOKE_FITS.items():
        assert f"{recipe}" in (ROOT / "tests" / test_file).read_text(), (recipe, test_file)


def test_nb_digits_recipe_smoke_fit(tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "nb-digits.yaml"), "--trainer.default_root_dir",
                   str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    model = zoo.load(str(tmp_path / "version_0" / "pretrained"))
    x, y = digits_split("test")
    assert (model.predict(x) == y).float().mean() > 0.85  # one EM epoch is the whole closed-form fit
    assert model.extra_config["data_spec"]["name"] == DIGITS.name
