"""genzoo's Gradio demo: every family of the zoo in one web app.

    genzoo demo                        # http://127.0.0.1:7860
    genzoo demo --host 0.0.0.0 --port 8000
    python demo/app.py

The demo adds UI and nothing else: models come from ``zoo.load`` by name, lazily on
first use (then cached), and every number shown is computed by the model's own API
(``sample``, ``interpolate``, ``score``, ``generate`` ...). What a tab offers comes from the
models' declared contract (``zoo.models.contract``: output kind, conditions, sampling options),
never from family names: a tab appears only when some pretrained model declares what it needs,
and shows a model's label or sampler controls only when it takes them. What an image input must be
(shape, channels, pixel levels, classes) comes from the chosen model's data spec (``zoo.data.spec``),
never from the digits: a page's first view reads the spec of each tab's default model to word its
notes and fill its class lists. Each image tab opens on the model with the largest images its config records
(the 28x28 MNIST models before the 8x8 digits), the best test FID of its card among equals. An uploaded image of
any size and colour is made the chosen model's (C, H, W) as genzoo's image folders are (``zoo.images.decode``),
once its header says it is not a decompression bomb (``checked_image``: nothing is decoded before). Pictures of
pixels are upscaled a whole number of times and shown at their own size, nearest-neighbour (``picture``).
The Anomalies tab wraps the chosen model in ``zoo.anomaly.Detector``: its threshold is a quantile of the scores of
the model's own validation digits, and an image's score is drawn against the scores of its normal test digits
(overlaid histograms, ``score_chart``), both computed once per model (``reference``).
Bad input is a one-line message in the
UI (``gr.Error``) and one line in the server log, never a stack trace: the handlers' own checks (``friendly``) and
Gradio's checks of each input (``one_line_requests``: a string for a slider, a value out of range, a file that is not
an image). Limits on samples, steps, uploads and rows are listed in the UI (``LIMITS``); the queue runs at most two
jobs at once and holds at most QUEUE_SIZE.

Under load the server's memory and disk stay bounded: Gradio keeps at most SESSIONS sessions, malloc at most two
arenas (``fewer_malloc_arenas``), and every file served lives in the process's own folder (``workdir``), swept of
files older than CACHE_AGE and removed when the server stops, SIGTERM included (``stop_on_sigterm``). Each picture is
written to a file of its own, renamed into place (``whole_pictures``), so that concurrent jobs never serve a
half-written one. ``benchmarks/demo_load.py`` measures all of this against the real server.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import ctypes
import functools
import inspect
import io
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import zoo
from zoo import hub
from zoo.anomaly import Detector
from zoo.data.spec import DataSpec
from zoo.images import decode, make_grid

log = logging.getLogger("genzoo.demo")

#: Caps, shown in the UI: they keep one request from monopolising the (CPU) server.
LIMITS = {
    "images": 64,  # samples per request
    "walk_steps": 24,  # frames of a latent walk
    "scored": 64,  # images scored per request (CSV rows, files and the drawing)
    "upload": "1mb",  # any uploaded file
    "image_pixels": 4096 * 4096,  # pixels of an uploaded image, read from its header before anything is decoded
    "diffusion_steps": 250,  # denoising steps per request
    "tokens": 500,  # new tokens per text request
    "prompt_chars": 2000,  # characters of a prompt
    "points": 5000,  # 2-D points of the Mixtures tab
    "characters": 1000,  # characters sampled or decoded by the HMM
    "molecules": 32,  # molecules sampled and drawn per request
    "smiles_chars": 500,  # characters of a pasted SMILES
}
#: The queue: at most this many jobs run at once (2 CPU cores), at most QUEUE_SIZE wait (more are refused with
#: "queue full").
CONCURRENCY, QUEUE_SIZE = 2, 64
#: Files served (Gradio's copies of uploads and outputs, the demo's PNG / GIF downloads) live in this process's own
#: folder (``workdir``): every CACHE_SWEEP seconds those older than CACHE_AGE seconds are deleted (a download link
#: works for CACHE_AGE seconds), and the folder is removed when the server stops (SIGTERM and Ctrl+C included).
CACHE_SWEEP, CACHE_AGE = 30, 300
#: Gradio keeps a copy of the page's state for each session (a browser tab, a gradio_client Client), about 0.3 MB, and
#: by default 10,000 of them: the demo keeps the SESSIONS most recently used. A dropped session loses nothing: the
#: demo keeps no per-session state, and the next request of that page starts a fresh copy.
SESSIONS = 64
#: IWAE importance samples of the Anomalies tab's VAE scores (model cards use k=1000): with 4, a VAE's first request
#: (scoring its 2 x REFERENCE_SIZE reference digits) takes a few seconds on a CPU, not minutes
DEMO_IWAE_K = 4
#: normal digits the Anomalies tab scores once per model, from each of two splits of the model's own datamodule:
#: the validation split sets the threshold, the test split is the histogram an image's score is drawn against
REFERENCE_SIZE = 200
#: an image is anomalous above this quantile of the scores of the validation digits (the Detector's threshold_)
THRESHOLD_QUANTILE = 0.99
#: on-screen pixels of an image's longer side in each kind of picture (images are upscaled a whole number of times,
#: nearest-neighbour: 8x8 digits 8x in a grid, 28x28 digits 3x)
TILE = {"grid": 64, "small": 48, "large": 128}
#: the largest picture (width, height) shown at its own size: a grid that would be larger is upscaled fewer times,
#: so that the browser never resamples (blurs) it
DISPLAY = (760, 720)
#: the page's style: pictures of pixels stay pixels (nearest-neighbour) wherever the browser scales them; text coloured
#: by hidden state reads as text (no gaps or rounded chips between the characters: the spaces between Gradio's spans
#: are set in a zero-size font, and each character takes its state's colour from its span)
CSS = """.pixels img { image-rendering: pixelated; }
.states .textfield { font-size: 0; line-height: 1.8; }
.states .textfield .token-container, .states .textfield .token { margin: 0; padding: 0; border-radius: 0; }
.states .textfield .text { font-size: var(--text-lg); white-space: pre-wrap; background-color: inherit; }"""
#: the page's script: a drawing pad opens (and comes back after "Clear canvas") with Gradio's image tool chosen, its
#: canvas saying "select the draw tool to start"; this chooses the brush for it, so that a pad takes a stroke at once
DRAW_FIRST = """() => {
  let queued = false;
  const arm = () => {
    queued = false;
    for (const pad of document.querySelectorAll(".sketch")) {
      const brush = pad.querySelector('button[aria-label="Brush"]');
      if (brush && pad.offsetParent !== null && pad.querySelector(".empty.wrap")) brush.click();
    }
  };
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(arm); } })
    .observe(document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ["style", "class"]});
  arm();
}"""
#: classes listed by the Classifier tab (the most probable first)
TOP_CLASSES = 10
#: the class the Classifier tab samples first (the model's last class, if it has fewer)
FIRST_CLASS = 3


# -- models: loaded on first use, then cached --------------------------------------------------


_lock = threading.Lock()


@functools.cache
def _load(name: str) -> Any:
    return zoo.load(name)


def model(name: str) -> Any:
    """The pretrained model `name`, loaded once (thread-safe) and shared by every request."""
    if name not in zoo.list_models():
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(zoo.list_models())}")
    with _lock:
        return _load(name)


@functools.cache
def model_class(name: str) -> type:
    """The class of pretrained `name`: its declarations say what the demo can do with it (imported, not loaded)."""
    from zoo.registry import FAMILIES, import_object

    return import_object(FAMILIES[zoo.model_info(name).family].model)


def models_where(test: Callable[[type], bool]) -> list[str]:
    """The pretrained names whose model class passes `test` (it reads declarations; no model is loaded)."""
    return [n for n in zoo.list_models() if test(model_class(n))]


# -- data: what each model's images are (the data contract, zoo.data.spec) ---------------------


@functools.cache
def data_spec(name: str) -> DataSpec:
    """The data spec of pretrained `name`, which sizes its image inputs and the tabs' messages: the one saved
    with the model, else its registered datamodule's, else one read off the model's own sizes."""
    m = model(name)
    if "data_spec" in m.extra_config:
        return DataSpec.from_json(m.extra_config["data_spec"], f"{name}: data_spec")
    if "datamodule" in m.extra_config:
        from zoo.evaluate import build_datamodule  # imports Lightning: once, when a tab first needs the data

        return build_datamodule(m.extra_config["datamodule"], f"{name}/config.json").spec
    shape = getattr(m, "image_shape", None)
    if shape is None:
        raise ValueError(f"{name} records no data spec and has no image_shape: the demo cannot read images for it")
    classes = getattr(m, "num_classes", None)
    return DataSpec(kind="image", name=name, image_shape=tuple(int(s) for s in shape),
                    num_classes=classes if isinstance(classes, int) else None, levels=getattr(m, "levels", None))


_data_lock = threading.Lock()
_datamodules: dict[str, Any] = {}  # a datamodule entry as JSON -> the datamodule, set up


def training_data(name: str) -> Any:
    """The registered datamodule pretrained `name` was trained on, set up once (models that share one entry
    share it): the Anomalies tab's real images."""
    entry = model(name).extra_config.get("datamodule")
    if entry is None:
        raise ValueError(f"{name} records no registered datamodule in its config.json: the demo has no training "
                         f"images to compare its scores with")
    key = json.dumps(entry, sort_keys=True)
    with _data_lock:
        if key not in _datamodules:
            from zoo.evaluate import build_datamodule  # imports Lightning

            datamodule = build_datamodule(entry, f"{name}/config.json")
            datamodule.prepare_data()
            datamodule.setup("fit")
            datamodule.setup("test")
            _datamodules[key] = datamodule
        return _datamodules[key]


def split_dataset(name: str, split: str) -> Any:
    """The `split` ("train", "val" or "test") dataset of the model's own datamodule."""
    return getattr(training_data(name), f"{split}_dataloader")().dataset


def images_at(dataset: Any, indices: Any) -> torch.Tensor:
    """The images (N, C, H, W) at `indices` of a dataset of images or of (image, label) pairs."""
    items = [dataset[int(i)] for i in indices]
    return torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items]).float()


# -- what each tab needs, read from the model classes' declarations --


def makes_images(cls: type) -> bool:
    return cls.outputs == "images"


def walks(cls: type) -> bool:
    return makes_images(cls) and hasattr(cls, "interpolate")


def continues_prompts(cls: type) -> bool:
    return any(c.name == "prompt" for c in cls.conditions) and hasattr(cls, "stream")


@functools.cache
def recorded_kind(name: str) -> str | None:
    """The data kind ("image", "text", "molecules", ...) that pretrained `name`'s packaged config.json records,
    read without loading the model; None when it records none."""
    folder = zoo.model_info(name).packaged
    saved = hub.open_folder(folder).config.get("data_spec") if folder is not None else None
    return DataSpec.from_json(saved, f"{name}: data_spec").kind if saved else None


def molecule_models() -> list[str]:
    return [n for n in zoo.list_models() if recorded_kind(n) == "molecules"]


