"""Cards tell the truth: one writer (zoo.cards) renders every card, and a run's card reports that run only.

A fine-tune starts from its parent's weights but must never export the parent's card (its title, training
time, test metrics): the card `genzoo fit` writes names the parent and carries this run's own metrics.
"""

import csv
import importlib.util
import re
from pathlib import Path

import pytest

import zoo
from zoo import hub
from zoo.cards import Run, render_card
from zoo.cli import run_lightning
from zoo.data.digits import SPEC as DIGITS
from zoo.registry import PRETRAINED

ROOT = Path(__file__).resolve().parents[1]
NAMES = zoo.list_models()
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu"]


@pytest.fixture(scope="module")
def release():
    """scripts/release.py as a module: the release script renders the packaged cards."""
    spec = importlib.util.spec_from_file_location("release", ROOT / "scripts" / "release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_logged(run: Path, stage: str, key: str) -> dict[str, float]:
    """The `stage/...` metrics of a run's metrics.csv at its best `key` (the highest): what its export reports."""
    with open(run / "metrics.csv", newline="") as f:
        rows = [{k.split("/", 1)[1]: float(v) for k, v in row.items() if k.startswith(f"{stage}/") and v}
                for row in csv.DictReader(f)]
    return max((r for r in rows if key in r), key=lambda r: r[key])


def test_a_fine_tune_card_names_its_parent_and_reports_only_this_run(tmp_path, release):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "vae-digits.yaml"), "--model.init_from", "vae-digits",
                   "--model.iwae_k", "4", "--trainer.default_root_dir", str(tmp_path), *TINY])
    run = tmp_path / "version_0"
    card = (run / "pretrained" / hub.CARD_NAME).read_text()
    parent = hub.read_card(PRETRAINED["vae-digits"].packaged)
    assert zoo.load(str(run / "pretrained")).card == card  # what `genzoo push` would publish

    assert "| fine-tuned from | `vae-digits` (`--model.init_from vae-digits`) |" in card
    assert "Fine-tuned from `vae-digits`" in card and "split: validation" in card
    assert f"| recipe | `genzoo fit --config {run / 'config.yaml'}` |" in card
    assert "init_from: vae-digits" in card  # the run's own config, folded in the card

    metrics, logged = hub.card_metrics(card), best_logged(run, "val", "elbo")  # the best validation checkpoint's
    assert set(metrics) == set(logged) == {"elbo", "kl", "recon_nll"}
    assert metrics == {k: round(v, 3) for k, v in logged.items()}
    # nothing of the parent's run: not its title, test metrics or training time
    assert "# vae-digits\n" not in card and not {"iwae", "fid"} & set(metrics)
    assert release.card_row(parent, "training time") not in card
    leaked = [k for k, v in hub.card_metrics(parent).items() if k in ("iwae", "fid", "kid") and f"{v:.3f}" in card]
    assert not leaked
    assert re.search(r"^\| training time \| [\d.]+ s wall for 1 epoch of `genzoo fit`", card, re.MULTILINE)
    assert "CPU" in release.card_row(card, "hardware")


def test_a_fresh_runs_card_has_no_parent(tmp_path):
    run_lightning(["fit", "--config", str(ROOT / "recipes" / "nb-digits.yaml"),
                   "--trainer.default_root_dir", str(tmp_path), *TINY])
    run = tmp_path / "version_0"
    card = (run / "pretrained" / hub.CARD_NAME).read_text()
    assert "fine-tuned" not in card.lower() and "base_model" not in card
    assert card.startswith("---\n") and "\n# nb-sklearn-digits\n" in card
    logged = best_logged(run, "val", "log_likelihood")
    assert logged and hub.card_metrics(card) == {k: round(v, 3) for k, v in logged.items()}


def test_fine_tuning_drops_the_parents_card_at_once():
    from zoo.systems.vae import VAESystem

    assert zoo.load("vae-digits").card is not None
    assert VAESystem(init_from="vae-digits").net.card is None


def test_the_writer_records_a_parent_and_no_metrics_truthfully(vae):
    hub_parent = render_card(vae, DIGITS, {}, Run("my-vae", parent="someone/vae-digits"))
    assert "base_model: someone/vae-digits" in hub_parent and "| fine-tuned from | `someone/vae-digits`" in hub_parent
    folder_parent = render_card(vae, DIGITS, {}, Run("my-vae", parent="runs/vae/version_0/pretrained"))
    assert "base_model" not in folder_parent and "`runs/vae/version_0/pretrained`" in folder_parent
    assert hub.card_metrics(folder_parent) == {} and "model-index" not in folder_parent
    measured = render_card(vae, DIGITS, {"elbo": -90.12345}, Run("my-vae", split="validation"))
    assert hub.card_metrics(measured) == {"elbo": -90.123} and "| elbo | -90.123 |" in measured
    with pytest.raises(ValueError, match="split must be 'test' or 'validation'"):
        Run("my-vae", split="val")


@pytest.mark.parametrize("name", NAMES)
def test_every_packaged_card_is_the_one_writers(name, release):
    """The writer, fed the card's own metrics and run record, renders exactly the packaged card."""
    card = (ROOT / "model_cards" / f"{name}.md").read_text()
    assert hub.read_card(PRETRAINED[name].packaged) == card
    model = zoo.load(name)
    again = release.release_card(name, model, hub.card_metrics(card), release.card_row(card, "training time"),
                                 release.card_row(card, "hardware"))
    assert again == card


@pytest.mark.parametrize("name", NAMES)
def test_every_packaged_card_parses_and_names_its_feature_extractor(name, release):
    card = hub.read_card(PRETRAINED[name].packaged)
    metrics = hub.card_metrics(card)
    assert PRETRAINED[name].key_metric in metrics
    assert release.card_row(card, "recipe") == f"`genzoo fit --config recipes/{name}.yaml`"
    if "fid" in metrics:
        extractor = release.data_spec(zoo.load(name)).feature_extractor
        assert extractor in zoo.list_models(task="feature-extractor")
        assert f"### Sample quality (features of `{extractor}`" in card
        assert "2,000 samples" in card and "real-data floor" in card


@pytest.mark.parametrize("name", NAMES)
def test_every_cards_usage_example_runs(name):
    """The example is derived from the model's declarations: it must work as written."""
    import torch

    card = hub.read_card(PRETRAINED[name].packaged)
    example = card.split("## Usage\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace = {"images": torch.rand(4, *zoo.load(name).image_shape) if name.endswith("classifier") else None}
    exec(compile(example, f"{name} card", "exec"), namespace)
    assert isinstance(namespace["model"], type(zoo.load(name)))
