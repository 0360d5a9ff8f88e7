"""The ``genzoo`` command line: list | fit | validate | test | sample | eval | score | push | demo.

``fit``/``validate``/``test`` are LightningCLI with YAML recipes; the others are light
(no Lightning import) so that sampling a packaged model takes a second or two.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from pathlib import Path

LIGHTNING_COMMANDS = {
    "fit": "train a model from a recipe: genzoo fit --config recipes/vae-digits.yaml",
    "validate": "run a recipe's validation loop (e.g. on a checkpoint: --ckpt_path)",
    "test": "run a recipe's test loop",
}
#: what `genzoo fit|validate|test --help` says first
RECIPE = ("A recipe is a YAML file naming a system (the LightningModule, with the network it trains), a datamodule "
          "and the trainer's settings; each run writes its logs, checkpoints and pretrained/ folder under the "
          "recipe's trainer.default_root_dir (runs/<recipe>/version_N/).")


# -- fit / validate / test: LightningCLI ---------------------------------------------------------


def _no_tips(record) -> bool:
    """A logging filter: Lightning's advertisements ("💡 Tip: ... try installing litlogger") are not run output."""
    return not str(record.msg).startswith("💡 Tip")


def run_lightning(argv: list[str]) -> None:
    """Hand `argv` (starting with fit/validate/test) to LightningCLI: recipes pick system and datamodule classes.
    ``--help`` is genzoo's short help (``lightning_help``); ``--help-all`` is Lightning's full one."""
    if any(arg in ("-h", "--help") for arg in argv[1:]):
        print(lightning_help(argv[0]))
        return
    from_shell = argv == sys.argv[1:]
    argv = [argv[0], *("--help" if arg == "--help-all" else arg for arg in argv[1:])]
    import logging

    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    for name in ("lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        if _no_tips not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_no_tips)

    from zoo.systems.base import GenerativeSystem

    class ZooCLI(LightningCLI):
        def init_parser(self, **kwargs):
            """As LightningCLI's, but a wrong value raises (one line in `main`) instead of printing the whole usage."""
            kwargs.setdefault("exit_on_error", False)
            return super().init_parser(**kwargs)

        def _run_subcommand(self, subcommand: str) -> None:
            """As LightningCLI's; Ctrl-C (Lightning exits 1 after its graceful shutdown) stays an interrupt."""
            from lightning.pytorch.trainer.states import TrainerStatus

            try:
                super()._run_subcommand(subcommand)
            except SystemExit:
                if self.trainer.state.status == TrainerStatus.INTERRUPTED:
                    raise KeyboardInterrupt from None
                raise

        def instantiate_classes(self) -> None:
            """As LightningCLI, then hand the datamodule the model its `synthetic` names (it never loads one)."""
            super().instantiate_classes()
            name = getattr(self.datamodule, "hparams", {}).get("synthetic")
            if name and hasattr(self.datamodule, "provide_synthetic"):
                from zoo.registry import load

                self.datamodule.provide_synthetic(load(name))

        def before_instantiate_classes(self) -> None:
            """`--ckpt_path last` is the newest last.ckpt of this recipe's runs (Lightning would look only in the
            new run's empty folder and train from scratch); a checkpoint that does not exist is a one-line error."""
            config = self.config[self.subcommand]
            root = config.trainer.get("default_root_dir") or "runs"
            config.ckpt_path = resolve_ckpt_path(config.get("ckpt_path"), root)

        def _instantiate_trainer(self, config, callbacks):
            if config.get("logger") in (None, True):  # CSV always, TensorBoard too when installed
                config["logger"] = default_loggers(config.get("default_root_dir") or "runs")
            from lightning.pytorch.callbacks import ModelCheckpoint
            from lightning.pytorch.plugins.io import CheckpointIO

            from zoo.systems.callbacks import AtomicCheckpointIO, RunCheckpoint

            listed = config.get("callbacks")
            listed = [] if listed is None else list(listed) if isinstance(listed, list) else [listed]
            if config.get("enable_checkpointing") is not False and not any(
                    isinstance(cb, ModelCheckpoint) for cb in [*listed, *callbacks]):
                listed.append(RunCheckpoint())  # last.ckpt every epoch and the best validation checkpoint
            config["callbacks"] = listed
            plugins = config.get("plugins")
            plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                plugins.append(AtomicCheckpointIO())  # a kill mid-write never leaves a truncated checkpoint
            config["plugins"] = plugins
            return super()._instantiate_trainer(config, callbacks)

    args = nested_nulls(argv)
    if from_shell:  # LightningCLI reads sys.argv itself (and warns when given both)
        sys.argv[1:] = args
    ZooCLI(GenerativeSystem, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
           seed_everything_default=0, save_config_kwargs={"overwrite": True}, args=None if from_shell else args)


def lightning_help(command: str) -> str:
    """``genzoo fit|validate|test --help``: the recipes, the registered systems and datamodules, and how to change
    a value, resume and fine-tune (Lightning's own 500-line help is ``--help-all``)."""
    from zoo.registry import DATAMODULES, FAMILIES

    folder = recipes_folder()
    recipes = [] if folder is None else sorted(folder.glob("*.yaml"))
    summaries = {path.stem: recipe_summary(path) for path in recipes}
    example = "vae-digits" if "vae-digits" in summaries else next(iter(summaries), "my-recipe")
    config = f"--config {folder.name if folder == Path('recipes') else folder}/{example}.yaml" if folder else \
        "--config RECIPE.yaml"
    dotted = lambda target: target.replace(":", ".")  # noqa: E731  ("module:Class" -> jsonargparse's class path)
    datamodules = dict.fromkeys([*map(dotted, DATAMODULES.values()), *(d for _, d in summaries.values() if d)])
    width = max(map(len, summaries), default=0)
    lines = [f"usage: genzoo {command} --config RECIPE [--KEY VALUE ...]", "",
             textwrap.fill(f"{LIGHTNING_COMMANDS[command].split(':')[0].capitalize()}. {RECIPE}", 100), ""]
    if recipes:
        lines += [f"recipes ({folder}/; one named like a pretrained model reproduces it):"]
        lines += [f"  {name:<{width}}  {textwrap.shorten(description, 100 - width, placeholder='...')}"
                  for name, (description, _) in summaries.items()]
    else:
        lines += ["recipes: the recipes/ folder of the genzoo repository (none found here)"]
    lines += ["", "systems (--model CLASS) of each family, and the network each trains (--model.init_args.net):"]
    systems = {family: dotted(f.system) for family, f in FAMILIES.items()}
    fw, sw = max(map(len, systems)), max(map(len, systems.values()))
    lines += [f"  {family:<{fw}}  {system:<{sw}}  {dotted(FAMILIES[family].model)}"
              for family, system in systems.items()]
    lines += ["", "datamodules (--data CLASS):", *(f"  {d}" for d in datamodules)]
    lines += ["", "change any value of the recipe (--print_config shows them all):",
              f"  genzoo {command} {config} --trainer.max_epochs 5 --model.init_args.lr 0.001",
              f"  genzoo {command} {config} --model.init_args.net.init_args.latent_dim 8   (the network's)",
              f"  genzoo {command} {config} --data zoo.data.images.ImageFolderDataModule --data.root my_images/"]
    if command == "fit":
        lines += ["resume, fine-tune:",
                  f"  genzoo fit {config} --ckpt_path last   (the newest run's last.ckpt under its "
                  "trainer.default_root_dir)",
                  f"  genzoo fit {config} --model.init_from {example}   (start from a pretrained model's weights)"]
    else:
        lines += ["a checkpoint:",
                  f"  genzoo {command} {config} --ckpt_path last   (the newest run's last.ckpt; or a .ckpt path)"]
    lines += ["", f"Lightning's full help (every trainer, model and data option): genzoo {command} --help-all"]
    return "\n".join(lines)


def recipes_folder() -> Path | None:
    """The recipes: ./recipes when it holds some, else those beside the package (a source checkout)."""
    for folder in (Path("recipes"), Path(__file__).resolve().parents[1] / "recipes"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return None


def recipe_summary(path: Path) -> tuple[str, str | None]:
    """(a one-line description, the datamodule's class path) of a recipe: the pretrained model's description
    when it is named like one, else its first comment line; the class path from its data section."""
    import yaml

    from zoo.registry import PRETRAINED

    try:
        text = path.read_text(encoding="utf-8")
        data = (yaml.safe_load(text) or {}).get("data")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as e:
        return f"(unreadable: {type(e).__name__})", None
    comment = next((line.lstrip("# ").strip() for line in text.splitlines() if line.lstrip("# ").strip()
                    and line.startswith("#")), "")
    info = PRETRAINED.get(path.stem)
    description = info.description if info is not None else re.split(r":(?:\s|$)", comment, maxsplit=1)[0]
    class_path = data.get("class_path") if isinstance(data, dict) else None
    return description, class_path if isinstance(class_path, str) else None


def resolve_ckpt_path(ckpt_path: str | None, root: str) -> str | None:
    """``last``: the ``checkpoints/last.ckpt`` of the newest run under `root` (``<root>/version_N``, highest N
    that has one), a ValueError if none has; a local path: checked to exist. Others (``best``, URLs) as given."""
    import re

    if ckpt_path is None:
        return None
    ckpt_path = str(ckpt_path)
    if ckpt_path == "last":
        runs = [(int(m.group(1)), path) for path in Path(root).glob("version_*/checkpoints/last.ckpt")
                if (m := re.fullmatch(r"version_(\d+)", path.parent.parent.name))]
        if not runs:
            raise ValueError(f"--ckpt_path last: no run in {root}/ has a checkpoints/last.ckpt to resume "
                             "(start it without --ckpt_path, or give the checkpoint's path)")
        return str(max(runs)[1])
    if ckpt_path in ("best", "hpc", "registry") or "://" in ckpt_path:
        return ckpt_path
    if not Path(ckpt_path).is_file():
        raise ValueError(f"--ckpt_path {ckpt_path}: no such checkpoint file (`--ckpt_path last` resumes the newest "
                         f"run in {root}/)")
    return ckpt_path


def nested_nulls(argv: list[str]) -> list[str]:
    """``--model.net.num_classes null`` as ``--model.net '{"num_classes": null}'``, which means the same.

    jsonargparse (4.53) re-parses a nested subclass's argument as the text ``--key=None`` and then
    rejects the string "None"; given as a dict, null stays null (merged with the recipe's other values).
    """
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
        if not eq and i + 1 < len(argv):
            value = argv[i + 1]
        if key.startswith("--") and key.count(".") >= 2 and value in ("null", "None", "~"):
            parent, _, name = key.rpartition(".")
            out += [parent, json.dumps({name: None})]
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    return out


def default_loggers(root: str) -> list:
    """A CSVLogger, plus a TensorBoardLogger writing to the same version folder when tensorboard is installed."""
    from importlib.util import find_spec

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    csv = CSVLogger(root, name="")
    if find_spec("tensorboard") is None and find_spec("tensorboardX") is None:
        return [csv]
    return [csv, TensorBoardLogger(root, name="", version=csv.version, default_hp_metric=False)]


# -- light commands --------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> None:
    from zoo.registry import PRETRAINED, list_models, markdown_table

    if args.markdown:
        print(markdown_table())
        return
    rows = [PRETRAINED[n] for n in list_models(args.pattern, task=args.task)]
    if args.json:
        print(json.dumps([{"name": r.name, "family": r.family, "dataset": r.dataset, "tasks": list(r.tasks),
                           "description": r.description, "metrics": r.card_metrics(),
                           "packaged": r.packaged is not None} for r in rows], indent=2))
        return
    def key_metric(info) -> str:
        value = info.card_metrics().get(info.key_metric)
        return "not packaged" if value is None else f"{info.key_metric} {value:.4g}"

    print_table(["name", "family", "dataset", "tasks", "key metric (its card)", "description"],
                [[r.name, r.family, r.dataset, ", ".join(r.tasks), key_metric(r), r.description] for r in rows])


#: `genzoo sample` flag -> the ``sample`` keyword it sets. Only flags the user gives are passed: the model's
#: declarations (``model.accepts()``) decide what is valid, and a wrong one is a one-line error listing them.
SAMPLE_FLAGS = {"label": "labels", "prompt": "prompt", "max_new_tokens": "max_new_tokens", "steps": "steps",
                "guidance": "guidance", "sampler": "sampler", "temperature": "temperature", "top_k": "top_k",
                "top_p": "top_p", "length": "length"}


def class_label(model, name: str, label: str) -> int:
    """--label as a class id: an integer, or one of the class names the model's data spec saved ("cat")."""
    names = list((getattr(model, "extra_config", {}).get("data_spec") or {}).get("class_names") or [])
    if label in names:
        return names.index(label)
    try:
        return int(label)
    except ValueError:
        known = f"one of {', '.join(names)} or their ids 0..{len(names) - 1}" if names else "an integer class id"
        raise ValueError(f"--label {label!r}: {name} takes {known}") from None


#: `genzoo sample --out` suffix of image models -> what it holds
IMAGE_FILES = {".png": "a PNG grid", ".npz": "the arrays"}


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from zoo.images import save_arrays, save_grid
    from zoo.registry import load

    writable(args.out, "--out")  # every check of the arguments before any sampling
    model = load(args.name)
    suffix = Path(args.out).suffix.lower() if args.out else None
    if model.outputs == "images" and suffix is not None and suffix not in IMAGE_FILES:
        raise ValueError(f"--out {args.out}: {args.name} outputs images, written as "
                         f"{' or '.join(f'{k} ({v})' for k, v in IMAGE_FILES.items())}")
    if model.outputs != "images" and suffix in IMAGE_FILES:
        raise ValueError(f"--out {args.out}: {suffix} holds images ({IMAGE_FILES[suffix]}); {args.name} outputs "
                         f"{model.outputs}, written as text (e.g. --out samples.txt; omit --out to print them)")
    npz = suffix == ".npz"
    if args.device:
        model = on_device(model, args.device)
    options = {key: getattr(args, flag) for flag, key in SAMPLE_FLAGS.items() if getattr(args, flag) is not None}
    if args.progress is not None and "progress" in model.accepts():  # a bar over the steps, where the model has one
        options["progress"] = args.progress
    if "labels" in options:
        options["labels"] = class_label(model, args.name, options["labels"])
    nrow = args.nrow
    if "labels" not in options and "labels" in model.sample_conditions():  # one column per class
        options["labels"] = torch.arange(args.n) % model.num_classes
        nrow = nrow or model.num_classes
    try:
        samples = model.sample(args.n, seed=args.seed, **options)
    except ValueError as e:
        raise ValueError(f"{args.name}: {e}") from None
    if npz:  # the arrays themselves: synthetic training data
        arrays = {"images": samples.cpu().numpy()}
        if "labels" in options:
            arrays["labels"] = torch.as_tensor(options["labels"]).expand(len(samples)).cpu().numpy()
        path = save_arrays(arrays, args.out)
        print(f"wrote {len(samples)} samples of {args.name} ({', '.join(arrays)}) to {path}")
        return
    if model.outputs == "images":
        path = save_grid(samples.cpu(), args.out or "samples.png", nrow=nrow, scale=args.scale)
        print(f"wrote {len(samples)} samples of {args.name} to {path}")
        return
    # text, sequences, vectors: printed, and written to --out if given
    one_line = all(isinstance(s, str) and "\n" not in s for s in samples) and getattr(model, "end_id", None) is not None
    # sequences that end (SMILES) one per line, as .smi files hold them; free text a paragraph each
    text = ("\n" if one_line else "\n\n").join(s if isinstance(s, str) else str(s.tolist()) for s in samples)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


def writable(path: str | None, flag: str) -> None:
    """Refuse, before any work, an output path that cannot be written: a folder, a name under a file, no permission.
    Missing folders are fine (they are created)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give the name of a file (in it, or elsewhere)")
    existing = next(folder for folder in target.absolute().parents if folder.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(target if target.exists() else existing, os.W_OK):
        where = target if target.exists() else f"in {existing}"
        raise ValueError(f"{flag} {path}: no permission to write {where}")


def on_device(model, device: str):
    """`model` moved to `device` ("cpu", "cuda", "cuda:1", "mps"...), or a ValueError if this machine has none."""
    import torch

    try:
        target = torch.device(device)
        torch.empty(0, device=target)  # fails here, not mid-sampling, when the device is missing
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f"--device {device!r} is not available here: {str(e).strip().splitlines()[0]}") from None
    return model.to(target)


def cmd_eval(args: argparse.Namespace) -> None:
    import logging

    from zoo.evaluate import N_GENERATED, evaluation

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no Trainer banners around the table

    writable(args.guidance_sweep, "--guidance-sweep")
    datamodule = recipe_datamodule(args.config) if args.config else None
    metrics, spec = evaluation(args.name, split=args.split, seed=args.seed, datamodule=datamodule, n_molecules=args.n,
                               progress=args.progress)
    # every FID/KID/IS number says which extractor produced it
    extractor = f"{spec.feature_extractor} features (FID/KID), logits (IS)" if "fid" in metrics else None
    if args.json:
        print(json.dumps({**metrics, **({"feature_extractor": extractor} if extractor else {})}, indent=2))
        return
    if "valid" in metrics:  # a molecule generator: MOSES's table, genzoo's row beside the published ones
        from zoo.metrics.molecules import format_table

        print(format_table(metrics, f"genzoo {Path(args.name).name}"))
        print(f"\nMOSES's metrics of {int(metrics['n_molecules']):,} sampled molecules (MOSES's protocol: 30,000; FCD "
              "and Scaf are biased upwards at small --n) against the test and scaffold test sets of "
              f"{spec.name}; the test loss on {args.split}: {metrics.get('loss', float('nan')):.4f} nats per token")
        return
    print_table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in metrics.items()])
    if extractor:
        print(f"fid/kid/is: {N_GENERATED:,} samples vs the {args.split} split of {spec.name}; extractor: {extractor}; "
              "floor_*: the training images scored the same way")
    if "digit_acc" in metrics:
        print("digit/thickness/slant/all_acc: does each image show what its prompt (a phrasing never trained on) "
              "says; held_out_*: on the combinations never in training (zoo.metrics.text_to_image)")
    if args.guidance_sweep:
        from zoo.evaluate import guidance_sweep

        rows = guidance_sweep(args.name, args.guidance_sweep, split=args.split, seed=args.seed, datamodule=datamodule)
        keys = ["guidance", "digit_acc", "thickness_acc", "slant_acc", "all_acc", "held_out_all_acc", "fid"]
        print_table(keys, [[f"{r[k]:.3f}" for k in keys] for r in rows])
        print(f"wrote the guidance sweep to {args.guidance_sweep}")


def recipe_datamodule(path: str):
    """The datamodule of a recipe's ``data`` section (class_path + init_args): your own data, from your own file."""
    import importlib

    import yaml

    try:
        data = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("data")
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"--config {path}: cannot read it as a recipe ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("class_path"), str):
        raise ValueError(f"--config {path}: needs a data section with a class_path (and init_args)")
    module, _, name = data["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"--config {path}: data.class_path {data['class_path']!r} cannot be imported ({e})") from None
    return cls(**(data.get("init_args") or {}))


def cmd_score(args: argparse.Namespace) -> None:
    """Anomaly scores of DATA under a model (zoo.anomaly.Detector) as a CSV: id, score (and label)."""
    import csv

    from zoo.anomaly import Detector, model_kind

    writable(args.out, "--out")
    detector = Detector(args.model, contamination=0.1 if args.contamination is None else args.contamination,
                        per_dimension=args.per_dimension, random_state=args.seed)
    trained = detector.model_
    shape = tuple(trained.image_shape) if trained is not None and model_kind(trained) == "images" else None
    data, ids = read_score_data(args.data, "DATA", shape, args.image_size, args.channels)
    fit_data = data if args.fit is None else read_score_data(args.fit, "--fit", shape or (
        tuple(data.shape[1:]) if getattr(data, "ndim", 0) == 4 else None), args.image_size, args.channels)[0]
    detector.fit(fit_data)
    scores = detector.decision_scores_ if args.fit is None else detector.decision_function(data)
    labels = (scores > detector.threshold_).astype(int) if args.contamination is not None else None
    out = Path(args.out)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "score"] + (["label"] if labels is not None else []))
        for i, item in enumerate(ids):
            writer.writerow([item, repr(float(scores[i]))] + ([int(labels[i])] if labels is not None else []))
    summary = f"wrote {len(ids)} scores of {args.model} to {out} (higher = more anomalous)"
    if labels is not None:
        summary += (f"; threshold {detector.threshold_:.4g} at contamination {args.contamination}: "
                    f"{int(labels.sum())} labelled anomalous")
    print(summary)


def read_score_data(path: str, name: str, image_shape: tuple | None, image_size: int | None,
                    channels: int | None):
    """(data, ids) of `path`: a .npy table (N, D) or images (N, C, H, W) (uint8 divided by 255), a .csv table
    (a header row allowed), a folder of images (decoded to the model's shape or --image-size/--channels), or a
    text file of one item per line (blank lines skipped)."""
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{name} {path!r} does not exist")
    if p.is_dir():
        from zoo.data.images import decode, find_images

        files, _ = find_images(p)
        if not files:
            raise ValueError(f"{name} {path!r} holds no images (PNG, JPEG, BMP, WebP, GIF)")
        c, size = (image_shape[0], image_shape[1]) if image_shape else (channels or 1, image_size)
        if size is None:
            raise ValueError(f"{name} {path!r}: give --image-size (this model takes no image shape of its own)")
        images = np.stack([decode(f, size, c) for f in files]).astype(np.float32) / 255
        return images, [str(f.relative_to(p)) for f in files]
    if p.suffix == ".npy":
        try:
            array = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{name} {path!r} is not a plain numeric .npy array ({e})") from None
        if array.dtype == np.uint8 and array.ndim in (3, 4):
            array = array.astype(np.float32) / 255
        if array.ndim == 3:  # (N, H, W): one channel
            array = array[:, None]
        return array, [str(i) for i in range(len(array))]
    if p.suffix == ".csv":
        lines = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            [float(v) for v in lines[0].split(",")] if lines else None
        except ValueError:
            lines = lines[1:]  # a header row
        try:
            table = np.array([[float(v) for v in line.split(",")] for line in lines])
        except ValueError as e:
            raise ValueError(f"{name} {path!r}: every row must be comma-separated numbers ({e})") from None
        if table.ndim != 2:
            raise ValueError(f"{name} {path!r}: rows must have the same number of values")
        return table, [str(i) for i in range(len(table))]
    numbered = [(i + 1, line) for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()) if line.strip()]
    return [line for _, line in numbered], [str(i) for i, _ in numbered]


