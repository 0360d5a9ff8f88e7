"""The demo makes its image inputs, limits and reference data from the model's data spec, never the digits'.

In-process (no server): the conversions take a spec, and the Anomalies tab's reference comes from the datamodule
a model records, here a registered stand-in whose images are 3x16x16 at 256 levels.
"""

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import zoo.registry
from zoo.cli import load_demo
from zoo.data.spec import DataSpec
from zoo.models.base import GenerativeModel
from zoo.models.contract import LABELS

app = load_demo()

RGB16 = DataSpec(kind="image", name="rgb-16", image_shape=(3, 16, 16), num_classes=3, levels=256,
                 class_names=("cat", "dog", "owl"))
GREY28 = DataSpec(kind="image", name="grey-28", image_shape=(1, 28, 28), levels=256)
WIDE = DataSpec(kind="image", name="wide", image_shape=(1, 8, 16), levels=5)


def on_levels(x: torch.Tensor, levels: int) -> bool:
    """Whether every value of x is one of `levels` evenly spaced values in [0, 1]."""
    steps = x.double() * (levels - 1)
    return bool((x >= 0).all() and (x <= 1).all() and torch.allclose(steps, steps.round(), atol=1e-4))


def drawing(size=(256, 256), line=((128, 40), (128, 216)), width=24) -> np.ndarray:
    """What the Sketchpad sends: black ink on a transparent canvas (RGBA)."""
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line(list(line), fill="black", width=width)
    return np.asarray(canvas)


# -- drawings, uploads and CSV rows become the spec's images --------------------------------------


@pytest.mark.parametrize("spec", [RGB16, GREY28, WIDE], ids=lambda s: s.name)
def test_a_drawing_becomes_one_image_of_the_spec(spec):
    x = app.drawn_image(drawing(), spec)
    assert x.shape == (1, *spec.image_shape) and x.dtype == torch.float32
    assert on_levels(x, spec.levels) and x.max() == 1  # the ink is scaled to full brightness
    assert (x == x[:, :1]).all()  # the same strokes in every channel
    assert x[0, 0, :, 0].max() == 0 and x[0, 0, :, -1].max() == 0  # a vertical stroke, centred with a margin
    blank = np.zeros((256, 256, 4), np.uint8)
    assert app.drawn_image(blank, spec) is None and app.drawn_image({"composite": None}, spec) is None


def test_a_drawing_keeps_its_aspect_on_a_wide_spec():
    x = app.drawn_image(drawing(line=((20, 128), (236, 128)), width=30), WIDE)[0, 0]  # a horizontal bar
    rows = (x > 0).any(1).nonzero().flatten()
    assert x.shape == (8, 16) and 1 <= len(rows) <= 3  # a thin bar across the middle, not stretched to 8 rows
    assert (x > 0).any(0).sum() >= 12  # spanning most of the width


def test_an_upload_of_any_size_is_read_as_image_folders_are_in_colour(tmp_path):
    from zoo.data.images import decode

    rng = np.random.default_rng(0)
    for size in [(32, 32), (50, 30), (7, 9)]:  # twice the spec, oblong (centre crop), smaller (upscaled)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)  # bright on average: kept as is
        Image.fromarray(pixels).save(tmp_path / "photo.png")
        x = app.uploaded_image(str(tmp_path / "photo.png"), RGB16)
        assert x.shape == (1, 3, 16, 16) and on_levels(x, 256)
        assert torch.equal(x[0], torch.tensor(decode(tmp_path / "photo.png", 16, 3)).float() / 255)


def test_a_grayscale_upload_on_a_28x28_spec(tmp_path):
    ink = np.zeros((56, 56), np.uint8)
    ink[8:48, 18:38] = 255
    Image.fromarray(255 - ink).save(tmp_path / "paper.png")  # dark ink on light paper: inverted
    x = app.uploaded_image(str(tmp_path / "paper.png"), GREY28)
    assert x.shape == (1, 1, 28, 28) and on_levels(x, 256)
    assert x[0, 0, 14, 14] == 1 and x[0, 0, 0, 0] == 0
    Image.new("L", (30, 30), 255).save(tmp_path / "odd.png")  # not a multiple of 28: resized all the same
    assert torch.equal(app.uploaded_image(str(tmp_path / "odd.png"), GREY28), torch.zeros(1, 1, 28, 28))
    Image.new("RGB", (40, 84), (255, 0, 0)).save(tmp_path / "red.png")  # colour on a grayscale spec: its luma
    red = app.uploaded_image(str(tmp_path / "red.png"), GREY28)
    assert torch.equal(red, torch.full((1, 1, 28, 28), 76 / 255))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"^text.png is not an image file \(PNG, JPEG, GIF, BMP or WebP\)$"):
        app.uploaded_image(str(tmp_path / "text.png"), GREY28)


