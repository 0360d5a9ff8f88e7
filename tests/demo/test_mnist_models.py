"""The image tabs on the 28x28 MNIST models: offered (and chosen first), shown sharp at a readable size, uploads of
any size and colour made the model's shape, and a decompression bomb refused from its header, never decoded.

Which models are MNIST models is read from what each records (its data spec), never listed here: models trained
later appear in these tests by themselves.
"""

import math
import re
import tracemalloc
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio.data_classes import FileData, ImageData
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw, ImageFile

from zoo.cli import load_demo
from zoo.data.images import mnist_5k_split
from zoo.registry import model_info

app = load_demo()

MNIST = (1, 28, 28)
BOMB = r"is 13000x13000 pixels, more than the 16,777,216 the demo decodes \(a decompression bomb\?\)"


def on_mnist(names: list[str]) -> list[str]:
    return [n for n in names if app.recorded_shape(n) == MNIST]


def fid(name: str) -> float:
    return model_info(name).card_metrics().get("fid", math.inf)


def grid_size(cols: int, rows: int, scale: int, side: int = 28) -> tuple[int, int]:
    """(width, height) of zoo.images.make_grid: 1-pixel gaps around side x side tiles, upscaled."""
    return ((cols * (side + 1) + 1) * scale, (rows * (side + 1) + 1) * scale)


def nearest_neighbour(picture: Image.Image, scale: int) -> bool:
    """Whether every pixel of `picture` is a scale x scale square of one value (upscaled without blur)."""
    pixels = np.asarray(picture)
    return bool((pixels == pixels[::scale, ::scale].repeat(scale, 0).repeat(scale, 1)).all())


GENERATORS = on_mnist(app.models_where(app.makes_images))
TABS = {"Images": app.makes_images, "Latent walk": app.walks, "Anomalies": app.scores_images,
        "Classifier": app.classifies_images}


