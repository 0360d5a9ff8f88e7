import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.cli import main


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def genzoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True)


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vae-digits" in out and "cvae-digits" in out
    assert re.search(r"^ddpm-mnist-5k .* fid 3\.002 ", out, re.MULTILINE)  # the key metric, from the card
    assert main(["list", "cvae*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["cvae-digits"] and rows[0]["packaged"] and "iwae" in rows[0]["metrics"]
    assert main(["list", "--task", "feature-extractor", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["digits-classifier", "mnist-5k-classifier"] and "feature-extractor" in rows[0]["tasks"]


def test_sample_writes_a_png_grid(tmp_path):
    out = genzoo("sample", "vae-digits", "--n", "64", "--seed", "0", "--out", str(tmp_path / "grid.png"))
    assert out.returncode == 0, out.stderr
    image = Image.open(tmp_path / "grid.png")
    assert image.size == ((8 * 9 + 1) * 4,) * 2 and image.mode == "L"  # 8x8 grid of 8px + 1px gaps, x4


def test_sample_is_deterministic_and_labels_work(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["sample", "cvae-digits", "--n", "10", "--label", "3", "--out", str(tmp_path / f"{name}.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert main(["sample", "cvae-digits", "--n", "20", "--out", str(tmp_path / "c.png")]) == 0
    assert Image.open(tmp_path / "c.png").size == ((9 * 10 + 1) * 4, (9 * 2 + 1) * 4)  # one column per class (8px + 1px gap)


@pytest.mark.parametrize("args, message", [
    (["sample", "vae-digitz"], "unknown model 'vae-digitz'; did you mean vae-digits"),
    (["sample", "vae-digits", "--n", "0"], "n must be an integer in 1..100000"),
    (["sample", "vae-digits", "--label", "3"], "unconditional"),
    (["sample", "cvae-digits", "--label", "12"], "labels must be in 0..9"),
    (["sample", "vae-digits", "--prompt", "x"],
     "vae-digits: VAE.sample got 'prompt', but this VAE is not conditioned on a prompt; its conditions: none; "
     "it takes only n and seed"),
    (["sample", "gpt-shakespeare-char", "--steps", "3"],
     "GPT.sample got unknown option 'steps'; it takes n, seed, prompt (a string, default ''), max_new_tokens ("),
    (["sample", "ddpm-digits", "--steps", "0"], "DDPM.sample: steps must be an integer in 1..1000"),
    (["sample", "ddpm-digits", "--sampler", "euler"], "sampler must be one of 'ddim', 'ddpm'"),
    (["sample", "hmm-shakespeare-char", "--temperature", "0.5"], "HMM.sample got unknown option 'temperature'"),
    (["sample", "vae-digits", "--device", "nowhere"], "--device 'nowhere' is not available here"),
    (["eval", "nope-digits"], "unknown model 'nope-digits'"),
    (["push", "nowhere", "--repo-id", "a/b"], "neither a packaged pretrained name nor a model folder"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path):
    out = tmp_path / ("x.txt" if args[1].endswith("-char") else "x.png")  # text models write text
    assert main([*args, "--out", str(out)] if args[0] == "sample" else args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err
    assert not out.exists()


def test_push_uploads_the_packaged_folder(monkeypatch, capsys):
    import huggingface_hub

    from zoo.registry import PRETRAINED

    seen = {}
    monkeypatch.setenv("HF_TOKEN", "hf_test")  # logged in
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, *, repo_id, folder_path, **kw: seen.update(repo=repo_id, folder=folder_path) or "ok")
    assert main(["push", "vae-digits", "--repo-id", "me/vae-digits"]) == 0
    assert seen == {"repo": "me/vae-digits", "folder": str(PRETRAINED["vae-digits"].packaged)}


@pytest.mark.parametrize("command, words", [
    ([], "sample"), (["sample"], "Draw samples"), (["eval"], "Evaluate a model"), (["push"], "Upload"),
    (["list"], "List the pretrained"), (["fit"], "--config"),
])
def test_help_says_what_each_command_does(command, words):
    out = genzoo(*command, "--help")
    assert out.returncode == 0 and words in out.stdout


def test_eval_of_an_image_model_names_its_feature_extractor(capsys):
    assert main(["eval", "dcgan-digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feature_extractor"].startswith("digits-classifier") and out["fid"] > 0 and out["floor_fid"] > 0


def test_sample_writes_labelled_arrays_for_training(tmp_path):
    from zoo.metrics import load_extractor

    out = tmp_path / "synthetic.npz"
    assert main(["sample", "cvae-digits", "--n", "40", "--seed", "1", "--out", str(out)]) == 0
    data = np.load(out)
    images, labels = torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])
    assert images.shape == (40, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert labels.tolist() == [i % 10 for i in range(40)]
    with torch.no_grad():  # the labels are the digits drawn: the packaged classifier agrees
        assert (load_extractor("digits-classifier").predict(images) == labels).float().mean() >= 0.9
    assert main(["sample", "vae-digits", "--n", "4", "--out", str(out)]) == 0
    assert set(np.load(out).files) == {"images"}  # unconditional: no labels


def test_npz_output_is_for_images(tmp_path, capsys):
    assert main(["sample", "hmm-shakespeare-char", "--n", "1", "--out", str(tmp_path / "x.npz")]) == 2
    assert ".npz holds images (the arrays); hmm-shakespeare-char outputs text" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_a_wrong_option_exits_2_with_one_line_naming_the_models_options(tmp_path):
    out = genzoo("sample", "vae-digits", "--prompt", "x", "--out", str(tmp_path / "x.png"))
    assert out.returncode == 2 and out.stdout == "" and not (tmp_path / "x.png").exists()
    assert out.stderr == ("genzoo sample: error: vae-digits: VAE.sample got 'prompt', but this VAE is not "
                          "conditioned on a prompt; its conditions: none; "
                          "it takes only n and seed\n")


def test_sample_diffusion_with_steps_and_guidance(tmp_path):
    import zoo

    args = ["sample", "ddpm-digits", "--n", "4", "--steps", "20", "--guidance", "2", "--label", "7"]
    assert main([*args, "--out", str(tmp_path / "a.npz")]) == 0
    images = np.load(tmp_path / "a.npz")["images"]
    expected = zoo.load("ddpm-digits").sample(4, seed=0, labels=7, steps=20, guidance=2.0, progress=False)
    np.testing.assert_array_equal(images, expected.numpy())  # exactly the options given, nothing else
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (76, 76)  # 2x2 tiles of 8px + 1px gaps, x4


def test_sample_text_with_temperature_and_top_k(capsys):
    import zoo

    args = ["sample", "gpt-shakespeare-char", "--n", "2", "--temperature", "0.8", "--top-k", "40",
            "--max-new-tokens", "20", "--prompt", "ROMEO:", "--device", "cpu"]
    assert main(args) == 0
    texts = zoo.load("gpt-shakespeare-char").sample(2, seed=0, prompt="ROMEO:", temperature=0.8, top_k=40,
                                                    max_new_tokens=20)
    assert capsys.readouterr().out == "\n\n".join(texts) + "\n" and all(t.startswith("ROMEO:") for t in texts)


def test_sample_molecules_one_smiles_per_line(tmp_path, capsys):
    import zoo

    assert main(["sample", "gpt-moses", "--n", "3", "--seed", "0", "--out", str(tmp_path / "gen.smi")]) == 0
    expected = zoo.load("gpt-moses").sample(3, seed=0)
    assert capsys.readouterr().out.splitlines() == expected  # a .smi file's layout, read back line by line
    assert (tmp_path / "gen.smi").read_text().splitlines() == expected


def test_sample_hmm_sequences_of_a_given_length(capsys):
    assert main(["sample", "hmm-shakespeare-char", "--n", "3", "--length", "12"]) == 0
    assert [len(t) for t in capsys.readouterr().out.split("\n\n")] == [12, 12, 13]  # the last ends with a newline



def test_fit_prints_no_lightning_advertisements(tmp_path):
    import logging

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    messages, keep = [], Keep(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]  # Lightning's own handlers sit here
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(keep)
        logger.setLevel(logging.INFO)  # `genzoo eval`, run earlier in this process, quiets Lightning to warnings
    try:
        recipe = Path(__file__).resolve().parents[1] / "recipes" / "nb-digits.yaml"
        assert main(["fit", "--config", str(recipe), "--trainer.default_root_dir", str(tmp_path),
                     "--trainer.enable_progress_bar", "false"]) == 0
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(keep)
            logger.setLevel(level)
    assert any("GPU available" in m for m in messages)  # Lightning's own run output is kept
    assert not [m for m in messages if "Tip" in m]


# -- every error is one line (the reliability issue) ------------------------------------------------------------


def one_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, no traceback."""
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err.strip()


def offline_env(tmp_path: Path, **extra: str) -> dict:
    """An environment with an empty Hugging Face home (no stored token) and the Hub at an address that refuses
    connections, so that these tests never reach the network, online or not."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", **extra}


@pytest.fixture
def model_folder(tmp_path):
    """A saved model folder (the packaged vae-digits, copied)."""
    import shutil

    from zoo.registry import PRETRAINED

    return Path(shutil.copytree(PRETRAINED["vae-digits"].packaged, tmp_path / "my-vae"))


def test_push_without_a_login_or_network_is_one_line_saying_what_to_do(tmp_path, model_folder):
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "push", str(model_folder), "--repo-id", "me/my-vae"],
                         capture_output=True, text=True, env=offline_env(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert one_line(out.stderr) == ("genzoo push: error: not logged in to the Hugging Face Hub: run `hf auth login` "
                                    "(or set HF_TOKEN) with a token that may write to me/my-vae")
    for extra, says in [({}, "cannot reach 127.0.0.1 ("), ({"HF_HUB_OFFLINE": "1"}, "offline mode is enabled")]:
        out = subprocess.run([sys.executable, "-m", "zoo.cli", "push", str(model_folder), "--repo-id", "me/my-vae"],
                             capture_output=True, text=True, env=offline_env(tmp_path, HF_TOKEN="hf_fake", **extra))
        line = one_line(out.stderr)
        assert out.returncode == 2 and says in line and "check the network connection" in line, line
        assert line.endswith("to push, log in once with `hf auth login` (or set HF_TOKEN)"), line


def test_push_refused_by_the_hub_is_one_line(monkeypatch, capsys, model_folder):
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    def refuse(self, repo_id, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        raise HfHubHTTPError("401 Client Error: Unauthorized for url: https://huggingface.co/api/repos/create\n"
                             "Invalid username or password.", response=httpx2.Response(401, request=request))

    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    assert main(["push", str(model_folder), "--repo-id", "me/my-vae"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("genzoo push: error: the Hugging Face Hub refused the request (401 Client Error: "
                           "Unauthorized") and "`hf auth login`" in line


def test_a_prompt_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "sample", "gpt-shakespeare-char", "--prompt", b"ROMEO\xff"],
                         capture_output=True, text=True)  # bytes: the shell's argv, decoded with surrogateescape
    assert out.returncode == 2 and out.stdout == ""
    assert one_line(out.stderr) == ("genzoo sample: error: argument --prompt: not UTF-8 text (byte 0xff at character "
                                    "5); give it in UTF-8 (see `genzoo sample --help`)")


@pytest.fixture
def no_sampling(monkeypatch):
    """Models loaded by the CLI whose sample fails the test: a check must refuse before any sampling."""
    import zoo.registry

    real = zoo.registry.load

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        model.sample = lambda *a, **k: pytest.fail("sampled before checking the arguments")
        return model

    monkeypatch.setattr(zoo.registry, "load", load)


@pytest.mark.parametrize("name, out, says", [
    ("gpt-shakespeare-char", "x.npz", ".npz holds images (the arrays); gpt-shakespeare-char outputs text, written "
                                      "as text (e.g. --out samples.txt; omit --out to print them)"),
    ("hmm-shakespeare-char", "x.png", ".png holds images (a PNG grid); hmm-shakespeare-char outputs text"),
    ("vae-digits", "x.jpg", "vae-digits outputs images, written as .png (a PNG grid) or .npz (the arrays)"),
    ("vae-digits", "folder", "is a folder; give the name of a file"),
    ("vae-digits", "file/x.png", "/file is a file, not a folder"),
])
def test_sample_checks_every_argument_before_sampling(name, out, says, tmp_path, capsys, no_sampling):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    assert main(["sample", name, "--out", str(tmp_path / out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"genzoo sample: error: --out {tmp_path / out}: ") and says in line


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "/x/grid.png"),
                                   IsADirectoryError(21, "Is a directory", "/x/grid.png")])
def test_an_output_that_cannot_be_written_is_one_line(error, tmp_path, capsys, monkeypatch):
    import zoo.images

    def refuse(*args, **kwargs):  # as the file system does when the path changes under the command
        raise error

    monkeypatch.setattr(zoo.images, "save_grid", refuse)
    assert main(["sample", "vae-digits", "--n", "2", "--out", str(tmp_path / "grid.png")]) == 2
    assert one_line(capsys.readouterr().err) == f"genzoo sample: error: /x/grid.png: {error.strerror}"


def test_interrupt_genzoo_and_other_errors(monkeypatch, capsys):
    import zoo.registry
    from zoo.hub import CheckpointError

    def raising(error):
        def load(*args, **kwargs):
            raise error
        return load

    cases = [(KeyboardInterrupt(), 130, "genzoo sample: interrupted"),
             (CheckpointError("x/config.json: format_version must be a positive integer"), 2,
              "genzoo sample: error: x/config.json: format_version must be a positive integer"),
             (type("TooBig", (RuntimeError,), {"__module__": "zoo.models.x"})("over the cap"), 2,
              "genzoo sample: error: over the cap"),  # any class of genzoo's own is its word on the input
             (RuntimeError("a bug\non two lines"), 1, "genzoo sample: error: RuntimeError: a bug on two lines (run "
                                                      "`genzoo --debug sample ...` for the traceback)")]
    for error, code, line in cases:
        monkeypatch.setattr(zoo.registry, "load", raising(error))
        assert main(["sample", "vae-digits"]) == code
        assert one_line(capsys.readouterr().err) == line
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", "sample", "vae-digits"])


def test_ctrl_c_while_sampling_is_one_line_and_exit_130(tmp_path):
    import signal

    # a shell's background job starts with SIGINT ignored, and children inherit that: restore the default
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "sample", "ddpm-mnist-5k", "--n", "100", "--steps",
                                "1000", "--progress", "--out", str(tmp_path / "x.png")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while seen.count("ddim sampling") < 2:  # the bar has been drawn and redrawn: it is sampling now
        char = process.stderr.read(1)
        assert char, seen
        seen += char
    process.send_signal(signal.SIGINT)
    err = process.stderr.read()
    assert process.wait(timeout=60) == 130 and not (tmp_path / "x.png").exists()
    assert err.replace("\r", "\n").strip().splitlines()[-1] == "genzoo sample: interrupted" and "Traceback" not in err


def test_ctrl_c_during_fit_is_interrupted_exit_130(tmp_path, capsys, monkeypatch):
    import signal

    from zoo.systems.naive_bayes import NaiveBayesSystem

    def press_ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(NaiveBayesSystem, "on_train_start", press_ctrl_c, raising=False)
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert main(["fit", "--config", str(RECIPES / "nb-digits.yaml"), "--trainer.default_root_dir", str(tmp_path),
                     "--trainer.enable_progress_bar", "false"]) == 130
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C during its shutdown
    assert capsys.readouterr().err.strip().splitlines()[-1] == ("genzoo fit: interrupted (resume it: --ckpt_path "
                                                                "last)")


@pytest.mark.parametrize("args, line", [
    (["--model.init_args.lr", "abc"], "--model.init_args.lr: Expected float. Got value: abc (see `genzoo fit --help`)"),
    (["--model.init_args.net.init_args.latent_dim", "x"],
     "--model.init_args.net.init_args.latent_dim: Expected int. Got value: x (see `genzoo fit --help`)"),
    (["--trainer.max_epochs", "x"], "--trainer.max_epochs: Expected int (given: x) (see `genzoo fit --help`)"),
    (["--trainer.nope", "1"], "unrecognized arguments: --trainer.nope 1 (see `genzoo fit --help`)"),
    (["--ckpt_path", "does/not/exist.ckpt"], "--ckpt_path does/not/exist.ckpt: no such checkpoint file"),
])
def test_fit_with_a_wrong_value_is_one_line(args, line, tmp_path, capsys):
    assert main(["fit", "--config", str(RECIPES / "vae-digits.yaml"), "--trainer.default_root_dir", str(tmp_path),
                 *args]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"genzoo fit: error: {line}")
    assert not list(tmp_path.glob("version_*"))  # nothing ran


def test_fit_whose_data_cannot_be_had_is_one_line_saying_how_to_provide_it(tmp_path, capsys, monkeypatch):
    from zoo.data import downloads

    monkeypatch.setenv("GENZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(downloads.MIRRORS, "mnist", ("http://127.0.0.1:9/mnist/",))  # refuses: offline, everywhere
    base = ["fit", "--config", str(RECIPES / "vae-digits.yaml"), "--trainer.default_root_dir", str(tmp_path)]
    assert main([*base, "--data", "zoo.data.downloads.MnistDataModule"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.fullmatch(r"genzoo fit: error: could not download train-images-idx3-ubyte\.gz from "
                        r"http://127\.0\.0\.1:9/mnist/train-images-idx3-ubyte\.gz \(.*\); offline, put "
                        r"train-images-idx3-ubyte\.gz in .*/data/mnist by hand", err.strip().splitlines()[-1])
    assert main(["fit", "--config", str(RECIPES / "vae-imagefolder.yaml"), "--trainer.default_root_dir",
                 str(tmp_path), "--data.root", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (f"genzoo fit: error: root '{tmp_path / 'missing'}' "
                                                                "is not a folder of images")


def test_fit_help_is_short_and_names_genzoos_recipes_and_classes(capsys):
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 80
    assert re.search(r"^  vae-digits +Convolutional VAE on 8x8 digits", out, re.MULTILINE)
    assert re.search(r"^  ddpm-imagefolder +Trains a DDPM on your own folder of images$", out, re.MULTILINE)
    for words in ["zoo.systems.vae.VAESystem", "zoo.models.diffusion.DDPM", "zoo.data.digits.DigitsDataModule",
                  "zoo.data.images.ImageFolderDataModule", "--model.init_args.lr", "--ckpt_path last",
                  "--model.init_from vae-digits", "genzoo fit --help-all"]:
        assert words in out, words
    assert main(["test", "--help"]) == 0 and "genzoo test --help-all" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--help-all"])
    assert exit.value.code == 0 and "--trainer.max_epochs" in capsys.readouterr().out  # Lightning's own


def test_eval_and_sampling_show_progress_on_stderr(tmp_path, capsys):
    assert main(["sample", "ddpm-digits", "--n", "2", "--steps", "3", "--progress", "--out",
                 str(tmp_path / "x.png")]) == 0
    assert "ddim sampling" in capsys.readouterr().err
    assert main(["sample", "ddpm-digits", "--n", "2", "--steps", "3", "--no-progress", "--out",
                 str(tmp_path / "x.png")]) == 0
    assert "ddim sampling" not in capsys.readouterr().err
    assert main(["eval", "nb-digits", "--json", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "test loop" in err and "sampling 2,000 images for the metrics" in err
    assert json.loads(out)["fid"] > 0  # stdout holds the JSON only
