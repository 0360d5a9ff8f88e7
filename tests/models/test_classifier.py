import pytest
import torch

from zoo.models.classifier import DigitsClassifier
from zoo.systems.classifier import random_shift
from zoo.data.digits import SPEC as DIGITS


def test_packaged_classifier_is_accurate_on_the_test_split(digits_test):
    from zoo.metrics import load_extractor

    clf = load_extractor("digits-classifier")
    x, y = digits_test
    assert not clf.training and clf.num_features == 64
    assert clf.features(x).shape == (270, 64) and clf(x).shape == (270, 10)
    assert (clf.predict(x) == y).float().mean().item() == pytest.approx(0.985, abs=1e-3)  # the card's 98.5%


def test_untrained_shapes_and_single_images():
    clf = DigitsClassifier(hidden=4, num_features=6).fit_to_data(DIGITS).eval()
    assert clf.features(torch.rand(1, 8, 8)).shape == (1, 6) and clf.predict(torch.rand(3, 1, 8, 8)).shape == (3,)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.features(torch.rand(2, 1, 7, 7)), r"x must have shape \(N, 1, 8, 8\)"),
    (lambda c: c.features([[0.0]]), r"x must have shape \(N, 1, 8, 8\)"),  # a list is read as numbers
    (lambda c: c.features("digits"), "x must be a tensor or an array of numbers"),
    (lambda c: c.sample(4), "a classifier, not a generator"),
])
def test_bad_input(call, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        call(DigitsClassifier(hidden=4).fit_to_data(DIGITS))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_features=1), "num_features must be an integer in 2..65536"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(image_size=7), "image_size must be even"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DigitsClassifier(**kwargs)


def test_random_shift_moves_pixels_without_changing_them():
    x = torch.zeros(50, 1, 8, 8)
    x[:, 0, 3:5, 3:5] = 1.0  # a square away from the borders
    torch.manual_seed(0)
    shifted = random_shift(x, 1)
    assert torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing falls off
    offsets = {tuple((s[0].nonzero().min(0).values - 3).tolist()) for s in shifted}
    assert offsets == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def test_eval_reproduces_the_packaged_card():
    """digits-classifier is packaged but not a generator (not in PRETRAINED): its card is checked here."""
    from importlib import resources

    from zoo import hub
    from zoo.evaluate import evaluate

    folder = str(resources.files("zoo") / "pretrained" / "digits-classifier")
    card = hub.card_metrics(hub.read_card(folder))
    measured = evaluate(folder)
    assert set(card) == {"acc", "loss"} == set(measured)
    for key, value in card.items():
        assert round(measured[key], 3) == pytest.approx(value, abs=1.5e-3), key
