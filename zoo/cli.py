"""The ``genzoo`` command line: list | fit | validate | test | sample | eval | push | demo.

``fit``/``validate``/``test`` are LightningCLI with YAML recipes; the others are light
(no Lightning import) so that sampling a packaged model takes a second or two.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LIGHTNING_COMMANDS = {
    "fit": "train a model from a recipe: genzoo fit --config recipes/vae-digits.yaml",
    "validate": "run a recipe's validation loop (e.g. on a checkpoint: --ckpt_path)",
    "test": "run a recipe's test loop",
}


# -- fit / validate / test: LightningCLI ---------------------------------------------------------


def run_lightning(argv: list[str]) -> None:
    """Hand `argv` (starting with fit/validate/test) to LightningCLI: recipes pick system and datamodule classes."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from zoo.systems.base import GenerativeSystem

    class ZooCLI(LightningCLI):
        def _instantiate_trainer(self, config, callbacks):
            if config.get("logger") in (None, True):  # CSV always, TensorBoard too when installed
                config["logger"] = default_loggers(config.get("default_root_dir") or "runs")
            return super()._instantiate_trainer(config, callbacks)

    ZooCLI(GenerativeSystem, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
           seed_everything_default=0, save_config_kwargs={"overwrite": True},
           args=None if argv == sys.argv[1:] else argv)  # None: LightningCLI reads sys.argv itself


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
    rows = [PRETRAINED[n] for n in list_models(args.pattern)]
    if args.json:
        print(json.dumps([{"name": r.name, "family": r.family, "dataset": r.dataset, "description": r.description,
                           "metrics": r.card_metrics(), "packaged": r.packaged is not None} for r in rows], indent=2))
        return
    print_table(["name", "family", "dataset", "description"], [[r.name, r.family, r.dataset, r.description] for r in rows])


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from zoo.images import save_arrays, save_grid
    from zoo.registry import load

    model = load(args.name)
    conditions, nrow = {}, args.nrow
    num_classes = getattr(model, "num_classes", None)
    if args.prompt is not None:
        conditions["prompt"] = args.prompt
    if args.max_new_tokens is not None:
        conditions["max_new_tokens"] = args.max_new_tokens
    if args.label is not None:
        conditions["labels"] = args.label
    elif num_classes:  # one column per class
        conditions["labels"] = torch.arange(args.n) % num_classes
        nrow = nrow or num_classes
    samples = model.sample(args.n, seed=args.seed, **conditions)
    images = isinstance(samples, torch.Tensor) and samples.dim() == 4
    if args.out and args.out.endswith(".npz"):  # the arrays themselves: synthetic training data
        if not images:
            raise ValueError(f"--out {args.out}: .npz holds image arrays; {args.name} makes "
                             f"{type(samples[0]).__name__} samples (omit --out to print them)")
        arrays = {"images": samples.cpu().numpy()}
        if "labels" in conditions:
            arrays["labels"] = torch.as_tensor(conditions["labels"]).expand(len(samples)).cpu().numpy()
        path = save_arrays(arrays, args.out)
        print(f"wrote {len(samples)} samples of {args.name} ({', '.join(arrays)}) to {path}")
        return
    if images:
        path = save_grid(samples, args.out or "samples.png", nrow=nrow, scale=args.scale)
        print(f"wrote {len(samples)} samples of {args.name} to {path}")
        return
    text = "\n\n".join(str(s) for s in samples)  # text, sequences: printed, and written to --out if given
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


def cmd_eval(args: argparse.Namespace) -> None:
    import logging

    from zoo.systems.evaluate import N_GENERATED, evaluate

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no Trainer banners around the table

    metrics = evaluate(args.name, split=args.split, seed=args.seed)
    # every FID/KID/IS number says which extractor produced it
    extractor = "digits-classifier features (FID/KID), logits (IS)" if "fid" in metrics else None
    if args.json:
        print(json.dumps({**metrics, **({"feature_extractor": extractor} if extractor else {})}, indent=2))
        return
    print_table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in metrics.items()])
    if extractor:
        print(f"fid/kid/is: {N_GENERATED:,} samples vs the {args.split} split; extractor: {extractor}; "
              "floor_*: the training images scored the same way")


def cmd_push(args: argparse.Namespace) -> None:
    from zoo import hub
    from zoo.registry import PRETRAINED

    info = PRETRAINED.get(args.name_or_dir)
    folder = info.packaged if info is not None else Path(args.name_or_dir)
    if folder is None or not folder.is_dir():
        raise ValueError(f"{args.name_or_dir!r} is neither a packaged pretrained name nor a model folder")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genzoo", description="genzoo: a model zoo of generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():  # listed for --help; parsed by LightningCLI
        sub.add_parser(name, help=help_text, add_help=False)

    p = sub.add_parser("list", help="list the pretrained models", description="List the pretrained models.")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'vae*'")
    p.add_argument("--json", action="store_true", help="print JSON (with each model's test metrics)")
    p.add_argument("--markdown", action="store_true", help="print the README's table of pretrained models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("sample", help="draw samples into a PNG grid",
                       description="Draw samples from a pretrained name, model folder or Hub repo into a PNG grid.")
    p.add_argument("name", help="pretrained name (genzoo list), model folder or Hub repo id")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same samples")
    p.add_argument("--label", type=int, help="class label for conditional models (default: one column per class)")
    p.add_argument("--out", help="output file: a PNG grid for images (default samples.png), or a .npz of the "
                                 "arrays (images (N, C, H, W) in [0, 1], and labels for conditional models: "
                                 "synthetic training data); text models print their samples and also write them "
                                 "here if given")
    p.add_argument("--prompt", help="prompt for text models")
    p.add_argument("--max-new-tokens", type=int, help="tokens to generate per text (text models; default 200)")
    p.add_argument("--nrow", type=int, help="images per row")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling factor (default 4)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="print a model's test metrics",
                       description="Evaluate a model on its dataset's test split (seeded) and print the metrics.")
    p.add_argument("name", help="pretrained name, model folder or Hub repo id")
    p.add_argument("--split", default="test", choices=["val", "test"], help="split to evaluate (default test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic estimates (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("push", help="upload a model folder to the Hugging Face Hub",
                       description="Upload a pretrained name or model folder to the Hub (needs `hf auth login`).")
    p.add_argument("name_or_dir", help="pretrained name or model folder (config.json + model.safetensors + README.md)")
    p.add_argument("--repo-id", required=True, help="target repo, 'user/name'")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("demo", help="start the Gradio demo in the browser",
                       description="Start the Gradio demo of the pretrained models (needs the demo extra: gradio).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it on the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        run_lightning(argv)
        return 0
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"genzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
