"""Image metrics: FID, KID and Inception Score via torchmetrics, with a registered classifier as extractor.

    from zoo.metrics import generator_metrics, real_data_floor
"""

from zoo.metrics.features import ClassifierFeatures, check_extractor, load_extractor
from zoo.metrics.image import (ImageMetrics, conditional_accuracy, generate, generator_metrics, inception_metrics,
                               real_data_floor)

__all__ = ["ClassifierFeatures", "ImageMetrics", "check_extractor", "conditional_accuracy", "load_extractor",
           "generate", "generator_metrics", "inception_metrics", "real_data_floor"]
