"""What every release script shares: training a recipe into a fresh run folder, a card's front matter and metric fields."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(name: str, threads: int | None = None) -> tuple[Path, float]:
    """`genzoo fit --config recipes/<name>.yaml` into runs/release-<name>; returns (run folder, wall seconds)."""
    root = ROOT / "runs" / f"release-{name}"
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "recipes" / f"{name}.yaml"),
                    "--trainer.default_root_dir", str(root)], check=True, cwd=ROOT, env=env)
    return root / "version_0", time.perf_counter() - start


def metric_fields(metrics: dict[str, float], table_digits: int = 3) -> dict[str, str]:
    """The card template's metric_names / metric_entries (model-index, 3 decimals) / metric_table fields."""
    return {
        "metric_names": "\n".join(f"- {k}" for k in metrics),
        "metric_entries": "\n".join(f"    - type: {k}\n      value: {v:.3f}" for k, v in metrics.items()),
        "metric_table": "\n".join(f"| {k} | {v:.{table_digits}f} |" for k, v in metrics.items()),
    }


FRONT_MATTER = """---
license: apache-2.0
library_name: genzoo
{pipeline_tag}tags:
{tags}
datasets:
- {dataset_id}
metrics:
{metric_names}
model-index:
- name: {name}
  results:
  - task:
      type: {task}
    dataset:
      name: {dataset}
      type: {dataset_id}
      split: {split}
    metrics:
{metric_entries}
---
"""


def front_matter(name: str, tags: list[str], task: str, dataset_id: str, dataset: str, metrics: dict[str, float],
                 split: str = "test", pipeline_tag: str | None = None) -> str:
    """A card's YAML header, '---' to '---' (the Hub reads license, tags and model-index from it).

    One template for every release script, so the cards' headers cannot drift apart; `tags` follow `genzoo`."""
    fields = metric_fields(metrics)
    return FRONT_MATTER.format(
        name=name, task=task, dataset_id=dataset_id, dataset=dataset, split=split,
        pipeline_tag=f"pipeline_tag: {pipeline_tag}\n" if pipeline_tag else "",
        tags="\n".join(f"- {t}" for t in ["genzoo", *tags]),
        metric_names=fields["metric_names"], metric_entries=fields["metric_entries"])
