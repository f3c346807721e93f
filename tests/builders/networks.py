"""Tiny networks (widths 4, one block; 16 px in 2D, 8^3 in 3D): noise GANs and CycleGANs."""

from __future__ import annotations

import torch

from gan_init.models import CycleGAN, ProgressiveGAN
from gan_init.networks import (
    BackboneSpec,
    CycleGANGenerator,
    NoiseGenerator,
    PatchGANDiscriminator,
    ProgressiveDiscriminator,
)

SIZE = {2: 16, 3: 8}
# The ProGAN knobs (Karras et al. 2018): pixel norm, nearest upsampling, leaky ReLU, equalized lr.
PROGAN = dict(norm="pixel", upsample="nearest", activation="lrelu", equalized_lr=True)


def tiny_spec(spatial_dims: int = 2, equalized_lr: bool = False, **knobs) -> BackboneSpec:
    """2D: 16 px, n_down 2 (bottleneck 4); 3D: 8^3, n_down 1 (bottleneck 4)."""
    knobs = {"n_down": 2 if spatial_dims == 2 else 1, "base_width": 4, "n_blocks": 1, **knobs}
    return BackboneSpec(spatial_dims=spatial_dims, equalized_lr=equalized_lr, **knobs)


def tiny_noise_gan(
    spatial_dims: int = 2,
    grow: str = "stem",
    spec: BackboneSpec | None = None,
    patch_stem: bool = True,
    seed: int = 1,
) -> ProgressiveGAN:
    """Stem from 2 px: 2D full levels 2, 4, 8, 16 (stem: 8, 16); 3D full 2, 4, 8 (stem: 4, 8)."""
    torch.manual_seed(seed)
    spec = spec or tiny_spec(spatial_dims)
    size = SIZE[spatial_dims]
    g = NoiseGenerator(spec, image_size=size, latent_dim=8, grow=grow, start_resolution=2)
    d = ProgressiveDiscriminator(
        spatial_dims, 1, size, min_resolution=2, base_width=4, patch_stem=patch_stem
    )
    return ProgressiveGAN(g, d)


def tiny_progan(
    spatial_dims: int = 2, size: int = 16, grow: str = "full", start_resolution: int = 4
) -> ProgressiveGAN:
    """A noise GAN with the ProGAN knobs, n_down 1 (seed 0): 16 px from 4 has levels 4, 8, 16."""
    torch.manual_seed(0)
    spec = tiny_spec(spatial_dims, n_down=1, **PROGAN)
    g = NoiseGenerator(
        spec, image_size=size, latent_dim=8, grow=grow, start_resolution=start_resolution
    )
    d = ProgressiveDiscriminator(
        spatial_dims, 1, size, min_resolution=start_resolution, base_width=4
    )
    return ProgressiveGAN(g, d)


def tiny_cyclegan(spatial_dims: int = 2, spec: BackboneSpec | None = None, **kwargs) -> CycleGAN:
    """A CycleGAN to train (default init): widths 4, one block, a one-layer PatchGAN."""
    spec = spec or BackboneSpec(spatial_dims=spatial_dims, base_width=4, n_blocks=1)
    disc = PatchGANDiscriminator(spatial_dims=spatial_dims, base_width=4, n_layers=1)
    kwargs.setdefault("ssim_kernel", 3)
    return CycleGAN(CycleGANGenerator(spec), disc, **kwargs)


def random_cyclegan(spec: BackboneSpec, seed: int = 0) -> CycleGAN:
    """A CycleGAN with every weight and bias random (seeded; biases drawn too, so a copy that
    drops them shows): a stand-in for a trained one, never trained."""
    torch.manual_seed(seed)
    model = tiny_cyclegan(spec.spatial_dims, spec)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model
