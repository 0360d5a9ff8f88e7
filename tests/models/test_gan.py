import math

import zoo

import pytest
import torch

from zoo.models.gan import GAN, _stages, discriminator_loss, generator_loss, gradient_penalty
from zoo.data.digits import SPEC as DIGITS


@pytest.fixture
def gan():
    torch.manual_seed(0)
    return GAN(latent_dim=8, hidden=8, num_classes=10).fit_to_data(DIGITS).eval()


@pytest.mark.parametrize("size, expected", [(8, (4, 1)), (32, (4, 3)), (28, (7, 2)), (4, (4, 0)), (6, (3, 1))])
def test_networks_are_sized_by_the_image(size, expected):
    assert _stages(size) == expected
    model = GAN(image_size=size, channels=3, latent_dim=4, hidden=4, num_classes=3)
    x = model.sample(2, seed=0)
    assert x.shape == (2, 3, size, size)
    assert model.discriminator(x * 2 - 1, torch.tensor([0, 2])).shape == (2,)


def test_sample_seeds_labels_and_interpolation(gan):
    x = gan.sample(5, seed=0)
    assert x.shape == (5, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, gan.sample(5, seed=0)) and not torch.equal(x, gan.sample(5, seed=1))
    threes = gan.sample(4, seed=0, labels=3)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(threes, gan.generate(z, torch.full((4,), 3)))
    assert torch.equal(gan.latent(7), torch.randn(1, 8, generator=torch.Generator().manual_seed(7))[0])
    assert torch.equal(gan.generate(gan.latent(7)[None], torch.tensor([3])), gan.sample(1, seed=7, labels=3))
    walk = gan.interpolate(z[0], z[1], steps=5, labels=3)
    assert walk.shape == (5, 1, 8, 8)
    torch.testing.assert_close(walk[[0, -1]], gan.generate(z[:2], torch.tensor([3, 3])))


def test_losses_are_the_published_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert discriminator_loss("ns", real, fake).item() == pytest.approx((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2)
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert generator_loss("ns", fake).item() == pytest.approx((sp(-0.5) + sp(3)) / 2)
    assert generator_loss("hinge", fake).item() == pytest.approx(1.25)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = <w, x>: the gradient is w everywhere, so the penalty is (||w|| - 1)²."""
    w = torch.full((1, 1, 2, 2), 1.5)
    critic = lambda x, labels: (x * w).flatten(1).sum(1)  # noqa: E731
    gp = gradient_penalty(critic, torch.rand(4, 1, 2, 2), torch.rand(4, 1, 2, 2), None)
    assert gp.item() == pytest.approx((3.0 - 1) ** 2)


def test_spectral_norm_bounds_the_discriminator_layers():
    model = GAN(latent_dim=4, hidden=4, spectral_norm=True).fit_to_data(DIGITS)
    conv = model.discriminator.body[0]
    assert hasattr(conv, "parametrizations")
    model.discriminator.train()
    for _ in range(20):  # power iteration converges
        model.discriminator(torch.randn(2, 1, 8, 8))
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.05)
    assert not hasattr(GAN(latent_dim=4, hidden=4, spectral_norm=False).fit_to_data(DIGITS).discriminator.body[0], "parametrizations")


def test_ema_moves_a_thousandth_of_the_way(gan):
    before = [p.clone() for p in gan.generator_ema.parameters()]
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    gan.update_ema()
    for p, b in zip(gan.generator_ema.parameters(), before):
        torch.testing.assert_close(p, b + 0.001)


@pytest.mark.parametrize("call, message", [
    (lambda g: g.sample(2, labels=10), "labels must be in 0..9"),
    (lambda g: g.sample(0), "n must be an integer in 1..100000"),
    (lambda g: g.generate(torch.randn(2, 8)), "labels are required"),
    (lambda g: g.generate(torch.randn(2, 3), 1), r"z must have shape \(N, 8\)"),
    (lambda g: g.interpolate(torch.randn(8), torch.randn(8), steps=1, labels=1), "steps must be an integer in 2..1000"),
    (lambda g: g.interpolate(torch.randn(3), torch.randn(8), labels=1), r"z0 must be one latent of shape \(8,\)"),
])
def test_bad_input(gan, call, message):
    with pytest.raises(ValueError, match=message):
        call(gan)


def test_unconditional_refuses_labels_and_bad_config():
    with pytest.raises(ValueError, match="unconditional"):
        GAN(latent_dim=4, hidden=4).fit_to_data(DIGITS).sample(2, labels=1)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        GAN(ema_decay=1.0)
    with pytest.raises(ValueError, match="num_classes must be None"):
        GAN(num_classes=1)


def test_save_load_round_trip(gan, tmp_path):
    gan.save_pretrained(tmp_path)
    loaded = zoo.load(tmp_path)
    assert isinstance(loaded, GAN) and torch.equal(loaded.sample(3, seed=0), gan.sample(3, seed=0))
