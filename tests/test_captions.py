"""zoo.captions: the measurements on hand-drawn strokes, the bins, the captions and what a prompt names."""

import random
import warnings

import pytest
import torch

from zoo.captions import (ATTRIBUTES, EVAL_TEMPLATES, HELD_OUT, NOTHING_NAMED, SYNONYMS, THRESHOLDS, TRAIN_TEMPLATES,
                          bin_values, caption, captioned, held_out_mask, measure, prompt_for, read_prompt, skeleton,
                          slant, stroke_thickness, words)


def bar(width: int, shear: float = 0.0, size: int = 28) -> torch.Tensor:
    """A vertical stroke `width` pixels wide, rows 4..23, shifted right by `shear` pixels per pixel up."""
    img = torch.zeros(1, 1, size, size)
    for row in range(4, 24):
        left = round(12 + shear * (23 - row))
        img[0, 0, row, left:left + width] = 1.0
    return img


@pytest.mark.parametrize("width", [1, 2, 3])
def test_thickness_of_a_bar_is_its_width(width):
    assert stroke_thickness(bar(width)).item() == pytest.approx(width, rel=0.2)


def test_thickness_grows_with_the_width():
    # thinning shortens a stroke's ends by about its width, so wide strokes measure wider still: the order holds
    values = [stroke_thickness(bar(w)).item() for w in range(1, 7)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_the_skeleton_of_a_thick_bar_is_one_pixel_wide():
    thin = skeleton(bar(5)[:, 0] > 0.5)[0]
    assert thin.any(dim=1).sum() >= 14  # about the bar's 20 rows
    assert int(thin.sum(dim=1).max()) == 1


def test_slant_sign_and_size_follow_the_shear():
    assert slant(bar(3, 0.0)).item() == pytest.approx(0.0, abs=0.02)
    assert slant(bar(3, 0.3)).item() == pytest.approx(0.3, abs=0.05)  # top to the right: leaning right
    assert slant(bar(3, -0.3)).item() == pytest.approx(-0.3, abs=0.05)


def test_blank_images_measure_zero_and_bad_shapes_are_refused():
    values = measure(torch.zeros(2, 1, 28, 28))
    assert values["thickness"].tolist() == [0.0, 0.0] and values["slant"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="grey digits"):
        measure(torch.zeros(2, 3, 28, 28))


def test_bins_cut_at_the_thresholds():
    low, high = THRESHOLDS["thickness"]
    assert bin_values("thickness", torch.tensor([low - 0.01, low, high, high + 0.01])).tolist() == [0, 1, 1, 2]
    assert words(torch.cat([bar(1), bar(5, 0.4)]))["thickness"].tolist() == [0, 2]
    assert words(torch.cat([bar(3, -0.3), bar(3, 0.4)]))["slant"].tolist() == [0, 2]


def test_each_word_covers_about_a_third_of_the_mnist_test_split():
    from zoo.data.images import mnist_5k_split

    x, _ = mnist_5k_split("test")
    for name, bins in words(x).items():
        share = torch.bincount(bins, minlength=3).float() / len(bins)
        assert share.min() > 0.2, (name, share)


def test_captions_name_what_their_targets_say():
    rng = random.Random(0)
    for _ in range(300):
        digit, bins = rng.randrange(10), {"thickness": rng.randrange(3), "slant": rng.randrange(3)}
        text, named = captioned(digit, bins, rng)
        read = read_prompt(text)
        assert read["digit"] == digit == named[0]
        for i, name in enumerate(ATTRIBUTES, start=1):
            assert named[i] in (bins[name], len(ATTRIBUTES[name]))  # its bin, or "not named"
            assert read[name] == (None if named[i] == len(ATTRIBUTES[name]) else named[i]), text


def test_p_name_one_names_everything_and_noise_adds_words():
    rng = random.Random(1)
    text, named = captioned(7, {"thickness": 2, "slant": 0}, rng, p_name=1.0)
    assert named == [7, 2, 0]
    plain = caption(7, {"thickness": 2, "slant": 0}, random.Random(2), p_name=1.0)
    noisy, _ = captioned(7, {"thickness": 2, "slant": 0}, random.Random(2), p_name=1.0, p_noise=1.0)
    assert len(noisy.split()) > len(plain.split())
    assert NOTHING_NAMED == [10, 3, 3]


def test_evaluation_prompts_use_templates_never_trained_on():
    assert not set(EVAL_TEMPLATES) & set(TRAIN_TEMPLATES)
    prompt = prompt_for(3, "thin", "leaning left", random.Random(0))
    assert read_prompt(prompt) == {"digit": 3, "thickness": 0, "slant": 0}
    assert any(prompt == t.format(digit=d, thickness=th, slant=sl) for t in EVAL_TEMPLATES for d in ("3", "three")
               for th in SYNONYMS["thin"] for sl in SYNONYMS["leaning left"])


def test_held_out_mask_finds_exactly_the_held_out_combinations():
    digit, thick, lean = HELD_OUT[0]
    labels = torch.tensor([digit, digit, (digit + 1) % 10])
    bins = {"thickness": torch.tensor([ATTRIBUTES["thickness"].index(thick)] * 3),
            "slant": torch.tensor([ATTRIBUTES["slant"].index(lean), (ATTRIBUTES["slant"].index(lean) + 1) % 3,
                                   ATTRIBUTES["slant"].index(lean)])}
    assert held_out_mask(labels, bins).tolist() == [True, False, False]


def test_contradictions_warn_and_missing_words_read_as_none():
    with pytest.warns(UserWarning, match="more than one thickness"):
        assert read_prompt("a thick thin 3")["thickness"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_prompt("something bold") == {"digit": None, "thickness": 2, "slant": None}
        assert read_prompt("seven, not slanted")["slant"] == 1  # "not slanted" is upright, not "slanted"
        assert read_prompt("") == {"digit": None, "thickness": None, "slant": None}
