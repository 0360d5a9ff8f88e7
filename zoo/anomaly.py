"""Anomaly detection with genzoo's density models, in PyOD's and scikit-learn's conventions.

A ``Detector`` wraps a genzoo model (an instance, a pretrained name or folder, or a family name to
train on normal data) and scores data by how unlikely the model finds it::

    from zoo.anomaly import Detector

    det = Detector("gmm", n_components=1, reg_covar=0.1, background="shifts")  # a family: trained in fit
    det.fit(normal_images)              # (N, 1, 28, 28) in [0, 1], or a table (N, D), or a list of str
    det.decision_function(x)            # (N,) higher = more anomalous
    det.predict(x)                      # (N,) 1 = anomaly: score above threshold_
    det.predict_proba(x)                # (N, 2) [p(normal), p(anomaly)], PyOD's linear scaling
    det.decision_scores_, det.threshold_, det.labels_   # the training scores, threshold and labels

    Detector("vae-mnist-5k").fit(val_images)          # a trained model: fit records scores and threshold
    Detector("gpt-shakespeare-char").fit(lines)       # text: nats per token

**Scores** (``decision_function``; higher = more anomalous, in nats):

- GMM, naive Bayes: the exact -log p(x) (a GMM with discrete ``levels``: its dequantised bound).
- VAE: -IWAE log p(x) with ``k`` importance samples (default 16, seeded; ``k=1`` is the ELBO).
- DDPM: a denoising score: the DDPM training loss (Ho et al. 2020, eq. 14; the negative ELBO up to
  per-timestep weights and constants) summed over pixels, averaged over ``timesteps`` (default 10)
  evenly spaced t with seeded noise; a conditional DDPM is scored with its null class.
- HMM, GPT: -log p(text) / tokens: nats per character (HMM) or per token (GPT). A character an HMM
  never saw has probability 0: its text scores +inf (shown as the largest float).
- images: the total over pixels by default; ``per_dimension=True`` divides by C*H*W (nats per dimension).
- ``background="shifts"`` (images, a model the detector trains): the log likelihood ratio
  -log p(x) + log p_bg(x) against a background model of the same family fit on the same normal images
  circularly shifted by up to ``shift`` pixels (default a third of the side) in each direction: the
  background keeps the strokes' local statistics and forgets where they sit, so the ratio scores
  shape, not simplicity (likelihoods alone favour simple images; Schirrmeister et al. 2020 use a
  general-domain model the same way). A one-component GMM's background is exact (the Gaussian of all
  (2*shift+1)^2 shifted copies, from shifted moments); other models train on random shifts.

**Training** (when the model has no weights yet): GMMs by EM (k-means++ start; one component unless
``n_components`` says otherwise: in contaminated data a component can settle on a few outliers and
call them likely; continuous, no ``levels``, unless given), naive Bayes in closed
form (with ``labels`` given to fit, else k-means clusters as its classes), HMMs by Baum-Welch on
the texts' characters, VAEs and DDPMs by Adam on their loss for at most ``max_epochs`` epochs or
``max_seconds`` seconds. A GPT is not trained here: pass a trained one.

**Tables** are standardised (z-scores, mean and standard deviation of the training data; a
constant feature keeps scale 1) when the detector trains the model (``standardize=None``). Images
are never standardised: models take pixels in [0, 1].

**Thresholds** as PyOD: ``threshold_`` is the (1 - contamination) quantile of the training scores,
or with ``threshold_quantile`` the given quantile of the scores of ``validation`` data given to fit
(of the training data if none). ``predict_proba(method="linear")`` min-max scales the score by the
training scores' range (clipped to [0, 1]); ``method="unify"`` is erf((s - mean) / (std * sqrt 2)),
clipped at 0 (Kriegel et al. 2011), both as PyOD's ``predict_proba``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import Tensor

from zoo.checks import check_choice, check_int
from zoo.models.base import GenerativeModel

#: what a detector reads: a table (N, D), images (N, C, H, W) in [0, 1], or texts (a list of str)
KINDS = ("table", "images", "text")
#: importance samples of a VAE's IWAE score unless ``score_options`` says otherwise
VAE_K = 16
#: timesteps of a DDPM's denoising score unless ``score_options`` says otherwise
DDPM_TIMESTEPS = 10
#: the largest score: -log p(x) = +inf (zero probability) is reported as this
MAX_SCORE = float(np.finfo(np.float64).max)


class NotFittedError(ValueError, AttributeError):
    """A fitted attribute or method was used before ``fit`` (scikit-learn's exception has the same bases)."""


# -- which families score ------------------------------------------------------------------------


def _is_diffusion(model_or_cls: Any) -> bool:
    """A DDPM the denoising score applies to: unconditional or on labels (a text-to-image DDPM's UNet needs a prompt,
    which the score does not take)."""
    from zoo.models.contract import takes_prompts
    from zoo.models.diffusion import DDPM

    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    return issubclass(cls, DDPM) and not takes_prompts(cls)


def can_score(model_or_cls: Any) -> bool:
    """Whether a model (or model class) has a density or a bound to score with: a ``log_prob``, or DDPM's denoising score."""
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    return issubclass(cls, GenerativeModel) and (cls.has_log_prob() or _is_diffusion(cls))


def scoring_families() -> list[str]:
    """The registered families a Detector can score with."""
    from zoo.registry import FAMILIES, import_object

    return [name for name, fam in FAMILIES.items() if can_score(import_object(fam.model))]


def _refuse(what: str) -> ValueError:
    return ValueError(f"model: {what} has no density or bound to score with; families that can score: "
                      f"{', '.join(scoring_families())}")


# -- inputs ----------------------------------------------------------------------------------------


def as_input(X: Any, name: str = "X") -> tuple[str, Any]:
    """(kind, data): a table as float64 (N, D), images as float32 (N, C, H, W) in [0, 1], or a list of str.

    Raises one ValueError line naming `name` for an empty input, NaN/inf, pixels outside [0, 1], or a shape
    that is none of these."""
    if isinstance(X, str):
        raise ValueError(f"{name} must be a list of texts, an array (N, D) or images (N, C, H, W), got one str "
                         f"(wrap a single text in a list)")
    if isinstance(X, (list, tuple)) and X and all(isinstance(s, str) for s in X):
        empty = [i for i, s in enumerate(X) if not s]
        if empty:
            raise ValueError(f"{name} holds an empty text at index {empty[0]}: every text needs a character")
        return "text", list(X)
    try:
        t = X.detach().cpu() if isinstance(X, Tensor) else torch.from_numpy(np.asarray(X))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be a numeric array (N, D), images (N, C, H, W) or a list of str, got "
                         f"{type(X).__name__} ({str(e).splitlines()[0][:80]})") from None
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}): expected at least one sample")
    if t.dim() not in (2, 4):
        raise ValueError(f"{name} must be a table (N, D), images (N, C, H, W) or a list of str, got shape "
                         f"{tuple(t.shape)}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).flatten(1).any(1).nonzero()[0, 0].item()
        raise ValueError(f"{name} contains NaN or inf (first in sample {bad}): expected finite values")
    if t.dim() == 2:
        return "table", t.double()
    t = t.float()
    if t.min() < 0 or t.max() > 1:
        raise ValueError(f"{name} must hold pixel values in [0, 1], got range [{t.min().item():.3g}, "
                         f"{t.max().item():.3g}] (divide 8-bit images by 255)")
    return "images", t


def model_kind(model: GenerativeModel) -> str:
    """What a built model scores: "images", "table" or "text"."""
    if model.outputs == "text":
        return "text"
    shape = getattr(model, "image_shape", None)
    if shape is not None and len(shape) == 3 and None not in shape:
        return "images"
    if shape is not None and len(shape) == 1 or model.outputs == "vectors":
        return "table"
    raise ValueError(f"model: a {type(model).__name__} scoring {model.outputs} is not supported by the Detector "
                     f"(it reads tables, images and texts)")


def model_size(model: GenerativeModel) -> int | tuple[int, ...] | None:
    """The image shape (C, H, W) or the number of features a built model takes (None for text)."""
    kind = model_kind(model)
    if kind == "images":
        return tuple(model.image_shape)
    if kind == "table":
        shape = getattr(model, "image_shape", None)
        return math.prod(shape) if shape else model.mixture.n_features
    return None


class Standardizer:
    """z-scores with the training data's mean and standard deviation (a constant feature keeps scale 1)."""

    def __init__(self, x: Tensor):
        self.mean = x.mean(0)
        std = x.std(0, unbiased=False)
        self.scale = torch.where(std > 0, std, torch.ones_like(std))

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.scale


def shift_images(x: Tensor, shift: int, gen: torch.Generator) -> Tensor:
    """Each image circularly shifted by its own random (dy, dx) in [-shift, shift]^2."""
    n, _, h, w = x.shape
    dy = torch.randint(-shift, shift + 1, (n,), generator=gen)
    dx = torch.randint(-shift, shift + 1, (n,), generator=gen)
    rows = (torch.arange(h)[None, :] - dy[:, None]) % h  # (N, H): source row of each output row
    cols = (torch.arange(w)[None, :] - dx[:, None]) % w  # (N, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).flatten(1)  # (N, H*W)
    flat = x.flatten(2)  # (N, C, H*W)
    return flat.gather(2, index[:, None, :].expand(-1, x.shape[1], -1).to(x.device)).view_as(x)


# -- training -------------------------------------------------------------------------------------


@torch.no_grad()
def fit_mixture(mixture: Any, x: Tensor, *, max_iter: int = 100, tol: float = 1e-4, seed: int = 0) -> list[float]:
    """EM on a ``GaussianMixture`` from a k-means++ start; returns the mean log-likelihood before each M-step.

    The E-step takes responsibilities from ``posterior`` and the layer's ``stats_from_responsibilities``, so
    memory stays (N, K) + (K, D, D): ``GaussianMixture.fit`` materialises (N, D(D+1)/2) second moments, a gigabyte for
    400 images of 28x28 with full covariances."""
    mixture.initialize(x, init="kmeans++", seed=seed)
    history: list[float] = []
    for _ in range(max_iter):
        history.append(mixture.log_prob(x).double().mean().item())
        mixture.m_step(mixture.stats_from_responsibilities(x, mixture.posterior(x)))
        if mixture.n_components == 1 or len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            break  # one component: the first M-step is the maximum-likelihood fit
    return history


@torch.no_grad()
def shifted_gaussian(x: Tensor, shift: int) -> tuple[Tensor, Tensor]:
    """Mean (D,) and covariance (D, D) of all (2*shift+1)^2 circular shifts of images x (N, C, H, W), exactly:
    the moments of x rolled over every shift, without materialising a shifted copy."""
    n, c, h, w = x.shape
    flat = x.flatten(1).double()
    mean = flat.mean(0).view(c, h, w)
    second = (flat.T @ flat / n).view(c, h, w, c, h, w)
    shifts = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    m = sum(torch.roll(mean, s, (1, 2)) for s in shifts) / len(shifts)
    s2 = sum(torch.roll(second, (dy, dx, dy, dx), (1, 2, 4, 5)) for dy, dx in shifts) / len(shifts)
    m = m.reshape(-1)
    return m, s2.reshape(len(m), len(m)) - torch.outer(m, m)


def train_gradient(model: GenerativeModel, x: Tensor, loss: Callable[[Tensor, torch.Generator], Tensor], *,
                   lr: float, batch_size: int, max_epochs: int, max_seconds: float, seed: int,
                   after_step: Callable[[], None] | None = None,
                   transform: Callable[[Tensor, torch.Generator], Tensor] | None = None) -> int:
    """Adam on `loss(batch, generator)` over shuffled batches for at most `max_epochs` epochs or `max_seconds`
    seconds (checked after each epoch, at least one); returns the epochs run. Seeded: the global RNG is forked."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    start, epochs = time.perf_counter(), 0
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while epochs < max_epochs:
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                batch = x[order[i:i + batch_size]]
                if transform is not None:
                    batch = transform(batch, gen)
                value = loss(batch.to(model.device), gen)
                opt.zero_grad(set_to_none=True)
                value.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                if after_step is not None:
                    after_step()
            epochs += 1
            if time.perf_counter() - start > max_seconds:
                break
    model.eval()
    return epochs


def infer_levels(x: Tensor) -> int:
    """The grey levels of images in [0, 1]: 2, 17 (the 8x8 digits) or 256 when x is a multiple of 1/(L-1), else 256."""
    for levels in (2, 17, 256):
        y = x * (levels - 1)
        if torch.allclose(y, y.round(), atol=1e-3):
            return levels
    return 256


# -- scores ------------------------------------------------------------------------------------------


@torch.no_grad()
def denoising_score(model: Any, x: Tensor, *, timesteps: int = DDPM_TIMESTEPS, seed: int = 0) -> Tensor:
    """A DDPM's denoising score of images x (N, C, H, W) in [0, 1]: its training loss summed over pixels,
    averaged over `timesteps` evenly spaced t in [0, T), with noise seeded by `seed` (the same images, the
    same scores; every image sees the same noise). Uses the EMA weights; a conditional DDPM its null class."""
    check_int("timesteps", timesteps, 1, model.schedule.timesteps)
    x0 = x.to(model.device) * 2 - 1
    n, total = len(x0), model.schedule.timesteps
    gen = torch.Generator(device=model.device).manual_seed(seed)
    noise_shape = (1, *x0.shape[1:])
    labels = torch.full((n,), model.num_classes, device=x0.device, dtype=torch.long) if model.num_classes else None
    out = torch.zeros(n, dtype=torch.float64, device=x0.device)
    for i in range(timesteps):
        t = int((i + 0.5) * total / timesteps)
        noise = torch.randn(noise_shape, generator=gen, device=x0.device).expand_as(x0)
        ab = model.alphas_cumprod[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        pred = model.ema(xt, torch.full((n,), t, device=x0.device), labels)
        target = noise if model.prediction == "eps" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
        out += (pred - target).square().flatten(1).sum(1).double()
    return (out / timesteps).cpu()


# -- the detector --------------------------------------------------------------------------------------


class Detector:
    """A genzoo model as an anomaly detector (PyOD's ``fit`` / ``decision_function`` / ``predict``).

    Args:
        model: a model instance, a pretrained name or model folder (``zoo.load``), or a family name
            (``"gmm"``, ``"nb"``, ``"vae"``, ``"diffusion"``, ``"hmm"``) to train on the data given to ``fit``,
            built with `hparams` (the family's init arguments; sizes come from the data).
        contamination: the expected fraction of anomalies in the training data, in (0, 0.5]: ``threshold_``
            is the (1 - contamination) quantile of the training scores (PyOD's default 0.1).
        threshold_quantile: instead, the threshold is this quantile, in (0, 1), of the scores of the
            ``validation`` data given to ``fit`` (of the training data when none).
        standardize: z-score tables with the training data's statistics; None: when the detector trains
            the model. Images and texts are never standardised.
        per_dimension: image scores per pixel value (divided by C*H*W) instead of the total.
        background: ``"shifts"``: score by the likelihood ratio against a background of shifted images
            (see the module docstring); images and a model the detector trains only.
        shift: the background's largest shift in pixels; None: a third of the image side.
        score_options: options of the score: ``k`` (VAE importance samples), ``timesteps`` (DDPM), and any
            keyword the model's ``log_prob`` declares (``model.accepts("log_prob")``).
        max_epochs, max_seconds, lr, batch_size: training of VAEs and DDPMs (time checked after each epoch);
            batch_size also bounds the images scored at once. EM runs at most ``max_iter`` iterations.
        random_state: seeds initialisation, training and stochastic scores: the same data, the same scores.
        device: where a model the detector builds lives ("cpu", "cuda"...); a given model stays where it is.
    """

    def __init__(self, model: str | Path | GenerativeModel = "gmm", *, contamination: float = 0.1,
                 threshold_quantile: float | None = None, standardize: bool | None = None,
                 per_dimension: bool = False, background: Literal["shifts"] | None = None,
                 shift: int | None = None, score_options: dict[str, Any] | None = None, max_epochs: int = 50,
                 max_seconds: float = 120.0, max_iter: int = 100, lr: float = 2e-3, batch_size: int = 256,
                 random_state: int = 0, device: str | None = None, **hparams: Any):
        if isinstance(contamination, bool) or not isinstance(contamination, (int, float)) \
                or not 0 < contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {contamination!r}")
        if threshold_quantile is not None and (isinstance(threshold_quantile, bool) or not isinstance(
                threshold_quantile, (int, float)) or not 0 < threshold_quantile < 1):
            raise ValueError(f"threshold_quantile must be None or in (0, 1), got {threshold_quantile!r}")
        if standardize not in (None, True, False):
            raise ValueError(f"standardize must be None, True or False, got {standardize!r}")
        check_choice("background", background, (None, "shifts"))
        if shift is not None:
            check_int("shift", shift, 1, 4096)
        if score_options is not None and not isinstance(score_options, dict):
            raise ValueError(f"score_options must be a dict of keyword arguments, got {type(score_options).__name__}")
        check_int("max_epochs", max_epochs, 1, 1_000_000)
        check_int("max_iter", max_iter, 1, 100_000)
        check_int("batch_size", batch_size, 1, 1 << 20)
        check_int("random_state", random_state, 0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (max_seconds, lr)):
            raise ValueError(f"max_seconds and lr must be positive numbers, got {max_seconds!r} and {lr!r}")
        self.contamination, self.threshold_quantile = float(contamination), threshold_quantile
        self.standardize, self.per_dimension, self.background, self.shift = standardize, per_dimension, background, shift
        self.score_options = dict(score_options or {})
        self.max_epochs, self.max_seconds, self.max_iter, self.lr = max_epochs, float(max_seconds), max_iter, lr
        self.batch_size, self.random_state, self.device, self.hparams = batch_size, random_state, device, hparams
        self.family: str | None = None  # set when the detector builds and trains the model
        self.model_: GenerativeModel | None = None
        self.background_: GenerativeModel | None = None
        self._resolve(model)

    def _resolve(self, model: Any) -> None:
        from zoo.registry import FAMILIES, import_object, load

        if isinstance(model, GenerativeModel):
            if not can_score(model):
                raise _refuse(f"the {model.family} family ({type(model).__name__})")
            self.model_ = model
        elif isinstance(model, str) and model in FAMILIES:
            cls = import_object(FAMILIES[model].model)
            if not can_score(cls):
                raise _refuse(f"the {model} family")
            if model == "gpt":
                raise ValueError("model: a GPT detector scores with a trained GPT: pass a pretrained name or folder "
                                 "(e.g. 'gpt-shakespeare-char'); train one on your texts with genzoo fit")
            self.family = model
        elif isinstance(model, (str, Path)):
            loaded = load(model)
            if not can_score(loaded):
                raise _refuse(f"{str(model)!r} (the {loaded.family} family)")
            self.model_ = loaded
        else:
            raise ValueError(f"model must be a genzoo model, a pretrained name or folder, or a family name, got "
                             f"{type(model).__name__}")
        if self.hparams and self.family is None:
            raise ValueError(f"hyperparameters {sorted(self.hparams)} build a model to train: give a family name "
                             f"as model, not a trained model")
        if self.background and self.family is None:
            raise ValueError("background: a background model is trained beside the model, so it needs a family "
                             "name as model (the detector trains both)")
        if self.model_ is not None and self.model_.pending:
            raise ValueError(f"model: this {type(self.model_).__name__} has no weights yet (its sizes come from the "
                             f"data); pass its family name to train one in fit")

    # -- fitting ----------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, *, labels: Any = None, validation: Any = None) -> "Detector":
        """Train the model on X if it has no weights yet, then record ``decision_scores_``, ``threshold_`` and
        ``labels_``. `y` is ignored (unsupervised, as PyOD); `labels` are classes of X for naive Bayes;
        `validation` is normal data whose scores set the threshold when ``threshold_quantile`` is given."""
        start = time.perf_counter()
        kind, data = as_input(X)
        self._standardizer = None
        if self.family is not None:
            self._check_family_kind(kind)
            if self.standardize is not False and kind == "table":
                self._standardizer = Standardizer(data)
                data = self._standardizer(data)
            elif self.standardize and kind != "table":
                raise ValueError(f"standardize: only tables are standardised; X holds {kind}")
            self.model_ = self._train(kind, data, labels)
            if self.background:
                self.background_ = self._train_background(data)
        else:
            if labels is not None:
                raise ValueError("labels: a trained model is not refitted, so fit takes no labels")
            if self.standardize:
                self._standardizer = Standardizer(data) if kind == "table" else None
                if kind != "table":
                    raise ValueError(f"standardize: only tables are standardised; X holds {kind}")
                data = self._standardizer(data)
            self._check_shape(kind, data, "X")
        self.input_kind_ = kind
        self.n_features_in_ = data.shape[1] if kind == "table" else None
        self.fit_seconds_ = time.perf_counter() - start
        self.decision_scores_ = self._scores(data)
        if self.threshold_quantile is not None:
            ref = self.decision_scores_ if validation is None else self._input_scores(validation, "validation")
            self.threshold_ = float(np.quantile(ref, self.threshold_quantile))
        else:
            if validation is not None:
                raise ValueError("validation: sets the threshold only with threshold_quantile; contamination "
                                 "uses the training scores")
            self.threshold_ = float(np.percentile(self.decision_scores_, 100 * (1 - self.contamination)))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        self._mu, self._sigma = float(self.decision_scores_.mean()), float(self.decision_scores_.std())
        return self

    def _check_family_kind(self, kind: str) -> None:
        takes = {"gmm": ("table", "images"), "nb": ("table", "images"), "vae": ("images",),
                 "diffusion": ("images",), "hmm": ("text",)}.get(self.family, ())
        if kind not in takes:
            raise ValueError(f"X: the {self.family} family scores {' or '.join(takes) or 'nothing'} here, got {kind}")
        if self.background and kind != "images":
            raise ValueError(f"background: shifted backgrounds are for images, X holds {kind}")

    def _build(self, cls_name: str, **sizes: Any) -> GenerativeModel:
        from zoo.registry import create

        try:
            model = create(cls_name, **{**sizes, **self.hparams})
        except TypeError as e:  # an unknown hyperparameter
            raise ValueError(f"hparams: {e}") from None
        return model.to(self.device) if self.device else model

    def _train(self, kind: str, data: Any, labels: Any) -> GenerativeModel:
        if labels is not None and self.family != "nb":
            raise ValueError(f"labels: only naive Bayes takes labels here, the {self.family} family trains unconditionally")
        if self.family == "gmm":
            sizes = {"image_shape": list(data.shape[1:])} if kind == "images" else {"n_features": data.shape[1]}
            model = self._build("gmm", **sizes, levels=self.hparams.get("levels"),
                                n_components=self.hparams.get("n_components", 1))
            return self._fit_gmm(model, data)
        if self.family == "nb":
            return self._fit_nb(kind, data, labels)
        if self.family == "hmm":
            return self._fit_hmm(data)
        c, h, w = data.shape[1:]
        if h != w:
            raise ValueError(f"X: the {self.family} family takes square images, got {h}x{w}")
        if self.family == "vae":
            levels = self.hparams.get("levels") or infer_levels(data)
            model = self._build("vae", image_size=h, channels=c, levels=levels)
            self._fit_vae(model, data)
            return model
        model = self._build("diffusion", image_size=h, channels=c)
        self._fit_ddpm(model, data)
        return model

    def _fit_gmm(self, model: GenerativeModel, data: Tensor) -> GenerativeModel:
        model.double()
        x = data.to(model.device, torch.float64)
        if model.levels is None:  # continuous: memory-light EM on the mixture
            fit_mixture(model.mixture, x.flatten(1), max_iter=self.max_iter, seed=self.random_state)
            return model.eval()
        model.initialize(x, seed=self.random_state)  # discrete levels: the model's dequantising EM
        for _ in range(self.max_iter):
            model.m_step(model.e_step(x))
        return model.eval()

    def _fit_nb(self, kind: str, data: Tensor, labels: Any) -> GenerativeModel:
        from zoo.layers.mixture import _nearest, kmeans_plus_plus, lloyd

        x = data.flatten(1)
        if labels is None:  # k-means clusters stand in for the classes
            k = self.hparams.get("num_classes") or 5
            check_int("num_classes", k, 2, len(x))
            gen = torch.Generator().manual_seed(self.random_state)
            labels = _nearest(x, lloyd(x, kmeans_plus_plus(x, k, gen)))
        else:
            labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
            if labels.shape != (len(x),) or labels.is_floating_point():
                raise ValueError(f"labels must be {len(x)} integer classes, got shape {tuple(labels.shape)}")
            labels = torch.unique(labels, return_inverse=True)[1]
            k = int(labels.max()) + 1
            if k < 2:
                raise ValueError("labels: naive Bayes needs at least 2 classes; omit labels to use k-means clusters")
        shape = list(data.shape[1:]) if kind == "images" else [data.shape[1]]
        # NaiveBayes takes levels from the data even for the gaussian kind (which ignores them): tables get 2
        levels = self.hparams.get("levels") or (infer_levels(data) if kind == "images" else 2)
        hp = {k_: v for k_, v in self.hparams.items() if k_ not in ("num_classes", "levels")}
        from zoo.registry import create

        try:
            model = create("nb", num_classes=k, image_shape=shape, levels=levels, **hp).double()
        except TypeError as e:
            raise ValueError(f"hparams: {e}") from None
        if kind == "table" and model.kind != "gaussian":
            raise ValueError(f"kind: tables take naive Bayes kind 'gaussian', got {model.kind!r}")
        model.fit(data.to(torch.float64), labels.long())
        return model.eval()

    def _fit_hmm(self, texts: list[str]) -> GenerativeModel:
        vocab = "".join(sorted(set("".join(texts))))
        model = self._build("hmm", vocab=vocab)
        model.hmm.fit([model.encode(t) for t in texts], max_iter=self.max_iter, seed=self.random_state)
        return model.eval()

    def _fit_vae(self, model: GenerativeModel, data: Tensor, transform: Any = None) -> None:
        self.epochs_ = train_gradient(model, data, lambda b, g: model.elbo(b)["loss"], lr=self.lr,
                                      batch_size=min(64, self.batch_size), max_epochs=self.max_epochs,
                                      max_seconds=self.max_seconds, seed=self.random_state, transform=transform)

    def _fit_ddpm(self, model: GenerativeModel, data: Tensor, transform: Any = None) -> None:
        on_cpu = model.device.type == "cpu"  # a CPU generator seeds t and the noise there (elsewhere: the forked RNG)
        self.epochs_ = train_gradient(model, data, lambda b, g: model.loss(b, generator=g if on_cpu else None), lr=self.lr,
                                      batch_size=min(64, self.batch_size), max_epochs=self.max_epochs,
                                      max_seconds=self.max_seconds, seed=self.random_state,
                                      after_step=model.update_ema, transform=transform)

    def _background_shift(self, data: Tensor) -> int:
        return self.shift or max(1, round(min(data.shape[-2:]) / 3))

    def _train_background(self, data: Tensor) -> GenerativeModel:
        """The same family fit on shifted copies of the training images (exact moments for one Gaussian)."""
        shift = self._background_shift(data)
        model = self.model_
        if self.family == "gmm" and model.mixture.n_components == 1 and model.levels is None and \
                model.mixture.covariance_type in ("full", "diag"):
            from zoo.layers.mixture import GaussianMixture

            mean, cov = shifted_gaussian(data, shift)
            eye = torch.eye(len(mean), dtype=cov.dtype)
            reg = model.mixture.reg_covar
            cov = cov + reg * eye if model.mixture.covariance_type == "full" else cov.diagonal().clamp_min(0) + reg
            bg = type(model)(**model.init_args).double()
            bg.mixture = GaussianMixture.from_params([1.0], mean[None], cov[None], model.mixture.covariance_type, reg)
            return bg.to(model.device).eval()
        gen = torch.Generator().manual_seed(self.random_state + 1)
        transform = lambda b, g: shift_images(b, shift, g)  # noqa: E731
        if self.family in ("gmm", "nb"):  # EM / closed form: materialise up to 16 shifted copies of each image
            copies = max(1, min(16, (2 * shift + 1) ** 2, 100_000 // len(data)))
            shifted = torch.cat([shift_images(data, shift, gen) for _ in range(copies)])
            if self.family == "gmm":
                return self._fit_gmm(type(model)(**model.init_args), shifted)
            return self._fit_nb("images", shifted, None)
        bg = type(model)(**model.init_args)
        bg = bg.to(self.device) if self.device else bg
        (self._fit_vae if self.family == "vae" else self._fit_ddpm)(bg, data, transform)
        return bg

    # -- scoring ------------------------------------------------------------------------------------

    #: what fit sets; reading one before fit is a NotFittedError (an AttributeError, so hasattr is False)
    FITTED = ("threshold_", "decision_scores_", "labels_", "input_kind_", "n_features_in_", "fit_seconds_")

    def __getattr__(self, name: str) -> Any:
        if name in Detector.FITTED:
            raise NotFittedError(f"{name}: this Detector is not fitted yet; call fit(X) first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _check_fitted(self, what: str) -> None:
        if "threshold_" not in self.__dict__:
            raise NotFittedError(f"{what}: this Detector is not fitted yet; call fit(X) first")

    def _check_shape(self, kind: str, data: Any, name: str) -> None:
        expected_kind = model_kind(self.model_)
        if kind != expected_kind:
            raise ValueError(f"{name}: this detector's model scores {expected_kind}, got {kind}")
        size = model_size(self.model_)
        if kind == "images" and tuple(data.shape[1:]) != size:
            raise ValueError(f"{name} has images of shape {tuple(data.shape[1:])}, but the model takes {size}")
        if kind == "table" and data.shape[1] != size:
            raise ValueError(f"{name} has {data.shape[1]} features, but the model takes {size}")

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores (N,) of X, float64: higher = more anomalous (see the module docstring)."""
        self._check_fitted("decision_function")
        return self._input_scores(X, "X")

    def _input_scores(self, X: Any, name: str) -> np.ndarray:
        kind, data = as_input(X, name)
        if kind != self.input_kind_:
            raise ValueError(f"{name} holds {kind}, but this detector was fitted on {self.input_kind_}")
        if kind == "table" and data.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {data.shape[1]} features, but this detector was fitted on "
                             f"{self.n_features_in_}")
        if self._standardizer is not None:
            data = self._standardizer(data)
        return self._scores(data, name)

    def _scores(self, data: Any, name: str = "X") -> np.ndarray:
        self._check_shape(self.input_kind_, data, name)
        scores = self._model_scores(self.model_, data)
        if self.background_ is not None:
            scores = scores - self._model_scores(self.background_, data)
        scores = scores.double().numpy()
        return np.where(np.isnan(scores) | (scores > MAX_SCORE), MAX_SCORE, scores)

    def _options(self, model: GenerativeModel) -> dict[str, Any]:
        accepted = model.accepts("log_prob")
        extra = {"timesteps"} if _is_diffusion(model) else set()
        unknown = sorted(set(self.score_options) - set(accepted) - extra - {"labels"})
        if unknown or "labels" in self.score_options:
            raise ValueError(f"score_options: {type(model).__name__} scores take "
                             f"{', '.join(sorted(set(accepted) - {'labels'} | extra)) or 'no options'}, "
                             f"got {', '.join(unknown) or 'labels'}")
        options = dict(self.score_options)
        if "seed" in accepted:
            options.setdefault("seed", self.random_state)
        if "k" in accepted:
            options.setdefault("k", VAE_K)
        return options

    @torch.no_grad()
    def _model_scores(self, model: GenerativeModel, data: Any) -> Tensor:
        options = self._options(model)
        if isinstance(data, list):  # texts: nats per token
            return self._text_scores(model, data, options)
        if _is_diffusion(model):
            parts = [denoising_score(model, b, timesteps=options.get("timesteps", DDPM_TIMESTEPS),
                                     seed=options.get("seed", self.random_state)) for b in data.split(self.batch_size)]
        else:  # each model casts to its own dtype
            parts = [-model.log_prob(b.to(model.device), **options).double().cpu() for b in data.split(self.batch_size)]
        scores = torch.cat(parts)
        if self.per_dimension and data.dim() == 4:
            scores = scores / math.prod(data.shape[1:])
        return scores

    def _text_scores(self, model: GenerativeModel, texts: list[str], options: dict[str, Any]) -> Tensor:
        """-log p(text) / tokens: characters for an HMM (+inf for a character it never saw), tokens for a GPT."""
        out = torch.full((len(texts),), math.inf, dtype=torch.float64)
        if model.family == "hmm":
            known = set(model.vocab)
            idx = [i for i, t in enumerate(texts) if set(t) <= known]  # the others have probability 0
            tokens = [len(texts[i]) for i in idx]
        else:
            idx = list(range(len(texts)))
            tokens = [max(1, len(model.tokenizer.encode(t).ids)) for t in texts]
        for start in range(0, len(idx), self.batch_size):
            part = idx[start:start + self.batch_size]
            log_p = model.log_prob([texts[i] for i in part], **options).double().cpu()
            out[part] = -log_p / torch.tensor(tokens[start:start + self.batch_size], dtype=torch.float64)
        return out

    # -- PyOD's outputs ------------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """(N,) int: 1 for an anomaly (score above ``threshold_``), 0 for normal."""
        self._check_fitted("predict")
        return (self.decision_function(X) > self.threshold_).astype(int)

    def fit_predict(self, X: Any, y: Any = None, **fit_args: Any) -> np.ndarray:
        """``fit(X)`` then ``labels_``."""
        return self.fit(X, y, **fit_args).labels_

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """(N, 2) [p(normal), p(anomaly)] by PyOD's rules: "linear" min-max scales the score by the training
        scores' range, "unify" is erf((score - mean) / (std sqrt 2)) of the training scores; clipped to [0, 1]."""
        self._check_fitted("predict_proba")
        check_choice("method", method, ("linear", "unify"))
        s = self.decision_function(X)
        if method == "linear":
            low, high = self.decision_scores_.min(), self.decision_scores_.max()
            p = (s - low) / (high - low) if high > low else np.zeros_like(s)
        else:
            from scipy.special import erf

            p = erf((s - self._mu) / (max(self._sigma, 1e-300) * math.sqrt(2)))
        p = np.clip(p, 0, 1)
        return np.stack([1 - p, p], axis=1)

    def __repr__(self) -> str:
        what = self.family or (type(self.model_).__name__ if self.model_ is not None else "?")
        extra = "".join(f", {k}={v!r}" for k, v in self.hparams.items())
        return f"Detector({what!r}, contamination={self.contamination}{extra})"
