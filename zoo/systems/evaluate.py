"""``genzoo eval``: a model's metrics on its dataset's test split, computed by its system's test loop.

The numbers are the ones ``genzoo test`` logs during training, from the same code,
seeded so the stochastic estimates (ELBO, IWAE) repeat exactly.

Image generators (the families in ``IMAGE_FAMILIES``) also get FID, KID and the Inception Score
of ``N_GENERATED`` seeded samples against the split (``fid``, ``kid``, ``is``; ``cond_acc`` for
class-conditional models), next to the real-data floor (``floor_fid``, ``floor_kid``, ``floor_is``:
the training images scored the same way). Features: the packaged digits-classifier (zoo.metrics).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoo.registry import SYSTEMS, import_object, load


def build_datamodule(spec: dict[str, Any]) -> L.LightningDataModule:
    """A datamodule from a {"class_path": "pkg.mod.Class", "init_args": {...}} spec (as saved in config.json)."""
    return import_object(spec["class_path"])(**spec.get("init_args", {}))


def evaluate(name_or_path: str, split: str = "test", seed: int = 0) -> dict[str, float]:
    """Metrics of a model on the `split` ("val" or "test") of the datamodule recorded in its config.json."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    model = load(name_or_path)
    spec = model.extra_config.get("datamodule")
    if spec is None:
        raise ValueError(f"{name_or_path} records no datamodule in its config.json; evaluate it with "
                         "genzoo test --config RECIPE --model.init_from ...")
    system = import_object(SYSTEMS[model.family])(net=model)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    L.seed_everything(seed, verbose=False)
    run = trainer.test if split == "test" else trainer.validate
    datamodule = build_datamodule(spec)
    (results,) = run(system, datamodule=datamodule, verbose=False)
    metrics = {key.split("/", 1)[1]: float(value) for key, value in sorted(results.items())}
    if model.family in IMAGE_FAMILIES:
        metrics.update(image_metrics(system, datamodule, split, seed))
    return metrics


#: families whose samples are images scored by FID/KID/IS
IMAGE_FAMILIES = ("vae", "gan", "diffusion")
#: generated samples behind every FID/KID/IS number of `genzoo eval` and the model cards
N_GENERATED = 2000


def _images(loader: DataLoader) -> torch.Tensor:
    """All images (N, C, H, W) of a loader's dataset, in dataset order."""
    return torch.cat([batch[0] for batch in DataLoader(loader.dataset, batch_size=500, shuffle=False)])


def image_metrics(system: L.LightningModule, datamodule: L.LightningDataModule, split: str, seed: int) -> dict[str, float]:
    """FID/KID/IS (+ cond_acc) of N_GENERATED samples against `split`, and the real-data floor (floor_*)."""
    from zoo.metrics import generator_metrics, real_data_floor

    real = _images(getattr(datamodule, f"{split}_dataloader")())
    train = _images(datamodule.train_dataloader())
    kwargs = system.metric_sample_kwargs() if hasattr(system, "metric_sample_kwargs") else {}
    system.net.eval()
    out = generator_metrics(system.net, real, n=N_GENERATED, seed=seed, sample_kwargs=kwargs)
    out.update({f"floor_{k}": v for k, v in real_data_floor(train, real, seed=seed).items()})
    return dict(sorted(out.items()))
