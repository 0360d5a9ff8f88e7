"""Molecules as SMILES: the MOSES benchmark's sets, or any file of one SMILES per line, one molecule per sequence.

``MoleculesDataModule("moses")`` reads MOSES's three sets (Polykovskiy et al. 2020): ``train`` (1,584,663
molecules), ``test`` (176,074) and ``test_scaffolds`` (176,225, scaffolds absent from train). They are found,
in order, in ``$GENZOO_DATA_DIR/moses/``, in the installed ``molsets`` package (``pip install --no-deps
molsets``; its files are read, ``moses`` is never imported), in genzoo's cache, or downloaded from MOSES's
repository and checked by sha256 (``zoo.data.downloads``). MOSES has no validation set: the validation loss
is measured on a fixed seeded sample of ``val_size`` test molecules; the test split is the whole test set.

Any other file: one SMILES per line (a CSV whose header has a ``SMILES`` column also works; gzip allowed),
split by a seeded permutation into train / val / test (``val_fraction`` and ``test_fraction`` each).
A file that is not SMILES is refused with the fraction of lines that failed to parse (RDKit on a sample when
it is installed, else the characters SMILES is written in).

Each molecule is one sequence ``<bos> tokens <eos>`` (``zoo.tokenizers.smiles_tokenizer``), never a window
over a concatenation. With ``tokenizer="characters"`` (the HMM family, as MOSES's HMM baseline) it is the
SMILES' characters ending with a newline, as ``(x, lengths)`` batches of symbols (``zoo.data.sequences``) in
file order; the spec then has the character vocabulary (``vocab``) instead of a tokenizer. Training batches group molecules of similar length (``BUCKET`` batches are sorted by
length, then the batches shuffled), so a batch pads little; x is padded with ``<pad>`` and the targets with
-100, which cross-entropy ignores. The batch order comes from torch's global RNG, which Lightning's
checkpoints save, so a resumed run reads the same molecules as an uninterrupted one.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import itertools
import os
import warnings
from functools import partial
from pathlib import Path
from typing import Iterable

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from zoo.checks import check_int
from zoo.data.spec import DataArgs, DataSpec
from zoo.data.text import rank_generator
from zoo.tokenizers import BOS, EOS, PAD, smiles_pieces, smiles_tokenizer

#: MOSES's sets, by split
MOSES_FILES = {"train": "train.csv.gz", "test": "test.csv.gz", "test_scaffolds": "test_scaffolds.csv.gz"}
#: molecules a training file may hold (MOSES's train is 1.6M); bounds the memory of the encoded cache
MAX_MOLECULES = 20_000_000
#: the longest SMILES line read (MOSES's longest is 57 characters)
MAX_LINE = 10_000
#: batches sorted by length together (a pool of BUCKET * batch_size molecules)
BUCKET = 50
#: molecules tokenized at a time (bounds the tokenizer's temporary objects)
ENCODE_CHUNK = 100_000
#: lines of a user's file parsed to decide whether it is SMILES, and the share that may fail
SNIFF_LINES, MAX_INVALID = 1_000, 0.1


def moses_file(split: str, download: bool = True) -> Path:
    """The local path of one MOSES set (see the module docstring for where it is looked for)."""
    from zoo.data.downloads import data_dir, fetch

    name = MOSES_FILES[split]
    spec = importlib.util.find_spec("moses")
    if not (data_dir() / "moses" / name).is_file() and spec is not None and spec.submodule_search_locations:
        packaged = Path(spec.submodule_search_locations[0]) / "dataset" / "data" / name
        if packaged.is_file():
            return _checked(packaged)
    return fetch("moses", name, download=download)


def _checked(path: Path) -> Path:
    from zoo.data.downloads import CHECKSUMS, sha256_of

    expected = CHECKSUMS[f"moses/{path.name}"].sha256
    if sha256_of(path) != expected:
        raise ValueError(f"{path}: not the published MOSES file (sha256 differs from {expected}); reinstall molsets")
    return path


def read_smiles(path: str | os.PathLike) -> list[str]:
    """The SMILES of a file: one per line, or the ``SMILES`` column of a CSV with that header; gzip if .gz.
    Blank lines are skipped; surrounding whitespace is stripped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"smiles file {str(path)!r} does not exist")
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else
              open(path, encoding="utf-8")) as f:
            text = f.read()
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise ValueError(f"{path} is not a UTF-8 text file of SMILES ({e})") from None
    lines = text.splitlines()
    header = lines[0].strip().split(",") if lines else []
    if "SMILES" in header or "smiles" in header:
        column = header.index("SMILES" if "SMILES" in header else "smiles")
        rows = csv.reader(io.StringIO("\n".join(lines[1:])))
        smiles = [row[column].strip() for row in rows if len(row) > column and row[column].strip()]
    else:
        smiles = [line.strip() for line in lines if line.strip()]
    if not smiles:
        raise ValueError(f"{path} holds no SMILES (it is empty)")
    if len(smiles) > MAX_MOLECULES:
        raise ValueError(f"{path} holds {len(smiles):,} lines, more than the {MAX_MOLECULES:,} genzoo reads")
    long = next((s for s in smiles if len(s) > MAX_LINE), None)
    if long is not None:
        raise ValueError(f"{path}: a line of {len(long):,} characters is not a SMILES (at most {MAX_LINE:,})")
    return smiles


