"""``genzoo eval``: a model's metrics on its dataset's test split, computed by its system's test loop.

The numbers are the ones ``genzoo test`` logs during training, from the same code,
seeded so the stochastic estimates (ELBO, IWAE) repeat exactly.
"""

from __future__ import annotations

from typing import Any

import lightning as L

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
    (results,) = run(system, datamodule=build_datamodule(spec), verbose=False)
    return {key.split("/", 1)[1]: float(value) for key, value in sorted(results.items())}
