"""Evaluation metrics (torchmetrics ``Metric``s, state synced across DDP ranks), 2D and 3D."""

from gan_init.metrics.diversity import MSSSIMDiversity
from gan_init.metrics.evaluate import ALL_METRICS, evaluate_samples
from gan_init.metrics.features import (
    FidInceptionV3,
    PrecomputedFeatures,
    SliceFeatures,
    TorchScriptFeatures,
    load_feature_extractor,
)
from gan_init.metrics.memorization import Memorization, save_closest_pairs
from gan_init.metrics.precision_recall import PrecisionRecall
from gan_init.metrics.swd import SlicedWassersteinDistance

__all__ = [
    "ALL_METRICS",
    "FidInceptionV3",
    "MSSSIMDiversity",
    "Memorization",
    "PrecisionRecall",
    "PrecomputedFeatures",
    "SliceFeatures",
    "SlicedWassersteinDistance",
    "TorchScriptFeatures",
    "evaluate_samples",
    "load_feature_extractor",
    "save_closest_pairs",
]
