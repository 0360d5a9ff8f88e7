"""Data: plain tensors for inference, LightningDataModules for training."""
