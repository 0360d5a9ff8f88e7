"""Every demo endpoint through gradio_client against a real `genzoo demo` server (tests/demo/conftest.py)."""

import time
import urllib.request

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from zoo.cli import load_demo
from zoo.data.digits import digits_split
from zoo.registry import PRETRAINED

app = load_demo()


def grid_size(cols: int, rows: int, scale: int, side: int = 8) -> tuple[int, int]:
    """(width, height) of zoo.images.make_grid: 1-pixel gaps around 8x8 tiles, upscaled."""
    return ((cols * (side + 1) + 1) * scale, (rows * (side + 1) + 1) * scale)


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, bomb_png):
    """Test digits as files: an 8x8 PNG, a 32x32 PNG (x4), a colour image, a non-square image, a CSV, a text file
    named .png and a decompression bomb (a 20 KB PNG of 13000x13000 pixels)."""
    folder = tmp_path_factory.mktemp("digits")
    x, _ = digits_split("test")
    grey = (x[:, 0].numpy() * 255).round().astype(np.uint8)  # (N, 8, 8)
    files = {}
    for i in range(2):
        files[f"digit{i}"] = folder / f"digit{i}.png"
        Image.fromarray(grey[i]).save(files[f"digit{i}"])
    files["big"] = folder / "big.png"
    Image.fromarray(grey[2].repeat(4, 0).repeat(4, 1)).save(files["big"])
    files["colour"] = folder / "colour.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(files["colour"])
    files["oblong"] = folder / "oblong.png"
    Image.new("L", (16, 8)).save(files["oblong"])
    rows = (x[:5, 0].reshape(5, 64).numpy() * 16).round().astype(int).tolist()
    rows.append([16 if (i // 8 + i % 8) % 2 else 0 for i in range(64)])  # a checkerboard: no digit at all
    files["csv"] = folder / "digits.csv"
    files["csv"].write_text("\n".join(",".join(map(str, r)) for r in [[f"p{i}" for i in range(64)], *rows]) + "\n")
    files["bad_csv"] = folder / "bad.csv"
    files["bad_csv"].write_text("1,2,3\n4,5,6\n")
    files["text"] = folder / "text.png"
    files["text"].write_text("not an image")
    files["bomb"] = bomb_png
    return {k: str(v) for k, v in files.items()}


def test_serves_quickly_with_every_available_tab(demo_server, client):
    _, startup = demo_server
    assert startup < 60  # the server is up before any model is loaded (they load on first use)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == {"/images", "/text_to_image", "/latent_walk", "/text", "/mixtures", "/hmm_sample", "/viterbi",
                         "/anomalies", "/classify", "/class_samples", "/molecules", "/score_molecule"}


def test_model_cards_are_linked_and_served(demo_server):
    page = urllib.request.urlopen(demo_server[0] + "config", timeout=10).read().decode()
    default = app.preferred(app.models_where(app.makes_images))[0]
    card = (PRETRAINED[default].packaged / "README.md").as_posix()
    assert f"/gradio_api/file={card}" in page  # the Images tab's first line links the default model's card
    served = urllib.request.urlopen(demo_server[0] + f"gradio_api/file={card}", timeout=10).read().decode()
    assert served.startswith("---") and "model-index" in served


# -- Images ------------------------------------------------------------------------------------


def test_images_grid_and_png_download_are_deterministic(client):
    grid, png = client.predict("vae-digits", 16, 0, "any", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(grid).size == grid_size(4, 4, 8) and Image.open(png).format == "PNG"
    assert np.array_equal(pixels(grid), pixels(png))
    again, _ = client.predict("vae-digits", 16, 0, "any", 50, 2.0, "ddim", api_name="/images")
    other, _ = client.predict("vae-digits", 16, 1, "any", 50, 2.0, "ddim", api_name="/images")
    assert np.array_equal(pixels(grid), pixels(again)) and not np.array_equal(pixels(grid), pixels(other))


def test_images_conditional_labels(client):
    grid, _ = client.predict("cvae-digits", 20, 0, "any", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(grid).size == grid_size(10, 2, 8)  # one column per class
    threes, _ = client.predict("cvae-digits", 5, 0, "3", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(threes).size == grid_size(3, 2, 8)


def test_images_of_the_gan_and_the_diffusion_model(client):
    sevens, _ = client.predict("ddpm-digits", 4, 0, "7", 5, 2.0, "ddim", api_name="/images")
    assert Image.open(sevens).size == grid_size(2, 2, 8)
    again, _ = client.predict("ddpm-digits", 4, 0, "7", 5, 2.0, "ddim", api_name="/images")
    ancestral, _ = client.predict("ddpm-digits", 4, 0, "7", 5, 2.0, "ddpm", api_name="/images")
    assert np.array_equal(pixels(sevens), pixels(again)) and not np.array_equal(pixels(sevens), pixels(ancestral))
    gan, _ = client.predict("dcgan-digits", 20, 0, "any", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(gan).size == grid_size(10, 2, 8)


def test_images_of_every_model_that_declares_image_outputs(client):
    mixture, _ = client.predict("gmm-digits", 4, 0, "any", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(mixture).size == grid_size(2, 2, 8)  # unconditional: no columns per class
    nb, _ = client.predict("nb-digits", 20, 0, "any", 50, 2.0, "ddim", api_name="/images")
    assert Image.open(nb).size == grid_size(10, 2, 8)  # declares labels: one column per class
    with pytest.raises(AppError, match="this model is unconditional"):
        client.predict("gmm-digits", 4, 0, "3", 50, 2.0, "ddim", api_name="/images")


@pytest.mark.parametrize("args, message", [  # ranges are checked by gradio's widgets, the rest by the demo and zoo
    (("vae-digits", 0, 0, "any", 50, 2.0, "ddim"), "Value 0 is less than minimum value 1"),
    (("vae-digits", 65, 0, "any", 50, 2.0, "ddim"), "Value 65 is greater than maximum value 64"),
    (("vae-digits", 4, -1, "any", 50, 2.0, "ddim"), "Value -1 is less than minimum value 0"),
    (("vae-digits", 2.5, 0, "any", 50, 2.0, "ddim"), "number of samples must be a whole number in 1..64, got 2.5"),
    (("vae-digits", 4, 0, "3", 50, 2.0, "ddim"), "this model is unconditional"),
    (("vae-digitz", 4, 0, "any", 50, 2.0, "ddim"), "Value: vae-digitz is not in the list of choices"),
    (("ddpm-digits", 4, 0, "any", 251, 2.0, "ddim"), "Value 251 is greater than maximum value 250"),
    (("ddpm-digits", 4, 0, "any", 10, -1.0, "ddim"), "Value -1.0 is less than minimum value 0"),
])
def test_images_bad_input_is_a_clear_message(client, args, message):
    with pytest.raises(AppError, match=message) as error:
        client.predict(*args, api_name="/images")
    assert "Traceback" not in str(error.value)


def test_twenty_concurrent_image_requests_all_complete(client):
    """The bounded queue (2 at a time) serves a burst of 20 requests; none fails."""
    start = time.perf_counter()
    jobs = [client.submit("vae-digits", 16, seed, "any", 50, 2.0, "ddim", api_name="/images") for seed in range(20)]
    grids = [job.result(timeout=60)[0] for job in jobs]
    assert all(Image.open(grid).size == grid_size(4, 4, 8) for grid in grids)
    assert len({pixels(grid).tobytes() for grid in grids}) == 20  # 20 seeds, 20 different grids
    assert time.perf_counter() - start < 60


# -- Latent walk -------------------------------------------------------------------------------


def test_latent_walk_strip_and_gif(client):
    strip, gif = client.predict("vae-digits", 0, 1, 10, "any", None, None, api_name="/latent_walk")
    assert Image.open(strip).size == grid_size(10, 1, 6)
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 18  # forth and back
    strip3, _ = client.predict("cvae-digits", 0, 1, 4, "3", None, None, api_name="/latent_walk")
    assert Image.open(strip3).size == grid_size(4, 1, 6)
    gan, gif = client.predict("dcgan-digits", 0, 1, 6, "5", None, None, api_name="/latent_walk")
    assert Image.open(gan).size == grid_size(6, 1, 6) and Image.open(gif).n_frames == 10


def test_latent_walk_between_uploaded_digits(client, digit_files):
    strip, _ = client.predict("vae-digits", 0, 1, 6, "any", handle_file(digit_files["digit0"]),
                              handle_file(digit_files["big"]), api_name="/latent_walk")
    assert Image.open(strip).size == grid_size(6, 1, 6)
    strip, _ = client.predict("vae-digits", 0, 1, 6, "any", handle_file(digit_files["colour"]),
                              handle_file(digit_files["oblong"]), api_name="/latent_walk")  # made 8x8 grayscale
    assert Image.open(strip).size == grid_size(6, 1, 6)


@pytest.mark.parametrize("args, message", [
    (("vae-digits", 0, 1, 1, "any", None, None), "Value 1 is less than minimum value 2"),
    (("cvae-digits", 0, 1, 5, "any", None, None), "conditional: choose a class label"),
    (("vae-digits", 0, 1, 5, "any", "digit0", None), "upload two images"),
    (("vae-digits", 0, 1, 5, "any", "text", "digit0"), r"^text.png is not an image file"),
    (("vae-digits", 0, 1, 5, "any", "digit0", "bomb"), r"^bomb.png is 13000x13000 pixels, more than the 16,777,216 "
                                                       r"the demo decodes \(a decompression bomb\?\)$"),
    (("dcgan-digits", 0, 1, 5, "3", "digit0", "digit1"), "a GAN has no encoder"),
])
def test_latent_walk_bad_input(client, digit_files, args, message):
    args = [handle_file(digit_files[a]) if a in digit_files else a for a in args]
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/latent_walk")


# -- Anomalies ---------------------------------------------------------------------------------


def test_anomalies_of_test_digits_against_the_normal_digits(client, digit_files):
    grid, table, chart, answer = client.predict("vae-digits", handle_file(digit_files["csv"]), None, None, 8,
                                                api_name="/anomalies")
    scores = [row[1] for row in table["data"]]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)  # most unusual first
    assert table["headers"] == ["image #", "score (nats)", "percentile among normal test digits", "verdict"]
    assert Image.open(grid).size == grid_size(6, 1, 8) and Image.open(chart).size == app.CHART["size"]
    threshold = app.reference("vae-digits").detector.threshold_
    assert all(row[3] == ("anomalous" if row[1] > threshold else "normal") for row in table["data"])
    assert answer.startswith("**1 of 6 images anomalous**") and f"{threshold:,.1f} nats" in answer
    with pytest.raises(AppError, match=r"^no image to score: draw a digit, upload image files or give a CSV$"):
        client.predict("vae-digits", None, None, None, 8, api_name="/anomalies")


def test_anomalies_csv_finds_the_odd_one_out(client, digit_files):
    _, table, _, _ = client.predict("vae-digits", handle_file(digit_files["csv"]), None, None, 3, api_name="/anomalies")
    assert table["data"][0][0] == 5  # the checkerboard row
    assert table["data"][0][2] == 100.0 and table["data"][0][3] == "anomalous"  # above every normal test digit


def test_anomalies_images_and_bad_csv(client, digit_files):
    _, table, _, _ = client.predict("vae-digits", None, [handle_file(digit_files["digit0"]),
                                                         handle_file(digit_files["big"])], None, 2, api_name="/anomalies")
    assert sorted(row[0] for row in table["data"]) == [0, 1]
    with pytest.raises(AppError, match=r"bad.csv: row 1 must hold 64 numeric pixel values \(8x8\), got 3 columns"):
        client.predict("vae-digits", handle_file(digit_files["bad_csv"]), None, None, 3, api_name="/anomalies")


# -- Mixtures ----------------------------------------------------------------------------------


def test_mixtures_on_a_builtin_set(client):
    picture, bic, summary = client.predict("blobs", None, 300, 3, "full", 0, api_name="/mixtures")
    assert Image.open(picture).size == (480, 480)
    assert [row[0] for row in bic["data"]] == [str(k) for k in range(1, 11)] and bic["columns"] == ["K", "BIC"]
    assert "K = 3 (full covariance) on 300 points" in summary and "BIC is lowest at K = 3" in summary


def test_mixtures_on_an_uploaded_csv(client, tmp_path):
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(-3, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))])
    (tmp_path / "points.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in points))
    _, bic, summary = client.predict("blobs", handle_file(str(tmp_path / "points.csv")), 600, 2, "diag", 0,
                                     api_name="/mixtures")
    scores = dict(bic["data"])
    assert min(scores, key=scores.get) == "2"  # two clusters: BIC picks K = 2
    assert "on 80 points" in summary and "weights 0.50, 0.50" in summary


@pytest.mark.parametrize("rows, k, message", [
    ("1,2,3\n4,5,6\n", 2, r"points.csv: row 1 must hold two numbers \(x, y\), got 3 columns"),
    ("1,2\n3,x\n", 2, "row 2 must hold two numbers .* with non-numbers"),
    ("1,2\n3,4\n5,6\n", 5, "K=5 components need at least 5 points, got 3"),
])
def test_mixtures_bad_csv(client, tmp_path, rows, k, message):
    (tmp_path / "points.csv").write_text(rows)
    with pytest.raises(AppError, match=message):
        client.predict("blobs", handle_file(str(tmp_path / "points.csv")), 600, k, "full", 0, api_name="/mixtures")


def test_cli_demo_help_says_localhost_by_default(capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "default 127.0.0.1" in out and "--port" in out and "--host" in out


def test_anomalies_scores_a_drawing(client, tmp_path):
    from PIL import ImageDraw

    canvas = Image.new("RGBA", (256, 256), (0, 0, 0, 0))  # what the Sketchpad sends: black ink, transparent paper
    ImageDraw.Draw(canvas).line([(128, 40), (128, 216)], fill="black", width=24)  # a "1"
    canvas.save(tmp_path / "drawing.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "drawing.png"))}
    grid, table, _, answer = client.predict("vae-digits", None, None, drawing, 5, api_name="/anomalies")
    assert len(table["data"]) == 1 and table["data"][0][2] < 100  # one digit, not stranger than every normal one
    assert answer.startswith(f"**{table['data'][0][3]}**: score ")
    assert Image.open(grid).size == grid_size(1, 1, 8)


def test_uploads_over_the_size_limit_are_refused(client, tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("1.0,2.0\n" * 150_000)  # 1.2 MB > the 1 MB cap
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        client.predict("blobs", handle_file(str(big)), 600, 2, "full", 0, api_name="/mixtures")


# -- Text --------------------------------------------------------------------------------------


def test_text_streams_and_is_deterministic_per_seed(client):
    job = client.submit("gpt-shakespeare-char", "ROMEO:", 40, 0.8, 0, 1.0, 0, api_name="/text")
    updates = list(job)  # the text so far, after each new piece
    final = job.result()
    assert len(updates) > 1 and final and updates[-1] == final  # it streamed, then ended with the whole text
    assert all(final.startswith(u) for u in updates)
    assert client.predict("gpt-shakespeare-char", "ROMEO:", 40, 0.8, 0, 1.0, 0, api_name="/text") == final
    other = client.predict("gpt-shakespeare-char", "ROMEO:", 40, 0.8, 0, 1.0, 1, api_name="/text")
    assert other != final


@pytest.mark.parametrize("args, message", [
    (("gpt-shakespeare-char", "", 40, 0.8, 0, 1.0, 0), "the prompt is empty"),
    (("gpt-shakespeare-char", "   ", 40, 0.8, 0, 1.0, 0), "the prompt is empty"),
    (("gpt-shakespeare-char", "ROMEO:", 501, 0.8, 0, 1.0, 0), "Value 501 is greater than maximum value 500"),
])
def test_text_bad_input(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/text")


# -- Classifier --------------------------------------------------------------------------------


def test_classifier_reads_uploaded_digits(client, digit_files):
    _, labels = digits_split("test")
    seen, probabilities = client.predict("nb-digits", None, handle_file(digit_files["big"]), api_name="/classify")
    assert Image.open(seen).size == grid_size(1, 1, 16)
    confidences = {c["label"]: c["confidence"] for c in probabilities["confidences"]}
    assert len(confidences) == 10 and sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert probabilities["label"] == str(labels[2].item())  # the 32x32 upload of test digit 2


def test_classifier_samples_a_class_and_refuses_bad_input(client, digit_files):
    grid = client.predict("nb-digits", "7", 16, 0, api_name="/class_samples")
    assert Image.open(grid).size == grid_size(8, 2, 6)
    with pytest.raises(AppError, match="draw an image"):
        client.predict("nb-digits", None, None, api_name="/classify")
    with pytest.raises(AppError, match="bomb.png is 13000x13000 pixels"):
        client.predict("nb-digits", None, handle_file(digit_files["bomb"]), api_name="/classify")


def test_anomalies_under_the_gmm(client, digit_files):
    _, table, _, _ = client.predict("gmm-digits", handle_file(digit_files["csv"]), None, None, 6, api_name="/anomalies")
    assert table["data"][0][0] == 5  # the checkerboard is the most unusual under the mixture too
    again = client.predict("gmm-digits", handle_file(digit_files["csv"]), None, None, 6, api_name="/anomalies")[1]
    assert again["data"] == table["data"]  # seeded dequantisation: the same scores every time


# -- Sequences ---------------------------------------------------------------------------------


def test_hmm_sample_is_coloured_by_state_and_deterministic(client):
    coloured, text = client.predict("hmm-shakespeare-char", 120, 0, api_name="/hmm_sample")
    assert len(text) == 120 and "".join(part["token"] for part in coloured) == text
    assert all(part["class_or_confidence"].startswith("state ") for part in coloured)
    assert client.predict("hmm-shakespeare-char", 120, 0, api_name="/hmm_sample")[1] == text


def test_hmm_viterbi_colours_every_character(client):
    coloured, summary = client.predict("hmm-shakespeare-char", "To be, or not to be", api_name="/viterbi")
    assert "".join(part["token"] for part in coloured) == "To be, or not to be"
    assert "nats per character" in summary
    with pytest.raises(AppError, match="the text is empty"):
        client.predict("hmm-shakespeare-char", "", api_name="/viterbi")


def test_molecules_are_sampled_drawn_and_scored(client):
    """The Molecules tab on the packaged molecule generator: a grid of RDKit drawings and a row of properties per
    molecule (seeded), a pasted SMILES scored with its properties, an invalid one scored and told why."""
    grid, table, summary = client.predict("gpt-moses", 8, 0, api_name="/molecules")
    rows = table["data"]
    assert len(rows) == 8 and Image.open(grid).size == (960, 400)
    valid = [r for r in rows if r[2] == "yes"]
    assert summary.startswith(f"{len(valid)} of 8 valid") and all(0 < r[3] <= 1 and r[5] > 0 for r in valid)
    assert client.predict("gpt-moses", 8, 0, api_name="/molecules")[1]["data"] == rows
    answer, drawn = client.predict("gpt-moses", "CCOc1ccccc1", api_name="/score_molecule")
    assert "log p = -" in answer and "molecular weight 122.2 Da" in answer and drawn is not None
    answer, drawn = client.predict("gpt-moses", "C1CC(", api_name="/score_molecule")
    assert "log p = -" in answer and "Not a valid molecule" in answer and drawn is None
    with pytest.raises(AppError, match="paste a SMILES first"):
        client.predict("gpt-moses", "  ", api_name="/score_molecule")
    with pytest.raises(AppError, match="greater than maximum value 32"):  # the slider refuses it first
        client.predict("gpt-moses", 33, 0, api_name="/molecules")


def test_text_to_image_draws_the_prompt_and_measures_each_result(client):
    """The Text to image tab: a grid for the prompt (seeded), a row per image with the digit the classifier reads
    and the measured thickness and slant, and how many match; bad input is one line."""
    grid, table, summary, download = client.predict("ddpm-mnist-5k-text", "a thick 7 leaning right", 4, 0, 3.0, 10,
                                                    api_name="/text_to_image")
    rows = table["data"]
    assert len(rows) == 4 and Image.open(grid).size == Image.open(download).size
    assert all(r[2].endswith(("(thin)", "(regular)", "(thick)")) and r[4] in ("yes", "no") for r in rows)
    matches = sum(r[4] == "yes" for r in rows)
    assert summary.startswith(f"{matches} of 4 show everything the prompt names")
    assert sum(r[1] == 7 for r in rows) >= 3  # the digit asked for
    again = client.predict("ddpm-mnist-5k-text", "a thick 7 leaning right", 4, 0, 3.0, 10, api_name="/text_to_image")
    assert again[1]["data"] == rows and pixels(again[0]).tolist() == pixels(grid).tolist()
    _, _, summary, _ = client.predict("ddpm-mnist-5k-text", "a thick thin 3", 2, 0, 3.0, 5, api_name="/text_to_image")
    assert "names more than one thickness" in summary
    _, table, summary, _ = client.predict("ddpm-mnist-5k-text", "", 2, 0, 3.0, 5, api_name="/text_to_image")
    assert "names no digit" in summary and all(r[4] == "" for r in table["data"])
    with pytest.raises(AppError, match="less than minimum value 0|guidance must be"):  # the slider, or the model
        client.predict("ddpm-mnist-5k-text", "a 1", 2, 0, -1.0, 5, api_name="/text_to_image")
    with pytest.raises(AppError, match="the prompt has 2001 characters; at most 2000|maximum length"):
        client.predict("ddpm-mnist-5k-text", "x" * 2001, 2, 0, 3.0, 5, api_name="/text_to_image")
