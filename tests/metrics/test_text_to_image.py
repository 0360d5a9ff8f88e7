"""The faithfulness metrics on models whose answers are known: an oracle that returns a real test digit showing
what the prompt says, and a model that ignores the prompt."""

import warnings

import pytest
import torch

from zoo.captions import ATTRIBUTES, read_prompt, words
from zoo.data.images import mnist_5k_split
from zoo.metrics.text_to_image import describe, faithfulness, plot_sweep, prompt_metrics


class Oracle(torch.nn.Module):
    """'Samples' a real image of the digit and words the prompt names (or a random one if `faithful` is False)."""

    image_shape = (1, 28, 28)

    def __init__(self, faithful: bool):
        super().__init__()
        x, y = mnist_5k_split("test")
        x2, y2 = mnist_5k_split("train")
        self.x, self.y = torch.cat([x, x2]), torch.cat([y, y2])
        self.bins = words(self.x)
        self.faithful = faithful

    def sample(self, n, *, seed, prompt, **options):
        g = torch.Generator().manual_seed(seed)
        out = []
        for p in prompt:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = read_prompt(p)
            ok = torch.ones(len(self.y), dtype=torch.bool)
            if self.faithful:
                ok &= self.y == want["digit"]
                for a in ATTRIBUTES:
                    ok &= self.bins[a] == want[a]
            pool = torch.nonzero(ok).flatten()
            out.append(self.x[pool[torch.randint(len(pool), (1,), generator=g)]])
        return torch.cat(out)


@pytest.fixture(scope="module")
def oracle():
    return Oracle(faithful=True)


def test_a_faithful_model_scores_near_one_and_a_careless_one_near_chance(oracle):
    good = faithfulness(oracle, "mnist-5k-classifier", per_combination=2, per_held_out=4, progress=False)
    assert good["thickness_acc"] == good["slant_acc"] == good["held_out_slant_acc"] == 1.0  # the measured bins
    assert good["digit_acc"] > 0.95 and good["held_out_digit_acc"] > 0.9  # the classifier's own errors
    bad = faithfulness(Oracle(faithful=False), "mnist-5k-classifier", per_combination=2, per_held_out=4,
                       progress=False)
    assert bad["digit_acc"] < 0.25 and bad["thickness_acc"] < 0.5 and bad["all_acc"] < 0.1
    assert set(good) == {f"{p}{k}_acc" for p in ("", "held_out_") for k in ("digit", "thickness", "slant", "all")}


def test_descriptions_say_each_real_images_digit_and_words():
    x, y = mnist_5k_split("test")
    prompts, bins = describe(x[:20], y[:20]), words(x[:20])
    for i, p in enumerate(prompts):
        assert read_prompt(p) == {"digit": int(y[i]), "thickness": int(bins["thickness"][i]),
                                  "slant": int(bins["slant"][i])}


def test_prompted_fid_of_the_oracle_is_near_the_floor_and_the_sweep_plots(oracle, tmp_path):
    x, y = mnist_5k_split("test")
    fid = prompt_metrics(oracle, x, y, "mnist-5k-classifier", n=500)["fid"]
    careless = prompt_metrics(Oracle(faithful=False), x, y, "mnist-5k-classifier", n=500)["fid"]
    assert fid < 3 and careless < 3  # real digits either way: FID alone does not see the prompt
    rows = [{"guidance": g, "digit_acc": 0.9, "thickness_acc": 0.8, "slant_acc": 0.7, "held_out_all_acc": 0.5,
             "fid": 1.0 + g} for g in (1.0, 2.0, 4.0)]
    path = plot_sweep(rows, tmp_path / "sweep.png", floor_fid=0.6)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
