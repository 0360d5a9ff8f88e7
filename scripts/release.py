"""Make a pretrained checkpoint from its recipe, or rewrite its card: one script for every packaged name.

    python scripts/release.py vae-digits                # genzoo fit --config recipes/vae-digits.yaml, package, card
    python scripts/release.py vae-digits --run runs/release-vae-digits/version_0   # package an existing run
    python scripts/release.py vae-digits --card-only    # keep the packaged weights, re-evaluate, rewrite the card
    python scripts/release.py hmm-shakespeare-char --baseline --n-iter 30   # re-measure the hmmlearn comparison

Writes zoo/pretrained/<name>/ (config.json, model.safetensors, the run's extra files such as a tokenizer,
README.md) and model_cards/<name>.md (the same card). The card is rendered by zoo.cards.render_card, the
writer of every genzoo card, from the model, its data spec, the metrics `genzoo eval <name>` prints
(measured here, seeded) and a record of the run: training time and hardware as the fit's own card measured
them (`--card-only` keeps the packaged card's). What only one model needs, such as metric definitions or
comparisons with scikit-learn, hmmlearn and nanoGPT, comes from that name's hook in HOOKS.
`--threads 1` trains single-threaded (OMP_NUM_THREADS=1): on a shared 2-core machine that can be much faster.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


# -- what only one model's card needs ------------------------------------------------------------

VAE_METRICS = """Likelihoods are in nats per image; pixels are a {levels}-level categorical, so log p(x) is a true log probability.

- **elbo**: evidence lower bound, one posterior sample per image.
- **iwae**: importance-weighted estimate of log p(x) with k={k:,} samples (Burda et al. 2016), a tighter bound:
  {bpd:.4f} bits per dimension ({dims:,} pixel values).
- **recon_nll**: -E_q[log p(x|z)]; **kl**: KL(q(z|x) || p(z)); **recon_mse**: squared error of the mean
  reconstruction in [0, 1] pixel units."""

GAN_METRICS = """- **d_loss**, **g_loss**: the {loss} losses of discriminator and generator on test images; **d_real**, **d_fake**:
  the discriminator's mean score on test and on generated images. Training diagnostics, not quality measures.
