import math

import zoo
import re

import pytest
import torch

from zoo.models.diffusion import DDPM, NoiseSchedule
from zoo.data.digits import SPEC as DIGITS


@pytest.fixture
def ddpm():
    torch.manual_seed(0)
    model = DDPM(base=8, channel_mults=[1, 2], num_classes=10, schedule={"timesteps": 100}).fit_to_data(DIGITS).eval()
    torch.nn.init.normal_(model.unet.out[-1].weight, std=0.3)  # not the zero predictor of a fresh UNet
    model.ema.load_state_dict(model.unet.state_dict())
    return model


def test_schedules_are_the_published_formulas():
    linear = NoiseSchedule("linear", timesteps=1000).alphas_cumprod()
    assert linear[0].item() == pytest.approx(1 - 1e-4) and linear[1].item() == pytest.approx((1 - 1e-4) * (1 - 1e-4 - 0.0199 / 999))
    cosine = NoiseSchedule("cosine", timesteps=1000).alphas_cumprod()
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert cosine[499].item() == pytest.approx(f(500) / f(0), rel=1e-5)
    assert (cosine.diff() < 0).all() and 0 < cosine[-1] < 1e-3


class Oracle(torch.nn.Module):
    """The exact denoiser of a one-image dataset {x*}: eps = (x_t - √ᾱ x*) / √(1-ᾱ), or v from it."""

    def __init__(self, target, alphas_cumprod, prediction):
        super().__init__()
        self.target, self.ab, self.prediction = target, alphas_cumprod, prediction

    def forward(self, x, t, labels=None):
        ab = self.ab[t].view(-1, 1, 1, 1)
        eps = (x - ab.sqrt() * self.target) / (1 - ab).sqrt()
        return eps if self.prediction == "eps" else ab.sqrt() * eps - (1 - ab).sqrt() * self.target


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("sampler, steps", [("ddim", 10), ("ddim", 1), ("ddpm", 100), ("ddpm", 7)])
def test_samplers_land_on_the_data_with_an_exact_denoiser(prediction, sampler, steps):
    model = DDPM(base=8, prediction=prediction, schedule={"timesteps": 100}).fit_to_data(DIGITS)
    target = torch.rand(1, 1, 8, 8) * 2 - 1  # x* in [-1, 1]
    model.ema = Oracle(target, model.alphas_cumprod, prediction)
    x = model.sample(3, steps=steps, sampler=sampler, seed=0)
    torch.testing.assert_close(x, ((target + 1) / 2).expand(3, -1, -1, -1), atol=1e-3, rtol=0)  # float32 at ᾱ ≈ 0


def test_sample_shapes_seeds_labels_and_guidance(ddpm):
    x = ddpm.sample(4, seed=0, steps=3)
    assert x.shape == (4, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, ddpm.sample(4, seed=0, steps=3)) and not torch.equal(x, ddpm.sample(4, seed=1, steps=3))
    threes = ddpm.sample(4, seed=0, steps=3, labels=3)
    assert torch.equal(threes, ddpm.sample(4, seed=0, steps=3, labels=[3, 3, 3, 3]))
    guided = ddpm.sample(4, seed=0, steps=3, labels=3, guidance=3.0)
    assert not torch.equal(guided, threes)
    assert ddpm.timesteps(4) == [99, 66, 33, 0] and ddpm.timesteps(100) == list(range(99, -1, -1))


def test_guidance_mixes_conditional_and_null_predictions(ddpm):
    x, t = torch.randn(2, 1, 8, 8), torch.tensor(50)
    labels = torch.tensor([1, 2])
    null = torch.full_like(labels, 10)
    cond = ddpm.ema(x, t.expand(2), labels)
    uncond = ddpm.ema(x, t.expand(2), null)
    eps, _ = ddpm._eps_x0(x, t, labels, 2.5)
    ab = ddpm.alphas_cumprod[t]
    x0 = ((x - (1 - ab).sqrt() * (uncond + 2.5 * (cond - uncond))) / ab.sqrt()).clamp(-1, 1)
    # one batch of both predictions vs two: float32 kernels may differ in the last bits (more so on one thread)
    torch.testing.assert_close(eps, (x - ab.sqrt() * x0) / (1 - ab).sqrt(), atol=1e-4, rtol=1e-4)


def test_loss_trains_and_ema_follows(ddpm):
    ddpm.train()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(10, (16,))
    opt = torch.optim.Adam(ddpm.unet.parameters(), 1e-3)
    before = [p.clone() for p in ddpm.ema.parameters()]
    loss = ddpm.loss(x, y)
    loss.backward()
    opt.step()
    ddpm.update_ema()
    assert 0.5 < loss.item() < 5  # an untrained denoiser: about Var(eps) = 1
    for ema, raw, old in zip(ddpm.ema.parameters(), ddpm.unet.parameters(), before):  # ema_decay 0.999
        torch.testing.assert_close(ema, old + 0.001 * (raw - old), atol=1e-7, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps must be an integer in 1..100"),
    (dict(steps=101), "steps must be an integer in 1..100"),
    (dict(guidance=-1.0), "guidance must be None or a number >= 0"),
    (dict(guidance=float("nan")), "guidance must be None or a number >= 0"),
    (dict(temperature=0.8), "DDPM.sample got unknown option 'temperature'; it takes n, seed, labels"),
    (dict(labels=10), "labels must be in 0..9"),
    (dict(labels=[1, 2]), "labels must be an integer or 3 integers"),
    (dict(sampler="euler"), "sampler must be one of"),
])
def test_bad_sampling_input(ddpm, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ddpm.sample(3, **kwargs)
    with pytest.raises(ValueError, match="n must be an integer in 1..100000"):
        ddpm.sample(100_001)


def test_unconditional_model_refuses_labels_and_guidance():
    model = DDPM(base=8, schedule={"timesteps": 10}).fit_to_data(DIGITS)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=1, steps=5)
    with pytest.raises(ValueError, match="got 'guidance', but this DDPM is unconditional"):
        model.sample(2, guidance=2.0, steps=5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prediction="x0"), "prediction must be one of"),
    (dict(schedule={"kind": "sigmoid"}), "schedule kind must be one of"),
    (dict(schedule={"timesteps": 1}), "schedule timesteps must be an integer in 2..100000"),
    (dict(image_size=6, channel_mults=[1, 2, 2]), "image_size 6 must be divisible by 2^2"),
    (dict(guidance=-0.5), "guidance must be a finite number >= 0"),
    (dict(num_classes=1), "num_classes must be None"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DDPM(**kwargs)


def test_save_load_round_trip(ddpm, tmp_path):
    ddpm.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path)
    assert loaded.init_args["schedule"] == {"kind": "cosine", "timesteps": 100, "beta_start": 1e-4, "beta_end": 0.02}
    assert torch.equal(loaded.sample(2, seed=0, steps=3), ddpm.sample(2, seed=0, steps=3))
