"""Resume that really resumes: a run SIGKILLed mid-epoch and resumed with ``--ckpt_path last`` ends with the
very weights of an uninterrupted run (VAE: gradients, noise, shuffled data; GMM: EM with dequantisation
noise); EM checkpoints every iteration; checkpoint writes are atomic; fine-tuning validates at step 0 and
exports the best validation checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.cli import main, resolve_ckpt_path, run_lightning
from zoo.systems.callbacks import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.accelerator", "cpu", "--trainer.callbacks", "[]"]
EPOCHS = 4
TINY = {  # a few batches an epoch, a few epochs, validation every epoch (so "best" is judged too)
    "vae": ["--config", str(ROOT / "recipes" / "vae-digits.yaml"), "--model.net.hidden", "8",
            "--model.net.latent_dim", "2", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"],
    "gmm": ["--config", str(ROOT / "recipes" / "gmm-digits.yaml"), "--model.net.n_components", "2",
            "--model.net.covariance_type", "diag", "--model.net.eval_draws", "2",
            "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"],
}
KILLED_IN = 2  # epoch: the kill lands in its second batch, after the checkpoint of epoch KILLED_IN - 1


class PauseAt(L.Callback):
    """In the killed subprocess: mid-epoch `epoch`, write `signal_file` and wait to be killed."""

    def __init__(self, epoch: int, signal_file: str):
        self.epoch, self.signal_file = epoch, signal_file

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            Path(self.signal_file).write_text("paused")
            time.sleep(600)


def fit_args(family: str, root: Path, *extra: str) -> list[str]:
    return ["fit", *TINY[family], "--trainer.max_epochs", str(EPOCHS), "--trainer.default_root_dir", str(root),
            *QUIET, *extra]


def start_killed_run(family: str, root: Path) -> subprocess.Popen:
    pause = root.parent / f"{family}-paused"
    callback = json.dumps({"class_path": "test_resume.PauseAt",
                           "init_args": {"epoch": KILLED_IN, "signal_file": str(pause)}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the in-process runs' arithmetic
    args = fit_args(family, root, f"--trainer.callbacks+={callback}")
    return subprocess.Popen([sys.executable, "-m", "zoo.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def kill_when_paused(proc: subprocess.Popen, family: str, root: Path) -> None:
    pause = root.parent / f"{family}-paused"
    deadline = time.monotonic() + 120
    while not pause.exists():
        if proc.poll() is not None:
            pytest.fail(f"the {family} run ended before it was killed:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the {family} run never reached epoch {KILLED_IN}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def weights(run: Path) -> tuple[dict, dict]:
    """(the exported model's tensors, the state_dict of last.ckpt: the weights at the end of training)."""
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return load_file(run / "pretrained" / "model.safetensors"), last["state_dict"]


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ: {different[:5]}"


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """Both killed runs start first and run alongside the uninterrupted ones."""
    base = tmp_path_factory.mktemp("killed")
    procs = {family: start_killed_run(family, base / family) for family in TINY}
    yield {family: (proc, base / family) for family, proc in procs.items()}
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("family", list(TINY))
def test_sigkill_then_resume_last_is_bit_identical(family, killed_runs, tmp_path):
    run_lightning(fit_args(family, tmp_path / "whole"))
    proc, root = killed_runs[family]
    kill_when_paused(proc, family, root)

    killed = root / "version_0"
    last = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == KILLED_IN - 1  # the last complete epoch; the killed one is lost
    assert "genzoo_rng" in last
    if family == "gmm":  # EM: a checkpoint every iteration, the M-steps counted as steps
        assert last["global_step"] == KILLED_IN
    assert not list((killed / "checkpoints").glob(".*.tmp"))

    run_lightning(fit_args(family, root, "--ckpt_path", "last"))  # the README's command
    resumed = root / "version_1"  # a new run folder; its card says where it resumed from
    assert "resumed from" in (resumed / "pretrained" / "README.md").read_text()
    exported, final = weights(resumed)
    whole_exported, whole_final = weights(tmp_path / "whole" / "version_0")
    assert_identical(final, whole_final)  # the weights at the end of training
    assert_identical(exported, whole_exported)  # and the best validation checkpoint, exported


def test_ckpt_path_last_without_a_run_fails_in_one_line(tmp_path, capsys):
    assert main(fit_args("gmm", tmp_path / "none", "--ckpt_path", "last")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no run in" in err and "last.ckpt" in err
    assert not (tmp_path / "none").exists()  # nothing trained from scratch
    assert main(fit_args("gmm", tmp_path, "--ckpt_path", str(tmp_path / "gone.ckpt"))) == 2
    assert "no such checkpoint file" in capsys.readouterr().err


def test_ckpt_path_last_is_the_newest_run_that_has_one(tmp_path):
    for version in (0, 2, 10):
        (tmp_path / f"version_{version}" / "checkpoints").mkdir(parents=True)
        (tmp_path / f"version_{version}" / "checkpoints" / "last.ckpt").write_bytes(b"")
    (tmp_path / "version_11").mkdir()  # killed before its first checkpoint
    assert resolve_ckpt_path("last", str(tmp_path)) == str(tmp_path / "version_10" / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path(None, str(tmp_path)) is None


def test_checkpoint_writes_are_atomic(tmp_path):
    """A write that fails midway leaves the previous checkpoint whole and no temporary file behind."""
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"w": torch.zeros(1000), "x": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_sigkill_during_checkpoint_writes_leaves_a_whole_checkpoint(tmp_path):
    """A process rewriting a 16 MB checkpoint in a loop, SIGKILLed at some moment of a write."""
    path = tmp_path / "last.ckpt"
    code = ("import sys, torch; from zoo.systems.callbacks import AtomicCheckpointIO\n"
            "io = AtomicCheckpointIO(); i = 0\n"
            "while True:\n"
            "    io.save_checkpoint({'i': i, 'w': torch.full((4_000_000,), float(i))}, sys.argv[1]); i += 1\n"
            "    print(i, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # one checkpoint is whole; the next writes are under way
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoint = torch.load(path, weights_only=True)
    assert torch.equal(checkpoint["w"], torch.full((4_000_000,), float(checkpoint["i"])))
    AtomicCheckpointIO().save_checkpoint({"i": -1}, path)  # the next write also clears what the killed one left
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_fine_tuning_validates_at_step_0_and_exports_the_best(tmp_path):
    """An absurd learning rate ruins the model: the best validation is the parent's, at step 0, and that
    is what the run exports (its card says so), while last.ckpt holds the ruined weights."""
    run_lightning(["fit", *TINY["vae"], "--model.init_from", "vae-digits", "--model.lr", "5.0",
                   "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path), *QUIET])
    run = tmp_path / "version_0"
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    assert first["step"] == "0" and first["val/elbo"]  # validated before the first step
    exported, final = weights(run)
    parent = zoo.load("vae-digits").state_dict()
    assert_identical(exported, parent)
    assert not all(torch.equal(final[f"net.{k}"], v) for k, v in parent.items())  # it did train
    card = (run / "pretrained" / "README.md").read_text()
    assert "the best validation checkpoint: epoch 0, step 0" in card