def test_uploads_on_a_wide_spec_are_refused_with_what_to_do(tmp_path):
    Image.new("L", (32, 16), 0).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match=r"resizes uploads to square images only; this model's data \(wide\) are "
                                         r"16x8: draw one, or give a CSV"):
        app.uploaded_image(str(tmp_path / "ok.png"), WIDE)
    assert "uploads are not read for 16x8 images" in app.upload_text(WIDE)


def test_csv_rows_hold_c_h_w_values_on_the_data_scale(tmp_path):
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, (3, 3 * 16 * 16))
    (tmp_path / "rgb.csv").write_text("\n".join(",".join(map(str, r)) for r in rows))
    x = app.csv_images(str(tmp_path / "rgb.csv"), RGB16)
    assert x.shape == (3, 3, 16, 16) and torch.equal(x, torch.from_numpy(rows.reshape(3, 3, 16, 16) / 255).float())
    (tmp_path / "unit.csv").write_text(",".join(["0.5"] * 784))
    assert torch.equal(app.csv_images(str(tmp_path / "unit.csv"), GREY28), torch.full((1, 1, 28, 28), 128 / 255))
    (tmp_path / "short.csv").write_text(",".join(["1"] * 64))
    with pytest.raises(ValueError, match=r"short.csv: row 1 must hold 768 numeric pixel values \(16x16, 3 channels\), "
                                         r"got 64 columns"):
        app.csv_images(str(tmp_path / "short.csv"), RGB16)
    (tmp_path / "high.csv").write_text(",".join(["300"] * 784))
    with pytest.raises(ValueError, match=r"pixel values must be in 0..255 or 0..1, got 300..300"):
        app.csv_images(str(tmp_path / "high.csv"), GREY28)


def test_without_levels_pixels_stay_continuous():
    spec = DataSpec(kind="image", name="continuous", image_shape=(1, 2, 2))
    x = app.quantise(np.array([[[[0.123, 0.5], [1.7, -1.0]]]]), spec)
    assert torch.allclose(x, torch.tensor([[[[0.123, 0.5], [1.0, 0.0]]]]))
    assert app.values_text(spec) == "0..1"


# -- the spec of a model, and the Anomalies tab's reference, come from what it records ------------


class FakeImages:
    """A registered datamodule's stand-in: seeded 3x16x16 images at 256 levels, 30 to train on, 10 to validate
    and 10 to test."""

    spec = RGB16

    def __init__(self, seed: int = 0):
        self.seed, self.ready = seed, False

    @classmethod
    def for_evaluation(cls, **saved_args):
        return cls(**saved_args)

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(self.seed)
        self.images = torch.randint(0, 256, (50, 3, 16, 16), generator=gen) / 255
        self.ready = True

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.images[:30], torch.zeros(30)))

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.images[30:40], torch.zeros(10)))

    def test_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.images[40:], torch.zeros(10)))


class FakeModel(GenerativeModel):
    """A density model on any images: log p(x) = -(sum of its pixels), so each score is checkable by hand; it
    declares images out and labels in (when it has classes), as a family does."""

    family = "fake"
    outputs = "images"
    conditions = (LABELS,)
    device = torch.device("cpu")

    def __init__(self, extra_config, image_shape=(3, 16, 16), levels=None, num_classes=None):
        super().__init__()
        self.extra_config, self.image_shape, self.levels, self.num_classes = extra_config, image_shape, levels, num_classes

    def log_prob(self, x):
        return -x.flatten(1).sum(1)


