"""The CycleGAN LightningModule: training steps in 2D and 3D, validation metrics, checkpoint
metadata, resume (image pool and schedule), and the image-grid callback."""

import numpy as np
import pytest
import torch
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from gan_init.callbacks.image_grid import CycleGANImageGrid
from gan_init.core.visualize import image_grid, mid_slice_montage, save_png
from gan_init.models.cyclegan import ImagePool, linear_decay
from gan_init.transfer import load_cyclegan_discriminator, load_cyclegan_generator
from tests.builders.images import PhantomDataModule
from tests.builders.networks import tiny_cyclegan

DIMS = [2, pytest.param(3, marks=pytest.mark.slow)]  # 3D Lightning runs take seconds


def size_for(spatial_dims: int) -> int:
    return 16 if spatial_dims == 2 else 8


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_training_steps_update_all_four_networks(make_trainer, spatial_dims):
    torch.manual_seed(0)
    model = tiny_cyclegan(spatial_dims)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = PhantomDataModule(spatial_dims, size_for(spatial_dims))
    trainer = make_trainer(max_epochs=1, limit_val_batches=1)  # 2 steps
    trainer.fit(model, data)
    for name in ("g_t2_to_t1", "g_t1_to_t2", "d_t1", "d_t2"):
        key = f"{name}.stem.conv.weight" if name.startswith("d") else f"{name}.head.conv.weight"
        assert not torch.equal(model.state_dict()[key], before[key]), name
    metrics = trainer.callback_metrics
    for key in ("loss_g", "loss_d", "loss_cycle", "loss_idt"):
        assert torch.isfinite(metrics[f"train/{key}"]), key
    for direction in ("t2_to_t1", "t1_to_t2"):
        for kind in ("psnr", "ssim", "mae"):
            assert torch.isfinite(metrics[f"val/{kind}_{direction}"]), (kind, direction)
    assert torch.isfinite(metrics["val/psnr_identity_t2_to_t1"])
    assert len(model.pool_t1) == 4 and len(model.pool_t2) == 4  # 2 steps x batch 2


def test_two_generators_and_discriminators_are_distinct_and_reinitialized():
    torch.manual_seed(0)
    model = tiny_cyclegan(2)
    g1, g2 = model.g_t2_to_t1, model.g_t1_to_t2
    assert g1 is not g2 and g1.spec == g2.spec
    assert model.d_t1.config == model.d_t2.config
    w = g1.encoder.stem.conv.effective_weight()
    assert abs(w.std().item() - 0.02) < 0.01  # N(0, 0.02) as in Zhu et al.
    assert not torch.equal(w, g2.encoder.stem.conv.effective_weight())


def test_mismatched_dims_are_named():
    from gan_init.models.cyclegan import CycleGAN
    from gan_init.networks import BackboneSpec, CycleGANGenerator, PatchGANDiscriminator

    with pytest.raises(ValueError, match="generator is 2D.*discriminator is 3D"):
        CycleGAN(CycleGANGenerator(BackboneSpec(base_width=4)), PatchGANDiscriminator(3))


def test_data_dims_must_match_network_dims(make_trainer):
    trainer = make_trainer(max_steps=1)
    with pytest.raises(ValueError, match=r"data.spatial_dims=3 .*spatial_dims=2"):
        trainer.fit(tiny_cyclegan(2), PhantomDataModule(3, 8))


def test_linear_decay_schedule_is_the_reference_rule():
    f = linear_decay(epochs_constant=3, epochs_decay=4)
    assert [round(f(e), 3) for e in range(7)] == [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]


def test_image_pool_returns_history_and_round_trips():
    random_state = torch.get_rng_state()
    pool = ImagePool(3)
    first = pool.query(torch.zeros(3, 1, 4, 4))
    assert torch.equal(first, torch.zeros(3, 1, 4, 4)) and len(pool) == 3
    mixed = pool.query(torch.ones(20, 1, 4, 4))
    assert (mixed.sum(dim=(1, 2, 3)) == 0).any()  # some earlier fakes come back
    clone = ImagePool(1)
    clone.load_state_dict(pool.state_dict())
    assert clone.size == 3 and all(torch.equal(a, b) for a, b in zip(clone.images, pool.images))
    assert ImagePool(0).query(torch.ones(2, 1, 4, 4)).shape == (2, 1, 4, 4)
    torch.set_rng_state(random_state)


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_checkpoint_is_self_describing_and_loads_without_lightning(
    tmp_path, make_trainer, spatial_dims
):
    torch.manual_seed(0)
    model = tiny_cyclegan(spatial_dims)
    data = PhantomDataModule(spatial_dims, size_for(spatial_dims))
    trainer = make_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(model, data)
    path = tmp_path / "c.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # no arbitrary objects in our checkpoints
    meta = ckpt["gan_init"]
    assert meta["format"] == 1 and meta["stage"] == "cyclegan"
    assert meta["spatial_dims"] == spatial_dims
    assert set(meta["networks"]) == {"g_t2_to_t1", "g_t1_to_t2", "d_t1", "d_t2"}
    assert meta["networks"]["g_t2_to_t1"]["backbone"]["base_width"] == 4
    assert meta["intensity"]["range"] == [-1.0, 1.0]
    assert meta["data"]["image_shape"] == list(data.image_shape)
    x = torch.rand(1, 1, *data.image_shape) * 2 - 1
    for direction in ("t2_to_t1", "t1_to_t2"):
        g = load_cyclegan_generator(path, direction, spatial_dims=spatial_dims)
        with torch.no_grad():
            torch.testing.assert_close(g(x), getattr(model, f"g_{direction}").eval()(x))
    d = load_cyclegan_discriminator(path, "t2")
    torch.testing.assert_close(d.logits.weight, model.d_t2.logits.weight)