- Samples, here and from `sample`, come from the EMA generator (the moving average of its weights)."""

DIFFUSION_METRICS = """- **loss**: the denoising loss (MSE of the {prediction} prediction at uniform random timesteps) on test images.
- Samples, here and from `sample`, come from the EMA weights (the moving average of the UNet's)."""

CLASSIFIER_METRICS = """- **acc**: test accuracy; **loss**: test cross-entropy (nats).

This network is the feature extractor of the zoo's image metrics: its 64 penultimate activations feed
torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance`, its logits `InceptionScore`, and its
predictions the conditional accuracy of class-conditional generators. Retraining it changes every FID in
the zoo: keep it fixed."""

CLASSIFIER_USAGE = """As the image metrics' feature extractor: `zoo.metrics.load_extractor("{name}")` (frozen, eval mode)."""

IMAGE_LIMITS = {
    "vae": "8x8 digits only; a VAE's samples are the mean of p(x|z), smoother than real digits.",
    "gan": "8x8 digits only; a GAN has no likelihood (`log_prob` raises) and may miss modes of the data.",
    "diffusion": "8x8 digits only; diffusion has no exact likelihood here (`log_prob` raises); sampling costs one "
                 "UNet call per step (two with guidance != 1).",
    "classifier": "Trained on 1,257 clean 8x8 digits; its features describe digits, not other images.",
    "mnist-5k-classifier": "Trained on the 4,000 training images of the 5k MNIST subset (28x28); its features "
                           "describe handwritten digits, not other images.",
    "ddpm-mnist-5k": "Trained for 100 epochs (6,300 steps) on 4,000 MNIST digits (the 5k subset), 28x28, on one CPU "
                     "thread: short for a diffusion model; no exact likelihood here (`log_prob` raises); sampling "
                     "costs one UNet call per step (two with guidance != 1).",
    "vae-mnist-5k": "Trained on 4,000 MNIST digits (the 5k subset), 28x28; a VAE's samples are the mean of p(x|z), "
                    "smoother than real digits.",
    "dcgan-mnist-5k": "Trained on 4,000 MNIST digits (the 5k subset), 28x28, for 56 epochs (the recipe's 85-minute "
                      "cap on a shared CPU thread): the samples of one class vary little (partial mode collapse), "
                      "hence an FID far above the DDPM's; a GAN has no likelihood (`log_prob` raises). Weights stored "
                      "in float16 (the metrics above are measured on them).",
}

GMM_METRICS = """- **log_likelihood**: log P(x) in nats per image of the *discrete* 17-level image: the mixture is a
  density on dequantised pixels y = (level + u) / 17, u ~ U[0, 1)^64, and
  log P(x) >= log (1/k) sum_i p(y_i) - 64 log 17 with k = 64 uniform draws (a stochastic lower bound,
  seeded). Directly comparable with `vae-digits`' IWAE log p(x) ({vae})."""

GMM_NOTES = """## Model

A Gaussian mixture, 10 components with full 64 x 64 covariances (`reg_covar` 3e-4 on [0, 1] pixels),
initialised by k-means (k-means++ seeding + Lloyd) on the training images, then 30 EM iterations
(one per epoch: E-step statistics per batch, M-step at epoch end, fresh dequantisation noise each
epoch). Samples are drawn from the mixture and quantised back to the 17 grey levels.

For reference, scikit-learn's `GaussianMixture` with the same settings on the same dequantised
training images (one fixed noise draw, k-means init, 30 iterations), measured by `scripts/release.py`
with this card: test log_likelihood {sklearn:.3f} (same 64-draw bound)."""

GMM_LIMITS = """A mixture of 10 Gaussians is a blunt density model of digits: samples are recognisable but noisy,
and it is far below the VAE in log-likelihood. It is here as a fast, exact, interpretable baseline."""

NB_METRICS = """- **accuracy**: fraction of test digits classified correctly (argmax of p(y | x)).
- **log_likelihood**: joint log p(x, y) per image in nats, a *density* over pixels in [0, 1] (not
  a probability of the discrete image), so it can be positive."""

NB_NOTES = """## Comparison on the same split

Measured by `scripts/release.py` with this card:

| model | test accuracy |
|---|---|
| genzoo `nb-digits` (var_smoothing 0.2) | {ours:.3f} |
| scikit-learn `GaussianNB()` (default var_smoothing 1e-9) | {sk_default:.3f} |
| scikit-learn `GaussianNB(var_smoothing=0.2)` | {sk_same:.3f} |

With identical settings the two agree exactly (tests check predict_proba to 1e-12 in float64);
the gain over scikit-learn's default comes from the variance smoothing, chosen on validation
accuracy (1e-9: 0.822, 0.01: 0.907, 0.1: 0.926, 0.2: 0.930, 0.3: 0.926).

## Model

Gaussian naive Bayes: p(x, y) = p(y) prod_d N(x_d; mu_yd, sigma_yd^2), fitted in closed form in one
pass (class counts and per-class sums summed over batches and, under DDP, across processes).
Each pixel variance is padded by 0.2 x the largest pixel variance. It is generative: `sample`
draws pixels from N(mu_y, sigma_y^2) (clipped to [0, 1]), one digit per requested label."""

#: nanoGPT's own model and loop on the same recipe, measured the same way as the card's loss
#: (`python benchmarks/text.py quality`, 2,000 iterations); carried over, not re-run by this script
NANOGPT = {"loss": 1.899, "date": "2026-11-29", "command": "python benchmarks/text.py quality"}

GPT_DESCRIPTION = """nanoGPT's "baby GPT" configuration on tinyshakespeare, character level: a 4-layer, 4-head, 128-wide
decoder-only transformer with a 64-character context, in Llama's layout (RMSNorm, rotary positions,
SwiGLU MLP, tied embeddings). The folder is a genzoo model *and* a transformers checkpoint
(`LlamaForCausalLM` + `PreTrainedTokenizerFast`)"""

GPT_USAGE = """Text in, text out, streamed if you like:

```python
gpt = zoo.load("gpt-shakespeare-char")
gpt.generate("ROMEO:", max_new_tokens=200, temperature=0.8, seed=0)   # the continuation
for piece in gpt.stream("ROMEO:", max_new_tokens=200):                # streamed
    print(piece, end="")
```

With transformers' `pipeline`, keep prompt + new tokens <= 64: transformers does not slide the window,
and past it quality drops (`genzoo` slides it)."""

GPT_METRICS = """- **loss**: cross-entropy in nats per character; **perplexity**: exp(loss) (torchmetrics)."""

GPT_NOTES = """## Comparison with nanoGPT

nanoGPT reports 1.874 with these settings (its estimate from random validation windows); nanoGPT's
model (GPT-2 blocks) and training loop, re-run for 2,000 iterations and measured the same way as above,
reach {loss} (`{command}`, measured on {date} and carried over). The difference is the architecture:
same parameter count, optimiser, schedule and data.

## Sample

`gpt.generate("", max_new_tokens=300, temperature=0.8, seed=0)` (an empty prompt starts from a newline):

```
{sample}
```"""

GPT_LIMITS = """A 64-character context: longer generations slide the window (the last 32 characters are re-read every
32 new characters). Characters absent from the training text become `<unk>`. Shakespeare-like
spelling and layout, little meaning."""

#: hmmlearn against genzoo's layer on the same problem: hmmlearn needs about a minute per iteration on a
#: shared 2-core machine, so this is measured once (`--baseline`) and carried over, not re-run per card
HMM_COMPARISON = {"date": "2026-11-25", "command": "python scripts/release_hmm.py baseline --n-iter 30` and `... ours "
                  "--n-iter 30", "hmmlearn_version": "0.3.3", "n_iter": 30, "genzoo_nll": 3.092474,
                  "genzoo_seconds": 111, "hmmlearn_nll": 3.092474, "hmmlearn_seconds": 831}

HMM_DESCRIPTION = """A categorical hidden Markov model over the 65 characters of tinyshakespeare: {n_states} hidden
states, trained by Baum-Welch EM"""

HMM_USAGE = """Strings in, strings out:

```python
hmm = zoo.load("hmm-shakespeare-char")
hmm.sample(2, seed=0, length=200)          # two strings of 200 characters
hmm.nll_per_char("To be, or not to be")    # nats per character
hmm.hmm.viterbi(hmm.encode("To be")[None]) # most likely hidden states (the layer zoo.layers.HiddenMarkovModel)
```"""

HMM_METRICS = """- **nll**: negative log-likelihood in nats per character, comparable to a character language model's
  validation loss (a uniform guess is log 65 = 4.17; genzoo's `gpt-shakespeare-char` card reports its own
  validation loss on the same split).
- **log_likelihood**: the same with the opposite sign."""

HMM_NOTES = """## Comparison with hmmlearn

hmmlearn {hmmlearn_version}'s `CategoricalHMM` (`implementation="scaling"`, its fast path) with the same
{n_states} states, the same initial parameters and the same training chunks, for {n_iter} Baum-Welch
iterations (hmmlearn needs about a minute per iteration on this shared machine, so the comparison
stops there), against genzoo's layer on exactly the same problem; both scored on the validation
text as one sequence:

| after {n_iter} iterations | validation nll (nats/char) | training time |
|---|---|---|
| genzoo `HiddenMarkovModel` (float32) | {genzoo_nll:.6f} | {genzoo_seconds:.0f} s |
| hmmlearn `CategoricalHMM` (float64) | {hmmlearn_nll:.6f} | {hmmlearn_seconds:.0f} s |

Both run exact Baum-Welch from the same start, so they agree (their training log-likelihoods match
iteration by iteration); this packaged model continues to {epochs} iterations: validation nll
{nll:.3f}. Measured on {date} by `{command}`, one after the other on the same machine (2 cores shared
with other jobs, load about 10, so absolute times are several times what an idle machine gives), and
carried over since; `python scripts/release.py {name} --baseline --n-iter {n_iter}` re-measures it."""

HMM_LIMITS = """An HMM's memory is one of {n_states} states: samples have the character statistics of Shakespeare
(word lengths, punctuation, capitals after newlines) but no words beyond the most frequent short ones."""


def recipe(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())


def model_args(name: str) -> dict[str, Any]:
    """The recipe's system arguments (the GAN's loss, ...)."""
    return recipe(name)["model"].get("init_args", {})


def vae_hook(name, model, metrics) -> dict[str, Any]:
    import math

    dims = math.prod(model.image_shape)
    notes = VAE_METRICS.format(k=model_args(name).get("iwae_k", 1000), levels=model.levels, dims=dims,
                               bpd=-metrics["iwae"] / (dims * math.log(2)))
    return {"metric_notes": notes, "limitations": IMAGE_LIMITS.get(name, IMAGE_LIMITS["vae"])}


def gan_hook(name, model, metrics) -> dict[str, Any]:
    return {"metric_notes": GAN_METRICS.format(loss=model_args(name).get("loss", "hinge")),
            "limitations": IMAGE_LIMITS.get(name, IMAGE_LIMITS["gan"])}


def diffusion_hook(name, model, metrics) -> dict[str, Any]:
    return {"metric_notes": DIFFUSION_METRICS.format(prediction=model.prediction),
            "limitations": IMAGE_LIMITS.get(name, IMAGE_LIMITS["diffusion"])}


def classifier_hook(name, model, metrics) -> dict[str, Any]:
    return {"metric_notes": CLASSIFIER_METRICS, "usage": CLASSIFIER_USAGE.format(name=name),
            "limitations": IMAGE_LIMITS.get(name, IMAGE_LIMITS["classifier"])}


def gmm_hook(name, model, metrics) -> dict[str, Any]:
    """The GMM's bound next to the VAE's, and scikit-learn's GaussianMixture fitted the same way (seconds)."""
    from sklearn.mixture import GaussianMixture

    from zoo.data.digits import SPEC, digits_split
    from zoo.layers.mixture import GaussianMixture as Mixture
    from zoo.models.gmm import GMM
    from zoo.registry import PRETRAINED

    gen = torch.Generator().manual_seed(0)
    reference = GMM(n_components=10, reg_covar=3e-4).fit_to_data(SPEC)
    train = reference._dequantise(reference._flatten(digits_split("train")[0]), gen).double().numpy()
    sk = GaussianMixture(10, covariance_type="full", reg_covar=3e-4, max_iter=30, random_state=0).fit(train)
    reference.mixture = Mixture.from_params(torch.tensor(sk.weights_), torch.tensor(sk.means_),
                                            torch.tensor(sk.covariances_), reg_covar=3e-4)  # float64
    with torch.no_grad():
        sklearn = reference.log_prob(digits_split("test")[0].double(), seed=0).mean().item()
    vae = PRETRAINED["vae-digits"].card_metrics().get("iwae")
    return {"description": "Gaussian mixture (10 full-covariance components) on dequantised 8x8 digits",
            "metric_notes": GMM_METRICS.format(vae=f"{vae:.3f}" if vae is not None else "see its card"),
            "notes": GMM_NOTES.format(sklearn=sklearn), "limitations": GMM_LIMITS}


GMM_5K_NOTES = """## Model

A Gaussian mixture, {k} components with diagonal covariances over the 784 pixels (`reg_covar` {reg} on
[0, 1] pixels; full 784 x 784 covariances would take 49 MB for 20 components), initialised by k-means on
the 4,000 training images, then {epochs} EM iterations (one per epoch, fresh dequantisation noise each
epoch). log P(x) is a stochastic lower bound on the probability of the *discrete* 256-level image
(dequantised pixels, {draws} uniform draws per image), directly comparable with `vae-mnist-5k`'s IWAE
log p(x) ({vae}).

For reference, scikit-learn's `GaussianMixture(covariance_type="diag")` with the same settings on the same
dequantised training images (one fixed noise draw, k-means init, {epochs} iterations), measured by
`scripts/release.py` with this card: test log_likelihood {sklearn:.1f} (same bound)."""


def gmm_5k_hook(name, model, metrics) -> dict[str, Any]:
    """The diagonal GMM of the 5k MNIST, with scikit-learn's GaussianMixture fitted the same way."""
    from sklearn.mixture import GaussianMixture

    from zoo.data.images import mnist_5k_split
    from zoo.layers.mixture import GaussianMixture as Mixture
    from zoo.registry import PRETRAINED

    gen = torch.Generator().manual_seed(0)
    args, epochs = model.init_args, recipe(name)["trainer"]["max_epochs"]
    train = model._dequantise(model._flatten(mnist_5k_split("train")[0]), gen).double().numpy()
    sk = GaussianMixture(args["n_components"], covariance_type="diag", reg_covar=args["reg_covar"],
                         max_iter=epochs, random_state=0).fit(train)
    reference = copy.deepcopy(model)
    reference.mixture = Mixture.from_params(torch.tensor(sk.weights_), torch.tensor(sk.means_),
                                            torch.tensor(sk.covariances_), "diag", reg_covar=args["reg_covar"])
    with torch.no_grad():
        sklearn = reference.log_prob(mnist_5k_split("test")[0].double(), seed=0).mean().item()
    vae = PRETRAINED["vae-mnist-5k"].card_metrics().get("iwae")
    return {"description": f"Gaussian mixture ({args['n_components']} diagonal components) on dequantised 28x28 "
                           "MNIST digits (the 5k subset)",
            "notes": GMM_5K_NOTES.format(k=args["n_components"], reg=args["reg_covar"], epochs=epochs,
                                         draws=args.get("eval_draws"), sklearn=sklearn,
                                         vae=f"{vae:.1f}" if vae is not None else "see its card"),
            "limitations": "A mixture of diagonal Gaussians treats pixels as independent within a component: "
                           "samples are noisy averages of digits, far below the VAE in log-likelihood. It is a "
                           "fast, exact, interpretable baseline."}


NB_5K_NOTES = """## Comparison on the same split

Measured by `scripts/release.py` with this card on the 4,000 / 500 training / test images:

| model | test accuracy |
|---|---|
| genzoo `{name}` (var_smoothing {smoothing}) | {ours:.3f} |
| scikit-learn `GaussianNB()` (default var_smoothing 1e-9) | {sk_default:.3f} |
| scikit-learn `GaussianNB(var_smoothing={smoothing})` | {sk_same:.3f} |

## Model

Gaussian naive Bayes over the 784 pixels: p(x, y) = p(y) prod_d N(x_d; mu_yd, sigma_yd^2), fitted in closed
form in one pass; each pixel variance is padded by {smoothing} x the largest pixel variance. `sample` draws
pixels from N(mu_y, sigma_y^2) (clipped to [0, 1]), one digit per requested label."""


def nb_5k_hook(name, model, metrics) -> dict[str, Any]:
    """scikit-learn's GaussianNB on the 5k MNIST split, with its default smoothing and with ours."""
    from sklearn.naive_bayes import GaussianNB

    from zoo.data.images import mnist_5k_split

    (xtr, ytr), (xte, yte) = mnist_5k_split("train"), mnist_5k_split("test")
    xtr, xte = xtr.flatten(1).double().numpy(), xte.flatten(1).double().numpy()
    smoothing = model.init_args["var_smoothing"]
    notes = NB_5K_NOTES.format(name=name, smoothing=smoothing, ours=metrics["accuracy"],
                               sk_default=GaussianNB().fit(xtr, ytr).score(xte, yte),
                               sk_same=GaussianNB(var_smoothing=smoothing).fit(xtr, ytr).score(xte, yte))
    return {"description": "Gaussian naive Bayes classifier of 28x28 MNIST digits (the 5k subset), a generative "
                           "classifier", "metric_notes": NB_METRICS, "notes": notes,
            "limitations": "Pixels are independent given the class: samples are noisy, blurred class averages."}


def nb_hook(name, model, metrics) -> dict[str, Any]:
    """scikit-learn's GaussianNB on the same split, with its default smoothing and with ours."""
    from sklearn.naive_bayes import GaussianNB

    from zoo.data.digits import digits_split

    (xtr, ytr), (xte, yte) = digits_split("train"), digits_split("test")
    xtr, xte = xtr.flatten(1).double().numpy(), xte.flatten(1).double().numpy()
    notes = NB_NOTES.format(ours=metrics["accuracy"], sk_default=GaussianNB().fit(xtr, ytr).score(xte, yte),
                            sk_same=GaussianNB(var_smoothing=0.2).fit(xtr, ytr).score(xte, yte))
    return {"description": "Gaussian naive Bayes classifier of 8x8 digits (a generative classifier)",
            "metric_notes": NB_METRICS, "notes": notes,
            "limitations": "Pixels are independent given the class: samples are noisy, blurred class averages."}


def gpt_hook(name, model, metrics) -> dict[str, Any]:
    sample = model.generate("", max_new_tokens=300, temperature=0.8, seed=0).strip("\n")
    return {"description": GPT_DESCRIPTION, "split": "validation", "tags": ("llama", "character-level"),
            "measured_by": f"`genzoo eval {name}` over every non-overlapping 64-character window of the validation "
                           "text (1,742 windows); the test split *is* the validation text (the corpus has no third part)",
            "rows": (("tokenizer", "characters of the training text (65) + `<unk>` for characters never seen (66 ids)"),
                     ("optimisation", "AdamW (0.9, 0.99), weight decay 0.1, lr 1e-3 after 100 warm-up steps, cosine to "
                                      "1e-4 at 2,000 steps, clip 1.0, batch 12 x 64 tokens, dropout 0 (nanoGPT's CPU "
                                      "baby-GPT settings)")),
            "usage": GPT_USAGE, "metric_notes": GPT_METRICS, "notes": GPT_NOTES.format(sample=sample, **NANOGPT),
            "limitations": GPT_LIMITS}


def hmm_hook(name, model, metrics) -> dict[str, Any]:
    n_states, epochs = model.init_args["n_states"], recipe(name)["trainer"]["max_epochs"]
    return {"description": HMM_DESCRIPTION.format(n_states=n_states), "split": "validation",
            "tags": ("hidden-markov-model",),
            "measured_by": f"`genzoo eval {name}` on the validation text (the last 10%, 111,540 characters, scored as "
                           "one sequence; `genzoo eval` runs the test loop, whose data is this validation text, since "
                           "nanoGPT's split has no test part)",
            "rows": (("training sequences", "the training text in 3,922 consecutive chunks of 256 characters"),
                     ("initialisation", "uniform start, near-uniform random transitions, emissions half random / half "
                                        "the character frequencies (seed 0)"),
                     ("EM iterations", f"{epochs} (one per epoch; statistics summed over the epoch, M-step at its end)")),
            "usage": HMM_USAGE, "metric_notes": HMM_METRICS,
            "notes": HMM_NOTES.format(name=name, n_states=n_states, epochs=epochs, nll=metrics["nll"], **HMM_COMPARISON),
            "limitations": HMM_LIMITS.format(n_states=n_states)}


MOSES_USAGE = """Molecules in, molecules out (SMILES strings):

```python
model = zoo.load("{name}")
model.sample(10, seed=0)                    # 10 whole molecules, each ended by the model's <eos>
model.log_prob(["CCOc1ccccc1", "c1ccccc1"]) # log p(SMILES) in nats, ending included
```

`genzoo eval {name}` samples 30,000 molecules and prints MOSES's table with this row beside the published
ones (`--n 3000` for a quick look); `genzoo demo` draws them (Molecules tab)."""

MOSES_METRICS = """- **loss**: cross-entropy in nats per token (<eos> included) on a seeded sample of 10,000 MOSES test
  molecules; **perplexity**: exp(loss).
- **valid** ... **Novelty**: MOSES's metrics (the table below); **logP**, **QED**, **weight**: Wasserstein-1
  distances between the property distributions of the valid samples and of the test set (lower is better);
  **n_molecules**: the molecules sampled."""

MOSES_LIMITS = """Drug-like molecules as MOSES filtered them (ZINC Clean Leads: weight 250-350, no charges, atoms C N S O F
Cl Br H); it knows nothing else, and validity, novelty and FCD say nothing of a molecule's synthesis or activity.
Pieces never seen in MOSES's train (other bracket atoms, elements) are `<unk>`."""


#: the other temperature a MOSES GPT's card measures beside its own (1.0 samples the distribution it learned)
SHARPER = 0.9

MOSES_TEMPERATURE = """

The table's row samples at the model's temperature, {t:g}. On 5,000 samples (seeds 0-4) at 1.0, 0.9, 0.85 and 0.8
validity was 0.956, 0.977, 0.983 and 0.990 and novelty 0.897, 0.867, 0.852 and 0.835; at {other:g}
(`sample(n, temperature={other:g})`) the same weights give, on the same 30,000-molecule protocol:

{table}

A lower temperature raises validity, and raises FCD (a worse match to the test set) and lowers novelty: at 1.0 and
0.9 alike these weights miss one of CharRNN's validity (0.975) and FCD/Test <= 0.5."""


def molecules_at_temperature(name: str, temperature: float) -> dict[str, float]:
    """MOSES's metrics (``genzoo eval``'s protocol: 30,000 molecules, seed 0) of packaged `name` at `temperature`."""
    import zoo
    from zoo.evaluate import N_MOLECULES, build_datamodule, molecule_metrics

    model = zoo.load(str(ROOT / "zoo" / "pretrained" / name))
    model.temperature = temperature
    datamodule = build_datamodule(model.extra_config["datamodule"])
    return molecule_metrics(model, datamodule, datamodule.spec, N_MOLECULES, seed=0)


def moses_hook(name, model, metrics) -> dict[str, Any]:
    from zoo.metrics.molecules import format_table

    r = recipe(name)
    data, trainer = r["data"]["init_args"], r["trainer"]
    if model.family == "gpt":
        rows = (("tokenizer", f"atom-level SMILES regex (Schwaller et al. 2019): {model.vocab_size} ids "
                              "(<pad> <bos> <eos> <unk> + the 24 pieces of MOSES's train)"),
                ("data", f"MOSES's train, one molecule per sequence, length-bucketed batches of {data['batch_size']}; "
                         f"{trainer['max_epochs']} x {data['batches_per_epoch']:,} batches at most, within "
                         f"{trainer['max_time']}"),
                ("optimisation", "AdamW (0.9, 0.99), weight decay 0.1, lr 1.5e-3 after 200 warm-up steps, cosine to "
                                 "1e-4, clip 1.0, dropout 0"))
        description = (f"A {model.n_layer}-layer, {model.n_embd}-wide GPT (Llama layout) trained on MOSES's 1.58M "
                       "drug-like molecules, one SMILES per sequence; loads in transformers too")
        other = SHARPER if model.temperature == 1.0 else 1.0
        at_other = measured_once(ROOT / "docs" / f"{name}-temperature-{other:g}.json", name,
                                 lambda: molecules_at_temperature(name, other))
        notes = MOSES_METRICS + MOSES_TEMPERATURE.format(t=model.temperature, other=other,
                                                         table=format_table(at_other, f"{name} at temperature {other:g}"))
    else:
        notes = MOSES_METRICS
        rows = (("data", f"a seeded sample of {data['train_size']:,} MOSES training molecules, each its characters "
                         "and a newline (the end)"),
                ("EM iterations", str(trainer["max_epochs"])))
        description = (f"A categorical HMM with {model.init_args['n_states']} states over SMILES characters, "
                       "Baum-Welch on MOSES, each molecule ending with a newline (MOSES's HMM baseline, genzoo's way)")
    return {"description": description, "split": "test", "tags": ("chemistry", "smiles", "moses", "molecule-generation"),
            "measured_by": f"`genzoo eval {name}` (seed 0): the test loss on 10,000 test molecules, then MOSES's "
                           f"metrics of {int(metrics.get('n_molecules', 0)):,} sampled molecules",
            "rows": rows, "usage": MOSES_USAGE.format(name=name), "metric_notes": notes,
            "limitations": MOSES_LIMITS}


TEXT_TO_IMAGE_METRICS = """- **digit_acc**, **thickness_acc**, **slant_acc**, **all_acc**: the share of prompted samples whose digit
  (read by `mnist-5k-classifier`), measured thickness and measured slant (`zoo.captions.words`) are the prompt's,
  over every digit x thickness x slant combination trained on, {per:,} prompts each, phrased by templates never
  used in training (`zoo.captions.EVAL_TEMPLATES`); **held_out_*_acc**: the same on the combinations never in
  training, {held:,} prompts each (composition).
- **fid**, **kid**, **is**: the test split's own descriptions as prompts (below); **loss**: the denoising loss
  (MSE of the eps prediction) on test images and their captions."""

TEXT_TO_IMAGE_USAGE = """Prompts use the captions' words: a digit ("7" or "seven"), a thickness (thin, regular, thick and
synonyms such as bold or fine) and a slant (leaning left, upright, leaning right; tilted, slanted, italic, ...), in
any order; lowercased; characters outside the encoder's alphabet read as `<unk>`; a prompt over
{chars} characters is cut with a warning; the empty prompt draws any digit; a prompt naming no digit leaves the
digit to the model; "a thick thin 3" warns that it names two thicknesses. The text encoder loads alone too:
`model.text_encoder.read("a bold 2")` says what it understands; `model.text_encoder.save_pretrained(folder)`."""


def measured_once(record: Path, name: str, measure: Callable[[], Any]) -> Any:
    """`measure()`, kept in `record` (JSON) with the sha256 of the packaged weights it measured: a slow measurement
    (the guidance sweep, minutes) is re-run only when the weights change, not each time the card is rendered."""
    import hashlib

    digest = hashlib.sha256((ROOT / "zoo" / "pretrained" / name / "model.safetensors").read_bytes()).hexdigest()
    if record.is_file():
        kept = json.loads(record.read_text())
        if kept.get("weights_sha256") == digest:
            return kept["result"]
    result = measure()
    record.write_text(json.dumps({"weights_sha256": digest, "result": result}, indent=1) + "\n")
    return result


def text_to_image_hook(name, model, metrics) -> dict[str, Any]:
    """The card of a text-to-image model: the caption protocol, the encoder, and the guidance sweep (PNG in docs/)."""
    from zoo.evaluate import guidance_sweep

    png = ROOT / "docs" / f"{name}-guidance.png"
    rows = measured_once(png.with_suffix(".json"), name, lambda: guidance_sweep(str(ROOT / "zoo" / "pretrained" / name), png))
    keys = ("digit_acc", "thickness_acc", "slant_acc", "all_acc", "held_out_all_acc")
    table = "| guidance | digit | thickness | slant | all three | held-out, all three | FID |\n|---|---|---|---|---|---|---|\n"
    table += "".join(f"| {r['guidance']:g} | " + " | ".join(f"{r[k]:.1%}" for k in keys) + f" | {r['fid']:.3f} |\n"
                     for r in rows)
    enc = model.text_encoder.init_args
    args = model_args(name)
    notes = (f"## Guidance sweep\n\nThe same protocol with smaller samples (2 prompts per trained combination, 10 per "
             f"held-out one, 500 images for FID), at each guidance scale (`genzoo eval {name} --guidance-sweep "
             f"sweep.png`); the default is {model.guidance:g}.\n\n{table}\n![guidance sweep](../docs/{png.name})\n")
    rows_ = (("text encoder", f"a {enc['n_layer']}-layer, {enc['n_embd']}-wide character transformer (the zoo's GPT "
                              f"blocks, bidirectional), {sum(p.numel() for p in model.text_encoder.parameters()):,} "
                              f"parameters; first taught to read captions for {args['encoder_steps']:,} steps "
                              "(heads predicting the digit and words each names), then frozen"),
             ("captions", "drawn afresh on every read: a digit word and each attribute word with probability 0.7, "
                          "through 17 templates and synonyms, made-up words slipped in 30% of the time; the empty "
                          f"prompt {args['p_uncond']:.0%} of the time (guidance)"),
             ("conditioning", "cross-attention to the token states after every UNet block below 28x28; the pooled "
                              "state added to the time embedding"))
    return {"description": "A text-to-image DDPM on the 5k MNIST: a prompt such as \"a thick 7 leaning right\" "
                           "draws that digit in that style, through a character transformer it trained itself",
            "tags": ("text-to-image", "mnist", "classifier-free-guidance"), "rows": rows_,
            "metric_notes": TEXT_TO_IMAGE_METRICS.format(per=10, held=50),
            "usage": TEXT_TO_IMAGE_USAGE.format(chars=enc.get("n_positions", 96) - 1), "notes": notes,
            "limitations": "28x28 handwritten digits and the captions' vocabulary only: two attributes (stroke "
                           "thickness and slant, three words each) measured on the pixels; words it never read in a "
                           "caption mean nothing to it. No exact likelihood (`log_prob` raises); sampling costs two "
                           "UNet calls per step with guidance != 1."}


#: packaged name -> what its card adds to the writer's defaults (fields of zoo.cards.Run)
HOOKS: dict[str, Callable[[str, Any, dict[str, float]], dict[str, Any]]] = {
    "vae-digits": vae_hook, "cvae-digits": vae_hook, "vae-mnist-5k": vae_hook, "dcgan-digits": gan_hook, "ddpm-digits": diffusion_hook, "ddpm-mnist-5k": diffusion_hook,
    "digits-classifier": classifier_hook, "mnist-5k-classifier": classifier_hook, "gmm-digits": gmm_hook,
    "nb-digits": nb_hook, "gmm-mnist-5k": gmm_5k_hook, "nb-mnist-5k": nb_5k_hook, "dcgan-mnist-5k": gan_hook,
    "gpt-shakespeare-char": gpt_hook, "hmm-shakespeare-char": hmm_hook, "gpt-moses": moses_hook,
    "hmm-moses": moses_hook, "ddpm-mnist-5k-text": text_to_image_hook,
}


# -- the card --------------------------------------------------------------------------------


def data_spec(model):
    """The spec of the data the model was trained on: config.json's copy, or (format 1) its registered datamodule's."""
    from zoo.data.spec import DataSpec
    from zoo.evaluate import build_datamodule

    if "data_spec" in model.extra_config:
        return DataSpec.from_json(model.extra_config["data_spec"])
    datamodule = build_datamodule(model.extra_config["datamodule"])
    datamodule.setup("test")
    if getattr(model, "tokenizer", None) is not None and hasattr(datamodule, "set_tokenizer"):
        datamodule.set_tokenizer(model.tokenizer)  # as the system does: the model brings its vocabulary
    return datamodule.spec


def card_row(card: str, row: str) -> str | None:
    """A row's value in the training table of a card (to carry a run's record over when only the card changes)."""
    match = re.search(rf"^\| {re.escape(row)} \| (.+) \|$", card, re.MULTILINE)
    return match.group(1).replace("\\|", "|") if match else None


def release_card(name: str, model, metrics: dict[str, float], training_time: str | None, hardware: str | None) -> str:
    """The card of packaged `name`: the writer's defaults for a recipe release, plus the name's hook."""
    from zoo.cards import Run, render_card
    from zoo.evaluate import N_GENERATED, build_system

    system = build_system(model)
    fields = {"recipe": f"recipes/{name}.yaml", "seed": recipe(name).get("seed_everything"),
              "training_time": training_time, "hardware": hardware, "n_generated": N_GENERATED,
              "sample_kwargs": system.metric_sample_kwargs() if hasattr(system, "metric_sample_kwargs") else {},
              **HOOKS[name](name, model, metrics)}
    spec = data_spec(model)
    split = fields.get("split", "test")
    fields.setdefault("measured_by", f"`genzoo eval {name}` on the {split} split of `{spec.name}` (seed 0)")
    return render_card(model, spec, metrics, Run(name, **fields))


# -- training and packaging ------------------------------------------------------------------


def train(name: str, threads: int | None = None) -> Path:
    """`genzoo fit --config recipes/<name>.yaml` into runs/release-<name>; returns the run folder."""
    root = ROOT / "runs" / f"release-{name}"
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run([sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "recipes" / f"{name}.yaml"),
                    "--trainer.default_root_dir", str(root)], check=True, cwd=ROOT, env=env)
    return root / "version_0"