@pytest.fixture
def fakes(monkeypatch):
    """Models "fake-a" (trained on the registered "fake-images" datamodule, seed 3), "fake-b" (a saved spec and a
    datamodule) and "fake-c" (neither), served by app.model; the demo's caches are emptied after."""
    module = types.ModuleType("genzoo_demo_test_data")
    module.FakeImages = FakeImages
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(zoo.registry.DATAMODULES, "fake-images", f"{module.__name__}:FakeImages")
    entry = {"name": "fake-images", "init_args": {"seed": 3}}
    models = {"fake-a": FakeModel({"datamodule": entry}, num_classes=3),
              "fake-b": FakeModel({"datamodule": entry, "data_spec": GREY28.to_json()}, image_shape=(1, 28, 28)),
              "fake-c": FakeModel({}, image_shape=(1, 12, 12), levels=4, num_classes=5)}
    monkeypatch.setattr(app, "model", models.__getitem__)
    monkeypatch.setattr(app, "_datamodules", {})
    app.data_spec.cache_clear()
    app.reference.cache_clear()
    yield models
    app.data_spec.cache_clear()
    app.reference.cache_clear()


def test_a_models_spec_is_the_saved_one_else_its_datamodules_else_its_own_sizes(fakes):
    assert app.data_spec("fake-a") == RGB16  # the registered datamodule's spec
    assert app.data_spec("fake-b") == GREY28  # the spec saved with the model wins
    own = app.data_spec("fake-c")
    assert (own.image_shape, own.levels, own.num_classes, own.name) == ((1, 12, 12), 4, 5, "fake-c")
    assert "784 pixel values 0..255 or 0..1" in app.anomalies_note("fake-b")
    assert "any image, made 28x28 grayscale: shorter side resized, centre crop" in app.walk_note("fake-b")
    note = app.anomalies_note("fake-a")
    assert "768 pixel values 0..255 or 0..1" in note and "any image, made 16x16 RGB" in note
    assert "the 99th percentile of the scores of up to 200 validation digits of rgb-16" in note


def test_class_lists_show_the_specs_class_names(fakes):
    assert app.class_choices("fake-a") == [("cat", "0"), ("dog", "1"), ("owl", "2")]
    assert app.class_choices("fake-c") == [(str(c), str(c)) for c in range(5)]  # no names: the label numbers
    classes, seen = app.classifier_inputs("fake-a")
    assert classes["value"] == "2" and seen["label"] == "the image as the model sees it (16x16, 3 channels)"
    assert app.label_choices("fake-b")["choices"] == [("any", "any")]  # unconditional


def test_the_anomaly_reference_is_the_validation_and_test_data_of_the_models_own_datamodule(fakes):
    data = FakeImages(seed=3)
    data.setup()
    validation, test = data.images[30:40], data.images[40:]  # all 10 of each: fewer than REFERENCE_SIZE
    assert torch.equal(app.reference_images("fake-a", "val"), validation)
    assert torch.equal(app.reference_images("fake-a", "test"), test)
    ref = app.reference("fake-a")
    assert ref.detector.threshold_ == pytest.approx(np.quantile(validation.flatten(1).sum(1).numpy(), 0.99))
    assert np.allclose(ref.scores, test.flatten(1).sum(1).numpy()) and ref.validation == 10 and ref.data == "rgb-16"
    assert app.reference("fake-a") is ref  # once per model
    with pytest.raises(ValueError, match="^no image to score: draw a digit, upload image files or give a CSV$"):
        app.collect_images("fake-a", None, None, None)
    with pytest.raises(ValueError, match="fake-c records no registered datamodule"):
        app.reference_images("fake-c", "val")


def test_scoring_a_drawing_under_a_non_digits_model(fakes):
    grid, table, chart, answer = app.score_images.__wrapped__("fake-a", None, None, drawing(), 3)
    assert len(table) == 1 and grid.size == ((16 + 2) * 4, (16 + 2) * 4)  # one 16x16 image, upscaled 64 // 16 times
    score = float(app.drawn_image(drawing(), RGB16).sum())  # the fake's score: the sum of the pixels
    assert table[0][:2] == [0, round(score, 2)] and table[0][2:] == [0.0, "normal"]  # far below random images
    assert chart.size == app.CHART["size"] and answer.startswith(f"**normal**: score {score:,.1f} nats")


def test_the_reference_of_the_digits_models_is_their_validation_and_test_splits():
    from zoo.data.digits import digits_split

    for split in ("val", "test"):
        images, _ = digits_split(split)
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:app.REFERENCE_SIZE]
        assert torch.equal(app.reference_images("vae-digits", split), images[chosen.sort().values])
