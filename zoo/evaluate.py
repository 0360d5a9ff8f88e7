"""``genzoo eval``: a model's metrics on its dataset's test split, computed by its system's test loop.

The numbers are the ones ``genzoo test`` logs during training, from the same code, with the
system's saved hyperparameters, seeded so the stochastic estimates (ELBO, IWAE) repeat exactly.

Image generators (models whose declared output is images) also get FID, KID and the Inception Score
of ``N_GENERATED`` seeded samples against the split (``fid``, ``kid``, ``is``; ``cond_acc`` for
class-conditional models), next to the real-data floor (``floor_fid``, ``floor_kid``, ``floor_is``:
the training images scored the same way), with the feature extractor the data's spec names (none named:
no image metrics).

Molecule generators (data of kind "molecules") get MOSES's metrics (``zoo.metrics.molecules``) of
``N_MOLECULES`` seeded samples, MOSES's protocol: validity, uniqueness, novelty against the training set,
FCD/SNN/Frag/Scaf against the test and the scaffold test sets, IntDiv, Filters.

The datamodule comes from config.json (a registered name with checked arguments, never a path or a
model to load: a folder is untrusted input), or from the caller (``datamodule=``: your own data).
"""

from __future__ import annotations

from typing import Any

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoo.checks import check_args
from zoo.data.spec import DataSpec
from zoo.hub import CheckpointError
from zoo.models.contract import takes_prompts
from zoo.registry import datamodule_class, load, system_class

#: generated samples behind every FID/KID/IS number of `genzoo eval` and the model cards
N_GENERATED = 2000
#: molecules sampled behind every MOSES metric (MOSES's protocol: 30,000)
N_MOLECULES = 30_000
#: molecules sampled per call while evaluating
MOLECULE_BATCH = 1000


def build_datamodule(entry: dict[str, Any], source: Any = "config.json") -> L.LightningDataModule:
    """The registered datamodule that config.json's ``{"name", "init_args"}`` names, for evaluation: its
    arguments checked against the class's signature, and refused where they would read a file or load a model."""
    try:
        cls = datamodule_class(entry["name"])
        args = check_args(cls.__init__, dict(entry.get("init_args", {})), "datamodule.init_args")
        return cls.for_evaluation(**args)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{source}: {e}") from None


def build_system(model, source: Any = "config.json") -> L.LightningModule:
    """The model's system, with the hyperparameters it was trained with (checked like init args)."""
    cls = system_class(model.family)
    hparams = dict(model.extra_config.get("system", {}).get("init_args", {}))
    try:
        check_args(cls.__init__, hparams, "system.init_args")
        return cls(net=model, **{k: v for k, v in hparams.items() if k not in ("net", "init_from")})
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{source}: {e}") from None


def evaluate(name_or_path: str, split: str = "test", seed: int = 0,
             datamodule: L.LightningDataModule | None = None, n_molecules: int = N_MOLECULES,
             progress: bool | None = None) -> dict[str, float]:
    """Metrics of a model on the `split` ("val" or "test") of `datamodule`, by default the one its config.json records;
    `progress`: tqdm bars on stderr (the loop's batches, the sampling), always if True, never if False, on a terminal
    if None."""
    return evaluation(name_or_path, split, seed, datamodule, n_molecules, progress)[0]