def text_models() -> list[str]:
    """Models that continue prompts, molecule generators aside (they have their own tab)."""
    return [n for n in models_where(continues_prompts) if recorded_kind(n) != "molecules"]


def fits_mixtures(cls: type) -> bool:
    from zoo.models.gmm import GMM

    return issubclass(cls, GMM)


def shows_states(cls: type) -> bool:
    return hasattr(cls, "sample_with_states") and hasattr(cls, "viterbi")


def scores_images(cls: type) -> bool:
    return makes_images(cls) and cls.has_log_prob()


def classifies_images(cls: type) -> bool:
    return makes_images(cls) and hasattr(cls, "predict_proba") and any(c.name == "labels" for c in cls.conditions)


@functools.cache
def recorded_shape(name: str) -> tuple[int, ...] | None:
    """The image shape (C, H, W) that pretrained `name`'s packaged config.json records in its data spec, read
    without loading the model; None when it records none (or is not packaged)."""
    folder = zoo.model_info(name).packaged
    saved = hub.open_folder(folder).config.get("data_spec") if folder is not None else None
    return DataSpec.from_json(saved, f"{name}: data_spec").image_shape if saved else None


def preferred(names: list[str]) -> list[str]:
    """`names` with the tab's default model first: the one on the largest images its config records (28x28
    digits before 8x8 ones), then the best test FID its card records; the others follow, those on larger images
    first (registry order among equals)."""
    if not names:
        return names

    def rank(name: str) -> tuple[float, float]:
        shape = recorded_shape(name)
        return -(math.prod(shape) if shape else 0), zoo.model_info(name).card_metrics().get("fid", math.inf)

    first = min(names, key=rank)  # the first of equals, in registry order
    return [first, *sorted((n for n in names if n != first), key=lambda n: rank(n)[0])]  # sorted() is stable


def card_line(name: str) -> str:
    """One line saying what the model is, with a link to its model card."""
    info = zoo.model_info(name)
    if info.repo_id:
        url = f"https://huggingface.co/{info.repo_id}"
    elif info.packaged is not None:
        url = f"/gradio_api/file={(info.packaged / 'README.md').as_posix()}"
    else:
        url = None
    link = f" · [model card]({url})" if url else ""
    return f"**{name}** ({info.family}): {info.description}{link}"


def card_folders() -> list[str]:
    """Packaged model folders, so the server may serve their cards (README.md)."""
    return [str(zoo.model_info(n).packaged) for n in zoo.list_models() if zoo.model_info(n).packaged]


def tab_header(names: list[str], note: str | Callable[[str], str], label: str = "model") -> gr.Dropdown:
    """A tab's first lines: what the chosen model is (with its card), the tab's limits, the model dropdown.

    A `note` that names the model's data sizes is a function of the model's name, written when the page loads
    and whenever another model is chosen.
    """
    about = gr.Markdown(card_line(names[0]))
    text = gr.Markdown(None if callable(note) else note)
    name = gr.Dropdown(names, value=names[0], label=label)
    name.change(friendly(card_line), name, about, api_name=False)
    if callable(note):
        on_model(name, note, text)
    return name


def on_model(name: gr.Dropdown, fn: Callable, outputs: Any) -> None:
    """Run `fn(model name)` into `outputs` when the page loads and whenever another model is chosen (not an API)."""
    gr.on(None, friendly(fn), name, outputs, api_visibility="private", show_progress="hidden")


def seed_input(label: str = "seed", value: int = 0) -> gr.Number:
    return gr.Number(value, precision=0, label=label, minimum=0)


def limited_slider(key: str, value: int, what: str, low: int = 1) -> gr.Slider:
    """A whole-number slider up to LIMITS[key], its label saying the limit."""
    return gr.Slider(low, LIMITS[key], value=value, step=1, label=f"{what} (max {LIMITS[key]})")


def class_label_input() -> gr.Dropdown:
    """The label of a conditional model, or "any": its classes are filled in for the chosen model (``label_choices``);
    API calls may pass any label, which ``as_label`` checks against the model's declared range."""
    return gr.Dropdown(["any"], value="any", label="class label (conditional models)", allow_custom_value=True)


def class_choices(name: str) -> list[tuple[str, str]]:
    """The classes model `name` takes as labels, as (shown, value) dropdown choices: the data's class names where
    its spec has them, else the label numbers; none for an unconditional model."""
    labels = model(name).sample_conditions().get("labels")
    if labels is None:
        return []
    names = data_spec(name).class_names or ()
    return [(names[c] if c < len(names) else str(c), str(c)) for c in range(labels.low, labels.high + 1)]


def label_choices(name: str) -> dict:
    """A class-label dropdown's update for model `name`: "any" and its classes, "any" chosen."""
    return gr.update(choices=[("any", "any"), *class_choices(name)], value="any")


def conditional(m: Any) -> int:
    """The number of classes a model takes as its ``labels`` condition, 0 when it takes none."""
    labels = m.sample_conditions().get("labels")
    return labels.high + 1 if labels else 0


# -- errors: one clear line in the UI and in the log ----------------------------------------------


def _message(e: Exception) -> str:
    text = (e.message if isinstance(e, gr.Error) else str(e)).strip().splitlines()
    return text[0] if text else type(e).__name__