def cmd_push(args: argparse.Namespace) -> None:
    from zoo import hub
    from zoo.registry import PRETRAINED

    info = PRETRAINED.get(args.name_or_dir)
    folder = info.packaged if info is not None else Path(args.name_or_dir)
    if folder is None or not folder.is_dir():
        raise ValueError(f"{args.name_or_dir!r} is neither a packaged pretrained name nor a model folder")
    from huggingface_hub import get_token

    if get_token() is None:
        raise ValueError(f"not logged in to the Hugging Face Hub: run `hf auth login` (or set HF_TOKEN) with a "
                         f"token that may write to {args.repo_id}")
    url = hub.push(folder, args.repo_id, private=args.private)
    print(f"pushed {folder} to https://huggingface.co/{args.repo_id} ({url})")


def cmd_demo(args: argparse.Namespace) -> None:
    from importlib.util import find_spec

    if find_spec("gradio") is None:
        raise ValueError("the demo needs gradio: pip install 'genzoo[demo]'")
    load_demo().main(args.host, args.port)


def load_demo():
    """demo/app.py, installed as ``zoo.demo.app`` (pyproject maps demo/ there)."""
    import importlib

    return importlib.import_module("zoo.demo.app")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises (``main`` prints it as one line, like every other error)."""

    def error(self, message: str):
        hint = "" if message.endswith("--help`)") else f" (see `{self.prog} --help`)"  # a subcommand's, passed up
        raise argparse.ArgumentError(None, message + hint)


def text(value: str) -> str:
    """An argument that is text (a prompt, a class name), not a path: it must be UTF-8. Python decodes other bytes
    of the command line as lone surrogates, which nothing downstream can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        code = ord(value[e.start])
        byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise argparse.ArgumentTypeError(f"not UTF-8 text ({byte} at character {e.start}); give it in UTF-8") \
            from None
    return value


