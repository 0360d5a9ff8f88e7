"""Text corpora: named datasets resolved offline first, UTF-8 reading, nanoGPT's contiguous split.

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