#: packaged names stored in float16 to stay under the 8 MB budget (their cards are measured on the float16 weights)
HALF = {"dcgan-mnist-5k"}


def package(exported: Path, target: Path, half: bool = False) -> None:
    """Copy a run's exported model files (not its card) into the packaged folder; drop extra files it lacks.
    `half`: store floating-point weights as float16 (loading casts them back to the model's float32)."""
    from safetensors.torch import load_file, save_file

    from zoo import hub

    target.mkdir(parents=True, exist_ok=True)
    for file in (hub.CONFIG_NAME, hub.WEIGHTS_NAME, *hub.EXTRA_FILES):
        if (exported / file).is_file():
            shutil.copyfile(exported / file, target / file)
        elif file in hub.EXTRA_FILES:
            (target / file).unlink(missing_ok=True)
    if half:
        tensors = load_file(target / hub.WEIGHTS_NAME)
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, target / hub.WEIGHTS_NAME)


# -- hmmlearn, measured once -----------------------------------------------------------------


def hmm_baseline(name: str, n_iter: int | None) -> dict[str, Any]:
    """hmmlearn's CategoricalHMM and genzoo's layer from the recipe's initial HMM, on its training chunks, for
    `n_iter` Baum-Welch iterations each, scored on the validation text as one sequence (HMM_COMPARISON's fields)."""
    import hmmlearn
    import numpy as np
    from hmmlearn.hmm import CategoricalHMM

    from zoo.data.sequences import CharSequenceDataModule, pad_batch
    from zoo.models.hmm import HMM

    def start():
        cfg = recipe(name)
        dm = CharSequenceDataModule(**cfg["data"]["init_args"])
        dm.setup()
        chunks = dm.datasets["train"].chunks
        model = HMM(**cfg["model"]["init_args"]["net"]).fit_to_data(dm.spec)
        model.initialize(*pad_batch(chunks))  # what EMSystem.on_train_start does with init_samples >= 3,922
        return chunks, dm.datasets["val"].chunks[0], model, cfg["trainer"]["max_epochs"]

    chunks, val, model, epochs = start()
    n_iter = n_iter or epochs
    hmm = model.hmm.double()
    ref = CategoricalHMM(hmm.n_states, n_features=hmm.n_symbols, init_params="", params="ste", n_iter=n_iter,
                         tol=-np.inf, implementation="scaling", random_state=0)
    ref.startprob_, ref.transmat_ = hmm.startprob.detach().numpy(), hmm.transmat.detach().numpy()
    ref.emissionprob_ = torch.softmax(hmm.emission.logits.detach(), 1).numpy()
    began = time.perf_counter()
    ref.fit(torch.cat(chunks).numpy().reshape(-1, 1), [len(c) for c in chunks])
    theirs = time.perf_counter() - began

    chunks, val, model, _ = start()
    x, lengths = pad_batch(chunks)
    batches = [(x[i:i + 1024], lengths[i:i + 1024]) for i in range(0, len(x), 1024)]  # the recipe's batches
    began = time.perf_counter()
    model.hmm.fit(batches, max_iter=n_iter, tol=-1.0, init=False)
    ours = time.perf_counter() - began
    return {"date": time.strftime("%Y-%m-%d"), "command": f"python scripts/release.py {name} --baseline --n-iter {n_iter}",
            "hmmlearn_version": hmmlearn.__version__, "n_iter": n_iter,
            "genzoo_nll": round(-model.log_prob(val[None]).item() / len(val), 6), "genzoo_seconds": round(ours),
            "hmmlearn_nll": round(-ref.score(val.numpy().reshape(-1, 1)) / len(val), 6),
            "hmmlearn_seconds": round(theirs)}


