"""The CycleGAN generator and the noise generator share ``trunk``, ``decoder`` and ``head``:
same keys, same shapes, and after a strict copy the same function of the bottleneck features."""

import pytest
import torch

from gan_init.networks import BackboneSpec, CycleGANGenerator, NoiseGenerator

SHARED = ("trunk.", "decoder.", "head.")


def spec(spatial_dims: int, upsample: str) -> BackboneSpec:
    return BackboneSpec(
        spatial_dims=spatial_dims, base_width=4, n_down=1, n_blocks=2, upsample=upsample,
        equalized_lr=upsample == "nearest",
    )  # fmt: skip


def shared(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith(SHARED)}


@pytest.mark.parametrize("spatial_dims,size", [(2, 16), (3, 8)])
@pytest.mark.parametrize("grow", ["full", "stem"])
@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_shared_parts_have_equal_keys_shapes_and_function(spatial_dims, size, grow, upsample):
    torch.manual_seed(0)
    cyclegan = CycleGANGenerator(spec(spatial_dims, upsample))
    noise = NoiseGenerator(
        spec(spatial_dims, upsample), image_size=size, latent_dim=8, grow=grow,
        start_resolution=size // 4,
    )  # fmt: skip
    src, dst = shared(cyclegan.state_dict()), shared(noise.state_dict())
    assert src.keys() == dst.keys() and len(src) > 0
    assert all(src[k].shape == dst[k].shape for k in src)

    # A strict copy: every key of the shared parts, nothing missing, nothing unexpected.
    for part in ("trunk", "decoder", "head"):
        getattr(noise, part).load_state_dict(getattr(cyclegan, part).state_dict(), strict=True)
    h = torch.randn(2, cyclegan.spec.bottleneck_width, *(size // 2,) * spatial_dims)
    torch.testing.assert_close(noise.render(h), cyclegan.render(h))

    # At its last level the noise generator renders its bottleneck features through that part.
    noise.set_progress(noise.n_levels - 1, 1.0)
    z = torch.randn(2, 8)
    bottleneck = noise.latent_stem(z)[-1]
    torch.testing.assert_close(noise(z), cyclegan.render(bottleneck))