def build_parser() -> argparse.ArgumentParser:
    from zoo.registry import TASKS

    from zoo import __version__

    parser = Parser(prog="genzoo", description="genzoo: a model zoo of generative models.")
    parser.add_argument("--version", action="version", version=f"genzoo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():  # listed for --help; parsed by LightningCLI
        sub.add_parser(name, help=help_text, add_help=False)

    p = sub.add_parser("list", help="list the pretrained models", description="List the pretrained models.")
    p.add_argument("pattern", nargs="?", type=text, help="shell-style filter, e.g. 'vae*'")
    p.add_argument("--task", choices=TASKS, help="only the models for this task")
    p.add_argument("--json", action="store_true", help="print JSON (with each model's test metrics)")
    p.add_argument("--markdown", action="store_true", help="print the README's table of pretrained models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("sample", help="draw samples into a PNG grid",
                       description="Draw samples from a pretrained name, model folder or Hub repo into a PNG grid. "
                                   "Each model takes only the options it declares (e.g. ddpm-digits: --steps, "
                                   "--guidance; gpt-shakespeare-char: --prompt, --temperature, --top-k); another "
                                   "is an error listing the ones it takes.")
    p.add_argument("name", help="pretrained name (genzoo list), model folder or Hub repo id")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same samples")
    p.add_argument("--label", type=text, help="class of conditional models: an id, or a class name the model "
                                              "saved (an image folder's subfolder, e.g. cat); default: one column "
                                              "per class")
    p.add_argument("--out", help="output file: a PNG grid for images (default samples.png), or a .npz of the "
                                 "arrays (images (N, C, H, W) in [0, 1], and labels for conditional models: "
                                 "synthetic training data); text models print their samples and also write them "
                                 "here if given")
    p.add_argument("--prompt", type=text, help="prompt for text models")
    p.add_argument("--max-new-tokens", type=int, help="tokens to generate per text (text models; default 200)")
    p.add_argument("--temperature", type=float,
                   help="sampling temperature (text models; 0 = greedy; default: the model's, 1 unless its card says)")
    p.add_argument("--top-k", type=int, help="keep the k likeliest tokens (text models)")
    p.add_argument("--top-p", type=float, help="nucleus sampling: keep the likeliest tokens up to probability p "
                                               "(text models)")
    p.add_argument("--steps", type=int, help="denoising steps (diffusion; default 50)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (conditional diffusion; "
                                                  "1 = conditional only; default: the model's)")
    p.add_argument("--sampler", type=text, help="ddim (deterministic, default) or ddpm (ancestral) (diffusion)")
    p.add_argument("--length", type=int, help="steps per sequence (HMMs; default 200)")
    p.add_argument("--device", type=text, help="where to sample: cpu (default), cuda, cuda:1, mps...")
    p.add_argument("--nrow", type=int, help="images per row")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling factor (default 4)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, help="a progress bar on stderr over the "
                   "sampling steps, for models that have one (diffusion, GPT); default: on a terminal")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="print a model's test metrics",
                       description="Evaluate a model on its dataset's test split (seeded) and print the metrics.")
    p.add_argument("name", help="pretrained name, model folder or Hub repo id")
    p.add_argument("--split", default="test", choices=["val", "test"], help="split to evaluate (default test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic estimates (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--n", type=int, default=30_000, help="molecule generators: molecules sampled for MOSES's metrics "
                                                         "(default 30,000, MOSES's protocol)")
    p.add_argument("--config", help="a recipe (YAML) whose data section is the datamodule to evaluate on (your own "
                                    "data); default: the registered datamodule the model's config.json names")
    p.add_argument("--guidance-sweep", metavar="PNG", help="text-to-image models: also measure faithfulness and FID "
                                                           "at guidance 1..8 (smaller samples) and plot them to PNG")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bars on stderr (the test "
                   "loop, the sampling behind the metrics); default: on a terminal")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("score", help="write anomaly scores of data to a CSV",
                       description="Score DATA for anomalies (higher = more unusual) under a model and write a CSV "
                                   "of id, score (and label with --contamination). MODEL is a pretrained name, model "
                                   "folder or Hub repo id, or a family (gmm, nb, vae, diffusion, hmm) trained on "
                                   "the --fit data (default: DATA itself, the unsupervised setting).")
    p.add_argument("model", help="pretrained name, model folder, Hub repo id, or a family name to train")
    p.add_argument("data", help="a .npy table (N, D) or images (N, C, H, W), a .csv table, a folder of images, "
                                "or a text file with one item per line")
    p.add_argument("--out", default="scores.csv", help="the CSV to write (default scores.csv)")
    p.add_argument("--contamination", type=float, help="expected fraction of anomalies in (0, 0.5]: adds a label "
                                                       "column, 1 above the (1 - contamination) quantile of the "
                                                       "--fit data's scores")
    p.add_argument("--fit", help="normal data to train the family on / set the threshold with (default: DATA)")
    p.add_argument("--per-dimension", action="store_true", help="image scores per pixel value instead of the total")
    p.add_argument("--image-size", type=int, help="side images of a folder are decoded to (default: the model's)")
    p.add_argument("--channels", type=int, help="1 (grey) or 3 (RGB) for a folder of images (default: the model's, "
                                                "else 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and stochastic scores (default 0)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("push", help="upload a model folder to the Hugging Face Hub",
                       description="Upload a pretrained name or model folder to the Hub (needs `hf auth login`).")
    p.add_argument("name_or_dir", help="pretrained name or model folder (config.json + model.safetensors + README.md)")
    p.add_argument("--repo-id", required=True, type=text, help="target repo, 'user/name'")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("demo", help="start the Gradio demo in the browser",
                       description="Start the Gradio demo of the pretrained models (needs the demo extra: gradio).")
    p.add_argument("--host", default="127.0.0.1", type=text,
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it on the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """genzoo's commands. Every error is one line on stderr (``error_line``): bad input, a genzoo error, a missing
    or unwritable file, the network or the Hub exit 2; Ctrl-C exits 130; anything else (a bug) exits 1, with its
    traceback under ``genzoo --debug COMMAND ...``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv[:1]
    argv = argv[1:] if debug else argv
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        if command in LIGHTNING_COMMANDS:
            run_lightning(argv)
        else:
            args = build_parser().parse_args(argv)
            args.func(args)
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001  (what was saved stays; the line says what happened)
        if debug:
            raise
        if isinstance(e, BrokenPipeError):  # `genzoo ... | head`: the reader has gone; nothing to say to it
            silence_stdout()
            return 141
        line, code = error_line(e, command)
        close_bars()
        print(f"genzoo{' ' + command if command else ''}: {line}", file=sys.stderr)
        return code
    return 0


def error_line(error: BaseException, command: str | None) -> tuple[str, int]:
    """The one line ``genzoo`` prints for `error`, and its exit status. The one place errors become lines."""
    if isinstance(error, KeyboardInterrupt):
        resume = " (resume it: --ckpt_path last)" if command == "fit" else ""
        return f"interrupted{resume}", 130
    message = " ".join(str(error).split())  # one line, whatever the message's own layout
    if isinstance(error, argparse.ArgumentError):  # argparse, and jsonargparse's nested report of a wrong value
        return f"error: {argument_line(str(error), command)}", 2
    hub_message = hub_line(error, message)
    if hub_message is not None:
        return f"error: {hub_message}", 2
    if isinstance(error, OSError) and error.filename is not None:  # a file: missing, a folder, no permission...
        return f"error: {error.filename}: {error.strerror or message}", 2
    if isinstance(error, ValueError | FileNotFoundError) or is_genzoo_error(error):  # bad input, said by genzoo
        return f"error: {message}", 2
    where = f" {command}" if command else ""
    return (f"error: {type(error).__name__}: {message} (run `genzoo --debug{where} ...` for the traceback)", 1)


def is_genzoo_error(error: BaseException) -> bool:
    """Whether `error`'s class, or one it derives from, is genzoo's own (zoo.hub.CheckpointError...)."""
    return any(cls.__module__ == "zoo" or cls.__module__.startswith("zoo.") for cls in type(error).__mro__)


def loaded(module: str, name: str) -> tuple[type, ...]:
    """``(module.name,)`` if `module` is imported already (an error of its can come only from it), else ()."""
    cls = getattr(sys.modules.get(module), name, None)
    return (cls,) if isinstance(cls, type) else ()


def hub_line(error: BaseException, message: str) -> str | None:
    """The line for a network or Hugging Face Hub error (no connection, offline mode, not logged in, a refusal),
    with what to do about it; None for other errors."""
    import socket
    import urllib.error
    from urllib.parse import urlparse

    hub_errors = sys.modules.get("huggingface_hub.errors")
    hub = type(error).__module__.startswith("huggingface_hub")
    login = "to push, log in once with `hf auth login` (or set HF_TOKEN)"
    if hub_errors is not None and isinstance(error, hub_errors.LocalTokenNotFoundError):
        return f"not logged in to the Hugging Face Hub: {login}"
    if hub_errors is not None and isinstance(error, hub_errors.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if status in (401, 403):
            return f"the Hugging Face Hub refused the request ({first}): {login}, with a token that may write there"
        return f"the Hugging Face Hub: {first}"
    network = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError,
               *loaded("httpx2", "TransportError"), *loaded("httpx", "TransportError"),
               *loaded("requests", "ConnectionError"), *loaded("requests", "Timeout"))
    if not isinstance(error, network):
        return None
    try:
        host = error.request.url.host  # httpx: the request that failed
    except (AttributeError, RuntimeError):
        host = None
    endpoint = getattr(sys.modules.get("huggingface_hub.constants"), "ENDPOINT", None)  # the Hub in use (HF_ENDPOINT)
    hub = hub or bool(host and endpoint and host == urlparse(endpoint).hostname)
    reason = getattr(error, "reason", None) if isinstance(error, urllib.error.URLError) else None
    detail = " ".join(str(reason).split()) if reason is not None else message or type(error).__name__
    where = f"cannot reach {host}" if host else "cannot reach the Hugging Face Hub" if hub else "a network error"
    return f"{where} ({detail}): check the network connection" + (f"; {login}" if hub else "")


def argument_line(message: str, command: str | None = None) -> str:
    """One line for a usage error. jsonargparse reports a wrong value as nested lines (each Union subtype tried,
    ``Parser key "net":`` per level, the given value); this keeps the full key and the innermost reason:
    ``--model.init_args.net.init_args.latent_dim: Expected int. Got value: x``."""
    keys, reasons, given, nested = [], [], None, False
    noise = re.compile(r"(Does not validate against any of the Union subtypes|Subtypes: |Errors:|Given value type: "
                       r"|Expected a <class 'NoneType'>$)")
    for line in message.splitlines():
        line = line.strip().removeprefix("- ").strip()
        if match := re.match(r'Parser key "([^"]+)":\s*(.*)', line):
            keys.append(("init_args." if nested else "") + match[1])
            nested, line = False, match[2]
        elif line.startswith("Problem with given class_path"):
            nested = True
            continue
        elif line.startswith("Given value: "):
            given = given or line.removeprefix("Given value: ")
            continue
        if line and not noise.match(line):
            reasons.append(re.sub(r"(?:an? )?<class '(?:[\w.]+\.)?(\w+)'>", r"\1", line))
    hint = f" (see `genzoo {command} --help`)" if command in LIGHTNING_COMMANDS else ""
    if not keys:
        return " ".join(message.split()) + ("" if "--help" in message else hint)
    reason = reasons[-1] if reasons else "invalid value"
    if given and "Got value" not in reason and not given.startswith("NestedArg("):
        reason += f" (given: {given})"
    return f"--{'.'.join(keys)}: {reason}{hint}"


def close_bars() -> None:
    """End the progress bars an error cut short (tqdm's), so that the error's line is a line of its own."""
    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar interrupted inside its own constructor: nothing left to end
            pass


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush does not report the broken pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
