"""ProgressiveGAN pieces: WGAN-GP on hand-checked cases, real images at a level with fade-in,
sampling, EMA reset, checkpoint metadata and load_noise_gan."""

import pytest
import torch
from torch import nn

from gan_init.models import ProgressiveGAN, load_noise_gan
from gan_init.models.progressive import gradient_penalty, real_at
from gan_init.networks import ProgressiveDiscriminator
from gan_init.nn.blocks import downsample2x, upsample2x
from tests.builders.networks import tiny_progan


def tiny_gan(spatial_dims: int = 2, size: int = 16, grow: str = "full") -> ProgressiveGAN:
    return tiny_progan(spatial_dims, size, grow, start_resolution=4 if size >= 16 else 2)


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


class Square(nn.Module):
    def forward(self, x):
        return x.pow(2).flatten(1).sum(1)


def test_gradient_penalty_linear_critic():
    # D(x) = <w, x>: the gradient is w everywhere, so GP = (||w|| - 1)^2 = (5 - 1)^2.
    w = torch.tensor([3.0, 4.0]).reshape(1, 1, 1, 2)
    real, fake = torch.randn(3, 1, 1, 2), torch.randn(3, 1, 1, 2)
    assert gradient_penalty(Linear(w), real, fake).item() == pytest.approx(16.0)


def test_gradient_penalty_hand_checked_interpolation():
    # D(x) = sum x^2, grad = 2 x_hat; x_hat = eps * real + (1 - eps) * fake.
    real = torch.tensor([[1.0, 0.0], [0.0, 3.0]]).reshape(2, 1, 1, 2)
    fake = torch.zeros_like(real)
    eps = torch.tensor([1.0, 0.5])  # x_hat = [1, 0], [0, 1.5]; grads [2, 0], [0, 3]
    gp = gradient_penalty(Square(), real, fake, eps)
    assert gp.item() == pytest.approx(((2 - 1) ** 2 + (3 - 1) ** 2) / 2)


def test_gradient_penalty_reaches_critic_weights():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    gp = gradient_penalty(critic, torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2))
    gp.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_real_images_at_level_with_fade_in(spatial_dims):
    x = torch.rand(2, 1, *(8,) * spatial_dims)
    at4 = downsample2x(x)
    torch.testing.assert_close(real_at(x, 4, 1.0), at4)
    torch.testing.assert_close(real_at(x, 8, 1.0), x)
    lower = upsample2x(downsample2x(at4), "nearest")
    torch.testing.assert_close(real_at(x, 4, 0.25), 0.25 * at4 + 0.75 * lower)
    with pytest.raises(ValueError, match="cannot be shown"):
        real_at(torch.rand(2, 1, *(6,) * spatial_dims), 4, 1.0)


@pytest.mark.parametrize("spatial_dims,size", [(2, 16), (3, 8)])
def test_sample_shape_range_and_seed(spatial_dims, size):
    gan = tiny_gan(spatial_dims, size)
    assert gan.latent_dim == 8 and gan.spatial_dims == spatial_dims and gan.images_shown == 0
    gan.set_progress(1, 0.5)
    x = gan.sample(5, seed=3)
    assert x.shape == (5, 1, *(gan.resolution,) * spatial_dims) and x.abs().max() <= 1
    torch.testing.assert_close(gan.sample(5, seed=3), x)
    assert not torch.equal(gan.sample(5, seed=4), x)
    assert (gan.generator_ema.current_level, gan.discriminator.resolution) == (1, gan.resolution)


def test_reset_ema_copies_generator():
    gan = tiny_gan()
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    assert not torch.equal(gan.sample(2, seed=0), gan.sample(2, seed=0, ema=False))
    gan.reset_ema()
    torch.testing.assert_close(gan.sample(2, seed=0), gan.sample(2, seed=0, ema=False))


def test_discriminator_must_cover_generator():
    gan = tiny_gan()
    d = ProgressiveDiscriminator(2, 1, 16, min_resolution=8, base_width=4)
    with pytest.raises(ValueError, match="missing \\[4\\]"):
        ProgressiveGAN(gan.generator, d)


def save_noise_checkpoint(gan: ProgressiveGAN, path) -> None:
    """What Lightning writes, minus the trainer state: state_dict, hparams, gan_init metadata."""
    checkpoint = {"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}
    gan.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


@pytest.mark.parametrize("spatial_dims,size,grow", [(2, 16, "full"), (3, 8, "stem")])
def test_checkpoint_metadata_and_load_noise_gan(tmp_path, spatial_dims, size, grow):
    gan = tiny_gan(spatial_dims, size, grow)
    gan.set_progress(gan.generator.n_levels - 1, 0.5)
    gan.images_shown = 1234
    path = tmp_path / "noise.ckpt"
    save_noise_checkpoint(gan, path)
    meta = torch.load(path, weights_only=True)["gan_init"]
    assert meta["format"] == 1 and meta["stage"] == "noise"
    assert meta["spatial_dims"] == spatial_dims
    assert meta["networks"]["generator"]["network"] == "NoiseGenerator"
    assert meta["networks"]["generator"]["grow"] == grow
    assert meta["networks"]["discriminator"]["network"] == "ProgressiveDiscriminator"
    loaded = load_noise_gan(str(path))
    assert not loaded.training
    assert (loaded.level, loaded.alpha, loaded.images_shown) == (gan.level, 0.5, 1234)
    torch.testing.assert_close(loaded.sample(3, seed=1), gan.sample(3, seed=1))


def test_load_noise_gan_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a gan-init noise-GAN checkpoint"):
        load_noise_gan(str(path))