class RecordStart(Callback):
    def on_train_start(self, trainer, pl_module):
        self.epoch = trainer.current_epoch
        self.step = trainer.global_step
        self.pool = [im.clone() for im in pl_module.pool_t1.images]
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.sched_epoch = trainer.lr_scheduler_configs[0].scheduler.last_epoch


@pytest.mark.slow
def test_resume_continues_pool_and_schedule(tmp_path, make_trainer):
    """Stop after 2 epochs, resume from last.ckpt: epoch, step, pool, LR and schedule go on."""
    torch.manual_seed(0)
    data = PhantomDataModule(2, 16, n=4)
    kwargs = dict(epochs_constant=1, epochs_decay=3, pool_size=3, lr=1e-3)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = make_trainer(
        max_epochs=2, enable_checkpointing=True, callbacks=[checkpoints],
        limit_val_batches=0,
    )  # fmt: skip
    model = tiny_cyclegan(2, **kwargs)
    first.fit(model, data)
    saved_pool = [im.clone() for im in model.pool_t1.images]
    saved_lr = first.optimizers[0].param_groups[0]["lr"]
    assert saved_lr == pytest.approx(1e-3 * linear_decay(1, 3)(2))  # decayed after epoch 2

    record = RecordStart()
    second = make_trainer(
        max_epochs=3, enable_checkpointing=True, limit_val_batches=0,
        callbacks=[record, ModelCheckpoint(dirpath=tmp_path / "ckpt2", save_last=True)],
    )  # fmt: skip
    fresh = tiny_cyclegan(2, **kwargs)  # different random weights and an empty pool
    second.fit(fresh, data, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert record.epoch == 2 and record.step == first.global_step
    assert len(record.pool) == 3
    assert all(torch.equal(a, b) for a, b in zip(record.pool, saved_pool))
    assert record.lr == pytest.approx(saved_lr) and record.sched_epoch == 2
    assert second.current_epoch == 3


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_image_grid_callback_saves_png_and_calls_log_image(tmp_path, make_trainer, spatial_dims):
    logged = []

    class ImageLogger(CSVLogger):
        def log_image(self, key, images, step=None, **kwargs):
            logged.append((key, images[0].shape, step, kwargs))

    torch.manual_seed(0)
    grid = CycleGANImageGrid(n_images=2)
    trainer = make_trainer(
        max_epochs=1, logger=ImageLogger(tmp_path), callbacks=[grid],
        limit_val_batches=1,
    )  # fmt: skip
    trainer.fit(
        tiny_cyclegan(spatial_dims), PhantomDataModule(spatial_dims, size_for(spatial_dims))
    )
    assert grid.last_path is not None and grid.last_path.is_file()
    assert str(grid.last_path).startswith(str(trainer.log_dir))
    assert len(logged) == 1 and logged[0][0] == "val/translations"
    from PIL import Image

    png = np.asarray(Image.open(grid.last_path))
    assert png.dtype == np.uint8 and png.shape == logged[0][1]


def test_image_grid_layouts():
    a = torch.linspace(-1, 1, 2 * 9 * 11).reshape(2, 1, 9, 11)
    grid = image_grid([a, -a, a], min_cell=1)  # 2 rows x 3 columns, 2D slices as they are
    assert grid.dtype == np.uint8 and grid.shape == (2 * 9 + 2, 3 * 11 + 2 * 2)
    tiled = image_grid(torch.zeros(5, 1, 4, 4), ncols=3, pad=1, min_cell=1)
    assert tiled.shape == (2 * 4 + 1, 3 * 4 + 2) and tiled.max() == 128
    vol = torch.zeros(5, 7, 9)
    assert mid_slice_montage(vol, min_cell=1).shape == (9, 7 + 5 + 5 + 2 * 2)  # upright slices
    assert image_grid(torch.zeros(2, 1, 5, 7, 9), min_cell=1).shape[0] == 9
    assert image_grid(torch.zeros(2, 1, 5, 7, 9)).shape[0] >= 128  # enlarged for people


def test_save_png_round_trip(tmp_path):
    from PIL import Image

    img = (np.arange(12).reshape(3, 4) * 20).astype(np.uint8)
    path = save_png(img, tmp_path / "sub" / "x.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img)
