"""Captions of digits from measurements: what text-to-image models (``zoo.models.text_diffusion``) learn from.

Each digit image is measured, not labelled by hand (plain torch, no Lightning; also what the faithfulness
metrics and the demo use to check a generated image against its prompt):

- **thickness** = ink mass / skeleton length, in pixels: the sum of the pixel values (in [0, 1]) over the
  number of pixels of the image's skeleton (``skeleton``: Zhang & Suen 1984's thinning of the pixels > 0.5).
  A one-pixel line measures about 1; MNIST's strokes measure 2 to 5. (Thinning shortens a stroke's ends by
  about its width, so wide strokes measure a little wider still: the order is kept.)
- **slant** = the shear of the ink: Σ w·x·y / Σ w·y² over pixels (x to the right, y up, both from the ink's
  centre of mass, w the pixel value), i.e. how far the ink moves right per pixel up: > 0 leans right.

Each is cut into three words at fixed ``THRESHOLDS``, chosen on the 5k MNIST's training split so each word
covers about a third of it: thin / regular / thick, and leaning left / upright / leaning right. (Size and
position are not attributes: MNIST scales every digit into a 20x20 box and centres its mass, so they barely
vary.) ``caption`` renders a digit and its words through varied templates and synonyms, naming the
attributes at random (sometimes none): "a thick 7 leaning right", "seven, bold, slanted to the right". The
``EVAL_TEMPLATES`` are never used in training, and the digit-attribute combinations in ``HELD_OUT`` are left
out of training entirely: the metrics prompt both, to test phrasing and composition.

Example::

    from zoo.captions import measure, words, caption
    values = measure(images)                      # {"thickness": (N,), "slant": (N,)}
    bins = words(images)                          # {"thickness": (N,) in 0..2, "slant": (N,) in 0..2}
    caption(7, {"thickness": 2, "slant": 2}, random.Random(0))   # e.g. "a thick 7 leaning right"
"""

from __future__ import annotations

import random
import re
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.checks import as_tensor, check_range

#: the words of each attribute, in the order of their bins (0, 1, 2)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "thickness": ("thin", "regular", "thick"),
    "slant": ("leaning left", "upright", "leaning right"),
}
#: the two cuts of each attribute's measurement into its three bins (value < low, low..high, > high)
THRESHOLDS: dict[str, tuple[float, float]] = {"thickness": (2.4, 2.95), "slant": (0.0, 0.25)}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: ways of saying each word in a caption (the first is the word itself)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "thin": ("thin", "thin-stroked", "fine", "light", "skinny"),
    "regular": ("regular", "medium", "normal", "average"),
    "thick": ("thick", "bold", "heavy", "fat", "thick-stroked"),
    "leaning left": ("leaning left", "slanted to the left", "tilted left", "leaning to the left", "italic to the left"),
    "upright": ("upright", "straight", "standing straight", "vertical", "not slanted"),
    "leaning right": ("leaning right", "slanted to the right", "tilted right", "leaning to the right", "italic"),
}

#: caption templates used in training: {digit}, {thickness} (an adjective) and {slant} (a phrase); a template
#: missing a slot is used when that attribute is not named
TRAIN_TEMPLATES = (
    "a {thickness} {digit} {slant}", "{digit}, {thickness}, {slant}", "the number {digit}, {thickness} and {slant}",
    "a {digit} written {thickness}, {slant}", "{thickness} {digit} {slant}", "a {slant} {digit}, {thickness}",
    "a {thickness} {digit}", "the digit {digit}, {thickness}", "{digit} {thickness}",
    "a {digit} {slant}", "{digit}, {slant}", "the number {digit} {slant}",
    "a {digit}", "{digit}", "the digit {digit}", "number {digit}", "a handwritten {digit}",
)
#: templates never used in training: the metrics' prompts (phrasing it has not seen)
EVAL_TEMPLATES = (
    "draw a {digit} that is {thickness} and {slant}", "{slant}: just a {thickness} {digit}",
    "here is a {thickness} handwritten {digit}, {slant}", "please write {digit} {thickness} {slant}",
)
#: (digit, thickness word, slant word) combinations left out of training entirely (composition is tested on them)
HELD_OUT = ((0, "thick", "leaning left"), (2, "thin", "leaning right"), (4, "thick", "upright"),
            (6, "thin", "leaning left"), (7, "regular", "leaning right"), (9, "thick", "leaning right"))


def held_out_text() -> str:
    """``HELD_OUT`` in words: "thick 0 leaning left, thin 2 leaning right, ..."."""
    return ", ".join(f"{thick} {digit} {lean}" for digit, thick, lean in HELD_OUT)