def check_smiles_file(smiles: list[str], source: str) -> None:
    """Refuse text that is not SMILES, naming the share of sampled lines that failed to parse and an example."""
    sample = smiles[:: max(1, len(smiles) // SNIFF_LINES)][:SNIFF_LINES]
    try:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        bad = [s for s in sample if Chem.MolFromSmiles(s) is None]
        how = "RDKit could not parse them"
    except ImportError:
        alphabet = set("BCNOPSFIbcnosp()[]=#-+\\/:~@?>*$%.0123456789HlrKaegiLMTZdfhkmtuyUVWXYAE")
        bad = [s for s in sample if not set(s) <= alphabet]
        how = "characters SMILES does not use"
    if len(bad) > MAX_INVALID * len(sample):
        raise ValueError(f"{source}: {len(bad) / len(sample):.0%} of {len(sample):,} sampled lines are not SMILES "
                         f"({how}), e.g. {bad[0]!r:.80}; give a file of one SMILES per line")


class Packed(Dataset):
    """Id sequences end to end in one int16 tensor (int32 past 32,768 ids), with their offsets: MOSES's 1.6M molecules in ~120 MB, where a
    tensor (or a list) each would take gigabytes. ``packed[i]`` is sequence i as a long tensor.

    Built from chunks of id lists (None: a sequence left out), keeping those of at most `max_length` ids."""

    def __init__(self, chunks: Iterable[list[list[int] | None]], max_length: int, vocab_size: int):
        dtype = np.int16 if vocab_size <= 2**15 else np.int32
        flat, lengths, self.dropped = [], [], 0
        for chunk in chunks:
            kept = [ids for ids in chunk if ids is not None and len(ids) <= max_length]
            self.dropped += len(chunk) - len(kept)
            if kept:
                flat.append(np.fromiter(itertools.chain.from_iterable(kept), dtype=dtype))
                lengths.append(np.fromiter(map(len, kept), dtype=np.int64, count=len(kept)))
        self.tokens = torch.from_numpy(np.concatenate(flat)) if flat else torch.zeros(0, dtype=torch.int32)
        self.lengths = torch.from_numpy(np.concatenate(lengths)) if lengths else torch.zeros(0, dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.lengths.cumsum(0)])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]].long()


