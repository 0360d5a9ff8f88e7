"""The bad-input campaign as a test: odd and wrong inputs to every public entry point of every family.

Each case either must raise one clean line (a ValueError or TypeError raised by genzoo's own code, naming
the argument: never a traceback from inside torch, numpy or Python) or must work and return finite values.
A case that hangs fails on the alarm; a cap must refuse before the work starts, so no case allocates much.
The categories are the reliability issue's: dtypes and containers, empty and edge values, work caps,
seeds and names.
"""

from __future__ import annotations

import math
import signal
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.layers import GaussianMixture, GaussianNaiveBayes, HiddenMarkovModel, MultinomialNaiveBayes

ZOO = Path(zoo.__file__).resolve().parent
TEXT = "To be, or not to be, that is the question.\n"


@pytest.fixture(scope="module")
def m():
    """One small model of each family, built on tiny data (the conformance test's sizes)."""
    from tests.test_conformance import built

    models = {family: built(family) for family in ("vae", "gan", "diffusion", "gpt", "gmm", "hmm", "nb",
                                                     "classifier", "text-diffusion")}
    torch.manual_seed(0)
    gm = GaussianMixture(2, 3)
    gm.fit(torch.randn(40, 3), max_iter=3)
    hmm = HiddenMarkovModel(2, "categorical", n_symbols=4)
    gnb = GaussianNaiveBayes(2, 3).fit(torch.randn(20, 3), torch.arange(20) % 2)
    mnb = MultinomialNaiveBayes(2, 3).fit(torch.randint(0, 5, (20, 3)).float(), torch.arange(20) % 2)
    models.update({"GaussianMixture": gm, "HiddenMarkovModel": hmm, "GaussianNaiveBayes": gnb,
                   "MultinomialNaiveBayes": mnb})
    return models


def warns(match, fn, *args, **kwargs):
    """fn's result, asserting that it warned with `match` (a documented fallback, e.g. truncation)."""
    with pytest.warns(UserWarning, match=match):
        return fn(*args, **kwargs)


def image(dtype=torch.float32, n=2):
    return torch.rand(n, 1, 8, 8).to(dtype)


ERROR, OK = "error", "ok"

