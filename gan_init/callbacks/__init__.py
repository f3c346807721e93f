"""Callbacks: side effects of training (EMA, progressive schedule, ...) live here."""

from gan_init.callbacks.ema import EMA
from gan_init.callbacks.image_grid import CycleGANImageGrid
from gan_init.callbacks.progressive import ProgressiveSchedule

__all__ = ["CycleGANImageGrid", "EMA", "ProgressiveSchedule"]