# -- measurements -------------------------------------------------------------------------------


def _images(images: Tensor) -> Tensor:
    """(N, H, W) float in [0, 1] from (N, 1, H, W) or (N, H, W); anything else is a ValueError."""
    images = as_tensor("images", images, dtype=torch.float32)
    if images.dim() not in (3, 4) or (images.dim() == 4 and images.shape[1] != 1):
        raise ValueError(f"images must be grey digits (N, 1, H, W) or (N, H, W), got {tuple(images.shape)}")
    return check_range("images", images[:, 0] if images.dim() == 4 else images, 0, 1, "pixel values")


def skeleton(binary: Tensor, max_iterations: int = 50) -> Tensor:
    """Zhang & Suen (1984)'s thinning of boolean images (N, H, W): the one-pixel-wide centre lines of the strokes."""
    img = F.pad(binary.bool(), (1, 1, 1, 1)).clone()  # a frame of background, so every pixel has 8 neighbours

    def neighbours(x: Tensor) -> list[Tensor]:  # P2..P9, clockwise from the pixel above
        h, w = x.shape[-2:]
        shifts = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
        p = F.pad(x, (1, 1, 1, 1))
        return [p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts]

    for _ in range(max_iterations):
        changed = False
        for step in (0, 1):
            p = neighbours(img)
            count = sum(q.int() for q in p)  # B(P1)
            transitions = sum((~p[i] & p[(i + 1) % 8]).int() for i in range(8))  # A(P1): 0 -> 1 patterns
            if step == 0:
                c1, c2 = p[0] & p[2] & p[4], p[2] & p[4] & p[6]
            else:
                c1, c2 = p[0] & p[2] & p[6], p[0] & p[4] & p[6]
            remove = img & (count >= 2) & (count <= 6) & (transitions == 1) & ~c1 & ~c2
            if remove.any():
                img &= ~remove
                changed = True
        if not changed:
            break
    return img[:, 1:-1, 1:-1]


def stroke_thickness(images: Tensor) -> Tensor:
    """Ink mass over skeleton length, (N,), in pixels (0 for a blank image)."""
    x = _images(images)
    length = skeleton(x > 0.5).flatten(1).sum(1).float()
    return x.flatten(1).sum(1) / length.clamp(min=1)


def slant(images: Tensor) -> Tensor:
    """The ink's shear dx/dy from its second moments, (N,): > 0 leans right, < 0 left (0 for a blank image)."""
    x = _images(images)
    n, h, w = x.shape
    mass = x.flatten(1).sum(1).clamp(min=1e-6)
    cols = torch.arange(w, dtype=x.dtype).view(1, 1, w)
    rows = -torch.arange(h, dtype=x.dtype).view(1, h, 1)  # y up
    cx = (x * cols).flatten(1).sum(1) / mass
    cy = (x * rows).flatten(1).sum(1) / mass
    dx, dy = cols - cx.view(n, 1, 1), rows - cy.view(n, 1, 1)
    return (x * dx * dy).flatten(1).sum(1) / (x * dy * dy).flatten(1).sum(1).clamp(min=1e-6)


MEASURES = {"thickness": stroke_thickness, "slant": slant}


def measure(images: Tensor) -> dict[str, Tensor]:
    """Every attribute's measurement of `images` (N, 1, H, W) in [0, 1]: {"thickness": (N,), "slant": (N,)}."""
    return {name: fn(images) for name, fn in MEASURES.items()}


def bin_values(name: str, values: Tensor) -> Tensor:
    """The bin (0, 1, 2) of each measurement of attribute `name`, by ``THRESHOLDS``."""
    low, high = THRESHOLDS[name]
    return (values >= low).long() + (values > high).long()


def words(images: Tensor) -> dict[str, Tensor]:
    """The bin of each attribute of `images`: {"thickness": (N,), "slant": (N,)} in 0..2 (``ATTRIBUTES``' order)."""
    return {name: bin_values(name, v) for name, v in measure(images).items()}


def held_out_mask(labels: Tensor, bins: dict[str, Tensor]) -> Tensor:
    """(N,) True where (digit, thickness, slant) is one of ``HELD_OUT``."""
    out = torch.zeros(len(labels), dtype=torch.bool)
    for digit, thick, lean in HELD_OUT:
        out |= ((labels == digit) & (bins["thickness"] == ATTRIBUTES["thickness"].index(thick))
                & (bins["slant"] == ATTRIBUTES["slant"].index(lean)))
    return out


# -- captions -----------------------------------------------------------------------------------


