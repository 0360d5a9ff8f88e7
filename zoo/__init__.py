"""genzoo: a model zoo of generative models under one API."""

__version__ = "0.1.0"