#: (id, call on the models, expected: OK or (ERROR, a word the message must hold))
CASES = [
    # -- dtypes and containers -------------------------------------------------------------
    ("vae-interpolate-float64", lambda m: m["vae"].interpolate(image(torch.float64, 1)[0], image(torch.float64, 1)[0],
                                                               labels=1), OK),
    ("vae-log_prob-int5", lambda m: m["vae"].log_prob(5, labels=0), (ERROR, "x")),
    ("vae-labels-str", lambda m: m["vae"].log_prob(image(), labels="3", k=2), (ERROR, "labels")),
    ("vae-labels-true", lambda m: m["vae"].sample(2, labels=True), (ERROR, "labels")),
    ("vae-labels-float", lambda m: m["vae"].sample(2, labels=1.0), (ERROR, "labels")),
    ("vae-labels-numpy", lambda m: m["vae"].sample(2, labels=np.array([1, 2])), OK),
    ("vae-labels-numpy-int", lambda m: m["vae"].sample(2, labels=np.int64(3)), OK),
    ("gan-generate-float64", lambda m: m["gan"].generate(torch.randn(2, 8, dtype=torch.float64), torch.tensor([0, 1])), OK),
    ("gan-generate-numpy", lambda m: m["gan"].generate(np.random.randn(2, 8), np.array([0, 1])), OK),
    ("gan-generate-complex", lambda m: m["gan"].generate(torch.randn(2, 8, dtype=torch.complex64), 0), (ERROR, "z")),
    ("gan-generate-wrong-dim", lambda m: m["gan"].generate(torch.randn(2, 7), 0), (ERROR, "z")),
    ("gan-generate-str", lambda m: m["gan"].generate("noise", 0), (ERROR, "z")),
    ("vae-decode-float64", lambda m: m["vae"].decode(torch.randn(2, 4, dtype=torch.float64), 0), OK),
    ("vae-decode-wrong-dim", lambda m: m["vae"].decode(torch.randn(2, 5), 0), (ERROR, "z")),
    ("ddpm-log_prob-str", lambda m: m["diffusion"].score("x", labels=0), (ERROR, "log-likelihood")),
    ("layer-gm-fit-numpy", lambda m: GaussianMixture(2, 3).fit(np.random.randn(30, 3), max_iter=2), OK),
    ("layer-gm-fit-list", lambda m: GaussianMixture(2, 3).fit(np.random.randn(30, 3).tolist(), max_iter=2), OK),
    ("layer-gm-log_prob-complex", lambda m: m["GaussianMixture"].log_prob(torch.randn(4, 3, dtype=torch.complex64)),
     (ERROR, "x")),
    ("layer-gm-fit-complex", lambda m: GaussianMixture(2, 3).fit(torch.randn(30, 3, dtype=torch.complex64)),
     (ERROR, "x")),
    ("layer-gm-log_prob-str", lambda m: m["GaussianMixture"].log_prob("abc"), (ERROR, "x")),
    ("layer-gm-log_prob-meta", lambda m: m["GaussianMixture"].log_prob(torch.randn(4, 3, device="meta")), (ERROR, "x")),
    ("layer-gnb-log_prob-complex", lambda m: m["GaussianNaiveBayes"].log_prob(torch.randn(4, 3, dtype=torch.complex64)),
     (ERROR, "x")),
    ("layer-mnb-fit-complex", lambda m: MultinomialNaiveBayes(2, 3).fit(torch.ones(4, 3, dtype=torch.complex64),
                                                                         torch.tensor([0, 1, 0, 1])), (ERROR, "x")),
    ("layer-hmm-log_prob-complex", lambda m: m["HiddenMarkovModel"].log_prob(torch.zeros(1, 5, dtype=torch.complex64)),
     (ERROR, "x")),
    ("layer-hmm-log_prob-str", lambda m: m["HiddenMarkovModel"].log_prob("abc"), (ERROR, "x")),
    ("hmm-log_prob-bytes", lambda m: m["hmm"].log_prob(b"to be"), (ERROR, "x")),
    ("hmm-log_prob-int", lambda m: m["hmm"].log_prob(5), (ERROR, "x")),
    ("gpt-log_prob-int", lambda m: m["gpt"].log_prob(5), (ERROR, "texts")),
    ("gpt-generate-bytes", lambda m: m["gpt"].generate(b"To", max_new_tokens=2), (ERROR, "prompts")),
    # -- empty and edge values -------------------------------------------------------------
    ("hmm-log_prob-empty", lambda m: m["hmm"].log_prob(""), OK),
    ("hmm-nll_per_char-empty", lambda m: m["hmm"].nll_per_char(""), (ERROR, "text")),
    ("hmm-viterbi-empty", lambda m: m["hmm"].viterbi([""]), OK),
    ("gpt-log_prob-empty", lambda m: m["gpt"].log_prob(""), (ERROR, "texts")),
    ("gpt-temperature-tiny", lambda m: m["gpt"].sample(2, max_new_tokens=3, temperature=1e-45, seed=0), OK),
    ("gpt-temperature-zero", lambda m: m["gpt"].sample(2, max_new_tokens=3, temperature=0.0, seed=0), OK),
    ("gpt-temperature-negative", lambda m: m["gpt"].sample(2, max_new_tokens=3, temperature=-1.0), (ERROR, "temperature")),
    ("gpt-generate-temperature-tiny", lambda m: m["gpt"].generate("To", max_new_tokens=3, temperature=1e-300), OK),
    ("gpt-top_p-zero", lambda m: m["gpt"].sample(2, max_new_tokens=3, top_p=0.0), (ERROR, "top_p")),
    ("ddpm-guidance-true", lambda m: m["diffusion"].sample(2, steps=2, labels=1, guidance=True), (ERROR, "guidance")),
    ("ddpm-guidance-negative", lambda m: m["diffusion"].sample(2, steps=2, labels=1, guidance=-1.0), (ERROR, "guidance")),
    ("ddpm-guidance-nan", lambda m: m["diffusion"].sample(2, steps=2, labels=1, guidance=math.nan), (ERROR, "guidance")),
    ("ddpm-steps-zero", lambda m: m["diffusion"].sample(2, steps=0), (ERROR, "steps")),
    ("gan-generate-nan", lambda m: m["gan"].generate(torch.full((2, 8), math.nan), 0), (ERROR, "z")),
    ("gan-generate-inf", lambda m: m["gan"].generate(torch.full((2, 8), math.inf), 0), (ERROR, "z")),
    ("vae-decode-nan", lambda m: m["vae"].decode(torch.full((2, 4), math.nan), 0), (ERROR, "z")),
    ("vae-interpolate-batch", lambda m: m["vae"].interpolate(image(n=3), image(n=3), labels=1), (ERROR, "x0")),
    ("gan-interpolate-batch", lambda m: m["gan"].interpolate(torch.randn(3, 8), torch.randn(3, 8), labels=1),
     (ERROR, "z0")),
    ("vae-interpolate-steps-zero", lambda m: m["vae"].interpolate(image(n=1), image(n=1), steps=0, labels=1),
     (ERROR, "steps")),
    ("vae-interpolate-steps-huge", lambda m: m["vae"].interpolate(image(n=1), image(n=1), steps=10 ** 9, labels=1),
     (ERROR, "steps")),
    ("gmm-pixels-above-one", lambda m: m["gmm"].log_prob(image() + 1.5), (ERROR, "x")),
    ("gmm-pixels-negative", lambda m: m["gmm"].log_prob(image() - 1.5), (ERROR, "x")),
    ("nb-pixels-above-one", lambda m: m["nb"].log_prob(image() + 1.5), (ERROR, "x")),
    ("vae-empty-batch", lambda m: m["vae"].log_prob(torch.zeros(0, 1, 8, 8), labels=0), (ERROR, "x")),
    ("gmm-empty-batch", lambda m: m["gmm"].log_prob(torch.zeros(0, 1, 8, 8)), (ERROR, "x")),
    ("vae-nan-image", lambda m: m["vae"].log_prob(torch.full((1, 1, 8, 8), math.nan), labels=0), (ERROR, "x")),
    ("gpt-rms_norm_eps-nan", lambda m: zoo.create("gpt", n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                                  rms_norm_eps=math.nan), (ERROR, "rms_norm_eps")),
    ("gpt-rms_norm_eps-negative", lambda m: zoo.create("gpt", n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                                       rms_norm_eps=-1e-5), (ERROR, "rms_norm_eps")),
    ("gpt-rope_theta-inf", lambda m: zoo.create("gpt", n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                                rope_theta=math.inf), (ERROR, "rope_theta")),
    ("gpt-dropout-above-one", lambda m: zoo.create("gpt", n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                                   dropout=1.5), (ERROR, "dropout")),
    ("vae-latent_dim-zero", lambda m: zoo.create("vae", latent_dim=0), (ERROR, "latent_dim")),
    ("gmm-n_components-zero", lambda m: zoo.create("gmm", n_components=0), (ERROR, "n_components")),
    ("layer-gm-tol-nan", lambda m: GaussianMixture(2, 3).fit(torch.randn(30, 3), tol=math.nan), (ERROR, "tol")),
    ("layer-gm-tol-negative", lambda m: GaussianMixture(2, 3).fit(torch.randn(30, 3), tol=-1.0, max_iter=3), OK),
    ("layer-gm-max_iter-zero", lambda m: GaussianMixture(2, 3).fit(torch.randn(30, 3), max_iter=0), (ERROR, "max_iter")),
    ("layer-gm-reg_covar-nan", lambda m: GaussianMixture(2, 3, reg_covar=math.nan), (ERROR, "reg_covar")),
    ("layer-hmm-tol-nan", lambda m: HiddenMarkovModel(2, "categorical", n_symbols=4).fit(torch.zeros(1, 6).long(),
                                                                                         tol=math.nan), (ERROR, "tol")),
    ("layer-gnb-var_smoothing-nan", lambda m: GaussianNaiveBayes(2, 3, var_smoothing=math.nan), (ERROR, "var_smoothing")),
    ("layer-mnb-alpha-nan", lambda m: MultinomialNaiveBayes(2, 3, alpha=math.nan), (ERROR, "alpha")),
    ("layer-mnb-negative-counts", lambda m: m["MultinomialNaiveBayes"].log_prob(-torch.ones(2, 3)), (ERROR, "x")),
    # -- work caps: refused before the work starts -----------------------------------------
    ("vae-log_prob-k-huge", lambda m: m["vae"].log_prob(image(), labels=0, k=10 ** 7), (ERROR, "k")),
    ("vae-log_prob-k-zero", lambda m: m["vae"].log_prob(image(), labels=0, k=0), (ERROR, "k")),
    ("hmm-sample-length-huge", lambda m: m["hmm"].sample(2, length=10 ** 7), (ERROR, "length")),
    ("hmm-sample-memory", lambda m: m["hmm"].sample(100000, length=10000), (ERROR, "n")),
    ("layer-gm-sample-huge", lambda m: m["GaussianMixture"].sample(10 ** 10), (ERROR, "n")),
    ("layer-gm-sample-zero", lambda m: m["GaussianMixture"].sample(0), (ERROR, "n")),
    ("layer-hmm-sample-huge", lambda m: m["HiddenMarkovModel"].sample(10 ** 10, 10), (ERROR, "n")),
    ("layer-hmm-sample-length-huge", lambda m: m["HiddenMarkovModel"].sample(2, 10 ** 10), (ERROR, "length")),
    ("layer-gnb-sample-huge", lambda m: m["GaussianNaiveBayes"].sample(10 ** 10), (ERROR, "n")),
    ("vae-sample-huge", lambda m: m["vae"].sample(10 ** 10), (ERROR, "n")),
    ("gpt-max_new_tokens-huge", lambda m: m["gpt"].sample(1, max_new_tokens=10 ** 9), (ERROR, "max_new_tokens")),
    ("gpt-generate-max_new_tokens-huge", lambda m: m["gpt"].generate("To", max_new_tokens=10 ** 9),
     (ERROR, "max_new_tokens")),
    ("gpt-generate-many-prompts", lambda m: m["gpt"].generate(["To"] * 10 ** 6, max_new_tokens=2), (ERROR, "prompts")),
    ("gpt-log_prob-long", lambda m: m["gpt"].log_prob("a" * 10 ** 7), (ERROR, "texts")),
    ("ddpm-steps-huge", lambda m: m["diffusion"].sample(2, steps=10 ** 6), (ERROR, "steps")),
    ("hmm-log_prob-huge", lambda m: m["hmm"].log_prob("a" * 10 ** 8), (ERROR, "x")),
    ("text-prompt-long", lambda m: warns("cut to", m["text-diffusion"].sample, 1, steps=1, prompt="a 7 " * 10 ** 6),
     OK),
    # -- seeds and names -------------------------------------------------------------------
    ("seed-2**64", lambda m: m["vae"].sample(2, seed=2 ** 64), (ERROR, "seed")),
    ("seed-negative", lambda m: m["vae"].sample(2, seed=-1), (ERROR, "seed")),
    ("seed-float", lambda m: m["gmm"].sample(2, seed=1.5), (ERROR, "seed")),
    ("seed-str", lambda m: m["gan"].sample(2, seed="0"), (ERROR, "seed")),
    ("seed-numpy-int", lambda m: m["vae"].sample(2, seed=np.int64(3)), OK),
    ("seed-max", lambda m: m["vae"].sample(2, seed=2 ** 63 - 1), OK),
    ("layer-gm-seed-2**64", lambda m: m["GaussianMixture"].sample(2, seed=2 ** 64), (ERROR, "seed")),
    ("layer-gm-seed-float", lambda m: m["GaussianMixture"].sample(2, seed=1.5), (ERROR, "seed")),
    ("layer-hmm-seed-negative", lambda m: m["HiddenMarkovModel"].sample(2, 3, seed=-5), (ERROR, "seed")),
    ("layer-gnb-seed-negative", lambda m: m["GaussianNaiveBayes"].sample(2, seed=-5), (ERROR, "seed")),
    ("vae-log_prob-seed-negative", lambda m: m["vae"].log_prob(image(), labels=0, k=2, seed=-1), (ERROR, "seed")),
    ("gpt-generate-seed-negative", lambda m: m["gpt"].generate("To", max_new_tokens=2, seed=-1), (ERROR, "seed")),
    ("load-long-name", lambda m: zoo.load("x" * 300), (ERROR, "x" * 20)),
    ("load-empty-name", lambda m: zoo.load(""), (ERROR, "name_or_path")),
    ("load-none", lambda m: zoo.load(None), (ERROR, "name_or_path")),
    ("load-nul", lambda m: zoo.load("vae\0digits"), (ERROR, "unknown model")),
    ("create-unknown", lambda m: zoo.create("vea"), (ERROR, "vae")),
    ("create-long-name", lambda m: zoo.create("y" * 300), (ERROR, "family")),
    ("list-models-int", lambda m: zoo.list_models(5), (ERROR, "pattern")),
    ("save-over-a-file", lambda m: m["gmm"].save_pretrained(__file__), (ERROR, "folder")),
    ("from-pretrained-missing", lambda m: zoo.GMM.from_pretrained("/no/such/folder"), (ERROR, "folder")),
    ("load-a-file", lambda m: zoo.load(__file__), (ERROR, "unknown model")),
    # -- the anomaly detector (PyOD's conventions) -----------------------------------------
    ("detector-fit-str", lambda m: detector(m).fit("digits"), (ERROR, "X")),
    ("detector-fit-complex", lambda m: detector(m).fit(np.ones((20, 1, 8, 8), dtype=complex)), (ERROR, "X")),
    ("detector-fit-nan", lambda m: detector(m).fit(np.full((20, 1, 8, 8), np.nan, dtype=np.float32)), (ERROR, "X")),
    ("detector-fit-empty", lambda m: detector(m).fit(np.zeros((0, 1, 8, 8), dtype=np.float32)), (ERROR, "X")),
    ("detector-contamination-nan", lambda m: zoo_anomaly().Detector(m["gmm"], contamination=math.nan),
     (ERROR, "contamination")),
    ("detector-contamination-above", lambda m: zoo_anomaly().Detector(m["gmm"], contamination=0.9),
     (ERROR, "contamination")),
    ("detector-score-before-fit", lambda m: zoo_anomaly().Detector("gmm").decision_function(image()), (ERROR, "fit")),
    ("detector-score-wrong-shape", lambda m: fitted_detector(m).decision_function(torch.rand(3, 1, 7, 7)), (ERROR, "X")),
    ("detector-score-float64", lambda m: fitted_detector(m).decision_function(image(torch.float64).numpy()), OK),
    # -- captions and metrics ---------------------------------------------------------------
    ("captions-measure-str", lambda m: zoo_captions().measure("a 7"), (ERROR, "images")),
    ("captions-measure-complex", lambda m: zoo_captions().measure(image(torch.complex64)), (ERROR, "images")),
    ("captions-measure-float64", lambda m: zoo_captions().measure(image(torch.float64)), OK),
    ("captions-read-int", lambda m: zoo_captions().read_prompt(7), (ERROR, "prompt")),
    ("molecules-valid-str", lambda m: molecules().fraction_valid("CCO"), (ERROR, "smiles")),
    ("molecules-valid-empty", lambda m: molecules().fraction_valid([]), (ERROR, "smiles")),
    ("molecules-valid-ints", lambda m: molecules().fraction_valid([1, 2]), (ERROR, "SMILES")),
    ("molecules-unique-k-zero", lambda m: molecules().fraction_unique(["CCO"], k=0), (ERROR, "k")),
    ("image-metrics-wrong-shape", lambda m: metrics_image().conditional_accuracy(torch.rand(2, 3), torch.tensor([0, 1]),
                                                                                  m["classifier"]), (ERROR, "images")),
]


