"""genzoo: a model zoo of generative models under one API.

    import zoo
    zoo.list_models()                     # pretrained names
    model = zoo.load("vae-digits")        # packaged checkpoint, local folder, HF cache or Hub
    images = model.sample(16, seed=0)     # (16, 1, 8, 8) in [0, 1]
    scores = model.score(images)          # anomaly score: higher = more unusual
    fresh = zoo.create("vae", latent_dim=8)

Importing zoo loads neither Lightning, gradio, transformers nor torchvision: model
classes are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo.registry import create, list_models, load, model_info  # noqa: E402

_LAZY = {"VAE": "zoo.models.vae", "GAN": "zoo.models.gan", "DDPM": "zoo.models.diffusion",
         "DigitsClassifier": "zoo.models.classifier", "GPT": "zoo.models.gpt", "GMM": "zoo.models.gmm",
         "HMM": "zoo.models.hmm", "NaiveBayes": "zoo.models.naive_bayes",
         "GenerativeModel": "zoo.models.base", "CheckpointError": "zoo.hub"}

__all__ = ["__version__", "create", "list_models", "load", "model_info", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
