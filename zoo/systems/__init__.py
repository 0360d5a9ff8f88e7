"""LightningModules ("systems"): losses, optimisers and logging around a model from zoo.models."""
