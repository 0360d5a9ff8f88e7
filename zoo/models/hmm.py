"""Hidden Markov models as a genzoo family: the layer of zoo.layers.hmm with the zoo's API and save format.

The ``HMM`` model wraps a ``HiddenMarkovModel`` (the algorithms live there, in plain torch) and
adds what a pretrained model needs: a config (its init arguments), ``sample(n, seed=...)`` and, for
text, a character vocabulary, so a model trained on characters reads and writes strings.

Example::

    hmm = zoo.load("hmm-shakespeare-char")
    hmm.sample(2, seed=0, length=80)          # two strings of 80 characters
    text, states = hmm.sample_with_states(1, seed=0, length=80)   # and the hidden state of each character
    hmm.log_prob(["To be, or not to be"])     # (1,) nats
    hmm.nll_per_char("To be, or not to be")   # nats per character
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from zoo.checks import check_float, check_int, check_work
from zoo.layers.hmm import HiddenMarkovModel
from zoo.models import contract
from zoo.models.base import GenerativeModel
from zoo.models.contract import Option, PerInstance


class HMM(GenerativeModel):
    """A hidden Markov model; with `vocab` a categorical HMM over those characters (strings in and out).

    Args:
        n_states: hidden states K.
        emission: "gaussian", "categorical" or "gmm" (see HiddenMarkovModel).
        n_features, covariance_type, n_mix, reg_covar: Gaussian / mixture emissions.
        n_symbols: alphabet size of categorical emissions (taken from `vocab` when given).
        vocab: the characters, symbol i = vocab[i]; text models only.
        end: a character of `vocab` that ends each sequence (molecules: a newline, set from the data): ``sample``
            returns each string up to its first `end`, and ``log_prob`` of a string includes ending it.
    """

    family = "hmm"
    outputs = PerInstance("text", lambda hmm: "text" if hmm.vocab else "sequences")  # strings with a vocabulary
    #: the most steps of one sampled sequence (n * length values are drawn at once)
    max_length = 100_000
    sample_options = (Option("length", int, 200, low=1, high="max_length", help="steps (characters) per sequence"),)

    def __init__(self, n_states: int = 16, emission: str = "categorical", n_features: int | None = None,
                 n_symbols: int | None = None, covariance_type: str = "diag", n_mix: int = 1,
                 reg_covar: float = 1e-6, vocab: str | None = None, end: str | None = None):
        if vocab is not None:
            if not isinstance(vocab, str) or len(set(vocab)) != len(vocab) or len(vocab) < 1:
                raise ValueError("vocab must be a string of distinct characters")
            if emission != "categorical" or n_symbols not in (None, len(vocab)):
                raise ValueError(f"vocab needs emission='categorical' and n_symbols=None or {len(vocab)}, "
                                 f"got {emission!r} and {n_symbols!r}")
            n_symbols = len(vocab)
        if end is not None and (not isinstance(end, str) or len(end) != 1 or vocab is None or end not in vocab):
            raise ValueError(f"end must be one character of vocab, got {end!r}")
        check_int("n_states", n_states, 1, 100_000)
        check_int("n_mix", n_mix, 1, 1000)
        check_float("reg_covar", reg_covar, 0)
        for name, value in (("n_features", n_features), ("n_symbols", n_symbols)):
            if value is not None:
                check_int(name, value, 1, 1 << 24)
        super().__init__(n_states=n_states, emission=emission, n_features=n_features, n_symbols=n_symbols,
                         covariance_type=covariance_type, n_mix=n_mix, reg_covar=reg_covar, vocab=vocab, end=end)
        self.vocab, self.end = vocab, end
        self._index = {c: i for i, c in enumerate(vocab)} if vocab else {}
        if self.pending:
            return
        self.hmm = HiddenMarkovModel(n_states, emission, n_features=n_features, n_symbols=n_symbols,
                                     covariance_type=covariance_type, n_mix=n_mix, reg_covar=reg_covar)

    @property
    def pending(self) -> bool:
        """Categorical emissions need n_symbols (or a vocab), Gaussian ones n_features: else from the data."""
        a = self.init_args
        return a["n_symbols" if a["emission"] == "categorical" else "n_features"] is None

    @classmethod
    def data_args(cls, spec, init_args):
        if init_args.get("emission", "categorical") == "categorical":
            if spec.vocab is None:
                raise ValueError(f"a categorical HMM reads symbol sequences with a vocabulary; {spec.name!r} has none")
            ends = {"end": "\n"} if spec.kind == "molecules" else {}  # one molecule per line
            return {"vocab": spec.vocab, "n_symbols": len(spec.vocab), **ends}
        if spec.n_features is None:
            raise ValueError(f"a Gaussian HMM reads sequences of vectors; {spec.name!r} gives no n_features")
        return {"n_features": spec.n_features}

    # -- text ------------------------------------------------------------------------------------

    def set_vocab(self, vocab: str) -> None:
        """Attach a datamodule's vocabulary (its size must be n_symbols): recorded in the config."""
        if self.hmm.emission_type != "categorical" or len(vocab) != self.hmm.n_symbols:
            raise ValueError(f"the data's vocabulary has {len(vocab)} characters, but this HMM emits "
                             f"{self.hmm.n_symbols} symbols ({self.hmm.emission_type}); set n_symbols to {len(vocab)}")
        self.vocab, self._index = vocab, {c: i for i, c in enumerate(vocab)}
        self.init_args["vocab"] = vocab

    def encode(self, text: str) -> Tensor:
        """A string -> symbols (T,) long; characters outside the vocabulary are an error."""
        if not self.vocab:
            raise ValueError("this HMM has no vocabulary: pass symbol tensors, not strings")
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {''.join(unknown[:10])!r}")
        return torch.tensor([self._index[c] for c in text], dtype=torch.long)

    def decode(self, symbols: Tensor) -> str:
        if not self.vocab:
            raise ValueError("this HMM has no vocabulary to decode symbols with")
        return "".join(self.vocab[i] for i in symbols.tolist())

    def _sequences(self, x: Any) -> Any:
        """Strings (or a list of strings) become lists of symbol tensors; anything else passes through."""
        if isinstance(x, str):
            x = [x]
        if isinstance(x, (list, tuple)) and x and all(isinstance(s, str) for s in x):
            check_work("x", sum(map(len, x)), self.hmm.max_steps, "characters in one call")
            return [self.encode(s + (self.end or "")) for s in x]
        return x

    # -- the generative API ----------------------------------------------------------------------

    def log_prob(self, x: Any, lengths: Any = None) -> Tensor:
        """log p(x) per sequence in nats: a padded batch (+ lengths), a list of sequences, or strings."""
        return self.hmm.log_prob(self._sequences(x), lengths)

    @torch.no_grad()
    def nll_per_char(self, text: str) -> float:
        """-log p(text) / len(text) in nats, the whole text as one sequence (an empty text has no rate: refused)."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {text!r:.80}")
        return -self.log_prob(text).item() / len(text)

    def _sample(self, n: int, *, seed: int | None, length: int) -> list[str] | Tensor:
        """n sequences of `length` steps: strings when the model has a vocabulary (each cut before its first
        `end` when the model has one), else one tensor of observations (n, length, D) (categorical: (n, length))."""
        out = self.sample_with_states(n, seed=seed, length=length)[0]
        return [s.split(self.end, 1)[0] for s in out] if self.end else out

    def sample_with_states(self, n: int, *, seed: int | None = None,
                           **options: Any) -> tuple[list[str] | Tensor, Tensor]:
        """``sample``'s sequences (the same for the same seed) and the hidden states (n, length) that emitted them."""
        n = self._check_n(n)
        self._generator(seed)  # checks the seed
        length = contract.check_options(self, "sample_with_states", options, self.sample_options)["length"]
        x, states = self.hmm.sample(n, length, seed=seed)
        return ([self.decode(row) for row in x] if self.vocab else x), states

    @torch.no_grad()
    def viterbi(self, x: Any, lengths: Any = None) -> tuple[Tensor, Tensor]:
        """The most likely hidden states (B, T) (-1 on padding) and log p(x, states) (B,); x as for ``log_prob``."""
        return self.hmm.viterbi(self._sequences(x), lengths)

    # -- EM, for zoo.systems.em ------------------------------------------------------------------

    def e_step(self, x: Any, lengths: Any = None) -> dict[str, Tensor]:
        return self.hmm.e_step(x, lengths)

    def m_step(self, stats: dict[str, Tensor]) -> None:
        self.hmm.m_step(stats)

    def initialize(self, x: Any, lengths: Any = None) -> None:
        self.hmm.initialize(x, lengths)

    @property
    def n_parameters(self) -> int:
        return self.hmm.n_parameters()
