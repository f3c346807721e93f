"""The EMA callback: w_ema <- d * w_ema + (1 - d) * w, with the warm-up of the decay."""

from types import SimpleNamespace

import pytest
import torch

from gan_init.callbacks import EMA
from gan_init.models import ProgressiveGAN
from gan_init.networks import BackboneSpec, NoiseGenerator, ProgressiveDiscriminator


@pytest.mark.parametrize(
    "warmup,step,expected_decay", [(False, 0, 0.9), (True, 0, 0.1), (True, 10**6, 0.9)]
)
def test_ema_update(warmup, step, expected_decay):
    spec = BackboneSpec(spatial_dims=2, base_width=4, n_down=1, n_blocks=1)
    gan = ProgressiveGAN(
        NoiseGenerator(spec, image_size=16, latent_dim=8), ProgressiveDiscriminator(2, 1, 16, 4, 4)
    )
    old = {k: v.clone() for k, v in gan.generator_ema.state_dict().items()}
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    gan.generator.set_progress(1, 0.5)
    EMA(decay=0.9, warmup=warmup).on_train_batch_end(
        SimpleNamespace(global_step=step), gan, None, None, 0
    )
    new, g = gan.generator_ema.state_dict(), gan.generator.state_dict()
    w = "head.conv.weight"
    torch.testing.assert_close(new[w], expected_decay * old[w] + (1 - expected_decay) * g[w])
    assert (gan.generator_ema.current_level, gan.generator_ema.current_alpha) == (1, 0.5)
