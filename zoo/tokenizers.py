"""Tokenizers for the text family, built with Hugging Face ``tokenizers`` (light: no transformers import).

Two kinds, both saved as a ``tokenizer.json`` that ``transformers.AutoTokenizer`` loads as a
``PreTrainedTokenizerFast`` (see ``tokenizer_config``):

- ``char_tokenizer(text)``: one token per character (Unicode code point), the vocabulary being the
  sorted characters of the training text (nanoGPT's ``shakespeare_char``: 65 characters, same ids),
  plus ``<unk>`` as the last id. **A character never seen in training encodes to ``<unk>``** (and
  decodes to the text ``"<unk>"``); it never crashes.
- ``bpe_tokenizer(text, vocab_size)``: GPT-2's byte-level BPE trained on the text: every byte is in
  the base alphabet, so nothing is ever unknown.
- ``smiles_tokenizer(smiles)``: one token per atom-level piece of SMILES (the regex of Schwaller et al.
  2019, used across the SMILES literature: bracket atoms such as ``[nH]`` or ``[C@@H]`` whole, two-letter
  elements ``Cl`` and ``Br``, ring bonds ``1``..``9`` and ``%nn``, bonds, branches), the vocabulary being the
  pieces of the training molecules, after four specials: ``<pad>`` (0), ``<bos>``, ``<eos>`` and ``<unk>``.
  Each molecule is one sequence, ``<bos>`` SMILES ``<eos>``. **A piece never seen in training (a bracket
  atom, an element) and any character outside SMILES' alphabet encode to ``<unk>``**; it never crashes.

Example::

    tok = char_tokenizer("hello world")
    tok.encode("hold").ids                  # [3, 5, 4, 1]
    tok.decode(tok.encode("hold!").ids)     # 'hold<unk>'
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE, WordLevel
from tokenizers.trainers import BpeTrainer

UNK = "<unk>"
END_OF_TEXT = "<|endoftext|>"
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
#: the atom-level SMILES regex (Schwaller et al. 2019, "Molecular Transformer"); a character it does not match
#: is a piece of its own, hence ``<unk>``
SMILES_REGEX = (r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}"
                r"|[0-9])")
#: Generation with an empty prompt starts from this text (nanoGPT's sample.py does the same): every
#: corpus has newlines, and both tokenizers map it to one token.
START_TEXT = "\n"
KINDS = ("char", "bpe", "smiles")
_SMILES_PATTERN = re.compile(SMILES_REGEX)


def char_tokenizer(text: str) -> Tokenizer:
    """One token per character of `text` (sorted), then ``<unk>`` for characters not in `text`."""
    if not text:
        raise ValueError("text must be non-empty to build a character vocabulary")
    vocab = {c: i for i, c in enumerate(sorted(set(text)))}
    vocab[UNK] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every code point alone
    tok.decoder = decoders.Fuse()  # join pieces with nothing between them
    return tok


def bpe_tokenizer(text: str, vocab_size: int = 512) -> Tokenizer:
    """GPT-2-style byte-level BPE with `vocab_size` tokens (256 bytes + merges + ``<|endoftext|>``)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 258:
        raise ValueError(f"vocab_size must be an integer >= 258 (256 bytes, one merge, <|endoftext|>), got {vocab_size!r}")
    if not text:
        raise ValueError("text must be non-empty to train a BPE vocabulary")
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_chunks(text), trainer=trainer, length=None)
    return tok


def smiles_pieces(smiles: str) -> list[str]:
    """The atom-level pieces of one SMILES (what its tokens are before the vocabulary), e.g. 'Clc1cc[nH]c1' ->
    ['Cl', 'c', '1', 'c', 'c', '[nH]', 'c', '1']; characters outside the regex are pieces of their own."""
    pieces, last = [], 0
    for m in _SMILES_PATTERN.finditer(smiles):
        pieces.extend(smiles[last:m.start()])
        pieces.append(m.group())
        last = m.end()
    pieces.extend(smiles[last:])
    return pieces


def smiles_tokenizer(smiles: Iterable[str]) -> Tokenizer:
    """Atom-level SMILES tokens: ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``, then the sorted pieces of `smiles`."""
    seen: set[str] = set()
    for s in smiles:
        seen.update(smiles_pieces(s))
    if not seen:
        raise ValueError("smiles must hold at least one non-empty SMILES to build a vocabulary")
    specials = [PAD, BOS, EOS, UNK]
    vocab = {t: i for i, t in enumerate(specials + sorted(seen - set(specials)))}
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SMILES_REGEX), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    return tok


def _chunks(text: str, size: int = 1 << 16):
    for start in range(0, len(text), size):
        yield text[start:start + size]


def build_tokenizer(kind: str, text: str, vocab_size: int = 512) -> Tokenizer:
    """``kind`` is "char", "bpe" (then `vocab_size` applies) or "smiles" (`text`: one SMILES per line)."""
    if kind == "smiles":
        return smiles_tokenizer(text.splitlines())
    if kind == "char":
        return char_tokenizer(text)
    if kind == "bpe":
        return bpe_tokenizer(text, vocab_size)
    raise ValueError(f"tokenizer must be one of {KINDS} or a model name/folder, got {kind!r}")


def tokenizer_kind(tok: Tokenizer) -> str:
    if isinstance(tok.model, BPE):
        return "bpe"
    return "smiles" if tok.token_to_id(EOS) is not None else "char"


def end_id(tok: Tokenizer) -> int | None:
    """The id that ends a sequence (``<eos>`` of a SMILES tokenizer), or None: text runs on."""
    return tok.token_to_id(EOS)


def start_id(tok: Tokenizer) -> int:
    """The id every sequence starts from: ``<bos>`` for molecules, else (text, an empty prompt) the newline token."""
    if tok.token_to_id(BOS) is not None:
        return tok.token_to_id(BOS)
    ids = tok.encode(START_TEXT).ids
    if len(ids) != 1:
        raise ValueError(f"the tokenizer must encode {START_TEXT!r} as one token, got {ids}")
    return ids[0]


def tokenizer_config(tok: Tokenizer, model_max_length: int) -> dict:
    """tokenizer_config.json for transformers: a plain PreTrainedTokenizerFast reading tokenizer.json.

    No cleanup of spaces (it would rewrite " ." as "."), and the newline start token is not marked
    special, so ``skip_special_tokens`` never drops newlines.
    """
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
              "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False}
    kind = tokenizer_kind(tok)
    if kind == "char":
        config["unk_token"] = UNK
    elif kind == "smiles":
        config.update(bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK)
    else:
        config.update(bos_token=END_OF_TEXT, eos_token=END_OF_TEXT)
    return config


def tokenizer_files(tok: Tokenizer, model_max_length: int) -> dict[str, bytes]:
    """The files a model folder carries for its tokenizer (names transformers reads)."""
    return {"tokenizer.json": tok.to_str().encode(),
            "tokenizer_config.json": (json.dumps(tokenizer_config(tok, model_max_length), indent=2) + "\n").encode()}