def zoo_anomaly():
    import zoo.anomaly

    return zoo.anomaly


def zoo_captions():
    import zoo.captions

    return zoo.captions


def molecules():
    pytest.importorskip("rdkit")
    import zoo.metrics.molecules

    return zoo.metrics.molecules


def metrics_image():
    import zoo.metrics.image

    return zoo.metrics.image


def detector(m):
    return zoo_anomaly().Detector(m["gmm"])


def fitted_detector(m):
    return detector(m).fit(torch.rand(30, 1, 8, 8))


# -- batteries: every family's entry points against the same odd values ------------------------------

#: quick settings, so the cases that must work run in milliseconds
FAST = {"steps": 2, "max_new_tokens": 3, "length": 5}
SAMPLERS = ("vae", "gan", "diffusion", "gpt", "gmm", "hmm", "nb", "text-diffusion")
#: (name, value, expected) for n and for seed, on every family's sample
N_VALUES = [("zero", 0, ERROR), ("negative", -1, ERROR), ("float", 1.5, ERROR), ("bool", True, ERROR),
            ("str", "2", ERROR), ("none", None, ERROR), ("huge", 10 ** 10, ERROR), ("numpy", np.int64(2), OK)]
SEED_VALUES = [("negative", -1, ERROR), ("2**64", 2 ** 64, ERROR), ("float", 1.5, ERROR), ("str", "0", ERROR),
               ("bool", True, ERROR), ("nan", math.nan, ERROR), ("numpy", np.int64(3), OK), ("2**64-1", 2 ** 64 - 1, OK)]
