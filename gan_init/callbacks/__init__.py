"""Callbacks: side effects of training (EMA, progressive schedule, ...) live here."""

from gan_init.callbacks.diagnostics import TransferDiagnostics
from gan_init.callbacks.ema import EMA
from gan_init.callbacks.evaluation import EvaluationCallback
from gan_init.callbacks.image_grid import CycleGANImageGrid
from gan_init.callbacks.progress import TrainingProgress
from gan_init.callbacks.progressive import ProgressiveSchedule
from gan_init.callbacks.samples import NoiseSampleGrid
from gan_init.callbacks.speed import SpeedOptions
from gan_init.callbacks.stability import StabilityCallback
from gan_init.callbacks.weight_transfer import WeightTransfer

__all__ = [
    "EvaluationCallback",
    "StabilityCallback",
    "TransferDiagnostics",
    "CycleGANImageGrid",
    "EMA",
    "ProgressiveSchedule",
    "NoiseSampleGrid",
    "TrainingProgress",
    "SpeedOptions",
    "WeightTransfer",
]
