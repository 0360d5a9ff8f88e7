"""Molecule generation benchmarks, side by side in one process (a busy machine slows every side alike).

    python benchmarks/molecules.py sample     # molecules/s, batch 1 and 1,000: genzoo's GPT, MOSES's CharRNN, transformers
    python benchmarks/molecules.py metrics    # seconds to score 30,000 molecules with genzoo's MOSES metrics
    python benchmarks/molecules.py curve --run runs/gpt-moses/version_0   # MOSES metrics against training time (PNG)

Sampling sides (each the best of ``--repeats``):

- **genzoo**: ``GPT.sample(n)`` of the given model (default the pretrained ``gpt-moses``), its KV-cache decoder;
  each batch stops once every molecule has ended.
- **MOSES CharRNN**: ``moses/char_rnn/model.py``'s ``CharRNN.sample`` from the installed ``molsets`` package
  (``pip install --no-deps molsets``; loaded by file path: ``import moses`` fails on current RDKit), untrained
  weights (speed does not depend on them: its loop always runs ``max_length`` = 100 steps), MOSES's default
  size (3 LSTM layers of 768) and the GPT's width (``--charrnn-hidden``).
- **transformers**: ``LlamaForCausalLM.generate`` on the same GPT weights (the folder loads in transformers),
  ``do_sample=True``, stopping at ``<eos>``, at most as many new tokens as genzoo's side.

Thread count: ``--threads`` (default: torch's), the same for every side.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch


def _load_by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def moses_charrnn(hidden: int, num_layers: int = 3):
    """MOSES's CharRNN (untrained) with its CharVocab over MOSES's training characters, from molsets' files."""
    found = importlib.util.find_spec("moses")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("MOSES's CharRNN needs the molsets package: pip install --no-deps molsets")
    root = Path(found.submodule_search_locations[0])
    model = _load_by_path("moses_char_rnn_model", root / "char_rnn" / "model.py")
    utils = _load_by_path("moses_utils", root / "utils.py")
    chars = set("#()+-123456=BCFHNOS[]clnors")  # MOSES's training characters
    vocab = utils.CharVocab(chars)
    config = argparse.Namespace(hidden=hidden, num_layers=num_layers, dropout=0.2)
    return model.CharRNN(vocab, config).eval()


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_sample(args) -> dict:
    import zoo

    gpt = zoo.load(args.model).eval()
    eos = gpt.end_id
    window = gpt.n_positions
    report: dict = {"model": args.model, "threads": torch.get_num_threads(), "sides": {}}
    for batch, total in [(1, args.n_single), (1000, args.n_batch)]:
        rows = {}
        t, out = _best(lambda: [s for i in range(total // batch) for s in gpt.sample(batch, seed=i,
                                                                                   max_new_tokens=window)], args.repeats)
        rows["genzoo"] = {"s": t, "mol_per_s": total / t, "mean_chars": sum(map(len, out)) / len(out)}

        from transformers import AutoModelForCausalLM

        folder = Path(str(zoo.model_info(args.model).packaged)) if args.model in zoo.list_models() else Path(args.model)
        hf = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
        start_id = gpt.encode("")[0]

        def transformers_side():
            outs = []
            for i in range(total // batch):
                torch.manual_seed(i)
                ids = torch.full((batch, 1), start_id)
                with torch.no_grad():
                    outs.append(hf.generate(ids, do_sample=True, max_new_tokens=window - 1, eos_token_id=eos,
                                            pad_token_id=eos, top_k=0, attention_mask=torch.ones_like(ids)))
            return outs

        t, _ = _best(transformers_side, args.repeats)
        rows["transformers"] = {"s": t, "mol_per_s": total / t}
        for hidden in sorted({768, args.charrnn_hidden}):
            rnn = moses_charrnn(hidden)
            torch.manual_seed(0)
            t, _ = _best(lambda: [s for _ in range(total // batch) for s in rnn.sample(batch, max_length=100)],
                         args.repeats)
            rows[f"moses_charrnn_{hidden}"] = {"s": t, "mol_per_s": total / t}
        for name, row in rows.items():
            row["genzoo_speedup"] = row["s"] / rows["genzoo"]["s"]
        report["sides"][f"batch {batch}: {total} molecules"] = rows
    report["genzoo_30k_estimate_s"] = 30_000 / report["sides"][f"batch 1000: {args.n_batch} molecules"]["genzoo"]["mol_per_s"]
    return report


def bench_metrics(args) -> dict:
    """genzoo's MOSES metrics of 30,000 molecules sampled from the model, the reference statistics already cached."""
    import zoo
    from zoo.data.molecules import MoleculesDataModule
    from zoo.evaluate import sample_molecules
    from zoo.metrics.molecules import moses_metrics, reference_stats

    dm = MoleculesDataModule("moses")
    dm.setup()
    start = time.perf_counter()
    test, scaffolds = reference_stats(dm.smiles("test")), reference_stats(dm.smiles("test_scaffolds"))
    stats_s = time.perf_counter() - start
    gpt = zoo.load(args.model)
    start = time.perf_counter()
    generated = sample_molecules(gpt, args.n_metrics, seed=0, max_length=gpt.n_positions)
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = moses_metrics(generated, dm.smiles("train"), test, scaffolds)
    return {"n": args.n_metrics, "reference_stats_s (cached after the first run)": stats_s, "sampling_s": sample_s,
            "metrics_s": time.perf_counter() - start, "metrics": metrics}


def bench_curve(args) -> dict:
    """MOSES's metrics of `--n-curve` molecules from every snapshot checkpoint of a run (``snapshot-*.ckpt``, one per
    epoch), against the wall-clock time the snapshot was written: what a longer run would reach. A PNG beside."""
    import zoo
    from zoo.data.molecules import MoleculesDataModule
    from zoo.evaluate import sample_molecules
    from zoo.metrics.molecules import moses_metrics, reference_stats

    run = args.run
    model = zoo.load(str(run / "pretrained")).eval()
    start = (run / "config.yaml").stat().st_mtime  # LightningCLI writes it as the fit starts
    snapshots = sorted((run / "checkpoints").glob("snapshot-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        raise SystemExit(f"{run}/checkpoints holds no snapshot-*.ckpt (recipes/gpt-moses.yaml writes one per epoch)")
    dm = MoleculesDataModule("moses")
    dm.setup()
    test = reference_stats(dm.smiles("test"))
    rows = []
    for path in snapshots:
        state = torch.load(path, map_location="cpu", weights_only=True)  # Lightning's checkpoint: tensors only
        model.load_state_dict({k[4:]: v for k, v in state["state_dict"].items() if k.startswith("net.")})
        generated = sample_molecules(model, args.n_curve, seed=0, max_length=model.n_positions)
        m = moses_metrics(generated, dm.smiles("train"), test, None, properties=False, progress=False)
        rows.append({"checkpoint": path.name, "step": state["global_step"],
                     "minutes": (path.stat().st_mtime - start) / 60, **{k: m[k] for k in
                                                                          ("valid", "unique@1000", "FCD/Test", "SNN/Test",
                                                                           "IntDiv", "Novelty")}})
        print(json.dumps(rows[-1]))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, left = plt.subplots(figsize=(6, 3.5), dpi=120)
        minutes = [r["minutes"] for r in rows]
        left.plot(minutes, [r["FCD/Test"] for r in rows], "o-", color="tab:blue")
        left.set_xlabel("training time (minutes, one CPU thread)")
        left.set_ylabel(f"FCD/Test ({args.n_curve:,} molecules)", color="tab:blue")
        right = left.twinx()
        right.plot(minutes, [r["valid"] for r in rows], "s--", color="tab:red")
        right.set_ylabel("validity", color="tab:red")
        left.set_title(f"{run}: MOSES metrics during training")
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"wrote {args.png}")
    except ImportError:
        print("matplotlib is not installed: no PNG")
    return {"run": str(run), "n": args.n_curve, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["sample", "metrics", "curve"])
    parser.add_argument("--run", type=Path, help="curve: the run folder (holding pretrained/ and checkpoints/)")
    parser.add_argument("--n-curve", type=int, default=5000, help="curve: molecules per snapshot")
    parser.add_argument("--png", type=Path, default=Path("moses_curve.png"), help="curve: the plot to write")
    parser.add_argument("--model", default="gpt-moses", help="pretrained name or folder (default gpt-moses)")
    parser.add_argument("--n-single", type=int, default=20, help="molecules sampled one at a time")
    parser.add_argument("--n-batch", type=int, default=3000, help="molecules sampled 1,000 at a time")
    parser.add_argument("--n-metrics", type=int, default=30_000, help="molecules scored (metrics)")
    parser.add_argument("--charrnn-hidden", type=int, default=192, help="CharRNN width beside MOSES's 768")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"sample": bench_sample, "metrics": bench_metrics, "curve": bench_curve}[args.what](args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
