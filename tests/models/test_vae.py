import math

import pytest
import torch

from zoo.models.vae import VAE


def test_sample_shape_range_and_seed(vae):
    x = vae.sample(16, seed=0)
    assert x.shape == (16, 1, 8, 8)
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, vae.sample(16, seed=0))
    assert not torch.equal(x, vae.sample(16, seed=1))


def test_conditional_sample_uses_labels(cvae):
    a = cvae.sample(4, seed=0, labels=3)
    b = cvae.sample(4, seed=0, labels=[3, 3, 3, 3])
    c = cvae.sample(4, seed=0, labels=torch.tensor([5, 5, 5, 5]))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pixel_log_prob_is_a_normalised_distribution(vae):
    # With 2 levels and a 2x2 image the 16 possible images must sum to probability 1.
    small = VAE(image_size=2, channels=1, levels=2, latent_dim=2, hidden=4).eval()
    z = torch.randn(1, 2)
    logits = small.decoder_logits(z, None)
    images = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float32)
    lp = small.pixel_log_prob(images.view(16, 1, 2, 2), logits.expand(16, -1, -1, -1, -1))
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_iwae_bounds_and_k1_equals_elbo_in_expectation(trained_vae, digits_test):
    vae, x = trained_vae, digits_test[0][:8]
    torch.manual_seed(0)
    elbo = torch.stack([vae.elbo(x)["elbo"] for _ in range(200)]).mean(0)
    iwae_1 = torch.stack([vae.log_prob(x, k=1, seed=s) for s in range(200)]).mean(0)
    iwae_500 = vae.log_prob(x, k=500, seed=0)
    assert torch.allclose(elbo, iwae_1, rtol=0.02)  # IWAE with k=1 is the ELBO
    assert (iwae_500 > elbo).all()                  # a tighter bound
    assert torch.equal(iwae_500, vae.log_prob(x, k=500, seed=0))


def test_conditional_log_prob_marginalises_labels(cvae, digits_test):
    x, y = digits_test[0][:3], digits_test[1][:3]
    per_class = torch.stack([cvae.log_prob(x, labels=torch.full((3,), c), k=20, seed=0) for c in range(10)], 1)
    expected = per_class.logsumexp(1) - math.log(10)
    assert torch.allclose(cvae.log_prob(x, k=20, seed=0), expected, atol=1e-5)
    assert torch.allclose(cvae.score(x), -cvae.log_prob(x), atol=0.5)


def test_encode_decode_reconstruct_interpolate(vae, cvae, digits_test):
    x = digits_test[0][:5]
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (5, 4)
    assert vae.reconstruct(x).shape == (5, 1, 8, 8)
    path = vae.interpolate(x[0], x[1], steps=7)
    assert path.shape == (7, 1, 8, 8)
    assert torch.allclose(path[0], vae.decode(mean[:1])[0], atol=1e-6)
    assert torch.allclose(path[-1], vae.decode(mean[1:2])[0], atol=1e-6)
    assert cvae.interpolate(x[0], x[1], steps=3, labels=2).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("call, match", [
    (lambda m: m.sample(0), "n must be an integer in 1..100000"),
    (lambda m: m.sample(10**9), "n must be an integer in 1..100000"),
    (lambda m: m.sample(2.5), "n must be"),
    (lambda m: m.log_prob(torch.rand(2, 64)), r"x must have shape \(N, 1, 8, 8\)"),
    (lambda m: m.log_prob(torch.rand(2, 1, 8, 8) * 3), r"values in \[0, 1\]"),
    (lambda m: m.log_prob(torch.full((1, 1, 8, 8), float("nan"))), "finite"),
    (lambda m: m.sample(2, labels=1), "unconditional"),
    (lambda m: m.interpolate(torch.rand(1, 8, 8), torch.rand(1, 8, 8), steps=1), "steps"),
])
def test_bad_input_is_a_clear_error(vae, call, match):
    with pytest.raises(ValueError, match=match):
        call(vae)


@pytest.mark.parametrize("labels, match", [(10, r"labels must be in 0..9"), (-1, "labels must be in"),
                                           ([1, 2], "labels must be an integer or 3 integers"),
                                           (torch.tensor([0.5, 1, 2]), "integer")])
def test_bad_labels(cvae, labels, match):
    with pytest.raises(ValueError, match=match):
        cvae.sample(3, labels=labels)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="latent_dim must be an integer in 1..65536"):
        VAE(latent_dim=0)
    with pytest.raises(ValueError, match="num_classes"):
        VAE(num_classes=1)
    with pytest.raises(ValueError, match="image_size must be even"):
        VAE(image_size=7)