@pytest.fixture(scope="module")
def mnist_files(tmp_path_factory):
    """Test digits of the 5k MNIST as uploads of other sizes and colours: dark ink on light paper, 84x84 RGB (x3);
    a 100x60 colour photo; and the test digits themselves."""
    folder = tmp_path_factory.mktemp("mnist")
    x, labels = mnist_5k_split("test")
    paper = (255 - x[0, 0].numpy() * 255).round().astype(np.uint8).repeat(3, 0).repeat(3, 1)
    Image.fromarray(np.stack([paper] * 3, -1)).save(folder / "paper.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    return {"digits": x[:1], "paper": str(folder / "paper.png"), "photo": str(folder / "photo.jpg")}


# -- offered, chosen first, shown sharp ----------------------------------------------------------


def test_the_image_tabs_offer_the_mnist_models_and_choose_one_first():
    assert {"vae-mnist-5k", "ddpm-mnist-5k"} <= set(GENERATORS)
    for tab, needs in TABS.items():
        names = app.models_where(needs)
        assert "mnist-5k-classifier" not in names  # a feature extractor: it outputs labels, not images
        mnist = on_mnist(names)
        assert mnist, f"the {tab} tab offers no 28x28 model"
        first = app.preferred(names)[0]  # the tab's default: the 28x28 model whose card has the best FID
        assert first in mnist and fid(first) == min(fid(n) for n in mnist), tab
        assert sorted(app.preferred(names)) == sorted(names)  # every model stays offered
    assert app.recorded_shape("vae-digits") is None  # the 8x8 models record no spec: they come after


@pytest.mark.parametrize("name", GENERATORS)
def test_each_mnist_generator_samples_a_sharp_grid_of_28x28_digits(name):
    grid, png = app.generate_images(name, 4, 0, "any", 2, 1.0, "ddim")  # 2 sampler steps for the diffusion model
    classes = app.conditional(app.model(name))
    cols = classes or 2  # one column per class, else a square
    scale = min(3, 760 // (cols * 29 + 1))  # 3x (84 pixels a digit) unless the grid outgrows the display
    assert grid.size == grid_size(cols, math.ceil(4 / cols), scale) and Image.open(png).size == grid.size
    assert scale >= 2 and nearest_neighbour(grid, scale)


def test_walks_samples_and_the_image_as_seen_are_upscaled_whole_times():
    walker = app.preferred(on_mnist(app.models_where(app.walks)))[0]
    strip, gif = app.latent_walk(walker, 0, 1, 6, "any" if not app.conditional(app.model(walker)) else "3")
    assert strip.size == grid_size(6, 1, 2) and nearest_neighbour(strip, 2)  # "small": 2x, 56 pixels a digit
    assert Image.open(gif).size == (28 * 5, 28 * 5)  # "large": 5x
    assert app.picture(torch.full((3, *MNIST), 0.5), "large", 1).size == grid_size(1, 3, 5)
    assert app.picture(torch.zeros(64, *MNIST), "grid", 8).size == grid_size(8, 8, 3)  # 699 x 699: fits
    assert app.picture(torch.zeros(64, 1, 8, 8), "grid", 8).size == grid_size(8, 8, 8, side=8)  # the 8x8: 8x
    assert app.picture(torch.zeros(24, *MNIST), "small", 24).size == grid_size(24, 1, 1)  # 697 wide at 1x


# -- uploads become the chosen model's shape -----------------------------------------------------


def test_uploads_of_any_size_and_colour_become_the_models_images(mnist_files):
    spec = app.data_spec("vae-mnist-5k")
    assert spec.image_shape == MNIST
    photo = app.uploaded_image(mnist_files["photo"], spec)  # 100x60 colour: grayscale, centre crop
    assert photo.shape == (1, *MNIST) and 0 <= photo.min() < photo.max() <= 1
    digit = app.uploaded_image(mnist_files["paper"], spec)  # 84x84 RGB, dark on light: inverted, averaged down
    assert digit.shape == (1, *MNIST) and (digit - mnist_files["digits"]).abs().mean() < 0.02
    small = app.uploaded_image(mnist_files["paper"], app.data_spec("vae-digits"))  # the same file for 8x8 digits
    assert small.shape == (1, 1, 8, 8) and torch.equal(small, (small * 16).round() / 16)  # on their 17 levels


def test_the_classifier_reads_an_uploaded_mnist_digit(mnist_files):
    name = app.preferred(app.models_where(app.classifies_images))[0]
    seen, probabilities = app.classify(name, None, mnist_files["paper"])
    assert seen.size == grid_size(1, 1, 5)  # the image as the model sees it: 28x28, 5x
    expected = app.model(name).predict_proba(mnist_files["digits"])[0]
    assert max(probabilities, key=probabilities.get) == str(int(expected.argmax()))


# -- a decompression bomb is refused from its header ---------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Every image decode (PIL's load) fails the test; the list of the sizes it was asked to decode."""
    calls = []

    def load(self, *args, **kwargs):
        calls.append(self.size)
        raise AssertionError(f"decoded an image of {self.size}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    monkeypatch.setattr(Image.Image, "load", load)
    return calls


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_patch_would_catch_a_decode(bomb_png, no_decoding):
    with pytest.raises(AssertionError, match="decoded an image"):
        Image.open(bomb_png).convert("L")
    assert no_decoding == [(13000, 13000)]


def test_a_bomb_upload_is_refused_before_decoding(bomb_png, huge_bomb_png, no_decoding):
    specs = [app.data_spec(name) for name in ("vae-mnist-5k", "vae-digits")]  # 28x28 and 8x8, loaded first
    tracemalloc.start()
    try:
        for spec in specs:
            with pytest.raises(ValueError, match=r"^bomb.png " + BOMB + "$"):
                app.uploaded_image(bomb_png, spec)
            with pytest.raises(ValueError, match=r"^huge.png declares more than the 16,777,216 pixels the demo "
                                                 r"decodes \(a decompression bomb\?\)$"):
                app.uploaded_image(huge_bomb_png, spec)  # refused by PIL's own check as it opens the file
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert no_decoding == [] and peak < 2**20  # nothing decoded, under a megabyte allocated


def test_gradios_own_image_inputs_check_the_header_first(bomb_png, no_decoding):
    """Gradio opens a gr.Image upload and decodes every Sketchpad image itself: the demo's inputs check first."""
    sketchpad = app.sketchpad_input(type="numpy")
    with open(bomb_png, "rb") as f:
        raw = f.read()
    upload = ImageData(path=bomb_png, orig_name="bomb.png")
    for call, name in [(lambda: app.image_input(type="filepath").preprocess(upload), "bomb.png"),
                       (lambda: sketchpad.convert_and_format_image(FileData(path=bomb_png)), "the drawing"),
                       (lambda: sketchpad.convert_and_format_image(raw), "the drawing")]:
        with pytest.raises(gr.Error) as error:
            call()
        assert re.fullmatch(f"{name} {BOMB}", error.value.message)
    assert no_decoding == []
    assert not (Path(app.__file__).with_suffix(".pyi")).exists()  # no component subclass: Gradio writes no stub


# -- through the real server ---------------------------------------------------------------------


def peak_memory(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_the_mnist_models_through_the_server(client, mnist_files, tmp_path):
    first = app.preferred(app.models_where(app.makes_images))[0]
    grid, _ = client.predict(first, 4, 0, "any", 2, 1.0, "ddim", api_name="/images")
    assert Image.open(grid).size == app.generate_images(first, 4, 0, "any", 2, 1.0, "ddim")[0].size
    walker = app.preferred(on_mnist(app.models_where(app.walks)))[0]
    if hasattr(app.model(walker), "encode"):  # an autoencoder walks between two uploads, made 28x28 grayscale
        strip, _ = client.predict(walker, 0, 1, 4, "any", handle_file(mnist_files["photo"]),
                                  handle_file(mnist_files["paper"]), api_name="/latent_walk")
        assert Image.open(strip).size == grid_size(4, 1, 2)
    classifier = app.preferred(app.models_where(app.classifies_images))[0]
    seen, _ = client.predict(classifier, None, handle_file(mnist_files["paper"]), api_name="/classify")
    assert Image.open(seen).size == grid_size(1, 1, 5)
    quick = [n for n in on_mnist(app.models_where(app.scores_images)) if "k" not in app.model(n).accepts("log_prob")]
    canvas = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(128, 40), (128, 216)], fill="black", width=24)
    canvas.save(tmp_path / "drawing.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "drawing.png"))}
    shown, table, _, _ = client.predict(quick[0], None, [handle_file(mnist_files["photo"])], drawing, 2,
                                        api_name="/anomalies")
    assert sorted(row[0] for row in table["data"]) == [0, 1] and Image.open(shown).size == grid_size(2, 1, 3)


def test_bombs_are_refused_by_the_server_in_one_line_without_decoding(client, demo_process, mnist_files, bomb_png):
    pid = demo_process[0].pid
    quick = [n for n in on_mnist(app.models_where(app.scores_images)) if "k" not in app.model(n).accepts("log_prob")]
    client.predict(quick[0], None, [handle_file(mnist_files["paper"])], None, 2,
                   api_name="/anomalies")  # the model, its data and its reference digits, loaded
    before = peak_memory(pid)
    drawing = {"background": None, "layers": [], "composite": handle_file(bomb_png)}
    for args, api, message in [
        ((quick[0], None, [handle_file(bomb_png)], None, 2), "/anomalies", "bomb.png "),  # a gr.File: the demo reads it
        ((quick[0], None, None, drawing, 2), "/anomalies", "the drawing "),  # the Sketchpad: before Gradio decodes it
        (("vae-mnist-5k", 0, 1, 4, "any", handle_file(bomb_png), handle_file(bomb_png)), "/latent_walk", "bomb.png "),
    ]:
        with pytest.raises(AppError, match=message + BOMB) as error:
            client.predict(*args, api_name=api)
        assert "Traceback" not in str(error.value)
    assert peak_memory(pid) - before < 100 * 2**20  # decoded, the bomb alone would take 169 MB