def evaluation(name_or_path: str, split: str = "test", seed: int = 0,
               datamodule: L.LightningDataModule | None = None,
               n_molecules: int = N_MOLECULES,
               progress: bool | None = None) -> tuple[dict[str, float], DataSpec | None]:
    """``evaluate``'s metrics, and the spec of the data they were measured on (its feature extractor, its name)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    model = load(name_or_path)
    source = f"{name_or_path}/config.json"
    if datamodule is None:
        entry = model.extra_config.get("datamodule")
        if entry is None:
            raise ValueError(f"{name_or_path} records no registered datamodule in its config.json; evaluate it on "
                             "your data with zoo.evaluate.evaluate(..., datamodule=...) or genzoo test "
                             "--config RECIPE --model.init_from ...")
        datamodule = build_datamodule(entry, source)
    system = build_system(model, source)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[] if progress is False else [BatchBar(progress)])
    L.seed_everything(seed, verbose=False)
    run = trainer.test if split == "test" else trainer.validate
    (results,) = run(system, datamodule=datamodule, verbose=False)
    metrics = {key.split("/", 1)[1]: float(value) for key, value in sorted(results.items())}
    spec = getattr(datamodule, "spec", None)
    if spec is None and "data_spec" in model.extra_config:
        spec = DataSpec.from_json(model.extra_config["data_spec"])
    if model.outputs == "images" and spec is not None and spec.feature_extractor is not None:
        from zoo.metrics import metric_extractor

        extractor = metric_extractor(datamodule) if hasattr(datamodule, "spec") else spec.feature_extractor
        metrics.update(image_metrics(system, datamodule, extractor, split, seed, progress))
    if spec is not None and spec.kind == "molecules":
        metrics.update(molecule_metrics(system.net, datamodule, spec, n_molecules, seed, progress))
    return metrics, spec


class BatchBar(L.Callback):
    """A tqdm bar over the batches of a test or validation loop, on stderr (Lightning's own bar writes to stdout,
    where `genzoo eval --json` prints): always if `show`, on a terminal only if None."""

    def __init__(self, show: bool | None = None):
        self.show, self.bar = show, None

    def _start(self, batches: list, desc: str) -> None:
        from tqdm.auto import tqdm

        total = sum(batches)
        self.bar = tqdm(total=total if total < float("inf") else None, desc=desc, unit="batch", leave=False,
                        disable=None if self.show is None else not self.show)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer.num_test_batches, "test loop")

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer.num_val_batches, "validation loop")

    def on_test_batch_end(self, *args, **kwargs) -> None:
        self.bar.update()

    on_validation_batch_end = on_test_batch_end

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.bar.close()

    on_validation_epoch_end = on_test_epoch_end


def guidance_sweep(name_or_path: str, png: str | Path, split: str = "test", seed: int = 0,
                   datamodule: L.LightningDataModule | None = None) -> list[dict[str, float]]:
    """A text-to-image model's faithfulness and FID at guidance 1..8 (``zoo.metrics.text_to_image.guidance_sweep``),
    drawn to `png`; its rows."""
    from zoo.metrics.image import real_data_floor
    from zoo.metrics.text_to_image import guidance_sweep as sweep, plot_sweep

    model = load(name_or_path)
    if not takes_prompts(model):
        raise ValueError(f"{name_or_path} is not a text-to-image model: a guidance sweep needs prompts (its "
                         f"conditions: {', '.join(model.sample_conditions()) or 'none'})")
    datamodule = datamodule or build_datamodule(model.extra_config["datamodule"], f"{name_or_path}/config.json")
    datamodule.setup("test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    real, labels, train = _images(loader), loader.dataset.labels, _images(datamodule.train_dataloader())
    extractor = datamodule.spec.feature_extractor
    kwargs = build_system(model).metric_sample_kwargs()
    rows = sweep(model, real, labels, extractor, seed=seed, sample_kwargs=kwargs)
    plot_sweep(rows, png, real_data_floor(train, real, extractor, seed=seed)["fid"])
    return rows


def _images(loader: DataLoader) -> torch.Tensor:
    """All images (N, C, H, W) of a loader's dataset, in dataset order."""
    return torch.cat([batch[0] for batch in DataLoader(loader.dataset, batch_size=500, shuffle=False)])


def image_metrics(system: L.LightningModule, datamodule: L.LightningDataModule, extractor: str | torch.nn.Module, split: str,
                  seed: int, progress: bool | None = None) -> dict[str, float]:
    """FID/KID/IS (+ cond_acc) of N_GENERATED samples against `split`, and the real-data floor (floor_*)."""
    from zoo.metrics import generator_metrics, real_data_floor

    real = _images(getattr(datamodule, f"{split}_dataloader")())
    train = _images(datamodule.train_dataloader())
    kwargs = system.metric_sample_kwargs() if hasattr(system, "metric_sample_kwargs") else {}
    system.net.eval()
    if takes_prompts(system.net):  # text-to-image: faithfulness to prompts, FID for the split's own descriptions
        from zoo.metrics.text_to_image import text_to_image_metrics

        labels = getattr(datamodule, f"{split}_dataloader")().dataset.labels
        return text_to_image_metrics(system.net, real, labels, train, extractor, n=N_GENERATED, seed=seed,
                                     sample_kwargs=kwargs, progress=progress)
    out = generator_metrics(system.net, real, extractor, n=N_GENERATED, seed=seed, sample_kwargs=kwargs,
                            progress=progress)
    out.update({f"floor_{k}": v for k, v in real_data_floor(train, real, extractor, seed=seed).items()})
    return dict(sorted(out.items()))


def sample_molecules(model, n: int, seed: int, max_length: int | None = None,
                     progress: bool | None = None) -> list[str]:
    """`n` SMILES from `model`, ``MOLECULE_BATCH`` at a time (seeds seed, seed + 1, ...), with a progress bar;
    each at most `max_length` tokens (the sampling option that bounds a sequence, as the model declares it)."""
    from tqdm import tqdm

    from zoo.checks import check_int
    from zoo.models.contract import length_bound

    check_int("n", n, 1, model.max_samples)
    options = length_bound(model, max_length)
    out: list[str] = []
    model.eval()
    with tqdm(total=n, desc="sampling molecules", unit="mol",
              disable=None if progress is None else not progress) as bar:
        for i, start in enumerate(range(0, n, MOLECULE_BATCH)):
            batch = model.sample(min(MOLECULE_BATCH, n - start), seed=seed + i, **options)
            out.extend(batch)
            bar.update(len(batch))
    return out


def molecule_metrics(model, datamodule: L.LightningDataModule, spec: DataSpec, n: int, seed: int,
                     progress: bool | None = None) -> dict[str, float]:
    """MOSES's metrics of `n` sampled molecules: novelty against the training molecules, the rest against the
    test set (and the scaffold test set when the data has one; their statistics are cached once)."""
    from zoo.metrics.molecules import moses_metrics

    generated = sample_molecules(model, n, seed, spec.max_length - 1 if spec.max_length else None, progress)
    scaffolds = datamodule.smiles("test_scaffolds") if "test_scaffolds" in datamodule.splits else None
    metrics = moses_metrics(generated, datamodule.smiles("train"), datamodule.smiles("test"), scaffolds,
                            progress=progress)  # None: bars on a terminal only
    return {**metrics, "n_molecules": float(n)}
