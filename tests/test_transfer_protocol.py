"""The controlled comparison (issue 11): a transfer across image scales is refused unless asked for
and then recorded, and ``cyclegan_frozen`` is released inside every schedule it runs under."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from gan_init.callbacks import ProgressiveSchedule, WeightTransfer
from gan_init.networks import BackboneSpec, NoiseGenerator
from gan_init.networks.progressive import GROW_MODES
from gan_init.transfer.strategies import StrategyContext, renderer_freeze
from gan_init.transfer.transfer import frozen_now, release_points
from tests.builders.checkpoints import save_cyclegan
from tests.builders.images import BlobData
from tests.builders.networks import SIZE, tiny_cyclegan, tiny_noise_gan, tiny_spec
from tests.builders.reference_cyclegan import reference_generator

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
SWEEP_CONFIGS = ("noise_2d_sweep.yaml", "noise_3d_sweep.yaml")


# ---- scale -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_cyclegan_checkpoint_records_the_scale_it_trained_at(spatial_dims):
    model = tiny_cyclegan(spatial_dims)
    # Folder data: a side and a target spacing (NiftiFolderDataModule keeps it in ``prep``).
    model.trainer = SimpleNamespace(
        datamodule=SimpleNamespace(
            spatial_dims=spatial_dims, size=12, prep=SimpleNamespace(spacing=1.5)
        )
    )
    model.setup("fit")
    data = model.metadata()["data"]
    assert data["image_shape"] == [12] * spatial_dims and data["voxel_spacing"] == 1.5
    # Data without a spacing (the ICBM stream): recorded as None, the shape as given.
    model.trainer = SimpleNamespace(
        datamodule=SimpleNamespace(spatial_dims=spatial_dims, image_shape=(9,) * spatial_dims)
    )
    model.setup("fit")
    data = model.metadata()["data"]
    assert data["image_shape"] == [9] * spatial_dims and data["voxel_spacing"] is None


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_transfer_across_scales_is_refused_naming_both_sizes_and_the_fix(
    tmp_path, make_trainer, spatial_dims
):
    size = SIZE[spatial_dims]
    save_cyclegan(tmp_path / "c.ckpt", tiny_spec(spatial_dims), image_size=2 * size)
    gan = tiny_noise_gan(spatial_dims, "stem")
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    shape = "x".join([str(2 * size)] * spatial_dims)
    with pytest.raises(
        ValueError, match=rf"trained at image size {shape} but the noise GAN renders {size}"
    ) as err:
        make_trainer(0, [WeightTransfer("cyclegan", source=str(tmp_path / "c.ckpt"))]).fit(
            gan, BlobData(spatial_dims)
        )
    message = str(err.value)
    assert "\n" not in message
    assert "--allow_scale_mismatch true" in message and f"data.init_args.size={size}" in message
    assert all(torch.equal(before[k], v) for k, v in gan.state_dict().items())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_opt_in_transfers_across_scales_and_records_the_ratio(tmp_path, make_trainer, spatial_dims):
    size = SIZE[spatial_dims]
    path = tmp_path / "c.ckpt"
    save_cyclegan(path, tiny_spec(spatial_dims), image_size=2 * size, voxel_spacing=2.0)
    transfer = WeightTransfer("cyclegan", source=str(path), allow_scale_mismatch=True)
    make_trainer(0, [transfer]).fit(tiny_noise_gan(spatial_dims, "full"), BlobData(spatial_dims))
    summary = json.loads((tmp_path / "transfer_summary.json").read_text())
    assert summary["source_image_size"] == 2 * size and summary["target_image_size"] == size
    assert summary["scale_ratio"] == 2.0 and summary["source_voxel_spacing"] == 2.0
    assert summary["parts"]["trunk"]["copied_tensors"] > 0
    # Matching sizes need no opt-in and record ratio 1.
    save_cyclegan(path, tiny_spec(spatial_dims))
    transfer = WeightTransfer("cyclegan", source=str(path))
    make_trainer(0, [transfer]).fit(tiny_noise_gan(spatial_dims, "full"), BlobData(spatial_dims))
    assert transfer.summary["scale_ratio"] == 1.0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_canonical_file_has_no_size_accepted_as_unknown_with_one_warning(
    tmp_path, make_trainer, spatial_dims
):
    path = tmp_path / "latest_net_G_B.pth"
    torch.save(reference_generator(ngf=8, n_blocks=2, d=spatial_dims).state_dict(), path)
    spec = BackboneSpec(spatial_dims=spatial_dims, base_width=8, n_down=2, n_blocks=2)
    transfer = WeightTransfer("cyclegan", source=str(path))
    with pytest.warns(UserWarning, match="does not record the image size") as warned:
        make_trainer(0, [transfer]).fit(
            tiny_noise_gan(spatial_dims, "stem", spec), BlobData(spatial_dims)
        )
    assert len([w for w in warned if "image size" in str(w.message)]) == 1
    assert "\n" not in str(warned[0].message)
    summary = json.loads((tmp_path / "transfer_summary.json").read_text())
    assert summary["source_image_size"] == "unknown" and summary["scale_ratio"] == "unknown"
    assert summary["target_image_size"] == SIZE[spatial_dims]


# ---- cyclegan_frozen is released inside the budget ---------------------------------------------


def _sweep_parts(name: str) -> tuple[dict, dict]:
    config = yaml.safe_load((CONFIGS / name).read_text())
    schedule = next(
        cb["init_args"]
        for cb in config["trainer"]["callbacks"]
        if cb["class_path"].endswith("ProgressiveSchedule")
    )
    generator = config["model"]["init_args"]["generator"]["init_args"]
    return schedule, generator


@pytest.mark.parametrize("grow", GROW_MODES)
@pytest.mark.parametrize("config", SWEEP_CONFIGS)
def test_sweep_schedules_release_every_frozen_part_before_they_end(config, grow):
    schedule_args, generator_args = _sweep_parts(config)
    knobs = {**generator_args, "grow": grow}
    knobs["backbone"] = BackboneSpec(**knobs["backbone"])
    generator = NoiseGenerator(**knobs)
    schedule = ProgressiveSchedule(**schedule_args)
    starts = schedule.level_starts(generator.n_levels)
    total = schedule.total_images
    ctx = StrategyContext(
        SimpleNamespace(generator=generator), None, level_starts=starts, total_images=total
    )  # the defaults of WeightTransfer: freeze_fraction 0.25, no absolute length
    rules = renderer_freeze(ctx)
    assert rules and all(0 < rule.images for rule in rules)
    assert all(p["release_at_images"] < total for p in release_points(rules, starts))
    # Run the schedule batch by batch, as the callbacks do, and see every part released.
    images, reached, released = 0, {}, {}
    while images < total:
        level, _ = schedule.progress_at(images)
        for lv in range(level + 1):
            reached.setdefault(lv, images)
        frozen = frozen_now(rules, images, reached)
        for rule in rules:
            if rule.prefix not in frozen:
                released.setdefault(rule.prefix, images)
        images += schedule.batch_sizes[level]
    assert sorted(released) == sorted(rule.prefix for rule in rules)
    assert max(released.values()) < total


def test_freeze_fraction_needs_a_schedule_or_an_absolute_length(saved_cyclegan, make_trainer):
    transfer = WeightTransfer("cyclegan_frozen", source=str(saved_cyclegan.path))
    with pytest.raises(
        ValueError, match=r"no gan_init.callbacks.ProgressiveSchedule.*--freeze_images N"
    ):
        make_trainer(0, [transfer]).fit(tiny_noise_gan(2, "stem"), BlobData(2))
    with pytest.raises(ValueError, match=r"freeze_fraction=1.0: expected 0 <= fraction < 1"):
        WeightTransfer("cyclegan_frozen", freeze_fraction=1.0)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_release_point_is_in_the_summary_and_the_logs(
    tmp_path, saved_cyclegan, make_trainer, spatial_dims, caplog
):
    from pytorch_lightning.loggers import CSVLogger

    gan = tiny_noise_gan(spatial_dims, "stem")  # 2 levels: the renderer runs from level 0
    schedule = ProgressiveSchedule(train_images=4, fade_images=0)  # 8 images in all
    transfer = WeightTransfer(
        "cyclegan_frozen", source=str(saved_cyclegan.path), freeze_fraction=0.5
    )
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = make_trainer(2 * 4, [schedule, transfer], logger=logger, log_every_n_steps=1)
    with caplog.at_level("INFO"):
        trainer.fit(gan, BlobData(spatial_dims))
    summary = json.loads((tmp_path / "csv" / "transfer_summary.json").read_text())
    assert summary["freeze_fraction"] == 0.5 and summary["freeze_images"] is None
    assert summary["schedule_total_images"] == 8
    assert {p["release_at_images"] for p in summary["release"]} == {4}  # 0 + 0.5 * 8
    assert caplog.text.count("WeightTransfer: released generator.trunk at 4 images shown") == 1
    with open(tmp_path / "csv" / "metrics.csv") as f:
        frozen = [
            float(r["transfer/frozen"]) for r in csv.DictReader(f) if r.get("transfer/frozen")
        ]
    assert frozen == [1.0, 1.0, 0.0, 0.0]  # batches at 0, 2 images frozen; at 4, 6 released
