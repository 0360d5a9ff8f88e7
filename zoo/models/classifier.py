"""A small convolutional digits classifier: the feature extractor of genzoo's image metrics.

FID, KID and the Inception Score on 8x8 digits through InceptionV3 (trained on 299x299
photographs) would measure upsampling artefacts, not digits. Instead, like the MNIST
FID literature (e.g. Heusel et al. 2017's advice to use a domain network), the zoo's image
metrics read this classifier: its penultimate layer (``num_features`` values) feeds FID
and KID, its logits feed the Inception Score, and its predictions give the conditional
accuracy of class-conditional generators.

It is packaged as ``digits-classifier`` (``zoo/pretrained/digits-classifier``) but is not a
generator: ``sample`` raises. Load it with ``zoo.load("digits-classifier")``.

Example::

    clf = DigitsClassifier()                        # untrained; recipes/digits-classifier.yaml trains it
    clf = zoo.load("digits-classifier")             # the packaged one
    x, y = zoo.data.digits.digits_split("test")
    clf.features(x).shape                           # (270, 64)
    (clf.predict(x) == y).float().mean()            # test accuracy
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.checks import check_images, check_int
from zoo.models.base import GenerativeModel, image_data_args


class DigitsClassifier(GenerativeModel):
    """Conv net: image (N, C, H, W) in [0, 1] -> `num_features` features -> `num_classes` logits."""

    family = "classifier"
    outputs = "labels"  # predict gives labels; sample raises
    data_sizes = ("image_size", "channels", "num_classes")

    def __init__(self, image_size: int | None = None, channels: int | None = None, num_classes: int | None = None,
                 hidden: int = 32, num_features: int = 64, dropout: float = 0.2):
        """Sizes left None come from the data."""
        for name, value, low in [("image_size", image_size, 4), ("channels", channels, 1),
                                 ("num_classes", num_classes, 2), ("hidden", hidden, 1), ("num_features", num_features, 2)]:
            if value is not None or name in ("hidden", "num_features"):
                check_int(name, value, low, 1 << 16)
        if image_size is not None and image_size % 2:
            raise ValueError(f"image_size must be even, got {image_size}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        super().__init__(image_size=image_size, channels=channels, num_classes=num_classes, hidden=hidden,
                         num_features=num_features, dropout=dropout)
        self.image_shape = (channels, image_size, image_size)
        self.num_classes, self.num_features = num_classes, num_features
        if self.pending:
            return
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.SiLU(),        # (N, h, H, W)
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1), nn.BatchNorm2d(2 * hidden), nn.SiLU(),  # H/2
            nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1), nn.BatchNorm2d(2 * hidden), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),                                               # (N, 8h)
            nn.Dropout(dropout), nn.Linear(8 * hidden, num_features), nn.SiLU(),                 # (N, F)
        )
        self.head = nn.Linear(num_features, num_classes)

    @classmethod
    def data_args(cls, spec, init_args):
        if spec.num_classes is None:
            raise ValueError(f"a classifier needs labelled data; {spec.name!r} has no classes")
        return {**image_data_args(spec, {}), "num_classes": spec.num_classes}

    def check_images(self, x: Tensor, name: str = "x") -> Tensor:
        """x as a float (N, C, H, W) batch in [0, 1] on the model's device; one (C, H, W) image becomes a batch of one."""
        return check_images(name, x, self.image_shape, device=self.device)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations, (N, num_features): what FID and KID compare."""
        return self.body(self.check_images(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, (N, num_classes): what the Inception Score reads."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The most likely class of each image, (N,) int64."""
        return self(x).argmax(1)
