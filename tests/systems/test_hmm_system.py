from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.models.hmm import HMM

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_recipe_smoke_fit_trains_by_em_and_exports_a_text_model(tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "hmm-shakespeare-char.yaml"),
                   # one batch of 512 x 256 characters holds every character of the first 512 x 30 validation ones
                   "--model.net.n_states", "4", "--data.batch_size", "512", "--data.eval_seq_len", "30",
                   "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "1",
                   "--trainer.check_val_every_n_epoch", "1", "--trainer.limit_val_batches", "1",
                   "--trainer.default_root_dir", str(tmp_path), *QUIET])
    run = tmp_path / "version_0"
    model = zoo.load(str(run / "pretrained"))
    assert isinstance(model, HMM) and len(model.vocab) == 65 and model.hmm.n_states == 4
    text = model.sample(2, seed=0, length=40)
    assert isinstance(text, list) and [len(t) for t in text] == [40, 40] and text == model.sample(2, seed=0, length=40)
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    train = [float(r["train/log_likelihood"]) for r in rows if r["train/log_likelihood"]]
    val = [float(r["val/nll"]) for r in rows if r["val/nll"]]
    assert len(train) == 3 and all(b >= a - 1e-6 * abs(a) for a, b in zip(train, train[1:])), train
    assert len(val) == 3 and 2.0 < val[-1] < 4.2  # nats per character, below a uniform guess (log 65)


def test_text_model_reads_and_writes_strings(tmp_path):
    model = HMM(3, vocab="ab c")
    assert model.hmm.n_symbols == 4 and model.decode(model.encode("a cab")) == "a cab"
    torch.testing.assert_close(model.log_prob(["ab", "c"]), model.log_prob(torch.tensor([[0, 1], [3, 0]]),
                                                                            torch.tensor([2, 1])))
    assert model.nll_per_char("abc") == pytest.approx(-model.log_prob("abc").item() / 3)
    model.save_pretrained(tmp_path)
    again = zoo.load(str(tmp_path))
    assert again.vocab == "ab c" and again.sample(3, seed=1, length=5) == model.sample(3, seed=1, length=5)
    texts, states = model.sample_with_states(2, seed=1, length=5)
    assert texts == model.sample(2, seed=1, length=5) and states.shape == (2, 5) and 0 <= states.min() <= states.max() < 3
    paths, joint = model.viterbi(["abc", "a"])  # strings in, like log_prob; the shorter path is padded with -1
    assert paths.shape == (2, 3) and paths[1, 1:].tolist() == [-1, -1] and (joint <= model.log_prob(["abc", "a"])).all()
    with pytest.raises(ValueError, match="characters outside the vocabulary: 'z'"):
        model.log_prob("az")
    with pytest.raises(ValueError, match="vocabulary has 5 characters, but this HMM emits 4 symbols"):
        model.set_vocab("abcde")
    with pytest.raises(ValueError, match="n must be an integer in 1..100000"):
        model.sample(0)


def test_gaussian_family_model_samples_tensors():
    model = zoo.create("hmm", n_states=2, emission="gaussian", n_features=3)
    assert model.sample(4, seed=0, length=6).shape == (4, 6, 3)


def test_ddp_two_processes_give_the_parameters_of_one(tmp_path):
    """A 5,000-character corpus in 79 chunks: rank 1 gets a padded repeat, which the E-step must drop."""
    import os
    import subprocess
    import sys

    from zoo.data.text import read_text

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(read_text("tinyshakespeare")[:5000])
    args = ["fit", "--config", str(ROOT / "recipes" / "hmm-shakespeare-char.yaml"), "--data.corpus", str(corpus),
            "--model.net.n_states", "5", "--model.net.n_symbols", "53", "--data.seq_len", "57", "--data.batch_size", "16",
            "--trainer.max_epochs", "3", "--trainer.precision", "64-true", "--trainer.limit_val_batches", "0", *QUIET]
    run_lightning([*args, "--trainer.default_root_dir", str(tmp_path / "one")])
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *args, "--trainer.devices", "2", "--trainer.strategy", "ddp",
                          "--trainer.default_root_dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    one = zoo.load(str(tmp_path / "one" / "version_0" / "pretrained")).state_dict()
    two = zoo.load(str(tmp_path / "two" / "version_0" / "pretrained")).state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-7, msg=key)
