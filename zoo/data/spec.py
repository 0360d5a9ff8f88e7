"""The data contract: what a dataset is, in one small record every part of the zoo reads.

Every datamodule exposes ``spec``; systems fill a model's data-derived sizes from it at setup
(``GenerativeModel.fit_to_data``), so recipes never type them twice; the metrics, callbacks,
``genzoo eval``, the demo and the model cards read it (or the copy saved in config.json as
``data_spec``) instead of assuming digits. Nothing outside a dataset's own module knows its sizes.
Plain Python: reading a spec imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from zoo.checks import CheckedInit, check_args

KINDS = ("image", "text", "sequence", "tabular", "molecules")
#: the feature_extractor of a dataset whose datamodule trains its own on its labels (an image folder's,
#: zoo.metrics.fit_classifier): rebuilt from the data wherever the metrics run, never loaded from a file
FOLDER_CLASSIFIER = "folder-classifier"


class DataArgs(CheckedInit):
    """The base of every datamodule: its constructor's arguments are checked against its signature, and the
    arguments datamodules share against these ranges, before it runs (one line naming the argument)."""

    arg_ranges = {"batch_size": (1, 1 << 20), "val_batch_size": (1, 1 << 20), "seed": (0, 2 ** 63 - 1), "num_workers": (0, 256),
                  "val_fraction": (0.0, 1.0), "test_fraction": (0.0, 1.0), "train_per_class": (1, 1 << 30),
                  "synthetic_per_class": (1, 100_000), "synthetic_seed": (0, 2 ** 63 - 1), "vocab_size": (2, 1 << 20),
                  "block_size": (1, 1 << 20), "seq_len": (1, 1 << 24), "eval_seq_len": (1, 1 << 24),
                  "batches_per_epoch": (1, 1 << 30), "cache_bytes": (0, None), "image_size": (2, 1 << 14),
                  "channels": (1, 4)}


@dataclass(frozen=True)
class DataSpec:
    """What a dataset is.

    Args:
        kind: "image", "text" (token windows), "sequence" (symbol sequences), "tabular" or "molecules" (SMILES,
            one molecule per token sequence).
        name: the dataset's name in tables and cards (says which data it is: "sklearn-digits").
        description: one line for model cards.
        image_shape: (channels, height, width) of an image dataset.
        num_classes, class_names: the labels, if the data has any.
        levels: pixel levels of images in [0, 1] (17 for values 0..16; 256 for 8-bit images).
        vocab: the characters of a character-level sequence dataset (symbol i = vocab[i]).
        vocab_size: tokens of a text dataset's tokenizer.
        tokenizer: the kind of that tokenizer when the data needs one kind ("smiles").
        max_length: the most tokens of one sequence (molecules: <bos> and <eos> included).
        n_features: values per row of a tabular dataset.
        feature_extractor: the registered feature extractor (a pretrained name) of its image metrics, or
            ``FOLDER_CLASSIFIER`` (the datamodule trains one on its labels).
        captions: True when each image comes with a caption (``zoo.captions``): what text-to-image models need.
    """

    kind: Literal["image", "text", "sequence", "tabular", "molecules"]
    name: str
    description: str = ""
    image_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    levels: int | None = None
    vocab: str | None = None
    vocab_size: int | None = None
    tokenizer: Literal["smiles"] | None = None
    max_length: int | None = None
    n_features: int | None = None
    feature_extractor: str | None = None
    captions: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 3 or not all(isinstance(s, int) and 1 <= s <= 4096 for s in shape):
                raise ValueError(f"image_shape must be (channels, height, width) of sizes 1..4096, got {shape!r}")
            object.__setattr__(self, "image_shape", shape)
        for name, high in [("num_classes", 100_000), ("levels", 65_536), ("vocab_size", 10_000_000), ("max_length", 1_000_000),
                           ("n_features", 10_000_000)]:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high):
                raise ValueError(f"{name} must be an integer in 1..{high}, got {value!r:.80}")
        if self.class_names is not None:
            names = tuple(self.class_names)
            if len(names) != self.num_classes or not all(isinstance(n, str) and len(n) <= 200 for n in names):
                raise ValueError(f"class_names must be num_classes={self.num_classes} strings, got {names!r:.80}")
            object.__setattr__(self, "class_names", names)
        if len(self.description) > 2000 or len(self.name) > 200:
            raise ValueError("a data spec's name and description are short texts (200 and 2,000 characters at most)")

    @property
    def image_size(self) -> int | None:
        """The side of square images (None if not square or not images)."""
        if self.image_shape is None or self.image_shape[1] != self.image_shape[2]:
            return None
        return self.image_shape[1]

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Any, where: str = "data_spec") -> "DataSpec":
        """A spec read from config.json; a bad field is a ValueError naming it."""
        check_args(cls, data, where)
        missing = [f.name for f in fields(cls) if f.name in ("kind", "name") and f.name not in data]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
