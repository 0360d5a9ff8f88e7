"""The save format of every genzoo model: a Hugging Face Hub folder, safe by construction.

A model folder holds exactly what the Hub shows for a model repo:

    config.json        {"architecture": "VAE", "family": "vae", "genzoo_version": "0.1.0",
                        "format_version": 2, "init_args": {...},
                        "datamodule": {"name": "digits", "init_args": {...}},   # registered names only
                        "system": {...}, "data_spec": {...}, ...}
    model.safetensors  the state dict (never a pickle)
    README.md          the model card (YAML header + text)
    tokenizer.json ... optional EXTRA_FILES a model adds (text models: a tokenizer and generation
                       defaults), so the folder is also a transformers checkpoint

A folder, local or from the Hub, is untrusted input. ``open_folder`` reads only regular files inside
the folder (no symlink out of it, no FIFO), each under a size cap, parses config.json and the
safetensors header without allocating any tensor, and turns every failure into one
``CheckpointError`` line naming the file and the field. Nothing in a folder names code: persisted
names are registry names (format 1's datamodule class paths are mapped to them, never imported).

Saving is all-or-nothing: the new files are written into a staging folder inside the model folder,
then a commit record is written atomically, then the files are moved into place. A kill before the
commit record leaves the old model; after it, the new one (readers follow the record, and the next
save finishes the moves). Saved files are mode 0644.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from zoo import __version__

FORMAT_VERSION = 2
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: Files a model may save beside the three above (a tokenizer and generation defaults, in the names
#: transformers reads), so a folder can also be a transformers checkpoint. Downloads and uploads include them.
EXTRA_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, *EXTRA_FILES)
RESERVED_KEYS = ("architecture", "family", "genzoo_version", "format_version", "init_args")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
#: a registered name (datamodule, feature extractor, pretrained model) as config.json may hold it
REGISTERED_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: format 1 saved datamodules as class paths; these are the only ones it ever wrote (mapped, never imported)
V1_DATAMODULES = {"zoo.data.digits.DigitsDataModule": "digits", "zoo.data.text.TextDataModule": "text",
                  "zoo.data.sequences.CharSequenceDataModule": "char-sequences"}
#: size caps of what a folder may hold (bytes); the weights are capped by what their header declares
MAX_BYTES = {CONFIG_NAME: 1 << 20, CARD_NAME: 1 << 20, "extra": 64 << 20, "header": 16 << 20}
STAGING = ".genzoo-staging"  # inside the model folder, while a save is under way
COMMIT = "COMMIT.json"  # inside STAGING: the save is complete; move its files into place
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class CheckpointError(ValueError):
    """A model folder or Hub repo that cannot be loaded: missing, truncated, unsafe or foreign."""


# -- writing ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], Any], mode: int = 0o644) -> None:
    """Write to a temporary file beside `path` (flushed to disk), then rename it over `path` (atomic on POSIX).

    `data`: the bytes, or a function that writes them into the open file (``lambda f: torch.save(obj, f)``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data) if isinstance(data, (bytes, bytearray, memoryview)) else data(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit_record(folder: Path) -> dict[str, list[str]] | None:
    """The commit record of a save that completed its staging but maybe not its moves, else None."""
    path = folder / STAGING / COMMIT
    if not path.is_file() or path.is_symlink():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        names = set(record["write"]) | set(record["remove"])
    except (ValueError, KeyError, TypeError, OSError):
        return None
    return record if names <= set(MODEL_FILES) else None


def _finish_save(folder: Path) -> None:
    """Complete a committed save (move its staged files into place), or drop an uncommitted one."""
    staging = folder / STAGING
    if not staging.exists():
        return
    record = _commit_record(folder)
    if record is not None:
        for name in record["write"]:
            if (staging / name).is_file():
                os.replace(staging / name, folder / name)
        for name in record["remove"]:
            (folder / name).unlink(missing_ok=True)
        fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def save_folder(folder: str | Path, config: dict[str, Any], state_dict: dict[str, torch.Tensor], card: str,
                extra_files: dict[str, bytes] | None = None) -> Path:
    """Write config.json, model.safetensors, README.md and `extra_files` (name -> bytes) into `folder`,
    all or nothing; a model file of an earlier save that this one does not write (an old tokenizer) goes."""
    unknown = sorted(set(extra_files or {}) - set(EXTRA_FILES))
    if unknown:
        raise ValueError(f"extra_files must be among {EXTRA_FILES}, got {unknown}")
    from safetensors.torch import save

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} is a file: save into a folder (new or a model's own)")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    # Serialise everything first: a failure here leaves the folder untouched.
    blobs = {
        WEIGHTS_NAME: save(tensors, metadata={"format": "pt"}),
        CONFIG_NAME: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        CARD_NAME: card.encode(),
        **(extra_files or {}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    _finish_save(folder)
    staging = folder / STAGING
    staging.mkdir()
    for name, data in blobs.items():
        write_atomic(staging / name, data)
    stale = [name for name in MODEL_FILES if name not in blobs and (folder / name).exists()]
    fsync_dir(staging)
    write_atomic(staging / COMMIT, json.dumps({"write": list(blobs), "remove": stale}).encode())  # the commit
    _finish_save(folder)
    return folder


def make_config(architecture: str, family: str, init_args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The config.json of a model: what it is, which genzoo wrote it, and its init arguments."""
    try:
        json.dumps({"init_args": init_args, **extra})
    except TypeError as e:
        raise TypeError(f"{architecture} init arguments must be JSON-serialisable to be saved: {e}") from None
    return {
        "architecture": architecture,
        "family": family,
        "genzoo_version": __version__,
        "format_version": FORMAT_VERSION,
        "init_args": init_args,
        **extra,
    }


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A model folder, read and checked: config.json, the weights' header, the card and the extra files.

    Nothing here is a tensor yet: ``tensors()`` reads the weights once the model has checked the header.
    """

    folder: Path
    config: dict[str, Any]
    header: dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (safetensors dtype, shape)
    card: str | None
    extra_files: dict[str, bytes] = field(default_factory=dict)
    weights_path: Path | None = None

    def error(self, where: str, message: str) -> CheckpointError:
        return CheckpointError(f"{self.folder / where}: {message}")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights; a tensor with NaN or infinite values is refused."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            tensors = load(self.weights_path.read_bytes())
        except (SafetensorError, OSError, ValueError) as e:
            raise self.error(WEIGHTS_NAME, f"not a valid safetensors file: {e}") from None
        for name, t in tensors.items():
            if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
                raise self.error(WEIGHTS_NAME, f"tensor {name!r} holds NaN or infinite values")
        return tensors


class _Reader:
    """Reads the model files of one folder: regular files inside `root` only, each under its cap."""

    def __init__(self, folder: Path, root: Path | None):
        self.folder = folder
        self.root = (root or folder).resolve()
        self.record = _commit_record(folder)

    def path(self, name: str) -> Path | None:
        """The file that holds `name` now (a committed but unfinished save's staged copy first), or None."""
        path = self.folder / name
        if self.record is not None:
            if name in self.record["remove"]:
                return None
            staged = self.folder / STAGING / name
            if name in self.record["write"] and staged.exists():
                path = staged
        if not path.exists() and not path.is_symlink():
            return None
        resolved = path.resolve()
        if not resolved.exists():
            raise CheckpointError(f"{path}: a link to nothing ({resolved})")
        if not resolved.is_relative_to(self.root):
            raise CheckpointError(f"{path}: links outside the model folder (to {resolved}); refusing to read it")
        if not stat.S_ISREG(resolved.stat().st_mode):
            raise CheckpointError(f"{path}: not a regular file")
        return resolved

    def read(self, name: str, cap: int) -> bytes | None:
        path = self.path(name)
        if path is None:
            return None
        size = path.stat().st_size
        if size > cap:
            raise CheckpointError(f"{self.folder / name}: {size:,} bytes, more than the {cap:,} a model folder may hold")
        return path.read_bytes()


def fetch(folder_or_repo_id: str | Path, revision: str | None = None) -> Checkpoint:
    """A local model folder, or a Hub repo id (the Hugging Face cache first, then the Hub), read and checked."""
    folder = Path(folder_or_repo_id)
    if folder.is_dir():
        return open_folder(folder)
    if not is_repo_id(str(folder_or_repo_id)):
        raise CheckpointError(f"{folder_or_repo_id!s} is neither a model folder nor a Hub repo id 'user/name'")
    return open_folder(download(str(folder_or_repo_id), revision))


def open_folder(folder: str | Path, *, root: str | Path | None = None) -> Checkpoint:
    """Read and check a model folder without allocating any tensor; every failure is one CheckpointError.

    `root`: the folder the files may resolve into (default: `folder` itself, or for a Hugging Face cache
    snapshot its repo folder ``models--user--name``, whose blobs/ the snapshot's files link to).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a model folder")
    if root is None and folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        root = folder.parent.parent  # a Hugging Face cache snapshot: its files link into the repo's blobs/
    reader = _Reader(folder, Path(root) if root is not None else None)
    raw = reader.read(CONFIG_NAME, MAX_BYTES[CONFIG_NAME])
    if raw is None:
        raise CheckpointError(f"{folder} is not a genzoo model folder: {CONFIG_NAME} is missing")
    config = parse_config(raw, folder / CONFIG_NAME)
    weights = reader.path(WEIGHTS_NAME)
    if weights is None:
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}")
    header = read_header(weights, folder / WEIGHTS_NAME)
    card = reader.read(CARD_NAME, MAX_BYTES[CARD_NAME])
    try:
        card_text = card.decode("utf-8") if card is not None else None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{folder / CARD_NAME}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    extra = {name: data for name in EXTRA_FILES if (data := reader.read(name, MAX_BYTES["extra"])) is not None}
    return Checkpoint(folder, config, header, card_text, extra, weights)


def parse_config(raw: bytes, path: Path) -> dict[str, Any]:
    """config.json's fields, checked for type, and upgraded to the current format (v1 -> v2)."""
    try:
        config = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: must hold a JSON object, got {type(config).__name__}")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by genzoo {str(config.get('genzoo_version', '?'))[:40]} in checkpoint format "
            f"{version}; this genzoo {__version__} reads format {FORMAT_VERSION} and older. "
            "Upgrade genzoo (pip install -U genzoo).")
    for key, kind in [("architecture", str), ("init_args", dict)]:
        if not isinstance(config.get(key), kind):
            raise CheckpointError(f"{path}: {key} must be a JSON {'string' if kind is str else 'object'}, "
                                  f"got {config.get(key)!r:.80}")
    for key in ("family", "genzoo_version"):
        if key in config and not isinstance(config[key], str):
            raise CheckpointError(f"{path}: {key} must be a string, got {config[key]!r:.80}")
    datamodule = config.get("datamodule")
    if datamodule is not None:
        config["datamodule"] = _datamodule_entry(datamodule, path)
    for key in ("system", "data_spec"):
        if key in config and not isinstance(config[key], dict):
            raise CheckpointError(f"{path}: {key} must be a JSON object, got {config[key]!r:.80}")
    return config


def _datamodule_entry(entry: Any, path: Path) -> dict[str, Any]:
    """{"name": registered name, "init_args": {...}}; a format-1 class path becomes its registered name."""
    if not isinstance(entry, dict) or not isinstance(entry.get("init_args", {}), dict):
        raise CheckpointError(f"{path}: datamodule must be {{\"name\": ..., \"init_args\": {{...}}}}, got {entry!r:.80}")
    if "class_path" in entry:  # format 1
        name = V1_DATAMODULES.get(entry["class_path"]) if isinstance(entry["class_path"], str) else None
        if name is None:
            raise CheckpointError(f"{path}: datamodule.class_path {entry['class_path']!r:.80} is not a genzoo "
                                  f"datamodule ({', '.join(V1_DATAMODULES)}); a model folder never names code")
        entry = {"name": name, "init_args": entry.get("init_args", {})}
    name = entry.get("name")
    if not isinstance(name, str) or not REGISTERED_NAME.match(name) or set(entry) - {"name", "init_args"}:
        raise CheckpointError(f"{path}: datamodule must name a registered datamodule as "
                              f"{{\"name\": ..., \"init_args\": {{...}}}}, got {entry!r:.80}")
    return {"name": name, "init_args": dict(entry.get("init_args", {}))}


def read_header(path: Path, shown: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The tensors a safetensors file declares (name -> (dtype, shape)), checked against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= n <= min(size - 8, MAX_BYTES["header"]):
            raise CheckpointError(f"{shown}: not a valid safetensors file (truncated or another format?)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise CheckpointError(f"{shown}: not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{shown}: not a valid safetensors file (its header is not an object)")
    data_size, out = size - 8 - n, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (dtype in SAFETENSORS_DTYPES and all(isinstance(s, int) and s >= 0 for s in shape)
                  and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_size
                  and end - begin == SAFETENSORS_DTYPES[dtype] * _numel(shape))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{shown}: tensor {name!r:.80} has an invalid header entry (truncated file?)")
        out[name] = (dtype, tuple(shape))
    return out


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def read_card(folder: str | Path) -> str | None:
    """The model card of a trusted local folder (a packaged model), or None."""
    path = Path(folder) / CARD_NAME
    return path.read_text(encoding="utf-8") if path.is_file() else None


# -- the Hub ---------------------------------------------------------------------------------


def is_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and ".." not in name


def download(repo_id: str, revision: str | None = None) -> Path:
    """A Hub repo as a local folder: from the Hugging Face cache if there, else downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = list(MODEL_FILES)
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, auth: say which and why
        raise CheckpointError(f"could not get {repo_id!r} from the Hugging Face cache or the Hub: {e}") from None


def push(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
         commit_message: str = "Upload genzoo model") -> str:
    """Upload a model folder to the Hub with huggingface_hub's own API; returns the commit URL."""
    from huggingface_hub import HfApi

    if not is_repo_id(repo_id):
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}")
    folder = Path(folder)
    checkpoint = open_folder(folder)  # never publish a broken folder, nor a file linked from outside it
    checkpoint.tensors()
    if _commit_record(folder) is not None or (folder / STAGING).exists():
        raise CheckpointError(f"{folder}: a save into it did not finish; save the model again before pushing")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    present = [name for name in MODEL_FILES if (folder / name).is_file()]
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                             allow_patterns=present)
    return str(getattr(info, "commit_url", info))


# -- model cards -----------------------------------------------------------------------------


def card_metrics(card: str) -> dict[str, float]:
    """The metrics a model card's YAML header records under model-index (name -> value), as zoo.cards writes them."""
    import yaml

    if not card.startswith("---\n"):
        return {}
    header = yaml.safe_load(card.split("---\n", 2)[1]) or {}
    return {m["type"]: float(m["value"]) for entry in header.get("model-index", [])
            for result in entry.get("results", []) for m in result.get("metrics", [])}


def default_card(architecture: str, family: str, config: dict[str, Any]) -> str:
    """A minimal Hub model card for a model saved without a hand-written one."""
    return (
        "---\nlicense: apache-2.0\nlibrary_name: genzoo\ntags:\n- genzoo\n- generative\n"
        f"- {family}\n---\n\n# {architecture} ({family})\n\n"
        "Saved by [genzoo](https://github.com/genzoo/genzoo). Load it with:\n\n"
        "```python\nimport zoo\nmodel = zoo.load(\"path/or/user/repo\")\n```\n\n"
        f"Init arguments:\n\n```json\n{json.dumps(config['init_args'], indent=2, sort_keys=True)}\n```\n"
    )
