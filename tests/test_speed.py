"""Speed options (gan_init.core.speed, SpeedOptions callback): they run, in 2D and 3D, and change
nothing but speed (no timings here: benchmarks/speed.py measures)."""

from __future__ import annotations

import copy

import pytest
import torch

from gan_init.callbacks import SpeedOptions
from gan_init.core import speed
from gan_init.models.progressive import _grad_norm, gradient_penalty
from gan_init.networks import (
    BackboneSpec,
    CycleGANGenerator,
    PatchGANDiscriminator,
    ProgressiveDiscriminator,
)
from tests.builders.images import PhantomDataModule
from tests.builders.networks import tiny_cyclegan

SIZE = {2: 16, 3: 8}


def _generator(d: int) -> CycleGANGenerator:
    torch.manual_seed(0)
    return CycleGANGenerator(BackboneSpec(spatial_dims=d, base_width=4, n_blocks=2))


@pytest.mark.parametrize("d", [2, 3])
def test_channels_last_same_outputs_and_format(d):
    net = _generator(d)
    fast = speed.to_channels_last(copy.deepcopy(net), d)
    x = torch.randn(2, 1, *(SIZE[d],) * d)
    fmt = speed.memory_format(d)
    assert fast.encoder.stem.conv.weight.is_contiguous(memory_format=fmt)
    # A convolution with channels-last weights gives channels-last outputs (with 1 channel
    # both formats coincide, so look past the stem; instance norm returns NCHW again).
    seen = []
    fast.encoder.down1.conv.register_forward_hook(lambda m, i, o: seen.append(o))
    torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-5)
    assert seen[0].is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("d", [2, 3])
def test_checkpoint_trunk_gives_equal_gradients(d):
    net = _generator(d)
    ckpt = copy.deepcopy(net)
    speed.apply_speed_options({"g": ckpt}, d, checkpoint_trunk=True)
    assert ckpt.trunk.checkpointing
    x = torch.randn(2, 1, *(SIZE[d],) * d)
    for m in (net, ckpt):
        m(x).square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


