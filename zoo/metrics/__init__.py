"""Image metrics: FID, KID and Inception Score via torchmetrics, with the digits classifier as extractor.

    from zoo.metrics import generator_metrics, real_data_floor
"""

from zoo.metrics.features import ClassifierFeatures, check_extractor, digits_classifier
from zoo.metrics.image import (ImageMetrics, conditional_accuracy, generate, generator_metrics, inception_metrics,
                               real_data_floor)

__all__ = ["ClassifierFeatures", "ImageMetrics", "check_extractor", "conditional_accuracy", "digits_classifier",
           "generate", "generator_metrics", "inception_metrics", "real_data_floor"]
