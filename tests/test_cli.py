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
    assert main([*args, "--out", str(tmp_path / "x.png")] if args[0] == "sample" else args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_push_uploads_the_packaged_folder(monkeypatch, capsys):
    import huggingface_hub

    from zoo.registry import PRETRAINED

    seen = {}
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
    assert ".npz holds image arrays" in capsys.readouterr().err
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
