"""The demo in a real browser: Playwright driving Debian's chromium (installed by .ci/run) against `genzoo demo`.

Set GENZOO_DEMO_SCREENSHOT=docs/demo.png to refresh the README's screenshot.
"""

import math
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from zoo.cli import load_demo

app = load_demo()

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def page(demo_server):
    assert Path(CHROMIUM).is_file(), "the browser test needs Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(demo_server[0])
        yield page
        browser.close()


def test_generate_images_in_the_browser(page, tmp_path):
    expect(page.get_by_role("tab", name="Images")).to_be_visible(timeout=30_000)
    default = app.preferred(app.models_where(app.makes_images))[0]
    assert app.recorded_shape(default) == (1, 28, 28)  # the tab opens on a 28x28 model
    page.locator("#images-generate").click()
    grid = page.locator("#images-grid img")
    expect(grid).to_be_visible(timeout=60_000)
    shown = page.evaluate("(img) => [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width, "
                          "img.getBoundingClientRect().height, getComputedStyle(img).imageRendering]",
                          grid.element_handle())
    cols = app.conditional(app.model(default)) or 4  # 16 samples: a column per class, else 4x4
    scale = min(3, 760 // (cols * 29 + 1))
    assert shown[:2] == [(cols * 29 + 1) * scale, (math.ceil(16 / cols) * 29 + 1) * scale]
    assert shown[2:4] == shown[:2] and shown[4] == "pixelated"  # at its own size, never smoothed
    shot = Path(os.environ.get("GENZOO_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    page.screenshot(path=str(shot), full_page=False)
    assert Image.open(shot).size == (1280, 900)


def test_a_decompression_bomb_is_one_line_in_the_browser(page, bomb_png):
    page.get_by_role("tab", name="Anomalies").click()
    page.locator("#anomalies-files input[type=file]").set_input_files(bomb_png)
    expect(page.locator("#anomalies-files").get_by_text("bomb.png")).to_be_visible(timeout=30_000)  # uploaded
    page.locator("#anomalies-score").click()
    message = page.get_by_text(re.compile(r"^bomb.png is 13000x13000 pixels, more than the 16,777,216 the demo "
                                          r"decodes \(a decompression bomb\?\)$"))
    expect(message).to_be_visible(timeout=30_000)


def test_score_an_uploaded_digit_in_the_browser(page, tmp_path):
    from zoo.data.images import mnist_5k_split

    digit = tmp_path / "digit.png"
    Image.fromarray((mnist_5k_split("test")[0][0, 0].numpy() * 255).round().astype("uint8")).save(digit)
    page.reload()  # a fresh page: the file input keeps the bomb of the test before
    page.get_by_role("tab", name="Anomalies").click()
    default = app.preferred(app.models_where(app.scores_images))[0]
    assert app.recorded_shape(default) == (1, 28, 28)  # the tab opens on a 28x28 model
    page.locator("#anomalies-files input[type=file]").set_input_files(str(digit))
    expect(page.locator("#anomalies-files").get_by_text("digit.png")).to_be_visible(timeout=30_000)
    page.locator("#anomalies-score").click()
    expect(page.locator("#anomalies-answer")).to_contain_text(re.compile(r"(normal|anomalous): score .* nats"),
                                                              timeout=60_000)  # the first request: 400 digits
    chart = page.locator("#anomalies-chart img")
    expect(chart).to_be_visible(timeout=30_000)
    assert page.evaluate("(img) => [img.naturalWidth, img.naturalHeight]", chart.element_handle()) == \
        list(app.CHART["size"])
    page.screenshot(path=str(tmp_path / "anomalies.png"), full_page=True)


def test_generate_text_in_the_browser(page, tmp_path):
    page.get_by_role("tab", name="Text", exact=True).click()
    page.locator("#text-generate").click()
    output = page.locator("#text-output textarea")
    expect(output).to_have_value(re.compile(r"[\s\S]{100,}"), timeout=30_000)  # the default asks 200 new tokens
    page.screenshot(path=str(tmp_path / "text.png"))


def test_text_to_image_in_the_browser(page, tmp_path):
    """Type a prompt, draw: the grid and the table of what each image shows appear."""
    page.get_by_role("tab", name="Text to image").click()
    page.locator("#t2i-prompt textarea").fill("a thin 1 leaning left")
    page.locator("#t2i-draw").click()
    expect(page.locator("#t2i-summary")).to_contain_text("show everything the prompt names", timeout=60_000)
    expect(page.locator("#t2i-grid img")).to_be_visible()
    expect(page.locator("#t2i-table")).to_contain_text("leaning")
    page.screenshot(path=str(tmp_path / "text-to-image.png"), full_page=True)


def stroke(page, pad: str) -> None:
    """Drag the mouse down the middle of the drawing pad `pad` (a CSS selector): a "1"."""
    box = page.locator(f"{pad} canvas").first.bounding_box()
    x, top = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x, top + step * box["height"] * 0.03)
    page.mouse.up()


def test_a_digit_drawn_at_once_is_scored_and_classified_in_the_browser(page):
    """The drawing pads take a stroke as soon as they show (no tool to choose first), and again after a clear."""
    page.reload()
    page.get_by_role("tab", name="Anomalies").click()
    stroke(page, "#anomalies-sketch")
    page.locator("#anomalies-score").click()
    expect(page.locator("#anomalies-answer")).to_contain_text(re.compile(r"(normal|anomalous): score .* nats"),
                                                              timeout=60_000)
    page.locator('#anomalies-sketch button[aria-label="Clear canvas"]').click()
    expect(page.locator("#anomalies-sketch .empty.wrap")).to_have_count(0, timeout=10_000)  # the brush, chosen again
    page.get_by_role("tab", name="Classifier").click()
    stroke(page, "#classifier-sketch")
    page.locator("#classifier-classify").click()
    expect(page.locator("#classifier-label")).to_contain_text("%", timeout=60_000)
