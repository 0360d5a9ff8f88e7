"""The demo under misuse and load: images refused from their header, bad input one line in the UI and in the log,
whole files under concurrent requests, bounded and removed temp files, and the UX fixes that can be checked without a
browser. ``benchmarks/demo_load.py`` measures the same things at scale (memory under 2,000 requests)."""

import io
import os
import re
import signal
import struct
import time
import tracemalloc
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageFile

from zoo.cli import load_demo

from tests.demo.conftest import STARTUP_LIMIT_S, start_demo, wait_until_serving

app = load_demo()

CAP = app.LIMITS["image_pixels"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only its header (an 8-bit RGB image of width x height) and an empty IDAT chunk: no pixel data
    at all, so that any attempt to decode it fails."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.fixture
def decodes(monkeypatch):
    """The sizes of the images PIL was asked to decode (its load), while the test runs."""
    calls = []
    load = ImageFile.ImageFile.load

    def counted(self, *args, **kwargs):
        calls.append(self.size)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return calls


# -- images: checked from the header, before decoding --------------------------------------------------------


def test_the_pixel_cap_is_read_from_the_header_before_decoding(decodes):
    assert CAP == 4096 * 4096  # the documented cap: LIMITS["image_pixels"]
    accepted = app.checked_image(io.BytesIO(png_header(4096, 4096)), "at-cap.png")  # header only: opened lazily
    assert accepted.size == (4096, 4096)
    accepted.close()
    tracemalloc.start()
    try:
        for width, height in [(4097, 4096), (13000, 13000), (1, CAP + 1)]:
            with pytest.raises(ValueError, match=rf"^crafted.png is {width}x{height} pixels, more than the "
                                                 rf"16,777,216 the demo decodes \(a decompression bomb\?\)$"):
                app.checked_image(io.BytesIO(png_header(width, height)), "crafted.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decodes == []  # PIL never decoded a pixel (there are none to decode: decoding would have failed)
    assert peak < 2**20  # and allocated under a megabyte: a 13000x13000 RGB decode is 507 MB
    with pytest.raises((OSError, SyntaxError, ValueError)):  # a decode is counted (and fails: no pixels)
        Image.open(io.BytesIO(png_header(8, 8))).load()
    assert decodes == [(8, 8)]


def test_a_crafted_header_is_refused_by_every_image_input_of_the_app(decodes):
    raw = png_header(13000, 13000)
    sketchpad = app.sketchpad_input(type="numpy")
    with pytest.raises(gr.Error) as error:
        sketchpad.convert_and_format_image(raw)
    assert re.fullmatch(r"the drawing is 13000x13000 pixels, more than the 16,777,216 the demo decodes "
                        r"\(a decompression bomb\?\)", error.value.message)
    assert decodes == []


# -- bad input: one line in the UI and in the log, through the real server ----------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "text.png").write_text("not an image\n")
    (folder / "notes.txt").write_text("not an image either\n")
    return {"text": str(folder / "text.png"), "notes": str(folder / "notes.txt")}


def logged(path, line: str, limit: float = 10.0) -> str:
    """The server's log once it holds `line` (the server writes it after answering); fails after `limit` s."""
    start = time.perf_counter()
    while True:
        text = path.read_text(errors="replace")
        if line in text or time.perf_counter() - start > limit:
            return text
        time.sleep(0.1)


@pytest.mark.parametrize("api, args, message", [
    ("/images", ("vae-digits", "many", 0, "any", 25, 1.0, "ddim"), "samples (max 64) must be a number, got 'many'"),
    ("/images", ("vae-digits", 4, "zero", "any", 25, 1.0, "ddim"), "seed must be a number, got 'zero'"),
    ("/images", ("vae-digits", 65, 0, "any", 25, 1.0, "ddim"),
     "samples (max 64): Value 65 is greater than maximum value 64."),
    ("/classify", ("nb-digits", None, "text"), "text.png is not an image file (PNG, JPEG, GIF, BMP or WebP)"),
    ("/classify", ("nb-digits", "drawing:text", None),
     "the drawing is not an image file (PNG, JPEG, GIF, BMP or WebP)"),
    ("/anomalies", ("nb-digits", None, ["notes"], None, 2),
     "or upload images: Invalid file type. Please upload a file that is one of these formats: ['image']"),
    ("/classify", ("nb-digits", None, "just a string"),
     "or upload one (image input): cannot read 'just a string'; send files with gradio_client.handle_file"),
])
def test_bad_input_is_one_line_in_the_ui_and_in_the_log(client, demo_log, bad_files, api, args, message):
    def payload(value):
        if isinstance(value, list):
            return [payload(v) for v in value]
        if isinstance(value, str) and value.startswith("drawing:"):
            return {"background": None, "layers": [], "composite": handle_file(bad_files[value[8:]])}
        return handle_file(bad_files[value]) if isinstance(value, str) and value in bad_files else value

    with pytest.raises(AppError) as error:
        client.predict(*[payload(a) for a in args], api_name=api)
    assert str(error.value) == message  # the whole message: one line, no traceback, not Gradio's generic "Error"
    text = logged(demo_log, message)
    assert re.search(r"INFO genzoo demo: refused \w+: " + re.escape(message) + "\n", text)
    assert "Traceback" not in text


# -- whole files under concurrent requests --------------------------------------------------------------------


def test_each_picture_is_a_new_whole_file(tmp_path):
    component = gr.Image(type="pil", format="png", interactive=False)
    component.GRADIO_CACHE = str(tmp_path)
    app.whole_pictures(component)
    picture = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    first, second = component.postprocess(picture), component.postprocess(picture)  # the same picture twice
    folder = str(tmp_path / "genzoo-pictures")
    assert first.path != second.path and all(p.path.startswith(folder) for p in (first, second))
    for data in (first, second):
        assert np.array_equal(np.asarray(Image.open(data.path)), np.asarray(picture))
    assert not list(tmp_path.rglob("*.part"))  # written under a temporary name, then renamed


def fetched(client: Client, result) -> list[bytes]:
    """The bytes of every output file of `result` (file dicts), fetched from the server in full."""
    files = [v for v in result if isinstance(v, dict) and "url" in v]
    out = []
    for f in files:
        with urllib.request.urlopen(f["url"], timeout=30) as response:  # IncompleteRead if cut short
            out.append(response.read())
    return out


def test_identical_concurrent_requests_all_get_whole_files(demo_server):
    """Thirty identical requests at once: the same picture, written by concurrent jobs, is never served cut short
    (Gradio's own writing of returned pictures failed this about every time)."""
    client = Client(demo_server[0], verbose=False, download_files=False)
    jobs = [client.submit("vae-digits", 16, 7, "any", 25, 1.0, "ddim", api_name="/images") for _ in range(30)]
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(lambda job: fetched(client, job.result(timeout=60)), jobs))
    grids = [Image.open(io.BytesIO(r[0])) for r in results]
    for grid in grids:
        grid.load()  # a truncated PNG raises here
    assert len({np.asarray(g).tobytes() for g in grids}) == 1  # one seed, one picture


# -- temp files: bounded, and removed on exit ---------------------------------------------------------------


def test_files_older_than_the_cache_age_are_swept(tmp_path):
    old, new = tmp_path / "old.png", tmp_path / "hash" / "new.png"
    staged = tmp_path / "hash" / "tmp1234"  # what some Gradio uploads leave behind, unknown to its own sweep
    new.parent.mkdir()
    for path in (old, new, staged):
        path.write_bytes(b"x")
    past = time.time() - app.CACHE_AGE - 1
    os.utime(old, (past, past))
    os.utime(staged, (past, past))
    assert app.sweep(tmp_path) == 2 and not old.exists() and not staged.exists() and new.exists()
    stop = app.start_sweeping([tmp_path], every=0.05, age=0)  # the server's sweeper thread
    try:
        deadline = time.monotonic() + 5
        while new.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert not new.exists() and new.parent.is_dir()  # files go, folders stay


def test_the_server_is_built_to_bound_its_files_sessions_and_inputs(monkeypatch):
    blocks = app.build_app()
    assert blocks.delete_cache == (app.CACHE_SWEEP, app.CACHE_AGE)
    inputs = {id(b) for fn in blocks.fns.values() for b in fn.inputs}
    assert inputs and all(getattr(b, "_genzoo_guarded", False) for b in blocks.blocks.values() if id(b) in inputs)
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    app.launch(blocks, block=False)
    assert launched["state_session_capacity"] == app.SESSIONS and launched["js"] == app.DRAW_FIRST
    assert launched["max_file_size"] == app.LIMITS["upload"]


def test_sigterm_removes_every_file_the_server_wrote(tmp_path, bad_files):
    """A real `genzoo demo` serves a picture and takes an upload, gets SIGTERM, exits 0 and leaves no file behind."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    process, url = start_demo(tmp_path, TMPDIR=str(temp), GRADIO_TEMP_DIR="")
    try:
        wait_until_serving(url, process, STARTUP_LIMIT_S)
        client = Client(url, verbose=False, download_files=False)
        grid, png = client.predict("gmm-digits", 4, 0, "any", 25, 1.0, "ddim", api_name="/images")
        with pytest.raises(AppError, match="text.png is not an image file"):
            client.predict("nb-digits", None, handle_file(bad_files["text"]), api_name="/classify")  # an upload
        written = [p for p in temp.rglob("*") if p.is_file()]
        folders = {p.relative_to(temp).parts[0] for p in written}
        assert len(written) >= 3 and len(folders) == 1 and folders.pop().startswith("genzoo-demo-")  # its own folder
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert [p for p in temp.rglob("*") if p.is_file()] == []  # no file left
    assert not any(p.name.startswith("genzoo-demo-") for p in temp.iterdir())  # the server's own folder is gone
    # (Gradio makes an empty gradio/vibe_edit_history/ in the temp folder as it is imported: no file in it)
    assert "Traceback" not in process.log_path.read_text()


# -- UX -------------------------------------------------------------------------------------------------------


def test_the_bic_chart_has_one_tick_per_k():
    table = app.bic_table([(1, 5.0), (2, 3.5), (3, 4.0)])
    assert table["K"].tolist() == ["1", "2", "3"] and table["BIC"].tolist() == [5.0, 3.5, 4.0]
    chart = app.bic_chart()  # K is text (a nominal axis: no K = 1.5), in numeric order (not "1", "10", "2")
    assert chart.sort == [str(k) for k in range(1, app.MAX_COMPONENTS + 1)]


def test_the_latent_walk_opens_on_a_valid_label_for_every_model():
    for name in app.models_where(app.walks):
        update = app.walk_label_choices(name)
        strip, gif = app.latent_walk(name, 0, 1, 2, update["value"])  # the default label: never an error
        assert strip.size[0] > 0 and os.path.isfile(gif)
        assert update["visible"] == bool(app.conditional(app.model(name)))
        assert update["value"] != "any" or not app.conditional(app.model(name))
    assert app.walk_label_choices("cvae-digits")["value"] == str(app.FIRST_CLASS)


def test_hidden_states_are_shown_by_colour_alone():
    text = app.state_text("states")
    assert text.show_inline_category is False and text.show_legend is False and "states" in text.elem_classes
    assert ".states .textfield" in app.CSS
