"""TextEncoder and TextDDPM: tokens, padding, prompts, guidance, the bad-input messages, save/load alone."""

import warnings

import pytest
import torch

import zoo
from zoo.layers.unet import UNet
from zoo.models.text_diffusion import TextDDPM
from zoo.models.text_encoder import PAD, START, UNK, TextEncoder

ENCODER = {"n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 24}


def tiny(seed: int = 0) -> TextDDPM:
    torch.manual_seed(seed)
    model = TextDDPM(image_size=8, channels=1, base=8, channel_mults=[1, 2], schedule={"timesteps": 100},
                     text_encoder=ENCODER, cross_attention_heads=2)
    for p in model.ema.parameters():  # the zero-initialised output layers would hide the prompt's effect
        p.data.normal_(0, 0.2)
    return model.eval()


def test_tokens_are_lowercased_with_start_unknown_and_padding():
    enc = TextEncoder(**ENCODER)
    ids, mask = enc.tokenize(["Ab", "", "é"])
    assert ids[:, 0].tolist() == [START] * 3
    assert ids[0, 1:].tolist() == [enc.ids["a"], enc.ids["b"]]
    assert ids[1].tolist() == [START, PAD, PAD] and mask[1].tolist() == [True, False, False]
    assert ids[2, 1] == UNK  # outside the alphabet: <unk>, never an error


def test_a_prompt_reads_the_same_whatever_it_is_batched_with():
    enc = TextEncoder(**ENCODER).eval()
    alone_states, _, alone_pooled = enc.encode(["a thin 2"])
    states, mask, pooled = enc.encode(["a thin 2", "a much longer prompt than that"])
    assert torch.allclose(states[0, :mask[0].sum()], alone_states[0], atol=1e-5)
    assert torch.allclose(pooled[0], alone_pooled[0], atol=1e-5)
    assert (states[0, mask[0].sum():] == 0).all()


def test_a_prompt_longer_than_the_context_is_cut_with_a_warning():
    enc = TextEncoder(**ENCODER)
    with pytest.warns(UserWarning, match="cut to the text encoder's 23"):
        ids, _ = enc.tokenize(["x" * 100])
    assert ids.shape == (1, 24)


def test_the_encoder_saves_and_loads_alone(tmp_path):
    model = tiny()
    model.text_encoder.save_pretrained(tmp_path / "encoder")
    loaded = zoo.load(str(tmp_path / "encoder"))
    assert isinstance(loaded, TextEncoder)
    a, b = model.text_encoder.encode(["a bold 5"]), loaded.encode(["a bold 5"])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(TypeError, match="does not sample"):
        loaded.sample(2)


def test_samples_follow_the_prompt_and_the_seed():
    model = tiny()
    a = model.sample(3, prompt="a thick 7", steps=3, seed=0)
    assert a.shape == (3, 1, 8, 8) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, model.sample(3, prompt="a thick 7", steps=3, seed=0))
    assert not torch.allclose(a, model.sample(3, prompt="a thin 1", steps=3, seed=0))
    mixed = model.sample(2, prompt=["a thick 7", "a thin 1"], steps=3, seed=0)
    assert torch.allclose(mixed[0], a[0], atol=1e-5)  # same noise, same prompt: the same image in any batch


def test_guidance_contrasts_with_the_empty_prompt_and_empty_prompts_ignore_it():
    model = tiny()
    g1 = model.sample(2, prompt="a 3", steps=3, seed=0, guidance=1.0)
    g4 = model.sample(2, prompt="a 3", steps=3, seed=0, guidance=4.0)
    assert not torch.allclose(g1, g4)
    assert torch.equal(model.sample(2, prompt="", steps=3, seed=0, guidance=4.0),
                       model.sample(2, steps=3, seed=0, guidance=1.0))  # empty: unconditional


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": ["a 1"]}, "one str or a list of n=2 str, got a list of 1"),
    ({"prompt": 7}, "prompt must be a str or a list of str, got int"),
    ({"guidance": -1.0}, "guidance must be None or a number >= 0"),
    ({"labels": 3}, "not conditioned on a labels; its conditions: prompt"),
])
def test_bad_sampling_input_is_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        tiny().sample(2, steps=2, **kwargs)


def test_a_prompt_to_a_model_without_text_names_its_conditions():
    ddpm = zoo.create("diffusion", image_size=8, channels=1, base=8, num_classes=10)
    with pytest.raises(ValueError, match="not conditioned on a prompt; its conditions: labels"):
        ddpm.sample(2, prompt="a 7")


def test_contradictory_prompts_warn_and_still_sample():
    with pytest.warns(UserWarning, match="more than one thickness"):
        assert tiny().sample(1, prompt="a thick thin 3", steps=2, seed=0).shape == (1, 1, 8, 8)


def test_the_loss_trains_the_unet_not_a_frozen_encoder():
    model = tiny().train()
    model.text_encoder.requires_grad_(False)
    loss = model.loss(torch.rand(4, 1, 8, 8), ["a 1", "a 2", "", "a thick 9"], generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.unet.parameters())


def test_cross_attention_adds_no_keys_to_a_unet_without_text():
    plain, text = UNet(1, 8, (1, 2)), UNet(1, 8, (1, 2), context_dim=16, cross_attention_heads=2)
    assert set(plain.state_dict()) < set(text.state_dict())
    assert not any("cross" in k or "pooled" in k for k in plain.state_dict())


def test_data_without_captions_is_refused():
    from zoo.data.images import MNIST_5K_SPEC

    with pytest.raises(ValueError, match="has no captions"):
        TextDDPM(text_encoder=ENCODER, cross_attention_heads=2).fit_to_data(MNIST_5K_SPEC)


def test_save_load_round_trip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "t2i")
    loaded = zoo.load(str(tmp_path / "t2i"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(model.sample(2, prompt="a 4", steps=2, seed=1), loaded.sample(2, prompt="a 4", steps=2, seed=1))
