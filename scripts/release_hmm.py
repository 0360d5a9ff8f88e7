"""Make the pretrained `hmm-shakespeare-char`: train by its recipe, compare with hmmlearn, package, write the card.

    python scripts/release_hmm.py baseline --n-iter 30   # hmmlearn CategoricalHMM, same states, init and split
    python scripts/release_hmm.py ours --n-iter 30       # the genzoo layer on the same, for the same comparison
    python scripts/release_hmm.py release           # genzoo fit --config recipes/hmm-shakespeare-char.yaml, package
    python scripts/release_hmm.py release --run runs/release-hmm-shakespeare-char/version_0 --train-time "95 s"

Both sides start from the same parameters (the recipe's initialisation: seed 0 on every training
sequence) and run the same number of Baum-Welch iterations on the same 256-character training
chunks; both are scored on the validation text (the last 10%) as one sequence, in nats per character.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
import yaml
from release_common import front_matter, metric_fields, train

ROOT = Path(__file__).resolve().parents[1]
NAME = "hmm-shakespeare-char"
RECIPE = ROOT / "recipes" / f"{NAME}.yaml"
BASELINE = ROOT / "runs" / f"{NAME}-hmmlearn.json"
OURS = ROOT / "runs" / f"{NAME}-genzoo.json"

CARD = """{front_matter}
# {name}

A categorical hidden Markov model over the 65 characters of tinyshakespeare: {n_states} hidden
states, trained by Baum-Welch EM (genzoo's recipe `recipes/{name}.yaml`). Load and sample it with

```python
import zoo
hmm = zoo.load("{name}")
hmm.sample(2, seed=0, length=200)          # two strings of 200 characters
hmm.nll_per_char("To be, or not to be")    # nats per character
hmm.hmm.viterbi(hmm.encode("To be")[None]) # most likely hidden states (the layer zoo.layers.HiddenMarkovModel)
```

or from the shell: `genzoo sample {name} --n 4` and `genzoo eval {name}`.

## Training

| | |
|---|---|
| recipe | `genzoo fit --config recipes/{name}.yaml` |
| data | tinyshakespeare (1,115,394 characters), nanoGPT's split: first 90% train, last 10% validation |
| training sequences | the training text in 3,922 consecutive chunks of 256 characters |
| initialisation | uniform start, near-uniform random transitions, emissions half random / half the character frequencies (seed 0) |
| EM iterations | {n_iter} (one per epoch; statistics summed over the epoch, M-step at its end) |
| hardware | {hardware} |
| training time | {train_time} |
| parameters | {params:,} ({size_kb:.0f} KB in safetensors) |

## Validation metrics

Measured by `genzoo eval {name}` on the validation text (the last 10%, 111,540 characters, scored
as one sequence; `genzoo eval` runs the test loop, whose data is this validation text, since
nanoGPT's split has no test part):

| metric | value |
|---|---|
{metric_table}

- **nll**: negative log-likelihood in nats per character, comparable to a character language model's
  validation loss (a uniform guess is log 65 = 4.17; genzoo's `gpt-shakespeare-char` card reports its own
  validation loss on the same split).
- **log_likelihood**: the same with the opposite sign.

## Comparison with hmmlearn

hmmlearn {hmmlearn_version}'s `CategoricalHMM` (`implementation="scaling"`, its fast path) with the same
{n_states} states, the same initial parameters and the same training chunks, for {cmp_iter} Baum-Welch
iterations (hmmlearn needs about a minute per iteration on this shared machine, so the comparison
stops there), against genzoo's layer on exactly the same problem; both scored on the validation
text as one sequence:

| after {cmp_iter} iterations | validation nll (nats/char) | training time |
|---|---|---|
| genzoo `HiddenMarkovModel` (float32) | {my_nll:.6f} | {my_time:.0f} s |
| hmmlearn `CategoricalHMM` (float64) | {their_nll:.6f} | {their_time:.0f} s |

Both run exact Baum-Welch from the same start, so they agree (their training log-likelihoods match
iteration by iteration); this packaged model continues to {n_iter} iterations: validation nll
{ours_nll:.4f}. Measured by `python scripts/release_hmm.py baseline --n-iter {cmp_iter}` and
`... ours --n-iter {cmp_iter}`, one after the other on the same machine (2 cores shared with other jobs,
load about 10, so absolute times are several times what an idle machine gives).

## Limits

An HMM's memory is one of {n_states} states: samples have the character statistics of Shakespeare
(word lengths, punctuation, capitals after newlines) but no words beyond the most frequent short ones.
"""


def recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text())


def training_data():
    """The recipe's training chunks and validation text, and the recipe's initial HMM."""
    from zoo.data.sequences import CharSequenceDataModule, pad_batch
    from zoo.models.hmm import HMM

    cfg = recipe()
    dm = CharSequenceDataModule(**cfg["data"]["init_args"])
    dm.setup()
    chunks = dm.datasets["train"].chunks
    x, lengths = pad_batch(chunks)
    model = HMM(**cfg["model"]["init_args"]["net"]).fit_to_data(dm.spec)
    model.initialize(x, lengths)  # what EMSystem.on_train_start does with init_samples >= 3,922
    return chunks, dm.datasets["val"].chunks[0], model, cfg["trainer"]["max_epochs"]


def baseline(n_iter: int | None = None) -> None:
    """Fit hmmlearn's CategoricalHMM from the same start; write its validation nll and time to JSON.

    `n_iter` (default: the recipe's epochs) can be lower where hmmlearn would take too long: the card
    then compares at that many iterations, against the genzoo run's validation at the same epoch."""
    import hmmlearn
    import numpy as np
    from hmmlearn.hmm import CategoricalHMM

    chunks, val, model, epochs = training_data()
    n_iter = n_iter or epochs
    hmm = model.hmm.double()
    ref = CategoricalHMM(hmm.n_states, n_features=hmm.n_symbols, init_params="", params="ste", n_iter=n_iter,
                         tol=-np.inf, implementation="scaling", random_state=0, verbose=True)
    ref.startprob_ = hmm.startprob.detach().numpy()
    ref.transmat_ = hmm.transmat.detach().numpy()
    ref.emissionprob_ = torch.softmax(hmm.emission.logits.detach(), 1).numpy()
    data = torch.cat(chunks).numpy().reshape(-1, 1)
    start = time.perf_counter()
    ref.fit(data, [len(c) for c in chunks])
    seconds = time.perf_counter() - start
    nll = -ref.score(val.numpy().reshape(-1, 1)) / len(val)
    result = {"hmmlearn_version": hmmlearn.__version__, "n_states": hmm.n_states, "n_iter": n_iter,
              "seconds": seconds, "val_nll": nll, "train_ll_history": [float(v) for v in ref.monitor_.history]}
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "train_ll_history"}, indent=2))


