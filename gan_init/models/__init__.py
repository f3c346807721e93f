"""LightningModules of both stages (they own losses and optimizer steps; networks are injected)."""

from gan_init.models.cyclegan import CycleGAN, ImagePool
from gan_init.models.progressive import ProgressiveGAN, load_noise_gan

__all__ = ["CycleGAN", "ImagePool", "ProgressiveGAN", "load_noise_gan"]
