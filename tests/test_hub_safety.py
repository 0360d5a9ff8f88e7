"""A model folder is untrusted input: nothing in it runs, nothing outside it is read, nothing large is
allocated, and an interrupted save never mixes two models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo import hub

ROOT = Path(__file__).resolve().parents[1]


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        target = config
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture
def saved(vae, tmp_path):
    folder = tmp_path / "m"
    vae.save_pretrained(folder)
    edit_config(folder, datamodule={"name": "digits", "init_args": {"batch_size": 64}})
    return folder


@pytest.mark.parametrize("datamodule", [
    {"class_path": "os.system", "init_args": {"command": "touch {marker}"}},
    {"class_path": "zoo.data.digits.DigitsDataModule.__init__.__globals__", "init_args": {}},
    {"name": "os.system", "init_args": {"command": "touch {marker}"}},
    {"name": "my-data", "init_args": {}},
    {"name": "digits", "init_args": {}, "class_path": "os.system"},
])
def test_a_config_that_names_code_is_refused_and_nothing_runs(saved, tmp_path, datamodule):
    marker = tmp_path / "ran"
    datamodule = json.loads(json.dumps(datamodule).replace("{marker}", str(marker)))
    edit_config(saved, datamodule=datamodule)
    with pytest.raises(hub.CheckpointError, match=r"config.json: .*datamodule") as error:
        zoo.load(str(saved))
    assert "\n" not in str(error.value) and not marker.exists()


def test_format_1_datamodule_class_paths_become_registered_names(saved):
    edit_config(saved, format_version=1,
                datamodule={"class_path": "zoo.data.digits.DigitsDataModule", "init_args": {"batch_size": 32}})
    model = zoo.load(str(saved))
    assert model.extra_config["datamodule"] == {"name": "digits", "init_args": {"batch_size": 32}}


@pytest.mark.parametrize("init_args, match", [
    ({"corpus": "/etc/passwd"}, "not a named corpus"),
    ({"corpus": "tinyshakespeare", "tokenizer": "someone/evil-repo"}, None),  # ignored: the model's own is used
    ({"block_size": "64"}, r"datamodule.init_args.block_size must be int"),
    ({"walk": "/"}, "unknown arguments"),
])
def test_evaluation_never_reads_a_path_or_loads_a_model_named_by_the_folder(tmp_path, init_args, match):
    from zoo.evaluate import build_datamodule

    entry = {"name": "text", "init_args": init_args}
    if match is None:
        assert build_datamodule(entry).hparams.tokenizer == "char"
        return
    with pytest.raises(hub.CheckpointError, match=match):
        build_datamodule(entry)


def test_system_hyperparameters_are_saved_and_checked(saved):
    from zoo.evaluate import build_system

    edit_config(saved, system={"init_args": {"iwae_k": 10, "beta": 2.0}})
    system = build_system(zoo.load(str(saved)))
    assert system.hparams.iwae_k == 10 and system.hparams.beta == 2.0
    edit_config(saved, system={"init_args": {"iwae_k": 10**9}})
    with pytest.raises(hub.CheckpointError, match="iwae_k"):
        build_system(zoo.load(str(saved)))


ABSURD = [
    ("vae", {"hidden": 10**9}), ("vae", {"image_size": 10**4}), ("vae", {"latent_dim": 10**8}),
    ("gmm", {"eval_draws": 10**9}), ("gpt", {"n_layer": 10**6}), ("gpt", {"n_positions": 10**9}),
    ("ddpm", {"channel_mults": [1] * 10**5}), ("ddpm", {"schedule": {"kind": "cosine", "timesteps": 10**9}}),
]


def test_absurd_sizes_allocate_nothing(tmp_path):
    """In a fresh process: every absurd config is one CheckpointError line, and the peak memory stays flat."""
    folders = {"vae": "vae-digits", "gmm": "gmm-digits", "gpt": "gpt-shakespeare-char", "ddpm": "ddpm-digits"}
    cases = []
    for i, (kind, change) in enumerate(ABSURD):
        folder = tmp_path / str(i)
        zoo.load(folders[kind]).save_pretrained(folder)
        edit_config(folder, **{f"init_args__{k}": v for k, v in change.items()})
        cases.append(str(folder))
    code = (
        "import json, resource, sys, time, zoo, torch\n"
        "from zoo.hub import CheckpointError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = []\n"
        "for folder in json.loads(sys.argv[1]):\n"
        "    t = time.time()\n"
        "    try:\n"
        "        zoo.load(folder); out.append(['loaded', folder])\n"
        "    except CheckpointError as e:\n"
        "        out.append([str(e), time.time() - t])\n"
        "print(json.dumps([out, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    results, grown_mb = json.loads(run.stdout)
    for (kind, change), (message, seconds) in zip(ABSURD, results):
        assert message != "loaded", (kind, change)
        assert "config.json" in message and "\n" not in message, message
        assert seconds < 5, (kind, change, seconds)
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"


def test_symlinks_out_of_the_folder_are_refused(saved, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    for name in ("README.md", "config.json", "model.safetensors"):
        folder = tmp_path / f"copy-{name}"
        zoo.load(str(saved)).save_pretrained(folder)
        target = folder / name
        moved = tmp_path / f"outside-{name}"
        os.replace(target, moved)
        os.symlink(moved if name != "README.md" else secret, target)
        with pytest.raises(hub.CheckpointError, match=f"{name}: links outside the model folder"):
            zoo.load(str(folder))
        with pytest.raises(hub.CheckpointError, match="links outside"):
            hub.push(folder, "user/repo")


def test_a_link_inside_the_folder_is_fine(saved):
    os.replace(saved / "README.md", saved / "card.md")
    os.symlink("card.md", saved / "README.md")
    assert zoo.load(str(saved)).card == (saved / "card.md").read_text()


def test_a_fifo_is_refused_without_blocking(saved):
    (saved / "README.md").unlink()
    os.mkfifo(saved / "README.md")
    with pytest.raises(hub.CheckpointError, match="README.md: not a regular file"):
        zoo.load(str(saved))


@pytest.mark.parametrize("content, match", [
    (b"42", "must hold a JSON object, got int"),
    (b"null", "must hold a JSON object, got NoneType"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"{" + b" " * (2 << 20) + b"}", "more than the"),
])
def test_malformed_config_json_is_one_error(saved, content, match):
    (saved / "config.json").write_bytes(content)
    with pytest.raises(hub.CheckpointError, match=match) as error:
        zoo.load(str(saved))
    assert "config.json" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("version, match", [
    ("1", "format_version must be a positive integer"), (True, "format_version must be a positive integer"),
    (-7, "format_version must be a positive integer"), (None, "format_version must be a positive integer"),
    (99, "in checkpoint format 99"),
])
def test_bad_format_versions(saved, version, match):
    edit_config(saved, format_version=version)
    with pytest.raises(hub.CheckpointError, match=match):
        zoo.load(str(saved))


@pytest.mark.parametrize("field, value, match", [
    ("architecture", 3, "architecture must be a JSON string"),
    ("init_args", [1], "init_args must be a JSON object"),
    ("init_args__hidden", "32", "init_args.hidden must be int"),
    ("init_args__hidden", 0, "init_args do not describe a valid VAE: hidden must be"),
    ("system", "x", "system must be a JSON object"),
    ("data_spec", {"feature_extractor": "vae-digits"}, "data_spec.feature_extractor: unknown feature extractor"),
])
def test_bad_fields_name_the_field(saved, field, value, match):
    edit_config(saved, **{field: value})
    with pytest.raises(hub.CheckpointError, match=match):
        zoo.load(str(saved))


def test_non_utf8_card_and_non_finite_weights(saved):
    from safetensors.torch import load_file, save_file

    (saved / "README.md").write_bytes(b"---\n\xff\n")
    with pytest.raises(hub.CheckpointError, match="README.md: not UTF-8 text"):
        zoo.load(str(saved))
    (saved / "README.md").write_text("card")
    weights = load_file(saved / "model.safetensors")
    name = sorted(weights)[0]
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, saved / "model.safetensors")
    with pytest.raises(hub.CheckpointError, match=f"tensor '{name}' holds NaN or infinite values"):
        zoo.load(str(saved))


def test_a_malformed_tokenizer_is_one_error(tmp_path):
    zoo.load("gpt-shakespeare-char").save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"model": 3}')
    with pytest.raises(hub.CheckpointError, match="tokenizer.json.*cannot be read"):
        zoo.load(str(tmp_path))


def test_saved_files_are_mode_0644(saved):
    for path in saved.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def _tiny_gpt():
    from zoo.tokenizers import char_tokenizer
    from zoo.models.gpt import GPT

    torch.manual_seed(0)
    tok = char_tokenizer("hello world")
    gpt = GPT(vocab_size=tok.get_vocab_size(), n_positions=16, n_embd=16, n_layer=1, n_head=2)
    gpt.set_tokenizer(tok)
    return gpt


def _state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(model, state) -> bool:
    own = model.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in own)


def test_a_kill_at_any_file_operation_leaves_the_old_or_the_new_model(vae, tmp_path):
    """Fork a child that saves the new model and dies (os._exit) at its k-th file operation, for every k."""
    folder = tmp_path / "m"
    old = _tiny_gpt()  # it has tokenizer files, which the new model (a VAE) does not: they must go
    old.save_pretrained(folder)
    old_state, new_state = _state(old), _state(vae)
    ops = ("replace", "rename", "unlink", "rmdir", "mkdir", "fsync", "chmod", "open")
    k, finished = 0, False
    while not finished:
        pid = os.fork()
        if pid == 0:  # the child: count file operations, die before the k-th
            count = [0]
            for op in ops:
                real = getattr(os, op)

                def counted(*args, _real=real, **kwargs):
                    if count[0] == k:
                        os._exit(17)
                    count[0] += 1
                    return _real(*args, **kwargs)
                setattr(os, op, counted)
            try:
                vae.save_pretrained(folder)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        finished = os.waitstatus_to_exitcode(status) == 0
        loaded = zoo.load(str(folder))
        if isinstance(loaded, type(old)):
            assert _same(loaded, old_state) and loaded.tokenizer is not None, k
        else:
            assert _same(loaded, new_state), k
        k += 1
    assert k > 8  # it did die at every step of a real save
    assert isinstance(zoo.load(str(folder)), type(vae))
    # a later save finishes or drops what a killed one left
    vae.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_packaged_format_1_folders_load():
    for name in zoo.list_models():
        config = json.loads((ROOT / "zoo" / "pretrained" / name / "config.json").read_text())
        model = zoo.load(name)
        if config["format_version"] == 1 and "datamodule" in config:
            assert model.extra_config["datamodule"]["name"] in {"digits", "text", "char-sequences"}