#: the odd values every option of a type meets (ints and floats; ranges are added per option)
OPTION_VALUES = {int: [("str", "3"), ("float", 2.5), ("bool", True), ("nan", math.nan), ("list", [2])],
                 float: [("str", "1"), ("nan", math.nan), ("inf", math.inf), ("bool", True), ("complex", 1j)],
                 str: [("int", 3), ("unknown", "no-such-choice")], bool: [("int", 1), ("str", "yes")]}
#: image entry points of the families that read images (the conditional VAE's are called with labels=1)
IMAGE_CALLS = {"vae": ("log_prob", "score", "encode"), "gmm": ("log_prob", "score"),
               "nb": ("log_prob", "score", "predict"), "classifier": ("predict",)}
IMAGE_VALUES = [("float16", lambda: image(torch.float16), OK), ("float64", lambda: image(torch.float64), OK),
                ("numpy", lambda: image().numpy(), OK), ("list", lambda: image().tolist(), OK),
                ("one-image", lambda: image()[0], OK), ("bool", lambda: image() > 0.5, OK),
                ("uint8-255", lambda: (image() * 255).to(torch.uint8), ERROR), ("complex", lambda: image(torch.complex64), ERROR),
                ("meta", lambda: image().to("meta"), ERROR), ("str", lambda: "image", ERROR), ("none", lambda: None, ERROR),
                ("int", lambda: 5, ERROR), ("nan", lambda: image().masked_fill(image() > 0.5, math.nan), ERROR),
                ("inf", lambda: image() + math.inf, ERROR), ("above-one", lambda: image() + 1, ERROR),
                ("negative", lambda: image() - 1, ERROR), ("empty", lambda: torch.zeros(0, 1, 8, 8), ERROR),
                ("wrong-size", lambda: torch.rand(2, 1, 7, 7), ERROR), ("flat", lambda: torch.rand(8, 8), ERROR),
                ("dict", lambda: {"x": image()}, ERROR)]
