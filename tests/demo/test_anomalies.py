"""The Anomalies tab on the MNIST models: a drawn or uploaded digit scored by ``zoo.anomaly.Detector`` around the
chosen model, against the scores of normal test digits (overlaid histograms) and the Detector's threshold, a quantile
of the scores of validation digits.

The models offered are read from their declarations, never listed here.
"""

import re

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from zoo.anomaly import Detector
from zoo.cli import load_demo
from zoo.data.images import mnist_5k_split

app = load_demo()

MNIST = (1, 28, 28)
GMM = "gmm-mnist-5k"  # the quick MNIST density: a second for its first request


def on_mnist(names: list[str]) -> list[str]:
    return [n for n in names if app.recorded_shape(n) == MNIST]


def seeded(n: int) -> torch.Tensor:
    """The demo's reference choice: a seeded sample of at most REFERENCE_SIZE indices, in the split's order."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:app.REFERENCE_SIZE].sort().values


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A real test digit of the 5k MNIST as a PNG, a PNG of uniform noise, and a CSV of the same digit inverted
    (a CSV is read as it is; an uploaded light image would be taken for dark ink on paper and inverted back)."""
    folder = tmp_path_factory.mktemp("anomalies")
    x, _ = mnist_5k_split("test")
    pixels = (x[0, 0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(folder / "digit.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / "noise.png")
    (folder / "inverted.csv").write_text(",".join(map(str, (255 - pixels).flatten().tolist())) + "\n")
    return {"x": x[:1], "digit": str(folder / "digit.png"), "noise": str(folder / "noise.png"),
            "inverted": str(folder / "inverted.csv")}


def test_the_tab_offers_the_mnist_density_models_first():
    names = app.preferred(app.models_where(app.scores_images))
    mnist = on_mnist(names)
    assert {"vae-mnist-5k", "gmm-mnist-5k", "nb-mnist-5k"} <= set(mnist)
    assert names[:len(mnist)] == [names[0], *(n for n in mnist if n != names[0])]  # the 28x28 models, then the 8x8
    assert {"vae-digits", "gmm-digits", "nb-digits"} <= set(names[len(mnist):])
    for n in app.models_where(app.makes_images):  # an image model left out has no density to score with
        assert (n in names) == app.model_class(n).has_log_prob()
    with pytest.raises(gr.Error) as error:
        app.score_images("dcgan-digits", None, None, None, 8)
    assert re.fullmatch(r"dcgan-digits \(GAN\) has no density over images to score with; choose one of: .*",
                        error.value.message) and "gmm-mnist-5k" in error.value.message


def test_the_threshold_is_the_detectors_validation_quantile_computed_once():
    ref = app.reference(GMM)
    assert app.reference(GMM) is ref  # cached: the reference digits are scored once per model
    val, _ = mnist_5k_split("val")
    test, _ = mnist_5k_split("test")
    detector = Detector(GMM, threshold_quantile=app.THRESHOLD_QUANTILE).fit(val[seeded(len(val))])
    assert ref.validation == len(ref.scores) == app.REFERENCE_SIZE == 200  # bounded: 200 of each split
    assert ref.detector.threshold_ == detector.threshold_ == np.quantile(detector.decision_scores_, 0.99)
    assert np.array_equal(ref.scores, detector.decision_function(test[seeded(len(test))]))
    assert 0.95 <= (ref.scores <= ref.detector.threshold_).mean() < 1  # about 99% of the normal test digits are normal


def test_a_test_digit_is_normal_and_noise_or_an_inverted_digit_is_anomalous(digits):
    grid, table, chart, answer = app.score_images(GMM, digits["inverted"], [digits["digit"], digits["noise"]], None, 8)
    rows = {row[0]: row for row in table}  # the CSV's rows first, then the files
    assert [rows[i][3] for i in range(3)] == ["anomalous", "normal", "anomalous"]
    assert rows[0][2] == rows[2][2] == 100.0 and rows[1][2] < 100  # percentiles among the normal test digits
    assert rows[1][1] == pytest.approx(app.reference(GMM).detector.decision_function(digits["x"])[0], abs=0.01)
    assert answer.startswith("**2 of 3 images anomalous**") and chart.size == app.CHART["size"]
    _, table, _, answer = app.score_images(GMM, None, [digits["digit"]], None, 8)
    threshold = app.reference(GMM).detector.threshold_
    assert re.fullmatch(rf"\*\*normal\*\*: score {table[0][1]:,.1f} nats, at or below the threshold {threshold:,.1f} "
                        rf"nats, the 99th percentile of the scores of 200 normal validation digits of mnist-5k\. It "
                        rf"scores higher than {table[0][2]}% of 200 normal test digits\.", answer)


@pytest.mark.parametrize("args, message", [
    ((None, None, None), r"no image to score: draw a digit, upload image files or give a CSV"),
    ((None, ["BOMB"], None), r"bomb.png is 13000x13000 pixels, more than the 16,777,216 the demo decodes "
                             r"\(a decompression bomb\?\)"),
])
def test_bad_input_is_one_line(args, message, bomb_png):
    csv_file, images, sketch = args
    with pytest.raises(gr.Error) as error:
        app.score_images(GMM, csv_file, [bomb_png] if images else None, sketch, 8)
    assert re.fullmatch(message, error.value.message)


def fill(colour: tuple, under: tuple = (255, 255, 255)) -> tuple:
    """The RGB of a semi-transparent RGBA `colour` composited over `under` (as PIL composites the chart's layers)."""
    base = Image.new("RGBA", (1, 1), (*under, 255))
    return Image.alpha_composite(base, Image.new("RGBA", (1, 1), colour)).getpixel((0, 0))[:3]


def test_the_histograms_are_overlaid_not_stacked():
    """Two histograms with the same bar where both have images: overlaid, that bar is one height in the mix of both
    colours (each drawn from zero, semi-transparent); stacked, it would be twice as tall in two colours."""
    normal = np.array([1.0] * 4 + [3.0] * 2 + [5.0] * 2)  # fractions 0.5, 0.25, 0.25
    yours = np.array([1.0, 1.0, 5.0, 5.0])  # fractions 0.5 (as normal's), 0.5 (taller than normal's)
    chart = app.score_chart(normal, yours, 4.0, normal_label="normal", marks_label="yours", threshold_label="t")
    left, top, right, bottom = app.CHART["margins"]
    width, height = app.CHART["size"]
    plot = np.asarray(chart)[top:height - bottom, left + 1:width - right]  # the plot, inside its axes
    both, alone, mine = fill(app.YOURS_FILL, fill(app.NORMAL_FILL)), fill(app.NORMAL_FILL), fill(app.YOURS_FILL)

    def rows(colour: tuple) -> np.ndarray:
        return np.nonzero((plot == colour).all(-1).any(1))[0]

    assert len(rows(both)) and len(rows(alone)) and len(rows(mine))  # the overlap mixes; each shows alone elsewhere
    tallest = round((1 - 0.5 / (0.5 * 1.1)) * len(plot))  # 0.5 of a 0.55 axis: stacked, 1.0 would not fit
    assert abs(rows(both).min() - tallest) <= 2 and abs(rows(mine).min() - tallest) <= 2
    assert rows(alone).min() > rows(both).min() + 50  # normal's 0.25 bars are half as tall
    red = (np.asarray(chart)[top:height - bottom] == app.THRESHOLD_COLOUR[:3]).all(-1).any(0)
    assert red.sum() >= 2  # the threshold's dashed line


def test_a_digit_through_the_server(client, digits):
    grid, table, chart, answer = client.predict(GMM, None, [handle_file(digits["digit"]), handle_file(digits["noise"])],
                                                None, 8, api_name="/anomalies")
    assert {row[0]: row[3] for row in table["data"]} == {0: "normal", 1: "anomalous"}
    assert table["data"][0][0] == 1  # the noise is the most unusual
    assert Image.open(chart).size == app.CHART["size"] and Image.open(grid).size == (2 * 29 * 3 + 3, 29 * 3 + 3)
    assert answer.startswith("**1 of 2 images anomalous**: score above the threshold ")
