"""Networks of both stages (pure ``nn.Module``s: no Lightning, no logger)."""

from gan_init.networks.backbones import BACKBONES, BackboneSpec, build_backbone
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.networks.progressive import NoiseGenerator, ProgressiveDiscriminator

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "CycleGANGenerator",
    "NoiseGenerator",
    "PatchGANDiscriminator",
    "ProgressiveDiscriminator",
    "build_backbone",
]
