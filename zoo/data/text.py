"""Text corpora: named datasets resolved offline first, UTF-8 reading, nanoGPT's contiguous split,
and ``TextDataModule``, which turns any text into random training windows of token ids.

``tinyshakespeare`` (Karpathy's char-rnn corpus, 1,115,394 characters) is found, in order, at
``$GENZOO_DATA_DIR/tinyshakespeare.txt``, in genzoo's cache (``$GENZOO_CACHE``, default
``~/.cache/genzoo``), or downloaded from its public address into that cache and checked by sha256.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from zoo.data.spec import DataArgs, DataSpec
from zoo.tokenizers import KINDS, build_tokenizer


@dataclass(frozen=True)
class Corpus:
    url: str
    sha256: str
    filename: str


CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("GENZOO_CACHE", Path.home() / ".cache" / "genzoo"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_corpus(name_or_path: str | os.PathLike) -> Path:
    """A local file or folder for a corpus name (``"tinyshakespeare"``) or a path."""
    path = Path(name_or_path)
    if path.exists():
        return path
    corpus = CORPORA.get(str(name_or_path))
    if corpus is None:
        raise ValueError(f"corpus {str(name_or_path)!r} is neither an existing file or folder nor a named corpus "
                         f"({', '.join(CORPORA)})")
    candidates = [Path(d) / corpus.filename for d in [os.environ.get("GENZOO_DATA_DIR")] if d]
    candidates.append(cache_dir() / corpus.filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return _download(corpus, candidates[-1])


def saved_tokenizer(name_or_folder: str):
    """The tokenizer.json a model saved (a pretrained name, a folder or a Hub repo), read without loading the
    model: a data module never loads models."""
    from tokenizers import Tokenizer

    from zoo import hub
    from zoo.registry import PRETRAINED

    info = PRETRAINED.get(name_or_folder)
    try:
        checkpoint = hub.fetch(info.packaged if info is not None and info.packaged else name_or_folder)
        return Tokenizer.from_str(checkpoint.extra_files["tokenizer.json"].decode("utf-8"))
    except KeyError:
        raise ValueError(f"tokenizer={name_or_folder!r}: that model saved no tokenizer") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"tokenizer must be one of {KINDS} or a model name/folder, got {name_or_folder!r} ({e})") from None


def check_named_corpus(corpus: str) -> str:
    """A corpus a saved config.json may name: a named one, never a path (a folder is untrusted input)."""
    if corpus not in CORPORA:
        raise ValueError(f"datamodule.init_args.corpus {corpus!r:.80} is not a named corpus ({', '.join(CORPORA)}); a "
                         "saved model never makes genzoo read a path: evaluate it on your text with "
                         "evaluate(..., datamodule=...) or genzoo test --config RECIPE")
    return corpus


def _download(corpus: Corpus, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    try:
        urllib.request.urlretrieve(corpus.url, tmp)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"could not download {corpus.url} ({e}); offline, put {corpus.filename} in a folder and "
                         "set GENZOO_DATA_DIR to it") from None
    if _sha256(tmp) != corpus.sha256:
        tmp.unlink()
        raise ValueError(f"{corpus.url} did not match its sha256 {corpus.sha256}; refusing it")
    os.replace(tmp, target)
    return target


def read_text(name_or_path: str | os.PathLike) -> str:
    """The corpus as one string: a UTF-8 file, or a folder's files (sorted, recursively) joined by newlines."""
    path = resolve_corpus(name_or_path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = []
    for file in files:
        try:
            parts.append(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{file} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    text = "\n".join(parts)
    if not text:
        raise ValueError(f"corpus {str(name_or_path)!r} is empty")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """nanoGPT's contiguous split: the first (1 - val_fraction) of the text trains, the rest validates."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


# -- training on text: nanoGPT's random blocks -------------------------------------------------------


class RandomBlocks(IterableDataset):
    """`batches` batches of `batch_size` random windows of `data` (1-D token ids): nanoGPT's get_batch.

    Yields whole batches ``(x, y)``, each (batch_size, block_size), y = x shifted by one token, so the
    DataLoader does no collation (``batch_size=None``) and costs nothing per step. Offsets come from
    torch's global RNG, which ``seed_everything`` seeds; under DDP, where every rank is seeded alike,
    each rank draws from its own stream (see ``rank_generator``), so the processes read different windows.
    """

    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, batches: int):
        self.data, self.block_size, self.batch_size, self.batches = data, block_size, batch_size, batches
        self.offsets = torch.arange(block_size + 1)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        gen = rank_generator()
        for _ in range(self.batches):
            start = torch.randint(len(self.data) - self.block_size, (self.batch_size,), generator=gen)
            chunk = self.data[start[:, None] + self.offsets]  # (B, block_size + 1)
            yield chunk[:, :-1], chunk[:, 1:]


def rank_generator() -> torch.Generator | None:
    """None in a single process (torch's global RNG, as nanoGPT). In a process group of several ranks: a
    generator seeded with a number drawn from the global RNG (the same on every rank) plus the rank, so
    ranks differ and a seeded run still repeats."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    base = int(torch.randint(2**62, (1,)).item())
    return torch.Generator().manual_seed(base + dist.get_rank())


class ConsecutiveBlocks(Dataset):
    """Every non-overlapping window of `data` once, in order (validation: deterministic, all of it).

    The last ``(len(data) - 1) % block_size`` tokens, too few for a window, are left out.
    """

    def __init__(self, data: torch.Tensor, block_size: int):
        self.data, self.block_size = data, block_size

    def __len__(self) -> int:
        return (len(self.data) - 1) // self.block_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[i * self.block_size: (i + 1) * self.block_size + 1]
        return chunk[:-1], chunk[1:]


class TextDataModule(DataArgs, L.LightningDataModule):
    """Any UTF-8 text (a named corpus, a file, or a folder of files) as blocks of token ids.

    Split: nanoGPT's contiguous split (the first 90% trains, the last 10% validates). The *test*
    split is the validation text: the corpus has no third part, so ``genzoo eval`` reports
    validation metrics. Training draws random windows (``batches_per_epoch`` batches per epoch);
    validation reads every non-overlapping window once.

    Args:
        corpus: "tinyshakespeare", a UTF-8 file, or a folder (its files sorted and joined by newlines).
        tokenizer: "char" (vocabulary = characters of the training text, unseen ones become ``<unk>``),
            "bpe" (byte-level BPE with `vocab_size` tokens trained on the training text), or a pretrained
            name / model folder whose tokenizer to reuse. A model that already has a tokenizer (fine-tuning,
            evaluation) brings its own: the system hands it to the datamodule.
        vocab_size: BPE vocabulary size.
        block_size: tokens per window (the model's context window).
        batch_size, val_batch_size: windows per training / validation batch.
        val_fraction: the share of the text, at its end, that validates.
        batches_per_epoch: training batches between two validations.

    Example::

        dm = TextDataModule("tinyshakespeare", block_size=64, batch_size=12)
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))   # (12, 64) each; y is x shifted by one token
    """

    def __init__(self, corpus: str = "tinyshakespeare", tokenizer: str = "char", vocab_size: int = 512,
                 block_size: int = 64, batch_size: int = 12, val_batch_size: int = 64, val_fraction: float = 0.1,
                 batches_per_epoch: int = 250):
        super().__init__()  # sizes and val_fraction: checked by DataArgs
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError(f"tokenizer must be 'char', 'bpe' or a model name/folder, got {tokenizer!r}")
        self.save_hyperparameters()
        self.texts: dict[str, str] = {}
        self._tokenizer = None
        self._encoded: dict[str, torch.Tensor] = {}

    @classmethod
    def for_evaluation(cls, **saved_args) -> "TextDataModule":
        """As config.json records it: a named corpus only, and the character tokenizer as a placeholder
        (the model brings its own tokenizer; a name here would load another model)."""
        check_named_corpus(saved_args.get("corpus", "tinyshakespeare"))
        return cls(**{**saved_args, "tokenizer": "char"})

    def setup(self, stage: str | None = None) -> None:
        if not self.texts:
            text = read_text(self.hparams.corpus)
            self.texts["train"], self.texts["val"] = split_text(text, self.hparams.val_fraction)

    @property
    def tokenizer(self):
        """The tokenizer (built from the training text on first use, unless one was set)."""
        if self._tokenizer is None:
            self.setup()
            spec = self.hparams.tokenizer
            if spec in KINDS:
                self._tokenizer = build_tokenizer(spec, self.texts["train"], self.hparams.vocab_size)
            else:
                self._tokenizer = saved_tokenizer(spec)
        return self._tokenizer

    @property
    def spec(self) -> DataSpec:
        """Text as token windows; vocab_size is the tokenizer's (built from the training text on first use)."""
        corpus = str(self.hparams.corpus)
        name = corpus if corpus in CORPORA else Path(corpus).name
        return DataSpec(kind="text", name=name, vocab_size=self.tokenizer.get_vocab_size(),
                        description=f"{name}: {len(self.texts['train']):,} training and {len(self.texts['val']):,} "
                                    f"validation characters (the last {self.hparams.val_fraction:.0%}), "
                                    f"{self.hparams.block_size}-token windows")

    def set_tokenizer(self, tokenizer) -> None:
        """Use `tokenizer` (e.g. a pretrained model's) instead of building one."""
        self._tokenizer, self._encoded = tokenizer, {}

    def encoded(self, split: str) -> torch.Tensor:
        """The split's text as a 1-D tensor of token ids, checked to hold at least one window."""
        if split not in self._encoded:
            self.setup()
            ids = torch.tensor(self.tokenizer.encode(self.texts[split]).ids, dtype=torch.long)
            if len(ids) <= self.hparams.block_size:
                raise ValueError(f"corpus {self.hparams.corpus!r} gives {len(ids)} {split} tokens, fewer than "
                                 f"block_size + 1 = {self.hparams.block_size + 1}; use a longer text or a smaller "
                                 "block_size")
            self._encoded[split] = ids
        return self._encoded[split]

    def train_dataloader(self) -> DataLoader:
        data = RandomBlocks(self.encoded("train"), self.hparams.block_size, self.hparams.batch_size,
                            self.hparams.batches_per_epoch)
        return DataLoader(data, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ConsecutiveBlocks(self.encoded("val"), self.hparams.block_size),
                          batch_size=self.hparams.val_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()  # no separate test text: see the class docstring