def digit_word(digit: int, rng: random.Random) -> str:
    """'7' or 'seven'."""
    return str(digit) if rng.random() < 0.5 else DIGIT_NAMES[digit]


def caption(digit: int, bins: dict[str, int | None], rng: random.Random, *, templates: tuple[str, ...] = TRAIN_TEMPLATES,
            p_name: float = 0.7) -> str:
    """A caption of `digit` with attribute `bins` ({"thickness": 0..2, "slant": 0..2}; None: unknown), each attribute
    named with probability `p_name` (always, with `p_name` 1), through a random template and synonyms."""
    return captioned(digit, bins, rng, templates=templates, p_name=p_name)[0]


def captioned(digit: int, bins: dict[str, int | None], rng: random.Random, *,
              templates: tuple[str, ...] = TRAIN_TEMPLATES, p_name: float = 0.7,
              p_noise: float = 0.0) -> tuple[str, list[int]]:
    """``caption`` and what it names: [digit, thickness bin, slant bin], 3 for an attribute it leaves out
    (the targets a text encoder learns to read back). With probability `p_noise`, one to three made-up words
    (random letters) are slipped in between words: the encoder learns to find the words that matter wherever
    they stand, so phrasings it never saw (``EVAL_TEMPLATES``) read right."""
    named = {a: b for a, b in bins.items() if b is not None and rng.random() < p_name}
    fitting = [t for t in templates if {a for a in ATTRIBUTES if "{" + a + "}" in t} == set(named)]
    if not fitting:
        raise ValueError(f"no template names exactly {sorted(named)}")
    fill = {a: rng.choice(SYNONYMS[ATTRIBUTES[a][b]]) for a, b in named.items()}
    text = rng.choice(fitting).format(digit=digit_word(digit, rng), **fill)
    if rng.random() < p_noise:
        words_ = text.split(" ")
        for _ in range(rng.randint(1, 3)):
            junk = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
            words_.insert(rng.randint(0, len(words_)), junk)
        text = " ".join(words_)
    return text, [digit, *(named.get(a, len(ATTRIBUTES[a])) for a in ATTRIBUTES)]


#: what the empty (null) prompt names: no digit (10), no attribute (3)
NOTHING_NAMED = [10, *(len(w) for w in ATTRIBUTES.values())]


def prompt_for(digit: int, thickness: str, slant_word: str, rng: random.Random,
               templates: tuple[str, ...] = EVAL_TEMPLATES) -> str:
    """A prompt naming all three (the metrics' prompts), e.g. 'draw a 7 that is thick and leaning right'."""
    bins = {"thickness": ATTRIBUTES["thickness"].index(thickness), "slant": ATTRIBUTES["slant"].index(slant_word)}
    return caption(digit, bins, rng, templates=templates, p_name=1.0)


_WORDS = {syn: (attr, i) for attr, names in ATTRIBUTES.items() for i, w in enumerate(names) for syn in SYNONYMS[w]}
_DIGITS = {**{str(d): d for d in range(10)}, **{name: d for d, name in enumerate(DIGIT_NAMES)}}


def read_prompt(prompt: str) -> dict[str, int | None]:
    """What a prompt names, by the captions' vocabulary: {"digit": 0..9 or None, "thickness": bin or None,
    "slant": bin or None}. A digit or attribute named twice, differently ("a thick thin 3"), warns and keeps
    the last; the model itself reads the whole prompt, whatever it says."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    text = " " + re.sub(r"[^a-z0-9-]+", " ", prompt.lower()) + " "
    found: dict[str, list[tuple[int, int]]] = {"digit": [], "thickness": [], "slant": []}
    for word, d in _DIGITS.items():
        found["digit"] += [(m.start(), d) for m in re.finditer(rf"(?<![a-z0-9]){word}(?![a-z0-9])", text)]
    for phrase, (attr, i) in sorted(_WORDS.items(), key=lambda kv: -len(kv[0])):  # longest first: "not slanted"
        for m in re.finditer(rf"(?<![a-z-]){re.escape(phrase)}(?![a-z-])", text):
            if not any(s <= m.start() < s + len(p) for s, _, p in found.get("_spans", [])):
                found[attr].append((m.start(), i))
                found.setdefault("_spans", []).append((m.start(), i, phrase))
    found.pop("_spans", None)
    out: dict[str, int | None] = {}
    for key, hits in found.items():
        values = [v for _, v in sorted(hits)]
        if len(set(values)) > 1:
            warnings.warn(f"prompt {prompt!r:.80} names more than one {key}; the last one, or a mix, is drawn",
                          stacklevel=2)
        out[key] = values[-1] if values else None
    return out
