"""The save format of every genzoo model: a Hugging Face Hub folder.

A model folder holds exactly what the Hub shows for a model repo:

    config.json        {"architecture": "VAE", "family": "vae", "genzoo_version": "0.1.0",
                        "format_version": 1, "init_args": {...}, ...extra metadata}
    model.safetensors  the state dict (never a pickle)
    README.md          the model card (YAML header + text)
    tokenizer.json ... optional EXTRA_FILES a model adds (text models: a tokenizer and generation
                       defaults), so the folder is also a transformers checkpoint

Saving writes each file atomically, so an interrupted save never corrupts a
folder that already held a model. Loading is strict and never unpickles.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo import __version__

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: Files a model may save beside the three above (a tokenizer and generation defaults, in the names
#: transformers reads), so a folder can also be a transformers checkpoint. Downloads and uploads include them.
EXTRA_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
RESERVED_KEYS = ("architecture", "family", "genzoo_version", "format_version", "init_args")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


class CheckpointError(ValueError):
    """A model folder or Hub repo that cannot be loaded: missing, truncated, unsafe or foreign."""


# -- writing ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_folder(folder: str | Path, config: dict[str, Any], state_dict: dict[str, torch.Tensor], card: str,
                extra_files: dict[str, bytes] | None = None) -> Path:
    """Write config.json, model.safetensors, README.md and `extra_files` (name -> bytes) into `folder`."""
    unknown = sorted(set(extra_files or {}) - set(EXTRA_FILES))
    if unknown:
        raise ValueError(f"extra_files must be among {EXTRA_FILES}, got {unknown}")
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    # Serialise everything first: a failure here leaves the folder untouched.
    blobs = {
        WEIGHTS_NAME: save(tensors, metadata={"format": "pt"}),
        CONFIG_NAME: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
        CARD_NAME: card.encode(),
        **(extra_files or {}),
    }
    for name, data in blobs.items():
        write_atomic(folder / name, data)
    return folder


def make_config(architecture: str, family: str, init_args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The config.json of a model: what it is, which genzoo wrote it, and its init arguments."""
    try:
        json.dumps(init_args)
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


def read_card(folder: str | Path) -> str | None:
    path = Path(folder) / CARD_NAME
    return path.read_text(encoding="utf-8") if path.is_file() else None


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and check config.json of a model folder (format version, required fields)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a genzoo model folder: {CONFIG_NAME} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    missing = [k for k in ("architecture", "format_version", "init_args") if k not in config]
    if not isinstance(config, dict) or missing:
        raise CheckpointError(f"{path} is not a genzoo config (missing {', '.join(missing) or 'fields'})")
    if not isinstance(config["format_version"], int) or config["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by genzoo {config.get('genzoo_version', '?')} in checkpoint format "
            f"{config['format_version']}; this genzoo {__version__} reads format {FORMAT_VERSION} and older. "
            "Upgrade genzoo (pip install -U genzoo)."
        )
    return config


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read model.safetensors of a model folder; a truncated or foreign file is a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file (truncated or another format?): {e}") from None


# -- the Hub ---------------------------------------------------------------------------------


def is_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and ".." not in name


def download(repo_id: str, revision: str | None = None) -> Path:
    """A Hub repo as a local folder: from the Hugging Face cache if there, else downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, *EXTRA_FILES]
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
    read_config(folder)
    read_weights(folder)  # never publish a broken folder
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    extra = [name for name in EXTRA_FILES if (Path(folder) / name).is_file()]
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                             allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, *extra])
    return str(getattr(info, "commit_url", info))


# -- model cards -----------------------------------------------------------------------------


def card_metrics(card: str) -> dict[str, float]:
    """The metrics a model card's YAML header records under model-index (name -> value)."""
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
