"""Per-part learning-rate multipliers of the noise GAN (issue 11, point 5): Adam parameter groups
by module-path prefix, the same for every init strategy, recorded in the hyperparameters."""

import pytest
import torch

from gan_init.models import ProgressiveGAN
from gan_init.models.progressive import load_noise_gan
from tests.builders.networks import tiny_noise_gan

LR = 1e-3


def gan_with(spatial_dims: int, lr_mult: dict | None) -> ProgressiveGAN:
    tiny = tiny_noise_gan(spatial_dims, "stem")
    return ProgressiveGAN(tiny.generator, tiny.discriminator, lr=LR, lr_mult=lr_mult)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_first_adam_step_moves_each_part_by_its_multiplied_rate(spatial_dims):
    gan = gan_with(spatial_dims, {"generator.trunk": 0.1, "generator.head": 3.0})
    opt_g, _ = gan.configure_optimizers()
    before = {n: p.detach().clone() for n, p in gan.generator.named_parameters()}
    torch.manual_seed(0)
    loss = -gan.discriminator(gan.generator(torch.randn(4, gan.latent_dim))).mean()
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    # Adam's first step with beta1 = 0 moves each weight by lr * g / (|g| + eps) ~ lr.
    expected = {"trunk.": 0.1 * LR, "head.": 3.0 * LR, "latent_stem.": LR, "decoder.": LR}
    for name, param in gan.generator.named_parameters():
        moved = (param.detach() - before[name]).abs()
        live = (
            param.grad.abs() > 1e-4
        )  # (eps = 1e-8 is negligible; biases before an instance norm get no gradient)
        if not live.any():
            continue
        rate = next(v for k, v in expected.items() if name.startswith(k))
        torch.testing.assert_close(
            moved[live], torch.full_like(moved[live], rate), rtol=2e-3, atol=0, msg=name
        )


def test_lr_mult_is_recorded_and_survives_a_checkpoint(tmp_path):
    gan = gan_with(2, {"generator.trunk": 0.25, "discriminator": 2.0})
    effective = {"default": LR, "generator.trunk": 0.25 * LR, "discriminator": 2.0 * LR}
    assert gan.hparams_initial["lr_effective"] == effective  # what loggers receive
    assert "lr_effective" not in gan.hparams  # a resume passes hparams back to __init__
    opt_g, opt_d = gan.configure_optimizers()
    assert {g["name"]: g["lr"] for g in opt_g.param_groups} == {
        "default": LR, "generator.trunk": 0.25 * LR,
    }  # fmt: skip
    assert [g["lr"] for g in opt_d.param_groups] == [2.0 * LR]
    checkpoint: dict = {"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}
    gan.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "noise.ckpt")
    assert load_noise_gan(str(tmp_path / "noise.ckpt")).lr_mult == gan.lr_mult


def test_unknown_prefix_is_a_one_line_error_naming_it_and_the_parts():
    with pytest.raises(ValueError) as err:
        gan_with(2, {"generator.trnk": 0.5})
    message = str(err.value)
    assert "\n" not in message and "'generator.trnk'" in message
    assert "generator.trunk" in message and "generator.latent_stem" in message
    with pytest.raises(ValueError, match="expected a finite >= 0"):
        gan_with(2, {"generator.trunk": -1.0})