def ours(n_iter: int | None = None) -> None:
    """The genzoo layer on exactly the baseline's problem (same start, chunks, iterations, scoring)."""
    chunks, val, model, epochs = training_data()
    n_iter = n_iter or epochs
    from zoo.data.sequences import pad_batch

    x, lengths = pad_batch(chunks)
    batches = [(x[i:i + 1024], lengths[i:i + 1024]) for i in range(0, len(x), 1024)]  # the recipe's batches
    start = time.perf_counter()
    model.hmm.fit(batches, max_iter=n_iter, tol=-1.0, init=False)
    seconds = time.perf_counter() - start
    result = {"n_states": model.hmm.n_states, "n_iter": n_iter, "seconds": seconds,
              "val_nll": -model.log_prob(val[None]).item() / len(val), "train_ll_history": model.hmm.history_}
    OURS.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "train_ll_history"}, indent=2))


def release(run: Path | None, train_time: str | None) -> None:
    from zoo import hub
    from zoo.evaluate import evaluate

    if run is None:
        run, seconds = train(NAME)
        train_time = f"{seconds:.0f} s wall (including validation every 10 epochs)"
    target = ROOT / "zoo" / "pretrained" / NAME
    target.mkdir(parents=True, exist_ok=True)
    for file in (hub.CONFIG_NAME, hub.WEIGHTS_NAME):
        shutil.copyfile(run / "pretrained" / file, target / file)
    metrics = evaluate(str(target), split="test", seed=0)
    weights = hub.open_folder(target).tensors()
    theirs = json.loads(BASELINE.read_text()) if BASELINE.is_file() else None
    mine = json.loads(OURS.read_text()) if OURS.is_file() else None
    config = json.loads((target / hub.CONFIG_NAME).read_text())
    card = CARD.format(
        front_matter=front_matter(NAME, ["generative", "hmm", "hidden-markov-model", "text-generation"],
                                  "text-generation", "tinyshakespeare", "tinyshakespeare (characters)", metrics,
                                  split="validation"),
        name=NAME, n_states=config["init_args"]["n_states"], n_iter=recipe()["trainer"]["max_epochs"],
        **metric_fields(metrics, table_digits=4),
        hardware=f"{platform.machine()} CPU, {os.cpu_count()} cores (torch {torch.__version__})",
        train_time=train_time or "not measured", params=sum(t.numel() for t in weights.values()),
        size_kb=(target / hub.WEIGHTS_NAME).stat().st_size / 1024, ours_nll=metrics["nll"],
        their_nll=theirs["val_nll"] if theirs else float("nan"), their_time=theirs["seconds"] if theirs else 0,
        hmmlearn_version=theirs["hmmlearn_version"] if theirs else "?", cmp_iter=theirs["n_iter"] if theirs else 0,
        my_nll=mine["val_nll"] if mine else float("nan"), my_time=mine["seconds"] if mine else 0,
    )
    (target / hub.CARD_NAME).write_text(card)
    (ROOT / "model_cards" / f"{NAME}.md").write_text(card)
    print(json.dumps({"name": NAME, "train_time": train_time, "metrics": metrics, "hmmlearn": theirs and
                      {k: v for k, v in theirs.items() if k != "train_ll_history"}}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["baseline", "ours", "release"])
    parser.add_argument("--run", type=Path, help="an existing run folder (skip training)")
    parser.add_argument("--train-time", help="training time to state when --run is given")
    parser.add_argument("--n-iter", type=int, help="baseline: Baum-Welch iterations (default: the recipe's epochs)")
    args = parser.parse_args()
    if args.step == "release":
        release(args.run, args.train_time)
    else:
        (baseline if args.step == "baseline" else ours)(args.n_iter)


if __name__ == "__main__":
    main()
