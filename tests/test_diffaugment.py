"""Differentiable augmentation of the critic's inputs (``augment``) and the learning-rate stress
knob (``stress``) of the noise GAN (issue 21, items 4 and 5): each op by hand, 2D and 3D at odd
sizes; off by default, bit for bit; each changes only what it names."""

import pytest
import torch

from gan_init.core.seeding import step_generator
from gan_init.models import ProgressiveGAN
from gan_init.models.progressive import load_noise_gan, real_at
from gan_init.nn.diffaugment import AUGMENTATIONS, DiffAugment
from tests.builders.images import BlobData
from tests.builders.networks import tiny_noise_gan
from tests.builders.trainer import cpu_trainer

SHAPES = {2: (9, 12), 3: (5, 7, 6)}  # odd and unequal sides
EVERY_OP = "translation,cutout,brightness,contrast"
LR = 1e-3


def images(spatial_dims: int, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, *SHAPES[spatial_dims], generator=g) * 2 - 1


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- the ops -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("policy", [*AUGMENTATIONS.names(), EVERY_OP])
def test_each_policy_keeps_shape_is_differentiable_and_is_a_function_of_its_draws(
    spatial_dims, policy
):
    x = images(spatial_dims).requires_grad_(True)
    augment = DiffAugment(policy)
    y = augment(x, rng(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y, x)
    (grad,) = torch.autograd.grad(y.square().sum(), x)
    assert grad.abs().sum() > 0  # the generator learns through it
    assert torch.equal(augment(x, rng(1)), y)  # the same stream, the same augmentation
    assert torch.equal(augment.apply(x, augment.sample(x, rng(1))), y)  # sample, then apply
    assert not torch.equal(augment(x, rng(2)), y)


def shifted(x: torch.Tensor, shift: list[int]) -> torch.Tensor:
    """``x: [C, *S]`` moved by ``shift`` voxels along each axis, background -1 uncovered."""
    out = torch.full_like(x, -1.0)
    dst, src = [slice(None)], [slice(None)]
    for k, n in zip(shift, x.shape[1:], strict=True):
        dst.append(slice(max(k, 0), n + min(k, 0)))
        src.append(slice(max(-k, 0), n - max(k, 0)))
    out[tuple(dst)] = x[tuple(src)]
    return out


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_translation_moves_each_sample_by_its_shift_and_uncovers_background(spatial_dims):
    x = images(spatial_dims, batch=2)
    shifts = torch.tensor([[1, -1, 0][:spatial_dims], [0, 1, -1][:spatial_dims]])
    y = AUGMENTATIONS.get("translation").apply(x, shifts)
    for b in range(2):
        torch.testing.assert_close(y[b], shifted(x[b], shifts[b].tolist()), rtol=0, atol=0)
    # Drawn shifts: integers within 1/8 of each side (rounded), every one of them reached.
    drawn = AUGMENTATIONS.get("translation").sample(images(spatial_dims, batch=500), rng())
    for d, n in enumerate(SHAPES[spatial_dims]):
        s = int(n * 0.125 + 0.5)
        assert set(drawn[:, d].tolist()) == set(range(-s, s + 1))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_cutout_sets_a_half_side_box_to_background(spatial_dims):
    x = torch.zeros(2, 1, *SHAPES[spatial_dims])
    inside = {2: [4, 5], 3: [2, 3, 3]}[spatial_dims]  # sample 0's box inside the image
    centres = torch.tensor([inside, [0] * spatial_dims])
    y = AUGMENTATIONS.get("cutout").apply(x, centres)
    for b in range(2):
        expected = torch.zeros_like(x[b])
        box = [slice(None)]
        for c, n in zip(centres[b].tolist(), SHAPES[spatial_dims], strict=True):
            size = int(n * 0.5 + 0.5)
            box.append(slice(max(c - size // 2, 0), c - size // 2 + size))  # may pass the border
        expected[tuple(box)] = -1.0
        torch.testing.assert_close(y[b], expected, rtol=0, atol=0)
    assert (y[0] == -1).sum() == torch.tensor([int(n * 0.5 + 0.5) for n in x.shape[2:]]).prod()


def test_brightness_adds_and_contrast_scales_about_the_background():
    x = images(2, batch=2)
    x[:, :, 0] = -1.0  # a background row
    offsets, factors = torch.tensor([0.25, -0.5]), torch.tensor([0.5, 1.5])
    bright = AUGMENTATIONS.get("brightness").apply(x, offsets)
    torch.testing.assert_close(bright, x + offsets.view(2, 1, 1, 1), rtol=0, atol=0)
    contrast = AUGMENTATIONS.get("contrast").apply(x, factors)
    torch.testing.assert_close(contrast, (x + 1) * factors.view(2, 1, 1, 1) - 1)
    assert torch.equal(contrast[:, :, 0], x[:, :, 0])  # background stays background
    big = images(2, batch=2000)
    for name, (low, high) in {"brightness": (-0.5, 0.5), "contrast": (0.5, 1.5)}.items():
        drawn = AUGMENTATIONS.get(name).sample(big, rng())
        assert low <= drawn.min() < low + 0.01 and high - 0.01 < drawn.max() < high


def test_unknown_or_repeated_op_is_one_line_naming_the_option_and_the_ops():
    tiny = tiny_noise_gan(2)
    for policy, says in [("translation,flip", "'flip'"), ("translaton", "did you mean")]:
        with pytest.raises(ValueError) as err:
            ProgressiveGAN(tiny.generator, tiny.discriminator, augment=policy)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"--model.init_args.augment={policy!r}")
        assert says in message and "known: brightness, contrast, cutout, translation" in message
    with pytest.raises(ValueError, match="'cutout' appears twice"):
        DiffAugment("cutout,cutout")


# ---- the model: off by default, and each knob changes only what it names ----------------------


def one_step(gan: ProgressiveGAN, tmp_path, spatial_dims: int) -> list[torch.Tensor]:
    """Train ``gan`` for one batch; return what the critic was given, call by call (D step:
    real, fake, gradient-penalty mix; G step: fake)."""
    seen: list[torch.Tensor] = []
    hook = gan.discriminator.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone())
    )
    cpu_trainer(tmp_path, 2).fit(gan, BlobData(spatial_dims))
    hook.remove()
    return seen


def state(gan: ProgressiveGAN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in gan.state_dict().items()}


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_knobs_off_are_the_training_step_of_before_bit_for_bit(tmp_path, spatial_dims):
    default = tiny_noise_gan(spatial_dims)
    seen = one_step(default, tmp_path / "a", spatial_dims)
    tiny = tiny_noise_gan(spatial_dims)
    off = ProgressiveGAN(tiny.generator, tiny.discriminator, augment=None, stress=1.0)
    seen_off = one_step(off, tmp_path / "b", spatial_dims)
    assert default.hparams.augment is None and default.hparams.stress == 1.0
    assert len(seen) == len(seen_off) == 4
    assert all(torch.equal(a, b) for a, b in zip(seen, seen_off, strict=True))
    after, after_off = state(default), state(off)
    assert all(torch.equal(after[k], after_off[k]) for k in after)
    # Off, the critic sees the real images as shown at the level, untouched.
    batch = BlobData(spatial_dims).dataset.images[:2]
    assert torch.equal(seen[0], real_at(batch, default.resolution, default.alpha))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_augment_changes_only_the_critics_inputs_drawn_from_the_steps_streams(
    tmp_path, spatial_dims
):
    plain = tiny_noise_gan(spatial_dims)
    seen = one_step(plain, tmp_path / "a", spatial_dims)
    tiny = tiny_noise_gan(spatial_dims)
    gan = ProgressiveGAN(tiny.generator, tiny.discriminator, augment=EVERY_OP)
    seen_aug = one_step(gan, tmp_path / "b", spatial_dims)
    assert gan.hparams.augment == EVERY_OP and gan.rng_seed == plain.rng_seed

    # Each critic input is the plain run's (same real batch, same latents, same G) augmented
    # with the draws of its own per-step stream: a function of (seed, images shown, rank,
    # purpose), so a resumed run draws them again.
    augment = DiffAugment(EVERY_OP)

    def draw(x, purpose):
        return augment(x, step_generator(gan.rng_seed, 0, 0, purpose))

    (real, fake_d, _, fake_g), (real_a, fake_d_a, mix_a, fake_g_a) = seen, seen_aug
    torch.testing.assert_close(real_a, draw(real, "augment_real"), rtol=0, atol=0)
    torch.testing.assert_close(fake_d_a, draw(fake_d, "augment_fake_d"), rtol=0, atol=0)
    torch.testing.assert_close(fake_g_a, draw(fake_g, "augment_g"), rtol=0, atol=0)
    # The penalty mixes the augmented pair, with the eps of the unaugmented run.
    eps = torch.rand(2, generator=step_generator(gan.rng_seed, 0, 0, "gp"))
    eps = eps.view(-1, *(1,) * (real.dim() - 1))
    torch.testing.assert_close(mix_a, torch.lerp(fake_d_a, real_a, eps))
    assert not torch.equal(real_a, real) and not torch.equal(fake_g_a, fake_g)
    # The generator's EMA copy and the images shown are untouched by the augmentation.
    after, after_aug = state(plain), state(gan)
    assert all(
        torch.equal(after[k], after_aug[k])
        for k in after
        if not k.startswith(("generator.", "discriminator."))
    )


# ---- stress --------------------------------------------------------------------------------


@pytest.mark.parametrize("stress", [0.5, 3.0])
def test_stress_multiplies_every_learning_rate_of_g_and_d_and_is_recorded(tmp_path, stress):
    tiny = tiny_noise_gan(3)
    mult = {"generator.trunk": 0.25, "discriminator": 2.0}
    gan = ProgressiveGAN(tiny.generator, tiny.discriminator, lr=LR, lr_mult=mult, stress=stress)
    opt_g, opt_d = gan.configure_optimizers()
    assert {g["name"]: g["lr"] for g in opt_g.param_groups} == {
        "default": stress * LR, "generator.trunk": stress * LR * 0.25,
    }  # fmt: skip
    assert [g["lr"] for g in opt_d.param_groups] == [stress * LR * 2.0]
    assert gan.hparams_initial["lr_effective"] == {
        "default": stress * LR, "generator.trunk": stress * LR * 0.25,
        "discriminator": stress * LR * 2.0,
    }  # fmt: skip
    # Nothing else: the same betas, and the same groups as without stress.
    base = ProgressiveGAN(tiny.generator, tiny.discriminator, lr=LR, lr_mult=mult)
    for opt, ref in zip((opt_g, opt_d), base.configure_optimizers(), strict=True):
        for group, ref_group in zip(opt.param_groups, ref.param_groups, strict=True):
            assert group["lr"] == stress * ref_group["lr"] and group["betas"] == ref_group["betas"]
            assert [id(p) for p in group["params"]] == [id(p) for p in ref_group["params"]]
    checkpoint: dict = {"state_dict": gan.state_dict(), "hyper_parameters": dict(gan.hparams)}
    gan.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "noise.ckpt")
    assert gan.hparams.stress == stress
    assert load_noise_gan(str(tmp_path / "noise.ckpt")).stress == stress


@pytest.mark.parametrize("stress", [0.0, -1.0, float("nan"), float("inf")])
def test_stress_not_above_zero_is_one_line_naming_the_option(stress):
    tiny = tiny_noise_gan(2)
    with pytest.raises(ValueError) as err:
        ProgressiveGAN(tiny.generator, tiny.discriminator, stress=stress)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"--model.init_args.stress={stress}")
