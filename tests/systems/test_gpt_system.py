import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import run_lightning
from zoo.systems.gpt import GPTSystem, warmup_cosine

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--trainer.max_epochs", "1", "--data.batches_per_epoch", "3", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--model.sample_tokens", "20"]
TEXT = "O Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name.\n" * 30


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("recipe", ["gpt-shakespeare-char", "gpt-shakespeare-bpe"])
def test_recipe_smoke_fit_exports_a_loadable_model(recipe, corpus, tmp_path):
    """Each recipe, with a smaller net for speed: 2 validations, the loss falls, the model loads."""
    extra = ["--data.vocab_size", "300", "--data.block_size", "16"] if "bpe" in recipe else []
    run_lightning(["fit", "--config", str(ROOT / "recipes" / f"{recipe}.yaml"), "--data.corpus", str(corpus),
                   "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY, "--trainer.max_epochs", "2",
                   "--data.batches_per_epoch", "15", "--model.warmup_steps", "3", "--model.net.n_embd", "32",
                   "--model.net.n_head", "2", "--model.net.n_layer", "1", *extra])
    run = tmp_path / "runs" / "version_0"
    model = zoo.load(str(run / "pretrained"))
    assert model.n_layer == 1 and model.vocab_size == model.tokenizer.get_vocab_size()
    assert model.vocab_size <= 300 if "bpe" in recipe else model.vocab_size == len(set(TEXT[:int(len(TEXT) * 0.9)])) + 1
    assert isinstance(model.generate("Romeo", max_new_tokens=5, seed=0), str)
    import csv

    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["val/loss"]]
    loss = [float(r["val/loss"]) for r in rows]
    assert len(loss) == 2 and loss[1] < loss[0] < math.log(model.vocab_size)  # learning, below uniform
    assert float(rows[1]["val/perplexity"]) == pytest.approx(math.exp(loss[1]), rel=1e-4)
    assert (run / "samples" / "step=000030.txt").read_text(encoding="utf-8").strip()
    assert model.extra_config["datamodule"]["init_args"]["corpus"] == str(corpus)


def _first_batch(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    from zoo.data.text import RandomBlocks

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)  # what seed_everything does on every rank
    x, _ = next(iter(RandomBlocks(torch.arange(1000), block_size=8, batch_size=4, batches=2)))
    torch.save(x, f"{out}.{rank}")
    dist.destroy_process_group()


def test_ddp_ranks_read_different_windows_and_the_recipe_runs(corpus, tmp_path):
    """Every rank is seeded alike, yet each draws its own windows (else 2 processes would only repeat 1);
    and the GPT recipe trains, validates and exports under Lightning's DDP (2 CPU processes, gloo)."""
    import torch.multiprocessing as mp

    mp.spawn(_first_batch, args=(str(tmp_path / "store"), str(tmp_path / "batch")), nprocs=2)
    first, second = (torch.load(tmp_path / f"batch.{r}", weights_only=True) for r in (0, 1))
    assert first.shape == second.shape == (4, 8) and not torch.equal(first, second)
    import subprocess
    import sys

    args = ["fit", "--config", str(ROOT / "recipes" / "gpt-shakespeare-char.yaml"), "--data.corpus", str(corpus),
            "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY, "--model.net.n_embd", "32",
            "--model.net.n_head", "2", "--model.net.n_layer", "1", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    subprocess.run([sys.executable, "-m", "zoo.cli", *args], check=True, cwd=ROOT, capture_output=True, timeout=300)
    model = zoo.load(str(tmp_path / "runs" / "version_0" / "pretrained"))
    assert isinstance(model.generate("Romeo", max_new_tokens=5, seed=0), str)


def test_fine_tuning_recipe_keeps_the_pretrained_tokenizer(corpus, tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "gpt-shakespeare-char-finetune.yaml"),
                   "--data.corpus", str(corpus), "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY])
    tuned = zoo.load(str(tmp_path / "runs" / "version_0" / "pretrained"))
    pretrained = zoo.load("gpt-shakespeare-char")
    assert tuned.tokenizer.to_str() == pretrained.tokenizer.to_str()
    delta = max((a - b).abs().max().item() for a, b in zip(tuned.state_dict().values(), pretrained.state_dict().values()))
    assert 0 < delta < 0.02  # 3 steps at lr <= 3e-4 moved it, a little


def test_schedule_is_nanogpts():
    assert warmup_cosine(0, 100, 2000, 0.1) == pytest.approx(1 / 101)
    assert warmup_cosine(99, 100, 2000, 0.1) == pytest.approx(100 / 101)
    assert warmup_cosine(100, 100, 2000, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(1050, 100, 2000, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(2000, 100, 2000, 0.1) == pytest.approx(0.1)


def test_bad_system_arguments():
    with pytest.raises(ValueError, match="0 < min_lr <= lr"):
        GPTSystem(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="unknown model 'gpt-shakespeare-chr'"):
        GPTSystem(init_from="gpt-shakespeare-chr")
