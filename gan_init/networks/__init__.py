"""Networks of both stages (pure ``nn.Module``s: no Lightning, no logger)."""

from gan_init.networks.backbones import BACKBONES, BackboneSpec, build_backbone
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "CycleGANGenerator",
    "PatchGANDiscriminator",
    "build_backbone",
]
