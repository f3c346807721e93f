"""The progressive schedule (level and alpha after N images shown, also under resume) and resume
mid fade-in through a real Trainer: level, alpha, images shown, EMA and optimizer state."""

import copy

import pytest
import torch
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint

from gan_init.callbacks import EMA, ProgressiveSchedule
from tests.builders.images import BlobData
from tests.builders.networks import tiny_progan
from tests.builders.trainer import cpu_trainer


def built(n_levels, **kwargs) -> ProgressiveSchedule:
    schedule = ProgressiveSchedule(**kwargs)
    schedule.build(n_levels)
    return schedule


def test_schedule_level_and_alpha_after_n_images():
    s = built(3, train_images=[10, 20, 30], fade_images=[99, 40, 8])
    # level 0: [0, 10) train; level 1: [10, 50) fade, [50, 70) train; level 2: [70, 78) fade.
    assert s.total_images == 10 + 40 + 20 + 8 + 30
    expected = {
        0: (0, 1.0), 9: (0, 1.0), 10: (1, 0.0), 20: (1, 0.25), 49: (1, 39 / 40),
        50: (1, 1.0), 69: (1, 1.0), 70: (2, 0.0), 74: (2, 0.5), 78: (2, 1.0), 10**6: (2, 1.0),
    }  # fmt: skip
    for images, (level, alpha) in expected.items():
        assert s.progress_at(images) == (level, pytest.approx(alpha)), images


def test_schedule_single_level_and_scalar_values():
    s = built(1, train_images=100, fade_images=50)
    assert s.total_images == 100 and s.progress_at(0) == (0, 1.0) and s.progress_at(500) == (0, 1.0)
    s = built(2, train_images=[5], fade_images=4, batch_size=[8, 4])
    assert s.progress_at(7) == (1, 0.5) and s.batch_sizes == [8, 4]
    with pytest.raises(ValueError, match="2 values for a generator with 3 levels"):
        built(3, train_images=[1, 2], fade_images=0)


def test_full_schedule_drives_fewer_levels_with_the_same_budget():
    """grow: stem / none keep the highest levels of a full-growth schedule; the dropped levels'
    images go to the first kept level, so every growth mode shows as many images."""
    kwargs = dict(
        train_images=[10, 20, 30, 40], fade_images=[0, 5, 6, 7], batch_size=[32, 16, 8, 4]
    )
    full = built(4, **kwargs)
    stem = built(2, **kwargs)
    one = built(1, **kwargs)
    assert full.total_images == stem.total_images == one.total_images == 118
    # stem: level 0 = 10 + 5 + 20 + 6 + 30 images, then the last level's fade and training.
    assert stem.progress_at(70) == (0, 1.0) and stem.progress_at(72) == (1, pytest.approx(1 / 7))
    assert stem.batch_sizes == [8, 4] and one.batch_sizes == [4]
    with pytest.raises(ValueError, match="train_images has 4 values but fade_images 3"):
        built(2, train_images=[1, 2, 3, 4], fade_images=[0, 1, 2])


# ---- a tiny model and data module, trained through a real Trainer ------------------------------


class Snapshot(Callback):
    """Copies of the module and optimizer state when a checkpoint is saved / training starts."""

    def __init__(self) -> None:
        self.saved: dict[int, dict] = {}
        self.started: dict | None = None

    @staticmethod
    def grab(trainer, pl_module):
        return {
            "state": copy.deepcopy(pl_module.state_dict()),
            "optim": [copy.deepcopy(o.state_dict()) for o in trainer.optimizers],
            "progress": (pl_module.level, pl_module.alpha, pl_module.images_shown),
        }

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.saved[trainer.global_step] = self.grab(trainer, pl_module)

    def on_train_start(self, trainer, pl_module):
        self.started = self.grab(trainer, pl_module)


def make_trainer(tmp_path, callbacks, max_steps):
    return cpu_trainer(
        tmp_path, max_steps, callbacks, enable_checkpointing=True,
        reload_dataloaders_every_n_epochs=1,
        log_every_n_steps=1,  # progress/* is logged on logging steps only (it costs a sync)
    )  # fmt: skip


def schedule():
    # Levels 4, 8, 16; images: level 0 train [0, 4); level 1 fade [4, 12), train [12, 16);
    # level 2 fade [16, 20), train [20, 24). Batch 2 at levels 0-1, 4 at level 2.
    return ProgressiveSchedule(train_images=4, fade_images=[0, 8, 4], batch_size=[2, 2, 4])


def assert_states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def assert_optim_equal(a, b):
    for oa, ob in zip(a, b):
        assert oa["param_groups"] == ob["param_groups"]
        assert oa["state"].keys() == ob["state"].keys()
        for i in oa["state"]:
            for key in oa["state"][i]:
                torch.testing.assert_close(oa["state"][i][key], ob["state"][i][key], rtol=0, atol=0)


@pytest.mark.slow
def test_resume_mid_fade_in_restores_level_alpha_ema_and_optimizer(tmp_path):
    snap = Snapshot()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1)
    data = BlobData(2, n=8, size=16, coarse=4)
    first = make_trainer(tmp_path, [schedule(), EMA(decay=0.9), ckpt, snap], max_steps=100)
    gan = tiny_progan()
    first.fit(gan, datamodule=data)
    # The schedule ended the run at 24 images: 8 batches of 2 (epochs of 4 batches), then at
    # level 2 the next epoch's loader serves batches of 4; two optimizer steps per batch.
    assert (gan.images_shown, first.global_step) == (24, 2 * (8 + 2))
    assert data.batch_sizes_served == [2, 2, 4]
    assert (gan.level, gan.alpha, gan.resolution) == (2, 1.0, 16)
    for key in ("loss_g", "loss_d", "gp", "drift", "grad_norm_g", "grad_norm_d"):
        assert torch.isfinite(first.callback_metrics[f"train/{key}"]), key
    for key in ("images_shown", "level", "alpha", "resolution"):
        assert f"progress/{key}" in first.callback_metrics

    # Two optimizer steps (D, G) per batch: global step 6 = 3 batches = 6 images shown, level 1
    # fading in at alpha (6 - 4) / 8.
    at_save = snap.saved[6]
    assert at_save["progress"] == (1, 0.25, 6)
    state = at_save["state"]
    ema_differs = any(
        not torch.equal(state[k], state["generator_ema." + k[len("generator.") :]])
        for k in state
        if k.startswith("generator.") and k.endswith("weight")
    )
    assert ema_differs  # so a reset of the EMA on resume would show

    resumed_snap = Snapshot()
    second = make_trainer(tmp_path, [schedule(), EMA(decay=0.9), resumed_snap], max_steps=10)
    resumed = tiny_progan()
    second.fit(
        resumed,
        datamodule=BlobData(2, n=8, size=16, coarse=4),
        ckpt_path=ckpt.dirpath + "/epoch=0-step=6.ckpt",
    )
    started = resumed_snap.started
    assert started["progress"] == (1, 0.25, 6)
    assert_states_equal(started["state"], state)
    assert_optim_equal(started["optim"], at_save["optim"])
    # Training went on from there: two more steps of batch 2 -> 10 images, alpha (10 - 4) / 8.
    assert (resumed.images_shown, resumed.level, resumed.alpha) == (10, 1, 0.75)
