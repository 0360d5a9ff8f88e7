"""The demo in a real browser: Playwright driving Debian's chromium (installed by .ci/run) against `genzoo demo`.

Set GENZOO_DEMO_SCREENSHOT=docs/demo.png to refresh the README's screenshot.
"""

import os
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

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
    page.locator("#images-generate").click()
    grid = page.locator("#images-grid img")
    expect(grid).to_be_visible(timeout=30_000)
    size = page.evaluate("(img) => [img.naturalWidth, img.naturalHeight]", grid.element_handle())
    assert size == [(10 * 9 + 1) * 8, (2 * 9 + 1) * 8]  # cvae-digits: 16 samples, a column per class, x8
    shot = Path(os.environ.get("GENZOO_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    page.screenshot(path=str(shot), full_page=False)
    assert Image.open(shot).size == (1280, 900)


def test_generate_text_in_the_browser(page, tmp_path):
    page.get_by_role("tab", name="Text").click()
    page.locator("#text-generate").click()
    output = page.locator("#text-output textarea")
    expect(output).to_have_value(re.compile(r"[\s\S]{100,}"), timeout=30_000)  # the default asks 200 new tokens
    page.screenshot(path=str(tmp_path / "text.png"))
