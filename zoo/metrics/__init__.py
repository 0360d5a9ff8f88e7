"""Image metrics: FID, KID and Inception Score via torchmetrics, with a registered classifier as extractor.

    from zoo.metrics import generator_metrics, real_data_floor
"""

from zoo.metrics.features import (FOLDER_CLASSIFIER, ClassifierFeatures, check_extractor, fit_classifier, load_extractor,
                                  metric_extractor)
from zoo.metrics.image import (ImageMetrics, conditional_accuracy, generate, generator_metrics, inception_metrics,
                               real_data_floor)

__all__ = ["FOLDER_CLASSIFIER", "ClassifierFeatures", "fit_classifier", "metric_extractor", "ImageMetrics", "check_extractor", "conditional_accuracy", "load_extractor",
           "generate", "generator_metrics", "inception_metrics", "real_data_floor"]
