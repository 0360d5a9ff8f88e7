import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo import hub
from zoo.models.base import GenerativeModel
from zoo.models.vae import VAE


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_save_writes_the_hub_layout(vae, tmp_path):
    vae.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"] == "VAE" and config["family"] == "vae"
    assert config["genzoo_version"] == zoo.__version__ and config["format_version"] == hub.FORMAT_VERSION
    assert config["init_args"] == {"image_size": 8, "channels": 1, "levels": 17, "latent_dim": 4, "hidden": 8,
                                   "num_classes": None}
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "library_name: genzoo" in card


@pytest.mark.parametrize("fixture", ["vae", "cvae"])
def test_round_trip_is_bit_identical(fixture, request, tmp_path, digits_test):
    model = request.getfixturevalue(fixture)
    model.save_pretrained(tmp_path / "a")
    loaded = zoo.load(tmp_path / "a")
    assert type(loaded) is VAE and not loaded.training
    assert loaded.init_args == model.init_args
    assert torch.equal(loaded.sample(8, seed=3), model.sample(8, seed=3))
    x = digits_test[0][:4]
    assert torch.equal(loaded.log_prob(x, k=10, seed=0), model.log_prob(x, k=10, seed=0))
    # saving the loaded model again gives the same bytes (card kept too)
    loaded.save_pretrained(tmp_path / "b")
    assert folder_bytes(tmp_path / "b") == folder_bytes(tmp_path / "a")


def corrupt(folder: Path, how: str) -> None:
    weights, config = folder / "model.safetensors", folder / "config.json"
    if how == "missing weights":
        weights.unlink()
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:200])
    elif how == "pickle weights":
        torch.save({"x": torch.zeros(1)}, weights)
    elif how == "missing config":
        config.unlink()
    elif how == "other family":
        data = json.loads(config.read_text())
        data["architecture"] = "FlowModel"
        config.write_text(json.dumps(data))
    elif how == "newer format":
        data = json.loads(config.read_text())
        data.update(format_version=99, genzoo_version="9.0.0")
        config.write_text(json.dumps(data))
    elif how == "unknown init arg":
        data = json.loads(config.read_text())
        data["init_args"]["depth"] = 3
        config.write_text(json.dumps(data))
    elif how == "wrong shapes":
        data = json.loads(config.read_text())
        data["init_args"]["latent_dim"] = 5
        config.write_text(json.dumps(data))


@pytest.mark.parametrize("how, match", [
    ("missing weights", "has no model.safetensors"),
    ("truncated weights", "not a valid safetensors file"),
    ("pickle weights", "not a valid safetensors file"),
    ("missing config", "config.json is missing"),
    ("other family", "unknown architecture 'FlowModel'"),
    ("newer format", "written by genzoo 9.0.0 in checkpoint format 99"),
    ("unknown init arg", "init_args: unknown arguments \\[.depth.\\]"),
    ("wrong shapes", "does not fit the VAE of config.json"),
])
def test_broken_checkpoints_are_clear_errors_and_untouched(vae, tmp_path, how, match):
    vae.save_pretrained(tmp_path)
    corrupt(tmp_path, how)
    before = folder_bytes(tmp_path)
    with pytest.raises(hub.CheckpointError, match=match):
        zoo.load(str(tmp_path))
    assert folder_bytes(tmp_path) == before


def test_loading_another_class_is_refused(vae, tmp_path):
    class Other(GenerativeModel):
        pass

    vae.save_pretrained(tmp_path)
    with pytest.raises(hub.CheckpointError, match="holds a VAE"):
        Other.from_pretrained(tmp_path)


def test_failed_save_keeps_the_old_folder(vae, tmp_path):
    vae.save_pretrained(tmp_path)
    before = folder_bytes(tmp_path)
    vae.init_args["bad"] = object()  # not JSON-able: refused before anything is written
    with pytest.raises(TypeError, match="JSON-serialisable"):
        vae.save_pretrained(tmp_path)
    assert folder_bytes(tmp_path) == before


def test_loads_from_a_real_hugging_face_cache_offline(vae, tmp_path):
    """Build the cache layout huggingface_hub itself reads (models--user--name/snapshots/<rev>/...)."""
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-vae"
    revision = "0123456789abcdef0123456789abcdef01234567"
    vae.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    code = (
        "import torch, zoo; m = zoo.load('someone/tiny-vae'); "
        "print(type(m).__name__, m.sample(2, seed=0).sum().item())"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    name, total = out.stdout.split()
    assert name == "VAE" and float(total) == pytest.approx(vae.sample(2, seed=0).sum().item(), abs=1e-5)


def test_missing_repo_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(hub.CheckpointError, match="could not get 'nobody/nothing'"):
        zoo.load("nobody/nothing")


def test_push_hands_the_exact_folder_to_huggingface_hub(vae, tmp_path, monkeypatch):
    """Only the network boundary is replaced: HfApi's create_repo and upload_folder."""
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = repo_id

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"] = (repo_id, folder_bytes(Path(folder_path)), kwargs["allow_patterns"])
        return "https://huggingface.co/user/tiny/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    vae.save_pretrained(tmp_path)
    assert vae.push_to_hub("user/tiny").endswith("commit/abc")
    repo_id, uploaded, patterns = calls["upload"]
    assert calls["create_repo"] == repo_id == "user/tiny"
    assert uploaded == folder_bytes(tmp_path)
    assert sorted(patterns) == ["README.md", "config.json", "model.safetensors"]
    with pytest.raises(ValueError, match="repo_id must look like 'user/name'"):
        vae.push_to_hub("../evil")