@pytest.mark.parametrize("d", [2, 3])
def test_bf16_gradient_penalty_finite_and_fp32(d):
    torch.manual_seed(0)
    critic = ProgressiveDiscriminator(spatial_dims=d, image_size=SIZE[d], base_width=4)
    speed.fp32_outputs(critic)
    real, fake = (torch.rand(2, 1, *(SIZE[d],) * d) * 2 - 1 for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = critic(real)
        gp = gradient_penalty(critic, real, fake)
    assert scores.dtype == torch.float32 and gp.dtype == torch.float32
    gp.backward()  # double backward through bf16 convolutions
    assert torch.isfinite(gp)
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


def test_compile_fallback_message(monkeypatch):
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    net = _generator(2)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler.*running g uncompiled"):
        compiled = speed.apply_speed_options({"g": net}, 2, compile=True)
    assert compiled == {"g": False}
    assert getattr(net, "_compiled_call_impl", None) is None
    net(torch.randn(1, 1, 16, 16))  # still runs, eagerly


def test_grad_norm_equals_concatenated_norm():
    net = PatchGANDiscriminator(spatial_dims=2, base_width=4, n_layers=1)
    net(torch.randn(2, 1, 16, 16)).sum().backward()
    params = list(net.parameters())
    expected = torch.cat([p.grad.flatten() for p in params]).norm(2)
    torch.testing.assert_close(_grad_norm(params), expected)


@pytest.mark.parametrize("d", [2, 3])
def test_cyclegan_trains_with_bf16_and_channels_last(make_trainer, d):
    torch.manual_seed(0)
    model = tiny_cyclegan(d, pool_size=2)
    before = copy.deepcopy(model.g_t2_to_t1.state_dict())
    callback = SpeedOptions(channels_last=True)
    trainer = make_trainer(
        precision="bf16-mixed", max_steps=2, limit_val_batches=0, callbacks=[callback]
    )
    trainer.fit(model, PhantomDataModule(spatial_dims=d, size=SIZE[d]))
    fmt = speed.memory_format(d)
    assert model.d_t1.stem.conv.weight.is_contiguous(memory_format=fmt)
    after = model.g_t2_to_t1.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert torch.isfinite(trainer.callback_metrics["train/loss_g"])


def test_evaluate_progress_estimate(capsys):
    from gan_init.cli.commands.evaluate import ProgressFeatures
    from gan_init.metrics.features import SliceFeatures

    class Mean(torch.nn.Module):
        num_features = 1

        def forward(self, x):
            return x.flatten(1).mean(1, keepdim=True)

    feats = ProgressFeatures(SliceFeatures(Mean(), slices_per_axis=2), n_images=5)
    estimate = feats.announce(torch.zeros(2, 1, 8, 8, 8))
    assert estimate >= 0
    assert feats(torch.zeros(5, 1, 8, 8, 8)).shape == (5, 1)
    assert feats.bar.n == 5
    feats.close()
    assert "estimated" in capsys.readouterr().err


def _cyclegan_config(d: int) -> dict:
    backbone = dict(name="resnet", spatial_dims=d, base_width=4, n_blocks=2)
    return {
        "model": {
            "class_path": "gan_init.models.CycleGAN",
            "init_args": {
                "generator": {
                    "class_path": "gan_init.networks.CycleGANGenerator",
                    "init_args": {"backbone": backbone},
                },
                "discriminator": {
                    "class_path": "gan_init.networks.PatchGANDiscriminator",
                    "init_args": {"spatial_dims": d, "base_width": 4, "n_layers": 1},
                },
            },
        },
        "data": {"init_args": {"size": 32, "batch_size": 2}},
    }


@pytest.mark.parametrize("d", [2, 3])
def test_memory_estimate_extrapolates_and_checkpointing_saves(d, tmp_path, capsys):
    from gan_init.cli.commands import memory

    config = _cyclegan_config(d)
    plain = memory.estimate(config)
    ckpt = memory.estimate(config, checkpoint_trunk=True)
    # Activations grow with batch x voxels: the fit predicts the smallest side within 10%.
    assert all(abs(r - 1) < 0.1 for r in plain["extrapolation_check"].values())
    assert ckpt["activations"]["g_phase"] < plain["activations"]["g_phase"]
    assert plain["peak_estimate"] > plain["weights_grads_adam_ema"] > 0
    path = tmp_path / "c.yaml"
    path.write_text(__import__("yaml").safe_dump(config))
    assert memory.main(["--config", str(path)]) == 0
    assert "peak ~" in capsys.readouterr().out


@pytest.mark.parametrize("d", [2, 3])
def test_noise_gan_is_fp32_at_its_outputs_under_bf16_autocast(d):
    """trainer.precision: bf16-mixed without SpeedOptions (the GPU configs): the generator's
    fade-in image and the critic's scores come out fp32, so the gradient penalty's interpolation
    of real (fp32) and fake images runs (it failed with a dtype error before)."""
    from gan_init.models import ProgressiveGAN
    from gan_init.networks import NoiseGenerator

    torch.manual_seed(0)
    spec = BackboneSpec(spatial_dims=d, base_width=4, n_down=1, n_blocks=1, norm="pixel")
    size = SIZE[d]
    g = NoiseGenerator(spec, image_size=size, latent_dim=8, grow="full", start_resolution=2)
    critic = ProgressiveDiscriminator(d, 1, size, min_resolution=2, base_width=4)
    model = ProgressiveGAN(g, critic)
    model.set_progress(1, 0.5)  # fading in: the blend of two levels
    real = torch.randn(2, 1, *(g.resolution,) * d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = model.generator(torch.randn(2, 8))
        scores = model.discriminator(fake)
        gp = gradient_penalty(model.discriminator, real, fake)
    assert fake.dtype == scores.dtype == gp.dtype == torch.float32
    gp.backward()
    assert torch.isfinite(gp)