#: names whose card carries a comparison too slow to re-run with every card (`--baseline` re-measures it)
BASELINES = {"hmm-shakespeare-char": hmm_baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(HOOKS))
    parser.add_argument("--run", type=Path, help="an existing run folder (skip training)")
    parser.add_argument("--card-only", action="store_true",
                        help="keep the packaged weights and the card's run record; re-evaluate and rewrite the card")
    parser.add_argument("--rerender", action="store_true",
                        help="re-render the packaged card from its own metrics and run record (after a change of the "
                             "writer or of the model's declarations; nothing is re-measured)")
    parser.add_argument("--threads", type=int, help="training threads (OMP_NUM_THREADS; default: torch's)")
    parser.add_argument("--train-time", help="the training time to state (default: what the fit's card measured)")
    parser.add_argument("--hardware", help="the hardware to state (default: what the fit's card recorded)")
    parser.add_argument("--baseline", action="store_true",
                        help=f"re-measure the slow comparison of {', '.join(BASELINES)}; prints the numbers to put "
                             "into the script's table (nothing is packaged)")
    parser.add_argument("--n-iter", type=int, help="--baseline: iterations (default: the recipe's epochs)")
    args = parser.parse_args()

    import zoo
    from zoo import hub
    from zoo.evaluate import evaluate

    if args.baseline:
        if args.name not in BASELINES:
            parser.error(f"{args.name} has no slow comparison; its card measures everything (only {', '.join(BASELINES)} has one)")
        print(json.dumps(BASELINES[args.name](args.name, args.n_iter), indent=2))
        return
    target = ROOT / "zoo" / "pretrained" / args.name
    if args.rerender:
        old = (target / hub.CARD_NAME).read_text()
        card = release_card(args.name, zoo.load(str(target)), hub.card_metrics(old), card_row(old, "training time"),
                            card_row(old, "hardware"))
        (target / hub.CARD_NAME).write_text(card)
        (ROOT / "model_cards" / f"{args.name}.md").write_text(card)
        print(f"re-rendered the card of {args.name}" + (" (unchanged)" if card == old else ""))
        return
    if args.card_only:
        record = (target / hub.CARD_NAME).read_text()
    else:
        exported = (args.run or train(args.name, args.threads)) / "pretrained"
        record = (exported / hub.CARD_NAME).read_text()  # the fit's own card: its training time and hardware
        package(exported, target, half=args.name in HALF)
    training_time = args.train_time or card_row(record, "training time")
    hardware = args.hardware or card_row(record, "hardware")
    metrics = evaluate(str(target), split="test", seed=0)
    card = release_card(args.name, zoo.load(str(target)), metrics, training_time, hardware)
    (target / hub.CARD_NAME).write_text(card)
    (ROOT / "model_cards" / f"{args.name}.md").write_text(card)
    print(json.dumps({"name": args.name, "training_time": training_time, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
