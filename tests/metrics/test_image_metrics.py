import pytest
import torch
from torch import nn

from zoo.metrics import (ClassifierFeatures, ImageMetrics, conditional_accuracy, generate, generator_metrics,
                         real_data_floor)


@pytest.fixture(scope="module")
def splits():
    from zoo.data.digits import digits_split

    return digits_split("train")[0], digits_split("test")[0], digits_split("test")[1]


class Replay(nn.Module):
    """A 'generator' that replays given images (seeded order): a known distribution to score."""

    def __init__(self, images, num_classes=None):
        super().__init__()
        self.images, self.num_classes = images, num_classes

    def sample(self, n, seed=None, labels=None):
        idx = torch.randint(len(self.images), (n,), generator=torch.Generator().manual_seed(seed))
        return self.images[idx]


def test_real_data_floor_is_the_train_set_against_the_test_set(splits):
    train, test, _ = splits
    floor = real_data_floor(train, test, "digits-classifier")
    assert floor == real_data_floor(train, test, "digits-classifier")  # seeded: KID subsets and IS splits repeat
    assert floor["fid"] == pytest.approx(6.290, abs=2e-3) and floor["is"] == pytest.approx(9.645, abs=2e-3)
    assert floor["kid"] == pytest.approx(1.363, abs=2e-3)


def test_the_same_images_score_zero_and_noise_scores_far_worse(splits):
    train, test, _ = splits
    same = real_data_floor(test, test, "digits-classifier")
    assert abs(same["fid"]) < 1e-2
    assert same["kid"] < 0  # unbiased MMD²: exact copies pair up in the cross term, below the 0 of fresh samples
    noise = generator_metrics(Replay(torch.rand(500, 1, 8, 8)), test, "digits-classifier", n=500)
    assert noise["fid"] > 100 * real_data_floor(train, test, "digits-classifier")["fid"] and noise["is"] < 3


def test_conditional_generators_get_balanced_labels_and_an_accuracy(splits):
    _, test, labels = splits
    images, asked = generate(Replay(test, num_classes=10), 30, seed=0)
    assert asked.tolist() == [i % 10 for i in range(30)] and images.shape == (30, 1, 8, 8)
    assert conditional_accuracy(test, labels, "digits-classifier") == pytest.approx(0.985, abs=1e-3)
    assert conditional_accuracy(test, (labels + 1) % 10, "digits-classifier") < 0.02


def test_extractor_size_must_match_the_metric_state():
    class Liar(nn.Module):
        num_features = 64

        def forward(self, x):
            return x.flatten(1)  # 64 values... for 8x8 only

    ImageMetrics(features=Liar(), logits=Liar(), image_shape=(1, 8, 8))  # 1x8x8 -> 64: fine
    with pytest.raises(ValueError, match=r"outputs shape \(1, 16\) for one image, but the metric state holds num_features=64"):
        ImageMetrics(features=Liar(), logits=Liar(), image_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="must have an integer num_features"):
        ImageMetrics(features=nn.Flatten(), logits=Liar(), image_shape=(1, 8, 8))


def test_bad_input(splits):
    _, test, _ = splits
    with pytest.raises(ValueError, match="n must be an integer in 2..50000"):
        generate(Replay(test), 50_001)
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        ClassifierFeatures("digits-classifier")(test * 16)
    with pytest.raises(ValueError, match="output must be one of"):
        ClassifierFeatures("digits-classifier", output="probs")
    with pytest.raises(ValueError, match="at least 2 real and 2 generated"):
        ImageMetrics("digits-classifier", image_shape=(1, 8, 8)).compute()
    with pytest.raises(ValueError, match="unknown feature extractor 'vae-digits'"):
        ImageMetrics("vae-digits", image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="needs a registered feature extractor"):
        ImageMetrics(image_shape=(1, 8, 8))
