"""Make the pretrained `gpt-shakespeare-char` from its recipe: train, package, evaluate, write the model card.

    python scripts/release_gpt.py                                    # train (recipe), then package
    python scripts/release_gpt.py --run runs/release-gpt-shakespeare-char/version_0 --train-time "366 s"

Writes zoo/pretrained/gpt-shakespeare-char/ (config.json, model.safetensors, README.md, tokenizer.json,
tokenizer_config.json, generation_config.json: a genzoo folder and a transformers checkpoint at once)
and model_cards/gpt-shakespeare-char.md (the same card). The card's metrics are what
`genzoo eval gpt-shakespeare-char` prints, measured here. `--threads 1` trains single-threaded
(OMP_NUM_THREADS=1): on a shared 2-core machine that is much faster than two contended threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch
from release_common import front_matter, metric_fields, train

ROOT = Path(__file__).resolve().parents[1]
NAME = "gpt-shakespeare-char"

CARD = """{front_matter}
# {name}

nanoGPT's "baby GPT" configuration on tinyshakespeare, character level: a 4-layer, 4-head, 128-wide
decoder-only transformer with a 64-character context, in Llama's layout (RMSNorm, rotary positions,
SwiGLU MLP, tied embeddings). The folder is a genzoo model *and* a transformers checkpoint
(`LlamaForCausalLM` + `PreTrainedTokenizerFast`):

```python
import zoo
gpt = zoo.load("{name}")
gpt.generate("ROMEO:", max_new_tokens=200, temperature=0.8, seed=0)   # the continuation
for piece in gpt.stream("ROMEO:", max_new_tokens=200):                # streamed
    print(piece, end="")
```

```python
from transformers import pipeline                       # no trust_remote_code, works offline
pipe = pipeline("text-generation", model="path/to/{name}")
pipe("ROMEO:", max_new_tokens=50, do_sample=True)       # keep prompt + new tokens <= 64: transformers
                                                        # does not slide the window, and past it quality drops
```

From the shell: `genzoo sample {name} --prompt "ROMEO:" --n 2`.

## Training

| | |
|---|---|
| recipe | `genzoo fit --config recipes/{name}.yaml` (nanoGPT's CPU baby-GPT settings) |
| data | tinyshakespeare, 1,115,394 characters; contiguous split: first 90% train, last 10% validation |
| tokenizer | characters of the training text (65) + `<unk>` for characters never seen (66 ids) |
| optimisation | AdamW (0.9, 0.99), weight decay 0.1, lr 1e-3 after 100 warm-up steps, cosine to 1e-4 at 2,000 steps, clip 1.0, batch 12 x 64 tokens, dropout 0 |
| seed | 0 (`seed_everything`) |
| hardware | {hardware} |
| training time | {train_time} |
| parameters | {params:,} ({size_kb:.0f} KB in safetensors) |

## Validation metrics

Measured by `genzoo eval {name}` over every non-overlapping 64-character window of the validation
text (1,742 windows); the test split *is* the validation text (the corpus has no third part):

| metric | value |
|---|---|
{metric_table}

- **loss**: cross-entropy in nats per character; **perplexity**: exp(loss) (torchmetrics).

For comparison, nanoGPT reports 1.874 with these settings (its estimate from random validation
windows); nanoGPT's model (GPT-2 blocks) and training loop, re-run here for 2,000 iterations and
measured the same way as above, reach {nanogpt_loss} (`python benchmarks/text.py quality`). The
difference is the architecture: same parameter count, optimiser, schedule and data.

## Sample

`gpt.generate("", max_new_tokens=300, temperature=0.8, seed=0)` (an empty prompt starts from a newline):

```
{sample}
```

## Limits

A 64-character context: longer generations slide the window (the last 32 characters are re-read every
32 new characters). Characters absent from the training text become `<unk>`. Shakespeare-like
spelling and layout, little meaning.
"""


def train_timed(threads: int | None) -> tuple[Path, str]:
    """Train (on a shared 2-core machine, one thread can be much faster than two contended ones)."""
    run, seconds = train(NAME, threads=threads)
    return run, f"{seconds:.0f} s wall, {threads or torch.get_num_threads()} threads (including 8 validations)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="an existing run folder (skip training)")
    parser.add_argument("--threads", type=int, help="training threads (default: torch's)")
    parser.add_argument("--train-time", help="training time to state when --run is given")
    parser.add_argument("--nanogpt-loss", default="1.899",
                        help="nanoGPT's validation loss from `python benchmarks/text.py quality`, for the card")
    args = parser.parse_args()

    from zoo import hub
    from zoo.evaluate import evaluate

    run, train_time = (args.run, args.train_time or "not measured") if args.run else train_timed(args.threads)
    target = ROOT / "zoo" / "pretrained" / NAME
    target.mkdir(parents=True, exist_ok=True)
    for file in (hub.CONFIG_NAME, hub.WEIGHTS_NAME, *hub.EXTRA_FILES):
        if (run / "pretrained" / file).is_file():
            shutil.copyfile(run / "pretrained" / file, target / file)

    import zoo

    metrics = evaluate(str(target), split="test", seed=0)
    sample = zoo.load(str(target)).generate("", max_new_tokens=300, temperature=0.8, seed=0)
    weights = hub.open_folder(target).tensors()
    card = CARD.format(
        front_matter=front_matter(NAME, ["generative", "gpt", "llama", "text-generation", "character-level"],
                                  "text-generation", "tinyshakespeare",
                                  "tinyshakespeare (last 10%, nanoGPT's validation split)", metrics,
                                  split="validation", pipeline_tag="text-generation"),
        name=NAME, **metric_fields(metrics),
        hardware=f"{platform.machine()} CPU (2 cores, shared), torch {torch.__version__}",
        train_time=train_time, params=sum(t.numel() for t in weights.values()),
        size_kb=(target / hub.WEIGHTS_NAME).stat().st_size / 1024, sample=sample.strip("\n"),
        nanogpt_loss=args.nanogpt_loss,
    )
    (target / hub.CARD_NAME).write_text(card)
    (ROOT / "model_cards" / f"{NAME}.md").write_text(card)
    print(json.dumps({"name": NAME, "train_time": train_time, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
