"""Self-attention at the UNet's lowest resolution (DDPM's ``attention_heads``), and the samplers' timestep spacings."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.layers.unet import SelfAttention, UNet
from zoo.models.diffusion import DDPM


def attention_ddpm(image_size, channels, **kwargs):
    torch.manual_seed(0)
    model = DDPM(image_size=image_size, channels=channels, base=8, channel_mults=[1, 2, 2], attention_heads=2,
                 schedule={"timesteps": 50}, **kwargs).eval()
    for block in (m for m in model.unet.modules() if isinstance(m, SelfAttention)):  # not the identity of a fresh one
        torch.nn.init.normal_(block.proj.weight, std=0.3)
    torch.nn.init.normal_(model.unet.out[-1].weight, std=0.3)
    model.ema.load_state_dict(model.unet.state_dict())
    return model


@pytest.mark.parametrize("image_size, channels, lowest", [(28, 1, 7), (32, 3, 8)])
def test_attention_ddpm_builds_trains_and_samples(image_size, channels, lowest):
    model = attention_ddpm(image_size, channels)
    blocks = {name: m for name, m in model.unet.named_modules() if isinstance(m, SelfAttention)}
    assert sorted(blocks) == ["down.2.2", "mid_attention", "up.0.2"]  # the lowest down level, the middle, the lowest up
    for block in blocks.values():  # width 8 * 2 = 16 in 2 heads
        assert block.heads == 2 and block.qkv.weight.shape == (48, 16) and block.proj.weight.shape == (16, 16)
    keys = model.state_dict().keys()
    assert {"unet.mid_attention.qkv.weight", "unet.down.2.2.norm.weight", "ema.up.0.2.proj.bias"} <= set(keys)
    plain = DDPM(image_size=image_size, channels=channels, base=8, channel_mults=[1, 2, 2], schedule={"timesteps": 50})
    extra = sum(p.numel() for p in model.unet.parameters()) - sum(p.numel() for p in plain.unet.parameters())
    assert extra == 3 * (2 * 16 + 16 * 48 + 48 + 16 * 16 + 16)  # norm, qkv, proj of three blocks
    seen = []  # the attention runs over the lowest resolution's positions
    hook = blocks["mid_attention"].register_forward_hook(lambda m, args, out: seen.append(out.shape))
    model.train()
    x = torch.rand(4, channels, image_size, image_size)
    loss = model.loss(x)
    loss.backward()
    hook.remove()
    assert seen == [(4, 16, lowest, lowest)] and 0.1 < loss.item() < 10
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in blocks["mid_attention"].parameters())
    out = model.eval().sample(2, seed=0, steps=3)
    assert out.shape == (2, channels, image_size, image_size) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, model.sample(2, seed=0, steps=3))


def test_attention_ddpm_round_trips(tmp_path):
    model = attention_ddpm(28, 1, num_classes=10)
    model.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path)
    assert type(loaded) is DDPM and loaded.init_args == model.init_args and loaded.init_args["attention_heads"] == 2
    own, again = model.state_dict(), loaded.state_dict()
    assert own.keys() == again.keys() and all(torch.equal(own[k], again[k]) for k in own)
    assert torch.equal(loaded.sample(2, seed=0, steps=3, labels=4), model.sample(2, seed=0, steps=3, labels=4))
    again_path = tmp_path / "again"
    loaded.save_pretrained(again_path)
    assert (again_path / "model.safetensors").read_bytes() == (tmp_path / "model.safetensors").read_bytes()


def test_no_attention_keeps_the_old_layout():
    from safetensors import safe_open

    packaged = Path(zoo.__file__).parent / "pretrained" / "ddpm-mnist-5k" / "model.safetensors"
    with safe_open(packaged, "pt") as f:  # a checkpoint saved before attention existed
        keys = set(f.keys())
    model = DDPM(image_size=28, channels=1, base=24, channel_mults=[1, 2, 2], num_classes=10)
    assert set(model.state_dict()) == keys and model.init_args["attention_heads"] == 0
    assert not any(isinstance(m, SelfAttention) for m in UNet(1, 8, (1, 2)).modules())


def test_self_attention_is_multi_head_attention_with_a_residual():
    torch.manual_seed(0)
    block = SelfAttention(16, 4)
    x = torch.randn(3, 16, 5, 5)
    torch.testing.assert_close(block(x), x)  # a fresh block is the identity
    torch.nn.init.normal_(block.proj.weight)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    mha.in_proj_weight.data, mha.in_proj_bias.data = block.qkv.weight.data, block.qkv.bias.data
    mha.out_proj.weight.data, mha.out_proj.bias.data = block.proj.weight.data, block.proj.bias.data
    y = F.group_norm(x, 8, block.norm.weight, block.norm.bias).flatten(2).transpose(1, 2)  # (N, HW, C)
    expected = x + mha(y, y, y, need_weights=False)[0].transpose(1, 2).reshape(3, 16, 5, 5)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(attention_heads=3), "attention_heads 3 must divide the lowest width base * channel_mults[-1] = 64"),
    (dict(attention_heads=-1), "attention_heads must be an integer in 0..64"),
    (dict(attention_heads=True), "attention_heads must be int, got True"),
])
def test_bad_attention_config(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DDPM(base=32, channel_mults=[1, 2], **kwargs)


def test_timestep_spacings_are_diffusers():
    diffusers = pytest.importorskip("diffusers")
    model = DDPM(image_size=8, channels=1, base=8)
    assert model.timesteps(4) == [999, 666, 333, 0]  # linspace: what sample uses, unchanged
    assert model.timesteps(50, "leading")[:2] == [980, 960] and model.timesteps(50, "trailing")[:2] == [999, 979]
    for spacing in ("leading", "trailing"):
        for steps in (1, 7, 50, 1000):
            scheduler = diffusers.DDIMScheduler(timestep_spacing=spacing)
            scheduler.set_timesteps(steps)
            assert model.timesteps(steps, spacing) == scheduler.timesteps.tolist(), (spacing, steps)
    with pytest.raises(ValueError, match="spacing must be one of"):
        model.timesteps(5, "karras")


def test_denoise_is_the_chain_sample_runs():
    model = attention_ddpm(28, 1)
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # what sample(seed=0) draws first
    expected = model.sample(2, seed=0, steps=4)
    torch.testing.assert_close((model.denoise(x_T, model.timesteps(4)) + 1) / 2, expected, atol=0, rtol=0)


@torch.no_grad()
def test_ddim_agrees_with_diffusers_ddim_scheduler():
    """genzoo's DDIM steps = diffusers' DDIMScheduler (clipped x0, eps recomputed from it) on the same network."""
    diffusers = pytest.importorskip("diffusers")
    model = attention_ddpm(28, 1)
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=50, trained_betas=model.schedule.betas().tolist(),
                                        clip_sample=True, set_alpha_to_one=True, timestep_spacing="leading")
    scheduler.set_timesteps(10)
    ts = model.timesteps(10, "leading")
    assert scheduler.timesteps.tolist() == ts
    x = x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        x = scheduler.step(model.ema(x, t.expand(3)), t, x, use_clipped_model_output=True).prev_sample
    # diffusers' float32 cumprod of betas, and batched kernels that differ in the last bits between runs
    torch.testing.assert_close(model.denoise(x_T, ts), x, atol=5e-5, rtol=0)