LABEL_VALUES = [("int", 3, OK), ("numpy-int", np.int64(3), OK), ("list", [1, 2], OK), ("numpy", np.array([1, 2]), OK),
                ("str", "3", ERROR), ("bool", True, ERROR), ("float", 1.0, ERROR), ("negative", -1, ERROR),
                ("too-large", 10, ERROR), ("wrong-length", [1, 2, 3], ERROR), ("2d", [[1], [2]], ERROR),
                ("complex", torch.tensor([1j, 2j]), ERROR)]


def battery() -> list[tuple]:
    cases = []
    for family in SAMPLERS:
        for name, value, expected in N_VALUES:
            cases.append((f"{family}-sample-n-{name}", lambda m, f=family, v=value: m[f].sample(
                v, **{k: x for k, x in FAST.items() if k in m[f].accepts()}), expected if expected == OK else (ERROR, "n")))
        for name, value, expected in SEED_VALUES:
            cases.append((f"{family}-sample-seed-{name}", lambda m, f=family, v=value: m[f].sample(
                2, seed=v, **{k: x for k, x in FAST.items() if k in m[f].accepts()}),
                expected if expected == OK else (ERROR, "seed")))
        cases.append((f"{family}-sample-unknown-option", lambda m, f=family: m[f].sample(2, stepz=3), (ERROR, "stepz")))
    for family, option_type, option, low, high in [
            ("diffusion", int, "steps", 1, 50), ("diffusion", float, "guidance", 0, None), ("diffusion", str, "sampler", None, None),
            ("diffusion", bool, "progress", None, None), ("gpt", int, "max_new_tokens", 1, 10000),
            ("gpt", float, "temperature", 0, None), ("gpt", int, "top_k", 1, None), ("gpt", float, "top_p", 0, 1),
            ("hmm", int, "length", 1, 100000), ("text-diffusion", int, "steps", 1, 50),
            ("text-diffusion", float, "guidance", 0, None)]:
        values = list(OPTION_VALUES[option_type])
        if low is not None:
            values.append(("below-range", low - 1))
        if high is not None:
            values.append(("above-range", high + 1))
        for name, value in values:
            extra = {"labels": 1} if family == "diffusion" and option == "guidance" else {}
            cases.append((f"{family}-{option}-{name}", lambda m, f=family, o=option, v=value, e=extra: m[f].sample(
                2, **{**{k: x for k, x in FAST.items() if k in m[f].accepts()}, **e, o: v}), (ERROR, option)))
    for family, calls in IMAGE_CALLS.items():
        for call in calls:
            for name, make, expected in IMAGE_VALUES:
                labels = {"labels": 1} if family == "vae" else {}
                cases.append((f"{family}-{call}-{name}", lambda m, f=family, c=call, mk=make, y=labels: getattr(m[f], c)(
                    mk(), **y), expected if expected == OK else (ERROR, "x")))
    for family, call in [("vae", "sample"), ("gan", "sample"), ("diffusion", "sample"), ("nb", "sample"),
                         ("vae", "log_prob"), ("nb", "log_prob")]:
        for name, value, expected in LABEL_VALUES:
            if call == "sample":
                run = lambda m, f=family, v=value: m[f].sample(2, labels=v, **{k: x for k, x in FAST.items()
                                                                              if k in m[f].accepts()})
            else:
                run = lambda m, f=family, c=call, v=value: getattr(m[f], c)(image(), labels=v)
            cases.append((f"{family}-{call}-labels-{name}", run, expected if expected == OK else (ERROR, "labels")))
    return cases