class LengthBuckets(IterableDataset):
    """`batches` batches of molecules from `sequences` (a list of 1-D id tensors, <bos> ... <eos>): a fresh
    random permutation from torch's global RNG each epoch, cut into pools of ``BUCKET`` batches, each pool
    sorted by length and cut into batches, the batches shuffled. Yields (x, y) padded: x with `pad`, y with -100.
    Under DDP each rank draws its own order (``zoo.data.text.rank_generator``)."""

    def __init__(self, sequences: Packed, lengths: torch.Tensor, batch_size: int, batches: int,
                 pad: int):
        self.sequences, self.lengths, self.batch_size, self.batches, self.pad = (
            sequences, lengths, batch_size, batches, pad)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        B, n, gen = self.batch_size, len(self.sequences), rank_generator()  # each DDP rank its own order
        wanted = self.batches * B
        order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-wanted // n))])[:wanted]
        batches = []
        for pool in order.split(BUCKET * B):
            pool = pool[torch.sort(self.lengths[pool], stable=True).indices]
            batches.extend(pool.split(B))
        for i in torch.randperm(len(batches), generator=gen).tolist():
            yield pad_batch([self.sequences[j] for j in batches[i].tolist()], self.pad)


def pad_batch(sequences: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y), each (B, longest - 1): x the sequences but their last token, padded with `pad`; y the next tokens,
    padded with -100 (ignored by cross-entropy)."""
    T = max(len(s) for s in sequences) - 1
    x = torch.full((len(sequences), T), pad, dtype=torch.long)
    y = torch.full((len(sequences), T), -100, dtype=torch.long)
    for i, s in enumerate(sequences):
        x[i, :len(s) - 1] = s[:-1]
        y[i, :len(s) - 1] = s[1:]
    return x, y


class MoleculesDataModule(DataArgs, L.LightningDataModule):
    """SMILES molecules as token sequences, one molecule each (see the module docstring).

    Args:
        smiles: "moses" (MOSES's sets) or a file of one SMILES per line.
        tokenizer: "smiles" (the atom-level tokenizer built on the training molecules), "characters" (symbols
            for the HMM family; see the module docstring) or a pretrained name / model folder whose tokenizer to
            reuse (fine-tuning brings the model's own).
        max_length: the most tokens a sequence may have, <bos> and <eos> included; longer molecules are left
            out of training with a warning (a GPT needs ``n_positions >= max_length - 1``).
        batch_size, val_batch_size: molecules per training / validation batch.
        batches_per_epoch: training batches between two validations.
        val_size, test_size: MOSES only: the test molecules (seeded samples, disjoint) the validation and the test
            losses are measured on (the generative metrics use the whole test set).
        train_size: the training molecules used (a seeded sample); None: all.
        val_fraction, test_fraction: a file only: the shares of its molecules that validate and test.
        seed: the split's seed (the training order follows ``seed_everything``).

    Example::

        dm = MoleculesDataModule("moses", batch_size=64)
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))   # (64, T): <bos> C C O ..., and the next tokens
    """

    def __init__(self, smiles: str = "moses", tokenizer: str = "smiles", max_length: int = 128,
                 batch_size: int = 64, val_batch_size: int = 256, batches_per_epoch: int = 1000,
                 val_size: int = 10_000, test_size: int = 10_000, train_size: int | None = None,
                 val_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0):
        super().__init__()
        check_int("max_length", max_length, 3, 100_000)
        for name, value in [("batch_size", batch_size), ("val_batch_size", val_batch_size),
                            ("batches_per_epoch", batches_per_epoch), ("val_size", val_size),
                            ("test_size", test_size)] + ([("train_size", train_size)] if train_size is not None else []):
            check_int(name, value, 1)
        for name, value in [("val_fraction", val_fraction), ("test_fraction", test_fraction)]:
            if not 0 < value < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        if not isinstance(smiles, str) or not smiles:
            raise ValueError(f"smiles must be 'moses' or a file of SMILES, got {smiles!r}")
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError(f"tokenizer must be 'smiles', 'characters' or a model name/folder, got {tokenizer!r}")
        self.save_hyperparameters()
        self.splits: dict[str, list[str]] = {}
        self._tokenizer = None
        self._encoded: dict[str, Packed] = {}
        self.vocab: str | None = None  # "characters": the symbols, a newline (the end) among them

    @classmethod
    def for_evaluation(cls, **saved_args) -> "MoleculesDataModule":
        """As config.json records it: MOSES only (a saved model never makes genzoo read a path), with the
        model's own tokenizer (set by the system)."""
        if saved_args.get("smiles", "moses") != "moses":
            raise ValueError(f"datamodule.init_args.smiles {saved_args['smiles']!r:.80} is not 'moses'; a saved model "
                             "never makes genzoo read a path: evaluate it on your molecules with "
                             "evaluate(..., datamodule=MoleculesDataModule(FILE))")
        return cls(**{**saved_args, "tokenizer": saved_args.get("tokenizer") if saved_args.get("tokenizer") == "characters"
                      else "smiles"})

    @property
    def is_moses(self) -> bool:
        return self.hparams.smiles == "moses"

    @property
    def characters(self) -> bool:
        return self.hparams.tokenizer == "characters"

    def prepare_data(self) -> None:
        if self.is_moses:
            for split in MOSES_FILES:
                moses_file(split)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self._split()
        if self.hparams.train_size is not None and self.hparams.train_size < len(self.splits["train"]):
            pick = torch.randperm(len(self.splits["train"]), generator=torch.Generator().manual_seed(self.hparams.seed))
            self.splits["train"] = [self.splits["train"][i] for i in sorted(pick[:self.hparams.train_size].tolist())]
        if self.characters:
            self.vocab = "".join(sorted(set("".join(self.splits["train"])) | {"\n"}))

    def _split(self) -> None:
        if self.is_moses:
            self.splits = {split: read_smiles(moses_file(split)) for split in MOSES_FILES}
            pick = torch.randperm(len(self.splits["test"]), generator=torch.Generator().manual_seed(
                self.hparams.seed)).tolist()
            v, t = self.hparams.val_size, self.hparams.test_size
            self.splits["val"] = [self.splits["test"][i] for i in sorted(pick[:v])]
            self.splits["test_sample"] = [self.splits["test"][i] for i in sorted(pick[v:v + t])]
            return
        smiles = read_smiles(self.hparams.smiles)
        check_smiles_file(smiles, self.hparams.smiles)
        n = len(smiles)
        n_val, n_test = max(1, round(n * self.hparams.val_fraction)), max(1, round(n * self.hparams.test_fraction))
        if n - n_val - n_test < 1:
            raise ValueError(f"{self.hparams.smiles} holds {n} molecules, too few to split into train / val / test")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.hparams.seed)).tolist()
        self.splits = {"val": [smiles[i] for i in order[:n_val]],
                       "test": [smiles[i] for i in order[n_val:n_val + n_test]],
                       "train": [smiles[i] for i in order[n_val + n_test:]]}
        self.splits["test_sample"] = self.splits["test"]

    @property
    def tokenizer(self):
        """The SMILES tokenizer (built from the training molecules on first use, unless one was set)."""
        if self.characters:
            raise ValueError("tokenizer='characters' reads symbols, not tokens: there is no tokenizer (see vocab)")
        if self._tokenizer is None:
            self.setup()
            if self.hparams.tokenizer == "smiles":
                self._tokenizer = smiles_tokenizer(self.splits["train"])
            else:
                from zoo.data.text import saved_tokenizer

                self._tokenizer = saved_tokenizer(self.hparams.tokenizer)
        return self._tokenizer

    def set_tokenizer(self, tokenizer) -> None:
        """Use `tokenizer` (a pretrained model's) instead of building one; it must be a SMILES tokenizer."""
        if tokenizer.token_to_id(BOS) is None or tokenizer.token_to_id(EOS) is None:
            raise ValueError("a molecules model needs a SMILES tokenizer (with <bos> and <eos>); this model has "
                             "a text tokenizer")
        self._tokenizer, self._encoded = tokenizer, {}

    @property
    def spec(self) -> DataSpec:
        self.setup()
        name = "moses" if self.is_moses else Path(self.hparams.smiles).name
        sizes = ", ".join(f"{len(self.splits[s]):,} {s}" for s in ("train", "val", "test"))
        how = (f"MOSES (Polykovskiy et al. 2020): {sizes} molecules (val: a seeded sample of test)" if self.is_moses
               else f"{name}: {sizes} molecules (a seeded split)")
        if self.characters:
            return DataSpec(kind="molecules", name=name, vocab=self.vocab, max_length=self.hparams.max_length,
                            description=how + ", one SMILES per sequence, as characters ending with a newline")
        return DataSpec(kind="molecules", name=name, vocab_size=self.tokenizer.get_vocab_size(), tokenizer="smiles",
                        max_length=self.hparams.max_length, description=how + ", one SMILES per sequence")

    def smiles(self, split: str) -> list[str]:
        """The SMILES of a split: train, val, test, test_sample (the test loss's; MOSES: ``test_size`` of test)
        and, for MOSES, test_scaffolds."""
        self.setup()
        if split not in self.splits:
            raise ValueError(f"split must be one of {sorted(self.splits)}, got {split!r}")
        return self.splits[split]

    def encoded(self, split: str) -> "Packed":
        """The split's molecules as id sequences ``<bos> ... <eos>`` (or symbols), the ones longer than max_length
        left out (with a warning)."""
        if split not in self._encoded:
            smiles = self.smiles(split)
            chunks = (self._characters(smiles[i:i + ENCODE_CHUNK]) if self.characters else
                      self._tokens(smiles[i:i + ENCODE_CHUNK]) for i in range(0, len(smiles), ENCODE_CHUNK))
            size = len(self.vocab) if self.characters else self.tokenizer.get_vocab_size()
            packed = Packed(chunks, self.hparams.max_length, size)
            if packed.dropped:
                warnings.warn(f"{packed.dropped:,} of {len(smiles):,} {split} molecules have more than "
                              f"max_length={self.hparams.max_length} tokens or characters unseen in training, and "
                              "are left out", stacklevel=2)
            if not len(packed):
                raise ValueError(f"no {split} molecule fits max_length={self.hparams.max_length}")
            self._encoded[split] = packed
        return self._encoded[split]

    def _tokens(self, smiles: list[str]) -> list[list[int]]:
        tok = self.tokenizer
        bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
        tok.no_padding()
        return [[bos, *e.ids, eos] for e in tok.encode_batch(smiles)]

    def _characters(self, smiles: list[str]) -> list[list[int] | None]:
        """Each molecule's characters and a newline as symbols; None for characters unseen in training."""
        index = {c: i for i, c in enumerate(self.vocab)}
        return [[index[c] for c in s + "\n"] if set(s) <= index.keys() else None for s in smiles]

    def train_dataloader(self) -> DataLoader:
        if self.characters:  # EM sums statistics over the whole epoch: file order, no padding tricks needed
            return self._symbols("train")
        sequences = self.encoded("train")
        data = LengthBuckets(sequences, sequences.lengths, self.hparams.batch_size, self.hparams.batches_per_epoch,
                             self.tokenizer.token_to_id(PAD))
        return DataLoader(data, batch_size=None)

    def _symbols(self, split: str) -> DataLoader:
        from zoo.data.sequences import pad_batch as pad_symbols

        return DataLoader(self.encoded(split), batch_size=self.hparams.batch_size, collate_fn=pad_symbols)

    def _ordered(self, split: str) -> DataLoader:
        if self.characters:
            return self._symbols(split)
        sequences, pad = self.encoded(split), self.tokenizer.token_to_id(PAD)
        return DataLoader(sequences, batch_size=self.hparams.val_batch_size, collate_fn=partial(pad_batch, pad=pad))

    def val_dataloader(self) -> DataLoader:
        return self._ordered("val")

    def test_dataloader(self) -> DataLoader:
        return self._ordered("test_sample")


__all__ = ["MoleculesDataModule", "moses_file", "read_smiles", "smiles_pieces"]
