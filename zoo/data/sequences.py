"""Character sequences from a text corpus, for sequence models with a likelihood (the HMM family).

The corpus (``tinyshakespeare`` by default, resolved offline first by zoo.data.text) is split as
nanoGPT splits it: the first 90% of the characters train, the last 10% validate. The vocabulary is
every character of the whole corpus, sorted (65 for tinyshakespeare, as nanoGPT's char model).

* train: the training text cut into consecutive chunks of ``seq_len`` characters (the last one
  shorter); a likelihood model scores each chunk from its start distribution.
* val and test: both the **validation text** (nanoGPT's split has no test part), by default as
  one sequence of 111,540 characters, so the log-likelihood per character is that of the
  contiguous text; ``eval_seq_len`` cuts it into chunks instead.

Batches are ``(x, lengths)``: symbols (B, T) long padded with 0, and the true lengths (B,).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data.spec import DataArgs, DataSpec
from zoo.data.text import CORPORA, check_named_corpus, read_text, split_text


class _Chunks(Dataset):
    """A text as consecutive chunks of symbols (the last chunk may be shorter)."""

    def __init__(self, symbols: torch.Tensor, chunk: int | None):
        self.chunks = list(symbols.split(chunk)) if chunk else [symbols]

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.chunks[i]


def pad_batch(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of symbols -> (padded (B, T) long, lengths (B,))."""
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True), lengths


class CharSequenceDataModule(DataArgs, L.LightningDataModule):
    """A corpus as batches of character-symbol sequences ``(x (B, T), lengths (B,))``.

    Args:
        corpus: a named corpus ("tinyshakespeare") or a path to a UTF-8 file or folder.
        seq_len: characters per training sequence.
        val_fraction: the last fraction of the text that validates (nanoGPT: 0.1).
        batch_size: sequences per batch.
        eval_seq_len: characters per validation/test sequence; None = the whole validation text as one.

    Example::

        dm = CharSequenceDataModule()
        dm.setup()
        x, lengths = next(iter(dm.train_dataloader()))    # (512, 256), (512,)
        dm.vocab                                           # "\\n !$&',-.3:;?ABC...xyz"
    """

    def __init__(self, corpus: str = "tinyshakespeare", seq_len: int = 256, val_fraction: float = 0.1,
                 batch_size: int = 512, eval_seq_len: int | None = None, num_workers: int = 0):
        super().__init__()
        for name, value in [("seq_len", seq_len), ("batch_size", batch_size)] + (
                [("eval_seq_len", eval_seq_len)] if eval_seq_len is not None else []):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.vocab: str | None = None
        self.datasets: dict[str, Dataset] = {}

    @classmethod
    def for_evaluation(cls, **saved_args) -> "CharSequenceDataModule":
        """As config.json records it: a named corpus only (a saved model never makes genzoo read a path)."""
        check_named_corpus(saved_args.get("corpus", "tinyshakespeare"))
        return cls(**saved_args)

    def prepare_data(self) -> None:
        read_text(self.hparams.corpus)  # resolves (downloads if need be) once, on one process

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        text = read_text(self.hparams.corpus)
        self.vocab = "".join(sorted(set(text)))
        train, val = split_text(text, self.hparams.val_fraction)
        self.datasets["train"] = _Chunks(self.encode(train), self.hparams.seq_len)
        self.datasets["val"] = _Chunks(self.encode(val), self.hparams.eval_seq_len)

    @property
    def spec(self) -> DataSpec:
        """Character sequences; the vocabulary is every character of the corpus (read on first use)."""
        self.setup()
        corpus = str(self.hparams.corpus)
        name = corpus if corpus in CORPORA else Path(corpus).name
        return DataSpec(kind="sequence", name=name, vocab=self.vocab,
                        description=f"{name}: characters ({len(self.vocab)} symbols), the last "
                                    f"{self.hparams.val_fraction:.0%} validates")

    def encode(self, text: str) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.hparams.batch_size, shuffle=False,
                          collate_fn=pad_batch, num_workers=self.hparams.num_workers,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")  # EM sums statistics over the whole epoch: order does not matter

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("val")  # the validation text: nanoGPT's split has no test part