def numeric_arguments(fn):
    """(name, odd values) for each int and float argument of `fn`: a wrong type, a non-finite and a negative value."""
    import inspect
    import typing

    hints = typing.get_type_hints(fn)
    for name in inspect.signature(fn).parameters:
        kinds = set(typing.get_args(hints.get(name))) | {hints.get(name)}
        if float in kinds:
            yield name, [("str", "0.1"), ("nan", math.nan), ("inf", math.inf), ("bool", True), ("negative", -0.5)]
        elif int in kinds:
            yield name, [("str", "4"), ("float", 2.5), ("bool", True), ("negative", -1)]


def hyperparameter_battery() -> list[tuple]:
    """Every int and float hyperparameter of every family, given an odd value: refused when the model is
    created or built from the data, naming the hyperparameter."""
    from tests.test_conformance import SMALL, SPECS
    from zoo.data.digits import SPEC as DIGITS
    from zoo.registry import FAMILIES, import_object

    cases = []
    for family in sorted(FAMILIES):
        for name, values in numeric_arguments(import_object(FAMILIES[family].model).__init__):
            for label, value in values:
                def call(m, f=family, n=name, v=value):
                    return zoo.create(f, **{**SMALL[f], n: v}).fit_to_data(SPECS.get(f, DIGITS))
                cases.append((f"create-{family}-{name}-{label}", call, (ERROR, name)))
    return cases