def short(value: Any, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: a bad value quoted in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def refused(where: str, message: str) -> gr.Error:
    """The one-line gr.Error of a refused request, logged as one line too (no traceback in the UI or the log)."""
    log.info("refused %s: %s", where, message)
    return gr.Error(message, print_exception=False)


def friendly(fn: Callable) -> Callable:
    """Turn ValueErrors (the zoo's and the demo's own) and anything unexpected into gr.Error: one line in the UI and
    one in the server log (an unexpected error's line names where it was raised; its traceback is logged at DEBUG)."""

    def translate(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return refused(fn.__name__, _message(e))
        if not isinstance(e, (ValueError, zoo.CheckpointError)):
            frame = e.__traceback__
            while frame is not None and frame.tb_next is not None:
                frame = frame.tb_next
            at = f" at {Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno}" if frame else ""
            log.error("demo handler %s failed%s: %s: %s", fn.__name__, at, type(e).__name__, _message(e))
            log.debug("demo handler %s failed", fn.__name__, exc_info=e)
            return gr.Error(f"internal error ({type(e).__name__}): {_message(e)}", print_exception=False)
        return refused(fn.__name__, _message(e))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 (every failure becomes a message in the UI)
                raise translate(e) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (every failure becomes a message in the UI)
            raise translate(e) from None
    return call


def input_name(component: Any) -> str:
    """How messages name an input: its label ("samples (max 64)"), else its kind ("slider")."""
    return str(component.label) if getattr(component, "label", None) else type(component).__name__.lower()


def guard_input(component: Any) -> None:
    """Check an input's value before Gradio does, in one line naming the input: Gradio's own checks (a slider's range,
    a dropdown's choices) print a traceback in the server log, and a value of the wrong type (a string for a slider)
    fails inside Gradio with its generic "Error". (Set on the instance, as ``image_input`` does.)"""
    if getattr(component, "_genzoo_guarded", False):
        return
    preprocess, name = component.preprocess, input_name(component)
    numeric = isinstance(component, (gr.Slider, gr.Number))

    def checked(payload: Any) -> Any:
        if numeric and payload is not None:
            if isinstance(payload, bool) or not isinstance(payload, (int, float)):
                raise gr.Error(f"{name} must be a number, got {short(payload)}", print_exception=False)
            if not math.isfinite(payload):
                raise gr.Error(f"{name} must be a finite number, got {payload}", print_exception=False)
        try:
            return preprocess(payload)
        except gr.Error as e:
            if not e.print_exception:  # already one of the demo's own lines (refuse_bombs)
                raise
            raise gr.Error(f"{name}: {_message(e)}", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 (Gradio could not read the value: say which input, in one line)
            raise gr.Error(f"{name}: cannot read {short(payload)} ({type(e).__name__}: {_message(e)})",
                           print_exception=False) from None

    component.preprocess = checked
    component._genzoo_guarded = True


def unreadable_input(block_fn: Any, inputs: list[Any], error: Exception) -> str:
    """The one-line message of a request Gradio could not read before any input's own check (a payload of the wrong
    shape for a file or image input, a file that was never uploaded, a wrong number of inputs)."""
    for block, value in zip(block_fn.inputs, inputs):
        model = getattr(block, "data_model", None)
        if model is None or value is None:
            continue
        try:
            model.model_validate(value, context={"validate_meta": True})
        except Exception:  # noqa: BLE001 (this input is the one that does not parse)
            return f"{input_name(block)} ({type(block).__name__.lower()} input): cannot read {short(value)}; send " \
                   f"files with gradio_client.handle_file"
    return f"the request's inputs cannot be read ({type(error).__name__}: {_message(error)})"


def one_line_requests(app: gr.Blocks) -> None:
    """Every input of `app` checked by ``guard_input``, and whatever else Gradio refuses while it reads a request
    (``unreadable_input``) one line in the UI and in the log, without a traceback."""
    for block in app.blocks.values():
        if isinstance(block, gr.components.Component):
            guard_input(block)
    preprocess_data = app.preprocess_data

    async def checked(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        where = str(block_fn.name)  # the handler's name, as ``friendly`` logs it
        try:
            return await preprocess_data(block_fn, inputs, *args, **kwargs)
        except gr.Error as e:
            raise refused(where, _message(e)) from None
        except Exception as e:  # noqa: BLE001 (every failure becomes a message in the UI)
            raise refused(where, unreadable_input(block_fn, inputs, e)) from None

    app.preprocess_data = checked


def as_int(value: Any, name: str, low: int, high: int) -> int:
    """`value` (a number from a UI widget or an API call) as an int in low..high, else a ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number in {low}..{high}, got {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return int(number)


def as_label(value: Any, m: Any) -> int | None:
    """The class label chosen in a dropdown ("any" or a label number) for model `m`."""
    if value in (None, "", "any"):
        return None
    labels = m.sample_conditions().get("labels")
    if labels is None:
        raise ValueError("this model is unconditional: set the label to 'any'")
    return as_int(value, "label", labels.low, labels.high)


# -- files out ---------------------------------------------------------------------------------


_work_lock = threading.Lock()
_work: dict[str, Path] = {}  # "folder": this process's folder


def workdir() -> Path:
    """This process's own folder for the files it serves, made on first use and removed at exit (``atexit``; the
    server turns SIGTERM into a clean exit, ``stop_on_sigterm``): downloads/ (the demo's PNG and GIF files) and, for
    ``main``, gradio/ (Gradio's cache of uploads and outputs)."""
    with _work_lock:
        if "folder" not in _work:
            folder = Path(tempfile.mkdtemp(prefix="genzoo-demo-"))
            (folder / "downloads").mkdir()
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _work["folder"] = folder
        return _work["folder"]


def write_atomically(path: Path, save: Callable[[Any], None]) -> str:
    """`save(open file)` through the hub's atomic writer (a temporary file renamed into place): no reader ever
    sees a partly written file. Returns the path, as Gradio takes it."""
    hub.write_atomic(path, save)
    return str(path)


def sweep(folder: Path, age: float | None = None) -> int:
    """Delete the files under `folder` older than `age` seconds (CACHE_AGE; its folders stay); how many."""
    age = CACHE_AGE if age is None else age
    removed, now = 0, time.time()
    for path in list(folder.rglob("*")):
        try:
            if path.is_file() and now - path.stat().st_mtime > age:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # deleted meanwhile (by Gradio's own sweep)
            pass
    return removed


def start_sweeping(folders: list[Path], every: float | None = None, age: float | None = None) -> threading.Event:
    """Every `every` seconds (CACHE_SWEEP), ``sweep`` `folders` of their files older than `age` seconds (CACHE_AGE),
    in a daemon thread; set the event returned to stop. (Gradio's own ``delete_cache`` deletes only the files it knows
    it wrote: not the demo's downloads, nor the temporary files some uploads leave in its cache.)"""
    every = CACHE_SWEEP if every is None else every
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            for folder in folders:
                sweep(folder, age)

    threading.Thread(target=run, name="genzoo-demo-sweep", daemon=True).start()
    return stop


def download_path(stem: str, suffix: str) -> Path:
    """A new file name in downloads/ (Gradio serves a copy; the server's sweep deletes it after CACHE_AGE)."""
    return workdir() / "downloads" / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


def save_png(image: Image.Image, stem: str) -> str:
    return write_atomically(download_path(stem, ".png"), lambda f: image.save(f, format="PNG"))


def scale_for(images: torch.Tensor, tile: str, nrow: int | None = None) -> int:
    """How many times to upscale `images` (N, C, H, W), tiled `nrow` to a row as ``make_grid`` tiles them, so that
    each shows at least TILE[tile] pixels a side, unless the grid would then outgrow DISPLAY."""
    n, _, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    width, height = nrow * (w + 1) + 1, math.ceil(n / nrow) * (h + 1) + 1  # make_grid's, 1-pixel gaps
    return max(1, min(math.ceil(TILE[tile] / max(h, w)), DISPLAY[0] // width, DISPLAY[1] // height))


def picture(images: torch.Tensor, tile: str, nrow: int | None = None) -> Image.Image:
    """`images` (N, C, H, W) in [0, 1] as one grid, `nrow` to a row, each pixel a square of whole screen pixels
    (``scale_for``): shown at its own size in an output of class "pixels", so 8x8 and 28x28 digits stay sharp."""
    return make_grid(images, nrow=nrow, scale=scale_for(images, tile, nrow))


def whole_pictures(component: gr.Image) -> None:
    """Write each picture an output returns to a new file of its own, renamed into place, and give Gradio its path.

    Gradio writes a returned PIL image to a file named by a hash of its bytes, in place: two jobs that return the same
    picture (the same seed) rewrite one file while it is being served, and a client gets a truncated PNG. The demo's
    file is in Gradio's cache folder (genzoo-pictures/), so Gradio serves it as it is and deletes it with its own files
    (``CACHE_AGE``).
    """
    postprocess = component.postprocess

    def written(value: Any) -> Any:
        if isinstance(value, Image.Image):
            image, folder = value, Path(component.GRADIO_CACHE) / "genzoo-pictures"
            folder.mkdir(parents=True, exist_ok=True)
            value = write_atomically(folder / f"picture-{uuid.uuid4().hex}.png",
                                     lambda f: image.save(f, format="PNG"))
        return postprocess(value)

    component.postprocess = written


def pixel_output(label: str, **kwargs: Any) -> gr.Image:
    """An output picture of pixels: a PNG shown at its own size (no fixed height to shrink it into),
    nearest-neighbour wherever the browser scales it (CSS)."""
    kwargs.setdefault("type", "pil")
    if kwargs["type"] == "pil":
        kwargs.setdefault("format", "png")
    return gr.Image(label=label, interactive=False, elem_classes=["pixels"], **kwargs)


def save_gif(frames: torch.Tensor, stem: str) -> str:
    """An animated GIF of `frames` (T, C, H, W) in [0, 1], played forth and back."""
    scale = scale_for(frames[:1], "large")
    pictures = [make_grid(f[None], nrow=1, scale=scale, pad=0).convert("P") for f in frames]
    loop = pictures + pictures[-2:0:-1]
    return write_atomically(download_path(stem, ".gif"), lambda f: loop[0].save(
        f, format="GIF", save_all=True, append_images=loop[1:], duration=120, loop=0))


# -- images in: drawn, uploaded, CSV rows, each made the chosen model's data (its spec) -------------


def image_shape(spec: DataSpec) -> tuple[int, int, int]:
    """(C, H, W) of the spec's images; a spec of other data is a ValueError."""
    if spec.image_shape is None:
        raise ValueError(f"this model's data ({spec.name}) are {spec.kind}, not images")
    return spec.image_shape


def size_text(spec: DataSpec) -> str:
    """The images' size as messages say it: width x height ("28x28"), and the channels unless grayscale."""
    c, h, w = image_shape(spec)
    return f"{w}x{h}" + ("" if c == 1 else f", {c} channels")


def top_level(spec: DataSpec) -> int:
    """The largest pixel value on the data's own scale (levels - 1: 255 for 256 levels); 1 without levels."""
    return spec.levels - 1 if spec.levels is not None and spec.levels > 2 else 1


def values_text(spec: DataSpec) -> str:
    """The pixel values a CSV row may hold: the data's own scale, or 0..1."""
    return f"0..{top_level(spec)} or 0..1" if top_level(spec) > 1 else "0..1"


def upload_text(spec: DataSpec) -> str:
    """What an uploaded image becomes, as the tabs' notes say it ("any image, made 28x28 grayscale ...")."""
    c, h, w = image_shape(spec)
    if h != w:
        return f"uploads are not read for {w}x{h} images (only square ones are resized): draw one or give a CSV"
    colours = "grayscale" if c == 1 else "RGB"
    return (f"any image, made {w}x{h} {colours}: shorter side resized, centre crop; at most "
            f"{LIMITS['image_pixels']:,} pixels")


def quantise(pixels: np.ndarray, spec: DataSpec) -> torch.Tensor:
    """(N, C, H, W) values in [0, 1] -> a float tensor on the spec's pixel levels, the values its data take."""
    x = np.clip(pixels, 0, 1)
    if spec.levels is not None and spec.levels > 1:
        x = np.round(x * (spec.levels - 1)) / (spec.levels - 1)
    return torch.from_numpy(x.astype(np.float32))


def drawn_image(sketch: Any, spec: DataSpec) -> torch.Tensor | None:
    """A Sketchpad value (dark ink on a light or transparent canvas) -> (1, C, H, W), or None if blank.

    As the digits data set was made, the ink is cropped to its bounding box, centred with a margin on a canvas
    of the images' aspect and averaged down to their size: bright strokes on a dark ground, in every channel.
    """
    c, h, w = image_shape(spec)
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if composite is None:
        return None
    rgba = Image.fromarray(np.asarray(composite)).convert("RGBA")
    paper = Image.new("RGBA", rgba.size, "white")
    ink = 1 - np.asarray(Image.alpha_composite(paper, rgba).convert("L"), dtype=np.float32) / 255
    rows, cols = np.nonzero(ink > 0.1)
    if len(rows) == 0:
        return None
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    tall = max(ink.shape[0], ink.shape[1] * h / w)  # the canvas height that holds the ink at the images' aspect
    canvas = np.zeros((int(tall * 1.15) + 1, int(tall * w / h * 1.15) + 1), np.float32)
    top, left = (canvas.shape[0] - ink.shape[0]) // 2, (canvas.shape[1] - ink.shape[1]) // 2
    canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    small = np.asarray(Image.fromarray(canvas).resize((w, h), Image.Resampling.BOX), dtype=np.float32)
    small = small / max(small.max(), 1e-6)
    return quantise(np.repeat(small[None, None], c, axis=1), spec)


def checked_image(source: str | Path | io.BytesIO, name: str) -> Image.Image:
    """The image file `source`, opened lazily (PIL reads its header, not its pixels) and checked: at most
    LIMITS["image_pixels"] pixels, else a ValueError before a byte is decoded (a small PNG can declare 13000x13000
    pixels: a decompression bomb). Close it, or decode it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, against our own cap
            image = Image.open(source)
    except Image.DecompressionBombError:  # PIL's own cap, twice Image.MAX_IMAGE_PIXELS
        raise ValueError(f"{name} declares more than the {LIMITS['image_pixels']:,} pixels the demo decodes "
                         f"(a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError):
        raise ValueError(f"{name} is not an image file (PNG, JPEG, GIF, BMP or WebP)") from None
    width, height = image.size
    if width * height > LIMITS["image_pixels"]:
        image.close()
        raise ValueError(f"{name} is {width}x{height} pixels, more than the {LIMITS['image_pixels']:,} the demo "
                         f"decodes (a decompression bomb?)")
    return image


def uploaded_image(path: str, spec: DataSpec) -> torch.Tensor:
    """An uploaded image file of any size -> (1, C, H, W), read as genzoo's image folders are
    (``zoo.images.decode``): grayscale or RGB as the data are, shorter side resized, centre crop, once its
    header has passed ``checked_image``.

    Grayscale data is bright ink on a dark ground: an image like that (our PNG grids) is taken as it is, dark ink
    on light paper is inverted; a colour image is taken by its luma. Colour data takes the image's colours (a
    grayscale image in every channel).
    """
    c, h, w = image_shape(spec)
    if c not in (1, 3):
        raise ValueError(f"the demo reads grayscale or RGB images; this model's data ({spec.name}) have {c} channels")
    if h != w:
        raise ValueError(f"the demo resizes uploads to square images only; this model's data ({spec.name}) are "
                         f"{size_text(spec)}: draw one, or give a CSV")
    name = Path(path).name
    checked_image(path, name).close()

    try:
        pixels = decode(Path(path), h, c).astype(np.float32) / 255  # (C, H, W)
    except (OSError, ValueError, SyntaxError):
        raise ValueError(f"{name} is not a readable image file (PNG, JPEG, GIF, BMP or WebP)") from None
    if c == 1 and pixels.mean() > 0.5:  # dark ink on light paper
        pixels = 1 - pixels
    return quantise(pixels[None], spec)


def refuse_bombs(source: str | Path | io.BytesIO | None, name: str | None) -> None:
    """``checked_image`` for Gradio's own preprocessing: a bad image is one line in the UI (gr.Error)."""
    if source is not None:
        try:
            checked_image(source, name or "the image").close()
        except ValueError as e:
            raise gr.Error(_message(e), print_exception=False) from None


def image_input(**kwargs: Any) -> gr.Image:
    """gr.Image (type "filepath") whose upload's header is checked before Gradio opens the file: Gradio's own PIL
    check lets through bombs of up to 179 million pixels, and refuses larger ones with no message. (The check is
    set on the instance: Gradio writes a .pyi stub beside the source of every component subclass.)"""
    component = gr.Image(**kwargs)
    preprocess = component.preprocess

    def checked(payload: Any) -> Any:
        refuse_bombs(getattr(payload, "path", None), getattr(payload, "orig_name", None))
        return preprocess(payload)

    component.preprocess = checked
    return component


def sketchpad_input(**kwargs: Any) -> gr.Sketchpad:
    """gr.Sketchpad whose images are checked from their header before Gradio decodes them (it always does, whatever
    its type): an API call may send any PNG as the drawing. In the page, its brush is chosen for it (``DRAW_FIRST``)."""
    kwargs["elem_classes"] = [*kwargs.get("elem_classes", []), "sketch"]  # DRAW_FIRST chooses its brush
    component = gr.Sketchpad(**kwargs)
    convert = component.convert_and_format_image

    def checked(file: Any, flatten_on_white: bool = False) -> Any:
        if isinstance(file, (bytes, bytearray, memoryview)):
            refuse_bombs(io.BytesIO(file), "the drawing")
        elif file is not None:
            refuse_bombs(file.path, "the drawing")
        return convert(file, flatten_on_white)

    component.convert_and_format_image = checked
    return component


def csv_numbers(path: str, columns: int, what: str, limit: int) -> np.ndarray:
    """The rows of a CSV file as floats (rows, columns); an optional header row is skipped.

    `what` names a row's values in messages ("two numbers (x, y)"); more than `limit` rows is an error.
    """
    name = Path(path).name
    try:
        rows = [r for r in csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{name} is not a readable UTF-8 CSV file ({_message(e)})") from None
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError(f"{name} has no data rows; expected rows of {what}")
    if len(rows) > limit:
        raise ValueError(f"{name} has {len(rows)} rows; at most {limit} per request")
    for i, row in enumerate(rows, 1):
        if len(row) != columns or not _numeric(row):
            raise ValueError(f"{name}: row {i} must hold {what}, got {len(row)} columns"
                             + ("" if _numeric(row) else " with non-numbers"))
    values = np.array(rows, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values; expected finite numbers")
    return values


def csv_images(path: str, spec: DataSpec) -> torch.Tensor:
    """A CSV file of images, one per row: C*H*W pixel values, channel by channel and row by row, on the data's own
    scale (0..levels-1, e.g. 0..255) or 0..1 -> (rows, C, H, W)."""
    c, h, w = image_shape(spec)
    values = csv_numbers(path, c * h * w, f"{c * h * w} numeric pixel values ({size_text(spec)})", LIMITS["scored"])
    if values.min() < 0 or values.max() > top_level(spec):
        raise ValueError(f"{Path(path).name}: pixel values must be in {values_text(spec)}, "
                         f"got {values.min():.3g}..{values.max():.3g}")
    scale = float(top_level(spec)) if values.max() > 1 else 1.0
    return quantise(values.reshape(-1, c, h, w) / scale, spec)


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


# -- Images ------------------------------------------------------------------------------------


@friendly
def generate_images(name: str, n: float, seed: float, label: str, steps: float, guidance: float,
                    sampler: str = "ddim"):
    """A grid of `n` samples of an image model, and the same grid as a PNG file."""
    m = model(name)
    n = as_int(n, "number of samples", 1, LIMITS["images"])
    seed = as_int(seed, "seed", 0, 2**31 - 1)
    chosen, conditions, nrow = as_label(label, m), {}, None
    if chosen is not None:
        conditions["labels"] = chosen
    elif conditional(m):  # one column per class, like `genzoo sample`
        conditions["labels"] = torch.arange(n) % conditional(m)
        nrow = conditional(m)
    takes = m.accepts()  # the sampler controls go only to a model that declares them
    if "steps" in takes:
        conditions["steps"] = as_int(steps, "sampler steps", 1, min(LIMITS["diffusion_steps"], takes["steps"].high))
    if "guidance" in takes:
        conditions["guidance"] = float(guidance)
    if "sampler" in takes:
        conditions["sampler"] = sampler
    if "progress" in takes:
        conditions["progress"] = False
    images = m.sample(n, seed=seed, **conditions)
    grid = picture(images, "grid", nrow)
    return grid, save_png(grid, f"{name}-seed{seed}")


def image_controls(name: str):
    """Show the label (with the model's classes), steps, guidance and sampler controls only to a model that
    takes them."""
    m = model(name)
    takes = m.accepts()
    return ({**label_choices(name), "visible": "labels" in takes}, gr.update(visible="steps" in takes),
            gr.update(visible="guidance" in takes, value=getattr(m, "guidance", 1.0)),
            gr.update(visible="sampler" in takes))


def images_tab() -> None:
    names = preferred(models_where(makes_images))
    with gr.Tab("Images", id="images"):
        name = tab_header(names, f"Up to {LIMITS['images']} samples per request (diffusion: up to "
                                 f"{LIMITS['diffusion_steps']} sampler steps); the same seed gives the same images. "
                                 f"Conditional models draw one column per class unless a label is chosen.")
        with gr.Row():
            with gr.Column(scale=1):
                n = limited_slider("images", 16, "samples")
                seed = seed_input()
                label = class_label_input()
                steps = gr.Slider(1, LIMITS["diffusion_steps"], value=25, step=1,
                                  label="sampler steps (diffusion; fewer is faster)", visible=False)
                guidance = gr.Slider(0, 10, value=1.0, step=0.1, label="guidance scale (conditional diffusion; "
                                     "1 = conditional only)", visible=False)
                sampler = gr.Radio(["ddim", "ddpm"], value="ddim", label="sampler (diffusion)", visible=False)
                button = gr.Button("Generate", variant="primary", elem_id="images-generate")
            with gr.Column(scale=2):
                grid = pixel_output("samples", elem_id="images-grid")
                download = gr.File(label="PNG download", interactive=False)
        on_model(name, image_controls, [label, steps, guidance, sampler])
        button.click(generate_images, [name, n, seed, label, steps, guidance, sampler], [grid, download],
                     api_name="images")


# -- Latent walk -------------------------------------------------------------------------------


@friendly
def latent_walk(name: str, seed_a: float, seed_b: float, steps: float, label: str,
                image_a: str | None = None, image_b: str | None = None):
    """Decode points on the line between two latents: a strip, and an animated GIF of it."""
    m = model(name)
    steps = as_int(steps, "steps", 2, LIMITS["walk_steps"])
    chosen = as_label(label, m)
    if conditional(m) and chosen is None:
        raise ValueError("this model is conditional: choose a class label for the walk")
    if bool(image_a) != bool(image_b):
        raise ValueError("upload two images (or none, to walk between two seeds)")
    seeds = as_int(seed_a, "seed A", 0, 2**31 - 1), as_int(seed_b, "seed B", 0, 2**31 - 1)
    if hasattr(m, "encode"):  # an autoencoder walks between two images, uploaded or sampled from the seeds
        if image_a:
            x0, x1 = uploaded_image(image_a, data_spec(name)), uploaded_image(image_b, data_spec(name))
        else:
            x0, x1 = (m.sample(1, seed=s, labels=chosen) for s in seeds)
        frames = m.interpolate(x0, x1, steps=steps, labels=chosen)
    else:  # a generator without an encoder walks between the latents that sample(1, seed=s) decodes
        if image_a:
            raise ValueError(f"a {type(m).__name__} has no encoder: walk between two seeds, or choose a VAE for "
                             f"uploaded images")
        z0, z1 = (m.latent(s) for s in seeds)
        frames = m.interpolate(z0, z1, steps=steps, labels=chosen)
    strip = picture(frames, "small", steps)
    return strip, save_gif(frames, f"{name}-walk")


def walk_label_choices(name: str) -> dict:
    """The walk's class dropdown for model `name`: a conditional model walks within one class, so only its classes
    are offered and FIRST_CLASS (its last, if it has fewer) is chosen; an unconditional model hides it ("any")."""
    choices = class_choices(name)
    if not choices:
        return gr.update(choices=[("any", "any")], value="any", visible=False)
    return gr.update(choices=choices, value=choices[min(FIRST_CLASS, len(choices) - 1)][1], visible=True)


def walk_note(name: str) -> str:
    return (f"A straight line in latent space between two seeds (or, for a VAE, two uploaded images: "
            f"{upload_text(data_spec(name))}, at most {LIMITS['upload']}); up to {LIMITS['walk_steps']} frames.")


def walk_tab() -> None:
    names = preferred(models_where(walks))
    with gr.Tab("Latent walk", id="walk"):
        name = tab_header(names, walk_note)
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Row():
                    seed_a = seed_input("seed A")
                    seed_b = seed_input("seed B", 1)
                steps = limited_slider("walk_steps", 10, "frames", low=2)
                label = class_label_input()
                on_model(name, walk_label_choices, label)
                with gr.Row():
                    image_a = image_input(type="filepath", image_mode=None, label="image A (optional)",
                                         sources=["upload"])
                    image_b = image_input(type="filepath", image_mode=None, label="image B (optional)",
                                         sources=["upload"])
                button = gr.Button("Walk", variant="primary", elem_id="walk-generate")
            with gr.Column(scale=2):
                strip = pixel_output("interpolation", elem_id="walk-strip")
                gif = pixel_output("animated GIF", type="filepath")
        button.click(latent_walk, [name, seed_a, seed_b, steps, label, image_a, image_b], [strip, gif],
                     api_name="latent_walk")


# -- Text --------------------------------------------------------------------------------------


@friendly
def stream_text(name: str, prompt: str, max_new_tokens: float, temperature: float, top_k: float, top_p: float,
                seed: float):
    """The prompt's continuation, streamed: yields the text so far after each new piece."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: type the beginning of a text for the model to continue")
    if len(prompt) > LIMITS["prompt_chars"]:
        raise ValueError(f"the prompt has {len(prompt)} characters; at most {LIMITS['prompt_chars']}")
    m = model(name)
    tokens = as_int(max_new_tokens, "max new tokens", 1, LIMITS["tokens"])
    k = as_int(top_k, "top-k", 0, 100_000)  # 0 = off
    text = ""
    for piece in m.stream(prompt, max_new_tokens=tokens, temperature=float(temperature), top_k=k or None,
                          top_p=float(top_p), seed=as_int(seed, "seed", 0, 2**31 - 1)):
        text += piece
        yield text


def text_tab() -> None:
    names = text_models()
    with gr.Tab("Text", id="text"):
        name = tab_header(names, f"The model continues your prompt token by token (at most {LIMITS['tokens']} new "
                                 f"tokens; the prompt must fit the model's context window and "
                                 f"{LIMITS['prompt_chars']} characters). Temperature 0 is greedy; the same seed "
                                 f"gives the same text.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox("ROMEO:", lines=3, label="prompt", elem_id="text-prompt")
                tokens = limited_slider("tokens", 200, "max new tokens")
                temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="temperature")
                top_k = gr.Slider(0, 200, value=0, step=1, label="top-k (0 = off)")
                top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="top-p (nucleus; 1 = off)")
                seed = seed_input()
                button = gr.Button("Generate", variant="primary", elem_id="text-generate")
            with gr.Column(scale=2):
                output = gr.Textbox(label="continuation", lines=16, elem_id="text-output", interactive=False)
        button.click(stream_text, [name, prompt, tokens, temperature, top_k, top_p, seed], output, api_name="text")


# -- Mixtures ----------------------------------------------------------------------------------


def synthetic_points(kind: str, n: int, seed: int) -> np.ndarray:
    """Built-in 2-D data sets, (n, 2), seeded: clusters a mixture should find (or struggle with)."""
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        centres = np.array([[-4.0, -2.0], [0.0, 3.0], [4.0, -1.0]])
        shears = np.array([[[1.2, 0.6], [0.0, 0.5]], [[0.5, 0.0], [0.4, 1.0]], [[0.8, -0.5], [0.0, 0.6]]])
        which = rng.integers(3, size=n)
        return centres[which] + np.einsum("nd,nde->ne", rng.standard_normal((n, 2)), shears[which])
    if kind == "grid":
        which = rng.integers(9, size=n)
        return 4.0 * np.stack([which % 3, which // 3], 1) + 0.5 * rng.standard_normal((n, 2))
    if kind == "moons":
        t = rng.uniform(0, np.pi, n)
        upper = rng.integers(2, size=n).astype(bool)
        x = np.where(upper, np.cos(t), 1 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        return np.stack([x, y], 1) + 0.08 * rng.standard_normal((n, 2))
    if kind == "ring":
        t = rng.uniform(0, 2 * np.pi, n)
        inner = rng.random(n) < 0.3
        radius = np.where(inner, 0.0, 3.0) + 0.3 * rng.standard_normal(n)
        return np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    raise ValueError(f"data set must be one of {', '.join(SYNTHETIC)}, got {kind!r}")


SYNTHETIC = ("blobs", "grid", "moons", "ring")


def csv_points(path: str) -> np.ndarray:
    """A CSV of two numeric columns (an optional header row) -> (N, 2)."""
    return csv_numbers(path, 2, "two numbers (x, y)", LIMITS["points"])


def fit_mixture(x: torch.Tensor, k: int, covariance: str, seed: int):
    from zoo.layers.mixture import GaussianMixture

    if len(x) < k:
        raise ValueError(f"K={k} components need at least {k} points, got {len(x)}")
    return GaussianMixture(k, 2, covariance_type=covariance, reg_covar=1e-4).double().fit(x, max_iter=200, seed=seed)


def mixture_picture(x: np.ndarray, gmm: Any, samples: np.ndarray, size: int = 480) -> Image.Image:
    """Data (grey), samples (orange), component means (black) and density contours (blue), drawn with PIL.

    Contours are drawn at the log-densities that 10/30/50/70/90% of the data points exceed.
    """
    from PIL import ImageDraw

    both = np.concatenate([x, samples])
    low, high = both.min(0), both.max(0)
    centre, half = (low + high) / 2, (high - low).max() / 2 * 1.1 + 1e-9
    low, high = centre - half, centre + half  # a square window: circles stay round
    cells = size // 2
    axis = np.linspace(0, 1, cells)
    gx, gy = np.meshgrid(low[0] + axis * (high[0] - low[0]), high[1] - axis * (high[1] - low[1]))
    with torch.no_grad():
        density = gmm.log_prob(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))).view(cells, cells).numpy()
        levels = np.quantile(gmm.log_prob(torch.from_numpy(x)).numpy(), [0.1, 0.3, 0.5, 0.7, 0.9])
    band = np.digitize(density, levels)  # (cells, cells) 0..5
    shade = (255 - band * 14).astype(np.uint8)
    edge = np.zeros_like(band, dtype=bool)
    edge[1:] |= band[1:] != band[:-1]
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    rgb = np.stack([shade, shade, np.full_like(shade, 255)], -1)
    rgb[edge] = (40, 70, 200)
    image = Image.fromarray(rgb.repeat(2, 0).repeat(2, 1))
    draw = ImageDraw.Draw(image)

    def to_pixels(points: np.ndarray) -> np.ndarray:
        return np.stack([(points[:, 0] - low[0]) / (high[0] - low[0]), (high[1] - points[:, 1]) / (high[1] - low[1])],
                        1) * (size - 1)

    for (px, py) in to_pixels(x):
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(110, 110, 110))
    for (px, py) in to_pixels(samples):
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(240, 140, 20))
    for (px, py) in to_pixels(gmm.means.detach().numpy()):
        draw.line([px - 6, py - 6, px + 6, py + 6], fill="black", width=3)
        draw.line([px - 6, py + 6, px + 6, py - 6], fill="black", width=3)
    return image


#: the most components the Mixtures tab fits (its K slider, and the BIC curve for K = 1..MAX_COMPONENTS)
MAX_COMPONENTS = 10


@friendly
def mixtures(data: str, csv_file: str | None, n: float, k: float, covariance: str, seed: float):
    """Fit a K-component GMM on 2-D points: a picture, BIC for K = 1..MAX_COMPONENTS, and a summary."""
    seed = as_int(seed, "seed", 0, 2**31 - 1)
    k = as_int(k, "K", 1, MAX_COMPONENTS)
    if csv_file:
        points = csv_points(csv_file)
    else:
        points = synthetic_points(data, as_int(n, "points", 10, LIMITS["points"]), seed)
    x = torch.from_numpy(points)
    gmm = fit_mixture(x, k, covariance, seed)
    samples = gmm.sample(len(points), seed=seed).numpy()
    bic = [(j, gmm.bic(x) if j == k else fit_mixture(x, j, covariance, seed).bic(x))
           for j in range(1, min(MAX_COMPONENTS, len(x)) + 1)]
    best = min(bic, key=lambda r: r[1])[0]
    if not gmm.converged:
        gr.Warning(f"EM stopped after {len(gmm.history)} iterations without converging; the fit may improve "
                   f"with another seed")
    weights = ", ".join(f"{w:.2f}" for w in gmm.weights.tolist())
    summary = (f"K = {k} ({covariance} covariance) on {len(points)} points: mean log-likelihood "
               f"{gmm.log_prob(x).mean().item():.3f} nats per point after {len(gmm.history)} EM iterations "
               f"({'converged' if gmm.converged else 'not converged'}); weights {weights}. "
               f"BIC is lowest at K = {best}.")
    return mixture_picture(points, gmm, samples), bic_table(bic), summary


def bic_table(bic: list[tuple[int, float]]) -> Any:
    """The BIC curve's table: K as text ("1", "2", ...), so that the chart's K axis is one tick per K, in the order
    ``bic_chart`` sorts them (a numeric K axis put ticks at K = 1.5, 2.5, ...)."""
    import pandas as pd

    return pd.DataFrame({"K": [str(j) for j, _ in bic], "BIC": [float(b) for _, b in bic]})


def bic_chart() -> gr.LinePlot:
    return gr.LinePlot(x="K", y="BIC", label=f"BIC for K = 1..{MAX_COMPONENTS} (lower is better)", x_title="K",
                       y_title="BIC", sort=[str(j) for j in range(1, MAX_COMPONENTS + 1)], elem_id="mixtures-bic")


def mixtures_tab() -> None:
    from zoo.layers.mixture import COVARIANCE_TYPES

    with gr.Tab("Mixtures", id="mixtures"):
        pretrained = models_where(fits_mixtures)
        card = f" · the pretrained mixture: {card_line(pretrained[0])}" if pretrained else ""
        gr.Markdown(f"**zoo.layers.GaussianMixture**: a Gaussian mixture fit by EM, here on 2-D points{card}")
        gr.Markdown(f"Built-in data sets or a CSV of two numeric columns (x, y; an optional header; at most "
                    f"{LIMITS['points']} rows and {LIMITS['upload']}). Grey: data; orange: samples of the fit; "
                    f"blue: density contours; black: component means.")
        with gr.Row():
            with gr.Column(scale=1):
                data = gr.Dropdown(list(SYNTHETIC), value="blobs", label="data set")
                csv_file = gr.File(label="or a CSV of (x, y) points", file_types=[".csv", ".txt"], type="filepath")
                n = gr.Slider(10, LIMITS["points"], value=600, step=10, label="points (built-in sets)")
                k = gr.Slider(1, MAX_COMPONENTS, value=3, step=1, label="K components")
                covariance = gr.Dropdown(list(COVARIANCE_TYPES), value="full", label="covariance type")
                seed = seed_input()
                button = gr.Button("Fit", variant="primary", elem_id="mixtures-fit")
            with gr.Column(scale=2):
                plot = gr.Image(type="pil", format="png", label="data, samples and density", interactive=False)
                summary = gr.Markdown()
                bic = bic_chart()
        button.click(mixtures, [data, csv_file, n, k, covariance, seed], [plot, bic, summary], api_name="mixtures")


# -- Sequences ---------------------------------------------------------------------------------


def by_state(text: str, states: list[int]) -> list[tuple[str, str]]:
    """(character, state) pairs for gr.HighlightedText: each character coloured by its hidden state."""
    return [(c, f"state {s}") for c, s in zip(text, states)]


@friendly
def hmm_sample(name: str, length: float, seed: float):
    """Characters sampled from the HMM, each coloured by the hidden state that emitted it."""
    m = model(name)
    length = as_int(length, "length", 1, LIMITS["characters"])
    texts, states = m.sample_with_states(1, length=length, seed=as_int(seed, "seed", 0, 2**31 - 1))
    text = texts[0]
    return by_state(text, states[0].tolist()), text


@friendly
def hmm_viterbi(name: str, text: str):
    """The most likely state of each character of `text` (Viterbi), and log p(text) in nats."""
    m = model(name)
    if not isinstance(text, str) or not text:
        raise ValueError("the text is empty: type a few characters to decode")
    if len(text) > LIMITS["characters"]:
        raise ValueError(f"the text has {len(text)} characters; at most {LIMITS['characters']}")
    paths, joint = m.viterbi([text])  # (1, T), (1,)
    total = m.log_prob(text).item()
    summary = (f"log p(text) = {total:.2f} nats ({-total / len(text):.3f} nats per character); the Viterbi path "
               f"has log p(text, states) = {joint.item():.2f} nats and visits {len(set(paths[0].tolist()))} states.")
    return by_state(text, paths[0].tolist()), summary


def state_text(label: str) -> gr.HighlightedText:
    """Text coloured by hidden state, by colour alone: a "state N" badge after every run of characters made the text
    unreadable. (The API still returns each run's state.)"""
    return gr.HighlightedText(label=label, combine_adjacent=True, show_legend=False, show_inline_category=False,
                              elem_classes=["states"])  # CSS


def sequences_tab() -> None:
    names = models_where(shows_states)
    with gr.Tab("Sequences", id="sequences"):
        name = tab_header(names, f"A hidden Markov model over characters: sample text, or type some and see the "
                                 f"Viterbi path, each character coloured by its hidden state (at most "
                                 f"{LIMITS['characters']} characters; only characters of the training text).")
        with gr.Row():
            with gr.Column(scale=1):
                length = limited_slider("characters", 200, "characters")
                seed = seed_input()
                sample = gr.Button("Sample", variant="primary", elem_id="sequences-sample")
            with gr.Column(scale=2):
                sampled = state_text("sample, coloured by state")
                sampled_text = gr.Textbox(label="sample as text", lines=4, interactive=False)
        with gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox("To be, or not to be, that is the question.", lines=3, label="text to decode")
                decode = gr.Button("Viterbi decode", elem_id="sequences-viterbi")
            with gr.Column(scale=2):
                decoded = state_text("Viterbi states")
                summary = gr.Markdown()
        sample.click(hmm_sample, [name, length, seed], [sampled, sampled_text], api_name="hmm_sample")
        decode.click(hmm_viterbi, [name, text], [decoded, summary], api_name="viterbi")


# -- Anomalies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """What the Anomalies tab compares a model's scores with, computed once per model (``reference``)."""

    detector: Detector  # fitted on the validation digits: its threshold_ is their THRESHOLD_QUANTILE quantile
    scores: np.ndarray  # (N,) scores of the normal test digits: the histogram and the percentiles
    validation: int  # how many validation digits set the threshold
    data: str  # the data's name, for labels


def scoring_model(name: str) -> Any:
    """Model `name` if its declarations give it a density over images (the Anomalies tab's models), else a ValueError
    listing them."""
    m = model(name)
    if not scores_images(type(m)):
        raise ValueError(f"{name} ({type(m).__name__}) has no density over images to score with; choose one of: "
                         f"{', '.join(models_where(scores_images))}")
    return m


def reference_images(name: str, split: str) -> torch.Tensor:
    """A fixed (seeded) sample of at most REFERENCE_SIZE images of the `split` ("val" or "test") of the model's own
    datamodule, in the split's order."""
    data = split_dataset(name, split)
    chosen = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:REFERENCE_SIZE]
    return images_at(data, chosen.sort().values)


@functools.cache
def reference(name: str) -> Reference:
    """Model `name` as a ``zoo.anomaly.Detector`` fitted on its validation digits (the threshold), and the scores of
    its test digits, computed once. VAE scores take DEMO_IWAE_K importance samples; every estimate is seeded."""
    m = scoring_model(name)
    options = {"k": DEMO_IWAE_K} if "k" in m.accepts("log_prob") else {}
    detector = Detector(m, threshold_quantile=THRESHOLD_QUANTILE, score_options=options)
    validation = reference_images(name, "val")
    detector.fit(validation)  # a trained model is not refitted: fit records the scores and the threshold
    return Reference(detector, detector.decision_function(reference_images(name, "test")), len(validation),
                     data_spec(name).name)


def percentile(normal: np.ndarray, score: float) -> float:
    """The percentage of the normal scores below `score`."""
    return round(float((normal < score).mean() * 100), 1)


def verdict(score: float, threshold: float) -> str:
    return "anomalous" if score > threshold else "normal"  # Detector.predict's rule


def threshold_text(ref: Reference) -> str:
    return (f"the threshold {ref.detector.threshold_:,.1f} nats, the {THRESHOLD_QUANTILE * 100:g}th percentile of the "
            f"scores of {ref.validation} normal validation digits of {ref.data}")


def answer(ref: Reference, scores: np.ndarray) -> str:
    """The Anomalies tab's answer: score, threshold, verdict and the percentile among the normal test digits."""
    threshold, normal = ref.detector.threshold_, f"{len(ref.scores)} normal test digits"
    if len(scores) == 1:
        s = float(scores[0])
        side = "above" if s > threshold else "at or below"
        return (f"**{verdict(s, threshold)}**: score {s:,.1f} nats, {side} {threshold_text(ref)}. It scores higher "
                f"than {percentile(ref.scores, s)}% of {normal}.")
    flagged = int((scores > threshold).sum())
    return (f"**{flagged} of {len(scores)} images anomalous**: score above {threshold_text(ref)}. Scores "
            f"{scores.min():,.1f} to {scores.max():,.1f} nats; each image's percentile among {normal} is in the table.")


#: the Anomalies tab's chart: its size in pixels, the plot's margins (left, top, right, bottom) and bins
CHART = {"size": (680, 380), "margins": (76, 58, 24, 54), "bins": 30}
#: fills are semi-transparent and each histogram is drawn from zero over the other (overlaid, never stacked):
#: where both have images, the two colours mix
NORMAL_FILL, NORMAL_EDGE = (31, 119, 180, 110), (31, 119, 180, 255)
YOURS_FILL, YOURS_EDGE = (255, 127, 14, 110), (214, 96, 0, 255)
THRESHOLD_COLOUR = (214, 39, 40, 255)
INK = (40, 40, 40, 255)


def font(size: int = 13) -> Any:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 6) -> tuple[list[float], float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) from `low` to `high`, and the step."""
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)], step


def tick_text(value: float, step: float) -> str:
    """A tick's label with the decimals its step needs ("2,500", "0.25"), zero without a sign."""
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * step), 6)
    return f"{0.0 if abs(value) < step / 2 else value:,.{decimals}f}"


def axis_range(normal: np.ndarray, marks: np.ndarray, threshold: float) -> tuple[float, float]:
    """The score axis: the normal scores and the threshold, widened to the scored images within one such span of
    them (images farther off are shown as a count at the edge, so that the normal histogram stays readable)."""
    low, high = min(float(normal.min()), threshold), max(float(normal.max()), threshold)
    span = high - low or max(1.0, abs(high) / 100)
    near = marks[(marks >= low - span) & (marks <= high + span)]
    if len(near):
        low, high = min(low, float(near.min())), max(high, float(near.max()))
    pad = (high - low) * 0.04 or 1.0
    return low - pad, high + pad


def score_chart(normal: np.ndarray, marks: np.ndarray, threshold: float, *, normal_label: str, marks_label: str,
                threshold_label: str) -> Image.Image:
    """Overlaid (not stacked) semi-transparent histograms of the `normal` scores and, for two or more, of the scored
    images' `marks` (fractions of each group, the same bins), a dashed line at `threshold` and a triangle under
    each scored image's score (and a line, for one image); drawn with PIL, as a CHART["size"] picture."""
    width, height = CHART["size"]
    left, top, right, bottom = CHART["margins"]
    x0, y0, x1, y1 = left, top, width - right, height - bottom  # the plot, y1 its baseline
    low, high = axis_range(normal, marks, threshold)
    edges = np.linspace(low, high, CHART["bins"] + 1)
    inside = marks[(marks >= low) & (marks <= high)]
    groups = [(np.histogram(normal, edges)[0] / len(normal), NORMAL_FILL, NORMAL_EDGE)]
    if len(marks) > 1:
        groups.append((np.histogram(inside, edges)[0] / len(marks), YOURS_FILL, YOURS_EDGE))
    y_max = max(g[0].max() for g in groups) * 1.1 or 1.0

    def px(score: float) -> int:
        return round(x0 + (score - low) / (high - low) * (x1 - x0))

    def py(fraction: float) -> int:
        return round(y1 - fraction / y_max * (y1 - y0))

    image = Image.new("RGBA", (width, height), "white")
    for fractions, fill, edge in groups:  # each from zero, composited over the other: overlaid
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        bars = ImageDraw.Draw(layer)
        for f, a, b in zip(fractions, edges[:-1], edges[1:]):
            if f > 0:
                bars.rectangle([px(a), py(f), px(b) - 1, y1], fill=fill, outline=edge)
        image = Image.alpha_composite(image, layer)
    draw, small, label = ImageDraw.Draw(image), font(12), font(13)

    def text(xy: tuple[float, float], words: str, where: str = "left", fill: Any = INK, face: Any = small) -> None:
        w = draw.textlength(words, font=face)
        x = xy[0] - {"left": 0, "centre": w / 2, "right": w}[where]
        draw.text((x, xy[1]), words, fill=fill, font=face)

    ticks, step = nice_ticks(low, high)  # the score axis
    for t in ticks:
        draw.line([px(t), y1, px(t), y1 + 4], fill=INK)
        text((px(t), y1 + 6), tick_text(t, step), "centre")
    text(((x0 + x1) / 2, height - 20), "score = -log p(x), nats (higher = more unusual)", "centre", face=label)
    ticks, step = nice_ticks(0, y_max, 4)  # the fraction axis
    for t in ticks:
        draw.line([x0 - 4, py(t), x0, py(t)], fill=INK)
        text((x0 - 7, py(t) - 7), tick_text(t, step), "right")
    title = Image.new("RGBA", (int(draw.textlength("fraction of images", font=label)) + 4, 18), (0, 0, 0, 0))
    ImageDraw.Draw(title).text((2, 1), "fraction of images", fill=INK, font=label)
    title = title.rotate(90, expand=True)
    image.alpha_composite(title, (6, round((y0 + y1 - title.height) / 2)))
    draw.line([x0, y0, x0, y1], fill=INK)
    draw.line([x0, y1, x1, y1], fill=INK)

    t = px(threshold)  # the threshold: a dashed line
    for y in range(y0, y1, 10):
        draw.line([t, y, t, min(y + 5, y1)], fill=THRESHOLD_COLOUR, width=2)
    text((t + 4, y0 + 2), f"{threshold:,.1f}", fill=THRESHOLD_COLOUR)
    for s in inside:  # the scored images: a triangle under each score, a line for a single image
        x = px(float(s))
        if len(marks) == 1:
            draw.line([x, y0, x, y1], fill=YOURS_EDGE, width=2)
            text((x - 4, y0 + 16), f"{float(s):,.1f}", "right", fill=YOURS_EDGE)
        draw.polygon([(x, y1 - 9), (x - 5, y1), (x + 5, y1)], fill=YOURS_EDGE)
    for side, off in (("right", marks[marks > high]), ("left", marks[marks < low])):  # the ones off the axis
        if len(off):
            far = float(off.max() if side == "right" else off.min())
            words = (f"{len(off)} image{'s' * (len(off) > 1)} off the axis, "
                     f"{'at' if len(off) == 1 else 'up to' if side == 'right' else 'down to'} {far:,.1f} nats")
            words = f"{words} >>" if side == "right" else f"<< {words}"
            at = (x1 - 4 if side == "right" else x0 + 4, y0 + 34)
            w = draw.textlength(words, font=small)
            box_left = at[0] - w if side == "right" else at[0]
            draw.rectangle([box_left - 3, at[1] - 2, box_left + w + 3, at[1] + 15], fill="white", outline=YOURS_EDGE)
            text(at, words, side, fill=YOURS_EDGE)

    x = x0  # the legend: a swatch of each histogram (a line for a single image), then the threshold's dashes
    for fill, edge, words in [(NORMAL_FILL, NORMAL_EDGE, normal_label), (YOURS_FILL, YOURS_EDGE, marks_label)]:
        swatch = Image.new("RGBA", (14, 14), (0, 0, 0, 0))
        if fill is YOURS_FILL and len(marks) == 1:
            ImageDraw.Draw(swatch).line([7, 0, 7, 13], fill=edge, width=2)
        else:
            ImageDraw.Draw(swatch).rectangle([0, 0, 13, 13], fill=fill, outline=edge)
        image.alpha_composite(swatch, (x, 8))
        draw.text((x + 20, 8), words, fill=INK, font=small)
        x += 20 + int(draw.textlength(words, font=small)) + 24
    for dash in range(0, 14, 6):
        draw.line([x0 + 6, 30 + dash, x0 + 6, 30 + dash + 3], fill=THRESHOLD_COLOUR, width=2)
    draw.text((x0 + 20, 30), threshold_label, fill=INK, font=small)
    return image.convert("RGB")


def reference_chart(ref: Reference, scores: np.ndarray) -> Image.Image:
    """``score_chart`` of the scored images against the model's normal test digits and its threshold."""
    return score_chart(ref.scores, scores, ref.detector.threshold_,
                       normal_label=f"normal: {len(ref.scores)} test digits of {ref.data} (all classes)",
                       marks_label=f"yours: {len(scores)} image{'s' * (len(scores) > 1)}",
                       threshold_label=f"threshold {ref.detector.threshold_:,.1f} nats: the {THRESHOLD_QUANTILE * 100:g}th "
                                       f"percentile of {ref.validation} validation digits; above it: anomalous")


@friendly
def score_images(name: str, csv_file: str | None, images: list[str] | None, sketch: Any, top: float):
    """Score images with the model as a Detector: the most unusual first, a table of scores, percentiles and verdicts,
    the chart against the normal test digits and the threshold, and the answer in words."""
    scoring_model(name)
    top = as_int(top, "most unusual", 1, LIMITS["scored"])
    x = collect_images(name, csv_file, images, sketch)  # read (and refused) before the reference is computed
    ref = reference(name)
    scores = ref.detector.decision_function(x)
    order = np.argsort(-scores, kind="stable")[:top]
    grid = picture(x[order], "grid", min(len(order), 8))
    threshold = ref.detector.threshold_
    table = [[int(i), round(float(scores[i]), 2), percentile(ref.scores, scores[i]), verdict(scores[i], threshold)]
             for i in order]
    return grid, table, reference_chart(ref, scores), answer(ref, scores)


def collect_images(name: str, csv_file: str | None, images: list[str] | None, sketch: Any) -> torch.Tensor:
    """The images to score, made model `name`'s data: CSV rows, uploaded files and the drawing; none is an error."""
    spec = data_spec(name)
    parts = []
    if csv_file:
        parts.append(csv_images(csv_file, spec))
    for path in images or []:
        parts.append(uploaded_image(path, spec))
    drawn = drawn_image(sketch, spec) if sketch is not None else None
    if drawn is not None:
        parts.append(drawn)
    if not parts:
        raise ValueError("no image to score: draw a digit, upload image files or give a CSV")
    x = torch.cat(parts)
    if len(x) > LIMITS["scored"]:
        raise ValueError(f"got {len(x)} images; at most {LIMITS['scored']} per request")
    return x


def anomalies_note(name: str) -> str:
    spec = data_spec(name)
    c, h, w = image_shape(spec)
    return (f"Draw a digit, upload images ({upload_text(spec)}) or give a CSV (one image per row: {c * h * w} pixel "
            f"values {values_text(spec)}); at most {LIMITS['scored']} images and {LIMITS['upload']} per file. The "
            f"model scores each as `zoo.anomaly.Detector` does: -log p(x) in nats, higher is more unusual (a VAE's "
            f"IWAE estimate takes {DEMO_IWAE_K} importance samples; the model card uses 1000). An image is anomalous "
            f"above the threshold, the {THRESHOLD_QUANTILE * 100:g}th percentile of the scores of up to "
            f"{REFERENCE_SIZE} validation digits of {spec.name}; the chart shows its score against those of up to "
            f"{REFERENCE_SIZE} normal test digits (all classes). A model's first request scores these reference "
            f"digits once: about a second for a mixture or naive Bayes, a few seconds for a VAE.")


def anomalies_tab() -> None:
    names = preferred(models_where(scores_images))
    with gr.Tab("Anomalies", id="anomalies"):
        name = tab_header(names, anomalies_note, label="density model")
        with gr.Row():
            with gr.Column(scale=1):
                sketch = sketchpad_input(label="draw a digit", canvas_size=(256, 256), type="numpy",
                                         elem_id="anomalies-sketch")
                images = gr.File(label="or upload images", file_count="multiple", file_types=["image"],
                                 type="filepath", elem_id="anomalies-files")  # Gradio never opens them: we do
                csv_file = gr.File(label="or a CSV of images", file_types=[".csv", ".txt"], type="filepath")
                top = gr.Slider(1, LIMITS["scored"], value=8, step=1, label="show the most unusual")
                button = gr.Button("Score", variant="primary", elem_id="anomalies-score")
            with gr.Column(scale=2):
                answer_text = gr.Markdown(elem_id="anomalies-answer")
                chart = gr.Image(type="pil", format="png", label="score against the normal test digits",
                                 show_label=False, interactive=False, elem_id="anomalies-chart")  # its own legend
                grid = pixel_output("most unusual first", elem_id="anomalies-grid")
                table = gr.Dataframe(headers=["image #", "score (nats)", "percentile among normal test digits",
                                              "verdict"], label="scores", interactive=False)
        button.click(score_images, [name, csv_file, images, sketch, top], [grid, table, chart, answer_text],
                     api_name="anomalies")


# -- Classifier --------------------------------------------------------------------------------


@friendly
def classify(name: str, sketch: Any, upload: str | None):
    """Class probabilities of one drawn or uploaded image under a generative classifier, and the image as seen."""
    m = model(name)
    spec = data_spec(name)
    if upload:
        x = uploaded_image(upload, spec)
    else:
        x = drawn_image(sketch, spec) if sketch is not None else None
        if x is None:
            raise ValueError("draw an image (or upload one) first")
    probs = m.predict_proba(x)[0]  # (classes,)
    names = spec.class_names or ()
    return (picture(x, "large", 1),
            {names[c] if c < len(names) else str(c): float(p) for c, p in enumerate(probs.tolist())})


@friendly
def class_samples(name: str, label: str, n: float, seed: float):
    """`n` images of one class, drawn from the classifier's own p(x | y)."""
    m = model(name)
    chosen = as_label(label, m)
    if chosen is None:
        raise ValueError("choose a class to sample")
    n = as_int(n, "number of samples", 1, LIMITS["images"])
    images = m.sample(n, seed=as_int(seed, "seed", 0, 2**31 - 1), labels=chosen)
    return picture(images, "small", min(n, 8))


def classifier_note(name: str) -> str:
    return (f"A generative classifier: p(y | x) by Bayes' rule from p(x | y) p(y). Draw an image or upload one "
            f"({upload_text(data_spec(name))}, at most {LIMITS['upload']}); or sample up to {LIMITS['images']} "
            f"images of a class from p(x | y).")


def classifier_inputs(name: str) -> tuple[dict, dict]:
    """The class dropdown (the model's classes, FIRST_CLASS chosen) and the seen image's label (its size)."""
    choices = class_choices(name)
    first = choices[min(FIRST_CLASS, len(choices) - 1)][1] if choices else None
    return (gr.update(choices=choices, value=first),
            gr.update(label=f"the image as the model sees it ({size_text(data_spec(name))})"))


def classifier_tab() -> None:
    names = preferred(models_where(classifies_images))
    with gr.Tab("Classifier", id="classifier"):
        name = tab_header(names, classifier_note)
        with gr.Row():
            with gr.Column(scale=1):
                sketch = sketchpad_input(label="draw an image", canvas_size=(256, 256), type="numpy",
                                         elem_id="classifier-sketch")
                upload = image_input(type="filepath", image_mode=None, label="or upload one", sources=["upload"])
                button = gr.Button("Classify", variant="primary", elem_id="classifier-classify")
            with gr.Column(scale=1):
                seen = pixel_output("the image as the model sees it")
                probabilities = gr.Label(num_top_classes=TOP_CLASSES, label="class probabilities",
                                         elem_id="classifier-label")
        with gr.Row():
            with gr.Column(scale=1):
                label = gr.Dropdown([str(FIRST_CLASS)], value=str(FIRST_CLASS), label="class",
                                    allow_custom_value=True)  # the model's classes: classifier_inputs
                n = limited_slider("images", 16, "samples")
                seed = seed_input()
                sample = gr.Button("Sample this class", elem_id="classifier-sample")
            with gr.Column(scale=1):
                samples = pixel_output("samples of p(x | y)")
        on_model(name, classifier_inputs, [label, seen])
        button.click(classify, [name, sketch, upload], [seen, probabilities], api_name="classify")
        sample.click(class_samples, [name, label, n, seed], samples, api_name="class_samples")


# -- Molecules ---------------------------------------------------------------------------------


def molecule_table(smiles: list[str]) -> tuple[list[Any], list[list[Any]]]:
    """RDKit molecules to draw (an empty one where a SMILES is invalid) and a row of properties per SMILES."""
    from rdkit import Chem

    from zoo.metrics.molecules import properties

    mols, rows = [], []
    for i, s in enumerate(smiles):
        try:
            p = properties(s)
        except ValueError as e:
            mols.append(Chem.Mol())
            rows.append([i, s, "no: " + str(e).split(": ", 1)[-1], None, None, None])
            continue
        mols.append(Chem.MolFromSmiles(p["smiles"]))
        rows.append([i, s, "yes", round(p["QED"], 3), round(p["logP"], 2), round(p["weight"], 1)])
    return mols, rows


def molecule_grid(mols: list[Any], rows: list[list[Any]]) -> Image.Image:
    """The molecules as 2-D structures (RDKit's drawing), each with its number, validity and properties."""
    from rdkit.Chem import Draw

    legends = [f"#{r[0]}: QED {r[3]:.2f}, logP {r[4]:.1f}, {r[5]:.0f} Da" if r[2] == "yes" else f"#{r[0]}: invalid"
               for r in rows]
    return Draw.MolsToGridImage(mols, molsPerRow=4, subImgSize=(240, 200), legends=legends)


@friendly
def sample_molecules(name: str, n: float, seed: float):
    """`n` molecules from the model, drawn, with validity, QED, logP and weight of each, and a summary line."""
    from zoo.models.contract import length_bound

    m = model(name)
    n = as_int(n, "number of molecules", 1, LIMITS["molecules"])
    spec = data_spec(name)
    smiles = m.sample(n, seed=as_int(seed, "seed", 0, 2**31 - 1),
                      **length_bound(m, spec.max_length - 1 if spec.max_length else None))
    mols, rows = molecule_table(smiles)
    valid = sum(r[2] == "yes" for r in rows)
    return molecule_grid(mols, rows), rows, f"{valid} of {n} valid ({valid / n:.0%})"


@friendly
def score_molecule(name: str, smiles: str) -> tuple[str, Image.Image | None]:
    """log p(SMILES) under the model (any string of known tokens is scored, valid or not) and its properties."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise ValueError("paste a SMILES first, e.g. CCOc1ccccc1")
    smiles = smiles.strip()
    if len(smiles) > LIMITS["smiles_chars"]:
        raise ValueError(f"the SMILES has {len(smiles)} characters; at most {LIMITS['smiles_chars']}")
    m = model(name)
    logp = float(m.log_prob([smiles])[0])
    mols, rows = molecule_table([smiles])
    line = f"**log p = {logp:.2f} nats** ({logp / max(len(smiles), 1):.3f} per character) under {name}. "
    if rows[0][2] != "yes":
        return line + f"Not a valid molecule: {rows[0][2][4:]}.", None
    return line + f"Valid: QED {rows[0][3]}, logP {rows[0][4]}, molecular weight {rows[0][5]} Da.", \
        molecule_grid(mols, rows)


def molecules_note(name: str) -> str:
    return (f"Sample up to {LIMITS['molecules']} molecules (SMILES) and see them drawn by RDKit, with validity, QED "
            "(drug-likeness, 0..1), Crippen logP and molecular weight; or paste a SMILES to score its log-likelihood "
            "under the model (any string of known tokens is scored, valid or not) and see its properties.")


def molecules_tab() -> None:
    names = molecule_models()
    with gr.Tab("Molecules", id="molecules"):
        name = tab_header(names, molecules_note, label="molecule generator")
        with gr.Row():
            with gr.Column(scale=1):
                n = limited_slider("molecules", 12, "molecules")
                seed = seed_input()
                button = gr.Button("Sample", variant="primary", elem_id="molecules-sample")
                summary = gr.Markdown(elem_id="molecules-summary")
            with gr.Column(scale=3):
                grid = gr.Image(type="pil", format="png", label="sampled molecules", interactive=False,
                                elem_id="molecules-grid")
        table = gr.Dataframe(headers=["#", "SMILES", "valid", "QED", "logP", "weight (Da)"], label="properties",
                             interactive=False, elem_id="molecules-table")
        with gr.Row():
            with gr.Column(scale=1):
                pasted = gr.Textbox("CCOc1ccc(C(=O)NCc2ccccc2)cc1", label="your SMILES", elem_id="molecules-smiles")
                score = gr.Button("Score", elem_id="molecules-score")
            with gr.Column(scale=2):
                answer = gr.Markdown(elem_id="molecules-answer")
                drawn = gr.Image(type="pil", format="png", label="your molecule", interactive=False)
        button.click(sample_molecules, [name, n, seed], [grid, table, summary], api_name="molecules")
        score.click(score_molecule, [name, pasted], [answer, drawn], api_name="score_molecule")


# -- Text to image -----------------------------------------------------------------------------


def draws_prompts(cls: type) -> bool:
    from zoo.models.contract import takes_prompts

    return makes_images(cls) and takes_prompts(cls)


def measured_rows(m: Any, name: str, images: torch.Tensor, prompt: str) -> list[list[Any]]:
    """For each image: the digit the data's classifier reads, the measured thickness and slant (value and word, as
    ``zoo.captions`` bins them), and whether all three match what the prompt names (blank where it names nothing)."""
    from zoo.captions import ATTRIBUTES, bin_values, measure, read_prompt
    from zoo.metrics.features import load_extractor

    extractor = data_spec(name).feature_extractor
    digits = load_extractor(extractor).predict(images).tolist() if extractor else [None] * len(images)
    values = measure(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a contradictory prompt is reported once, by the sampling call
        wanted = read_prompt(prompt)
    rows = []
    for i, digit in enumerate(digits):
        got = {"digit": digit, **{a: int(bin_values(a, values[a][i:i + 1])) for a in ATTRIBUTES}}
        named = [k for k, v in wanted.items() if v is not None]
        match = "" if not named else ("yes" if all(got[k] == wanted[k] for k in named) else "no")
        rows.append([i, digit, f"{values['thickness'][i]:.2f} ({ATTRIBUTES['thickness'][got['thickness']]})",
                     f"{values['slant'][i]:+.2f} ({ATTRIBUTES['slant'][got['slant']]})", match])
    return rows


@friendly
def text_to_image(name: str, prompt: str, n: float, seed: float, guidance: float, steps: float):
    """A grid of `n` images for `prompt`, what each shows (measured), a summary line, and the grid as a PNG."""
    m = model(name)
    if not isinstance(prompt, str):
        raise ValueError("the prompt must be text")
    if len(prompt) > LIMITS["prompt_chars"]:
        raise ValueError(f"the prompt has {len(prompt)} characters; at most {LIMITS['prompt_chars']}")
    n = as_int(n, "number of images", 1, LIMITS["images"])
    seed = as_int(seed, "seed", 0, 2**31 - 1)
    steps = as_int(steps, "sampler steps", 1, min(LIMITS["diffusion_steps"], m.accepts()["steps"].high))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = m.sample(n, seed=seed, prompt=prompt, guidance=float(guidance), steps=steps, progress=False)
    rows = measured_rows(m, name, images, prompt)
    matched = [r[4] for r in rows if r[4]]
    summary = f"{matched.count('yes')} of {n} show everything the prompt names" if matched else \
        "the prompt names no digit, thickness or slant: any digit, any style"
    notes = "; ".join(dict.fromkeys(str(w.message) for w in caught))
    grid = picture(images, "grid")
    return grid, rows, summary + (f" (note: {notes})" if notes else ""), save_png(grid, f"{name}-seed{seed}")


def text_to_image_note(name: str) -> str:
    from zoo.captions import ATTRIBUTES, held_out_text

    words = "; ".join(" / ".join(w) for w in ATTRIBUTES.values())
    held = held_out_text()
    return (f"Describe a digit and its style ({words}), e.g. *a thick 7 leaning right* or *seven, bold, slanted to "
            f"the right*; up to {LIMITS['images']} images per request. Each result's digit is read by the data's "
            "classifier and its thickness and slant are measured on the pixels, as the model's faithfulness metrics "
            f"do. The empty prompt draws any digit. Never seen in training, so composed: {held}.")


def text_to_image_tab() -> None:
    names = preferred(models_where(draws_prompts))
    with gr.Tab("Text to image", id="text-to-image"):
        name = tab_header(names, text_to_image_note, label="text-to-image model")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox("a thick 7 leaning right", label="prompt", max_length=LIMITS["prompt_chars"],
                                    elem_id="t2i-prompt")
                n = limited_slider("images", 8, "images")
                guidance = gr.Slider(0, 10, value=3.0, step=0.5, label="guidance scale (1 = the prompt alone)",
                                     elem_id="t2i-guidance")
                steps = gr.Slider(1, LIMITS["diffusion_steps"], value=25, step=1, label="sampler steps")
                seed = seed_input()
                button = gr.Button("Draw", variant="primary", elem_id="t2i-draw")
                summary = gr.Markdown(elem_id="t2i-summary")
            with gr.Column(scale=2):
                grid = pixel_output("images", elem_id="t2i-grid")
                download = gr.File(label="PNG download", interactive=False)
        table = gr.Dataframe(headers=["#", "digit (classifier)", "thickness (measured)", "slant (measured)",
                                      "matches the prompt"], label="what each image shows", interactive=False,
                             elem_id="t2i-table")
        on_model(name, lambda chosen: gr.update(value=getattr(model(chosen), "guidance", 3.0)), guidance)
        button.click(text_to_image, [name, prompt, n, seed, guidance, steps], [grid, table, summary, download],
                     api_name="text_to_image")


# -- the app -----------------------------------------------------------------------------------


TABS: list[tuple[Callable[[], list[str]], Callable[[], None]]] = [
    (lambda: models_where(makes_images), images_tab),
    (lambda: models_where(draws_prompts), text_to_image_tab),
    (lambda: models_where(walks), walk_tab),
    (text_models, text_tab),
    (lambda: True, mixtures_tab),  # fits zoo.layers.GaussianMixture on the spot: no pretrained model needed
    (lambda: models_where(shows_states), sequences_tab),
    (lambda: models_where(scores_images), anomalies_tab),
    (lambda: models_where(classifies_images), classifier_tab),
    (molecule_models, molecules_tab),
]


def build_app() -> gr.Blocks:
    """The demo's Blocks, with each tab that some pretrained model's declarations support (none is loaded yet)."""
    with gr.Blocks(title="genzoo demo", analytics_enabled=False, delete_cache=(CACHE_SWEEP, CACHE_AGE)) as app:
        gr.Markdown(f"# genzoo demo\nPretrained generative models of the zoo ({len(zoo.list_models())} models), "
                    f"loaded by name with `zoo.load`. At most {CONCURRENCY} requests run at once; "
                    f"uploads up to {LIMITS['upload']}; uploads, results and downloads are kept for "
                    f"{CACHE_AGE // 60} minutes.")
        with gr.Tabs():
            for available, tab in TABS:
                if available():
                    tab()
    for block in app.blocks.values():
        if isinstance(block, gr.Image):
            whole_pictures(block)
    one_line_requests(app)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True):
    """Serve `app` on host:port (localhost by default: pass host="0.0.0.0" to expose it)."""
    return app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                      max_file_size=LIMITS["upload"], allowed_paths=card_folders(), show_error=False,
                      footer_links=["api"], css=CSS, js=DRAW_FIRST, state_session_capacity=SESSIONS)


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the server as Ctrl+C does (Gradio closes it; ``atexit`` removes ``workdir``) instead of
    killing the process on the spot, its files left behind. A second SIGTERM kills it."""
    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def fewer_malloc_arenas(arenas: int = 2) -> None:
    """Let glibc's malloc keep at most `arenas` arenas (its default: 8 per core): each of the server's worker threads
    otherwise gets an arena of its own, which grows to the largest job that thread ever ran, and the server's memory
    creeps up for hundreds of requests (measured with benchmarks/demo_load.py: +35 MB over 500 mixed requests after
    warm-up with the default, +14 MB and flat after 200 with two arenas, and 66 MB less in all). It acts on arenas made
    from now on: call it before the server starts its threads. Elsewhere than glibc, nothing happens."""
    try:
        ctypes.CDLL(None).mallopt(-8, arenas)  # M_ARENA_MAX, glibc's malloc.h
    except (OSError, AttributeError, TypeError):
        pass


def log_lines() -> None:
    """The demo's log: one line per refused request or failure, on stderr."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s genzoo demo: %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(host: str = "127.0.0.1", port: int = 7860) -> None:
    """Build and serve the demo until Ctrl+C or SIGTERM; then remove every file it wrote (``workdir``).

    Gradio's cache goes to the process's own folder (gradio/ in ``workdir``, swept with downloads/ every CACHE_SWEEP
    seconds) unless GRADIO_TEMP_DIR names one: Gradio then deletes the files it knows it wrote there itself.
    """
    stop_on_sigterm()
    fewer_malloc_arenas()
    log_lines()
    swept = [workdir() / "downloads"]
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = str(workdir() / "gradio")  # read by Gradio as each component is made
        swept.append(workdir() / "gradio")
    sweeping = start_sweeping(swept)
    try:
        launch(build_app(), host, port)
    except KeyboardInterrupt:  # SIGTERM or Ctrl+C before the server was up
        pass
    finally:
        sweeping.set()
        shutil.rmtree(workdir(), ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="genzoo's Gradio demo")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    args = parser.parse_args()
    main(args.host, args.port)