def datamodule_battery() -> list[tuple]:
    """Every int and float argument of every registered datamodule (and the image-folder one), given an odd
    value: refused when the datamodule is created, naming the argument."""
    from zoo.registry import DATAMODULES, import_object

    classes = [import_object(path) for path in [*DATAMODULES.values(), "zoo.data.images:ImageFolderDataModule"]]
    required = {"ImageFolderDataModule": {"root": "."}}
    cases = []
    for cls in classes:
        for name, values in numeric_arguments(cls.__init__):
            for label, value in values:
                def call(m, c=cls, n=name, v=value):
                    return c(**{**required.get(c.__name__, {}), n: v})
                cases.append((f"datamodule-{cls.__name__}-{name}-{label}", call, (ERROR, name)))
    return cases


CASES += battery() + hyperparameter_battery() + datamodule_battery()


class Timeout(Exception):
    pass


def run_case(call, models, seconds=30):
    """(the result or the exception, whether it hung): an alarm interrupts a case that runs too long."""
    def alarm(signum, frame):
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return call(models)
    except Timeout:
        raise
    except Exception as error:  # noqa: BLE001 - classified by the caller
        return error
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def raised_in_zoo(error: BaseException) -> bool:
    """Whether the innermost frame of `error`'s traceback is genzoo's own code (not torch's, numpy's or Python's)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(ZOO)


def finite(result) -> bool:
    if isinstance(result, torch.Tensor):
        return not result.is_floating_point() or bool(torch.isfinite(result).all())
    if isinstance(result, float):
        return math.isfinite(result)
    if isinstance(result, (tuple, list)):
        return all(finite(r) for r in result)
    return True


@pytest.mark.parametrize("case, call, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(m, case, call, expected):
    result = run_case(call, m)
    if expected == OK:
        assert not isinstance(result, BaseException), f"{case}: valid input raised {result!r}"
        assert finite(result), f"{case}: a NaN or inf result"
        return
    word = expected[1]
    assert isinstance(result, BaseException), f"{case}: accepted silently, returned {type(result).__name__}"
    message = str(result)
    assert isinstance(result, (ValueError, TypeError, NotImplementedError)) and raised_in_zoo(result), \
        f"{case}: {type(result).__name__} from outside genzoo: {message[:200]}\n" + \
        "".join(traceback.format_tb(result.__traceback__)[-2:])
    assert "\n" not in message and word in message, f"{case}: the message does not name {word!r}: {message[:300]}"


def test_every_case_is_named_once():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
