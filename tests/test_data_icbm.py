"""The ICBM template stream: shapes, range, pairing, reproducibility, epochs and ranks."""

import json

import pytest
import pytorch_lightning as pl
import torch

from data_modules import Augmentation, IcbmDataModule, stream
from data_modules.stream import StreamSampler
from tests.builders.icbm import require_icbm

require_icbm()


def _dm(dims: int, **kw) -> IcbmDataModule:
    kw.setdefault("size", 16 if dims == 2 else 12)
    kw.setdefault("batch_size", 4)
    kw.setdefault("samples_per_epoch", 8)
    kw.setdefault("val_samples", 4)
    return IcbmDataModule(spatial_dims=dims, **kw)


@pytest.mark.parametrize("dims", [2, 3])
def test_batches_have_the_contracted_shapes_and_range(dims):
    dm = _dm(dims)
    shape = dm.image_shape
    assert dm.channels == 1 and dm.spatial_dims == dims and len(shape) == dims
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    for batch in (train, val):
        assert set(batch) == {"t1", "t2"}
        for x in batch.values():
            assert x.shape == (4, 1, *shape) and x.dtype == torch.float32
            assert x.min() >= -1 and x.max() <= 1 and x.max() > 0
    noise = next(iter(_dm(dims, mode="noise", modality="t2").train_dataloader()))
    assert set(noise) == {"image"} and noise["image"].shape == (4, 1, *shape)


def test_default_sizes_are_64_in_2d_and_32_in_3d():
    assert IcbmDataModule(spatial_dims=2).image_shape == (64, 64)
    assert IcbmDataModule(spatial_dims=3).image_shape == (32, 32, 32)


@pytest.mark.parametrize("dims", [2, 3])
def test_validation_pairs_share_one_warp(dims):
    # Same subject, same warp: the brains (foreground) of T1 and T2 coincide; across two
    # different draws they do not.
    dm = _dm(dims, size=24 if dims == 2 else 16)
    val = next(iter(dm.val_dataloader()))
    fg1, fg2 = val["t1"] > -0.8, val["t2"] > -0.8

    def dice(a, b):
        return float(2 * (a & b).sum() / (a.sum() + b.sum()))

    assert dice(fg1[0], fg2[0]) > 0.9
    assert dice(fg1[0], fg1[1]) < dice(fg1[0], fg2[0])


def test_t2_has_bright_csf_where_t1_is_dark():
    # The ventricles: voxels darkest in T1 in the middle of the brain are bright in T2.
    bank = _dm(2, size=32).bank("val")
    t1, t2 = bank.t1[:, 8:24, 8:24], bank.t2[:, 8:24, 8:24]
    brain = t1 > 0.05
    dark_t1 = brain & (t1 < t1[brain].quantile(0.05))
    assert t2[dark_t1].mean() > t2[brain].mean() + 0.1


def test_streams_reproduce_from_the_seed_and_differ_by_seed_position_and_split():
    def first(dm, position=0):
        dm.train_position.samples = position
        return next(iter(dm.train_dataloader()))["t1"]

    a, b = _dm(2, seed=3), _dm(2, seed=3)
    assert torch.equal(first(a), first(b))
    assert not torch.equal(first(a), first(_dm(2, seed=4)))
    assert not torch.equal(first(a), first(a, position=4))
    assert torch.equal(first(a, position=2)[:2], first(b)[2:])  # the stream continues
    assert not torch.equal(a.real_images(4, "train"), a.real_images(4, "val"))
    assert torch.equal(a.real_images(4, "train"), first(a))  # train set = the train stream
    val = next(iter(a.val_dataloader()))
    assert torch.equal(a.real_images(4, "val", "t2"), val["t2"])
    assert torch.equal(next(iter(a.val_dataloader()))["t1"], val["t1"])  # fixed every epoch


def test_cyclegan_train_batches_are_unpaired():
    batch = next(iter(_dm(2, size=24).train_dataloader()))
    fg1, fg2 = batch["t1"] > -0.8, batch["t2"] > -0.8
    # Independent draws: T1 i and T2 i do not share a warp (and often not a slice).
    assert not torch.equal(fg1, fg2)


def test_stream_is_the_same_whatever_the_workers_and_sharded_over_ranks():
    dm = _dm(2)
    single = [s for s in StreamSampler(8, None, seed=0)]
    ranks = []
    for rank in (0, 1):
        sampler = StreamSampler(8, None, seed=0)
        sampler.num_replicas, sampler.rank, sampler.per_rank = 2, rank, 4
        ranks.append(list(sampler))
    assert sorted(ranks[0] + ranks[1]) == sorted(single)
    assert not set(ranks[0]) & set(ranks[1])
    loader = dm.train_dataloader()
    in_process = torch.cat([b["t1"] for b in loader])
    dm.num_workers = 2
    with_workers = torch.cat([b["t1"] for b in dm.train_dataloader()])
    assert torch.equal(in_process, with_workers)


def test_batch_size_is_read_at_every_dataloader_call():
    dm = _dm(2)
    dm.batch_size = 2
    assert next(iter(dm.train_dataloader()))["t1"].shape[0] == 2


def test_data_module_does_not_touch_the_global_rng():
    dm = _dm(2)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    dm.train_dataset()[(0, -1, -1)]  # (a DataLoader iterator itself draws one base seed)
    dm.pair_dataset("val")[0]
    assert torch.equal(torch.rand(3), expected)


def test_skull_and_axis_options_change_the_images():
    brain = _dm(2).bank("val").t1
    head = _dm(2, skull_strip=False).bank("val").t1
    coronal = _dm(2, axis="coronal").bank("val").t1
    assert brain.shape[1:] == head.shape[1:] == coronal.shape[1:] == (16, 16)
    # Brain only: everything outside the brain mask is exactly 0; the head has tissue (and
    # the templates' faint background) around the brain.
    assert (brain == 0).float().mean() > 0.2 > (head == 0).float().mean()
    assert coronal.shape[0] != brain.shape[0] or not torch.equal(coronal, brain)


def test_no_augmentation_gives_the_template_itself():
    dm = _dm(2, augmentation=Augmentation(0, 0, 0, 0, 0, 0, 0, 0))
    val = dm.real_images(2, "val")
    bank = dm.bank("val").t1
    for image in val:
        assert min(float((image[0] - (b * 2 - 1)).abs().max()) for b in bank) < 1e-5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "noize"}, "did you mean 'noise'"),
        ({"modality": "T1"}, "did you mean 't1'"),
        ({"axis": "axal"}, "did you mean 'axial'"),
        ({"spatial_dims": 4}, "must be 2 or 3"),
        ({"slice_range": (0.8, 0.2)}, "slice_range"),
    ],
)
def test_bad_options_fail_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IcbmDataModule(**kwargs)


class _Tiny(pl.LightningModule):
    """The least a trainer needs to run a data module's train stream."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return (self.w - next(iter(batch.values())).mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("dims", [2, 3])
def test_data_seed_follows_the_run_seed_unless_given(dims, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # restored after the test
    pl.seed_everything(5)
    run5 = _dm(dims)
    assert run5.seed == 5 and "run seed" in run5.seed_source
    first5 = next(iter(run5.train_dataloader()))["t1"]
    assert torch.equal(first5, next(iter(_dm(dims, seed=5).train_dataloader()))["t1"])
    assert _dm(dims, seed=2).seed == 2  # an explicit seed wins
    pl.seed_everything(6)
    run6 = _dm(dims)
    assert not torch.equal(first5, next(iter(run6.train_dataloader()))["t1"])
    # Evaluation images do not follow the run seed: every run is compared on the same ones.
    assert torch.equal(run5.real_images(3, "val"), run6.real_images(3, "val"))
    assert not torch.equal(
        run5.real_images(3, "val"), _dm(dims, split_seed=1).real_images(3, "val")
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_the_resolved_seed_is_recorded_in_data_json_and_the_checkpoint(dims, tmp_path, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    pl.seed_everything(7)
    dm = _dm(dims, mode="noise", samples_per_epoch=4)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(_Tiny(), datamodule=dm)
    record = json.loads((tmp_path / "data.json").read_text())
    assert record["seed"] == 7 and record["split_seed"] == 0
    assert record["data_class"] == "data_modules.IcbmDataModule"
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    saved = torch.load(tmp_path / "x.ckpt", weights_only=True)["datamodule_hyper_parameters"]
    assert saved["seed"] == 7 and saved["seed_source"] == "run seed (seed_everything)"


@pytest.mark.parametrize("dims", [2, 3])
def test_heldout_draws_never_share_a_deformation_seed_with_train(dims, monkeypatch):
    # Make every hash collide: the same seed for every sample of every split. Held out by
    # construction means train, validation and test still draw different warps.
    monkeypatch.setattr(stream, "sample_seed", lambda *args: 12345)
    dm = _dm(dims, holdout_slices=False)
    train = dm.train_dataset().image(0, -1, "t1")
    val, test = dm.pair_dataset("val")[0]["t1"], dm.pair_dataset("test")[0]["t1"]
    assert not torch.equal(train, val) and not torch.equal(train, test)
    assert not torch.equal(val, test)
    seeds = [int(s) for s in torch.randint(0, 2**62, (200,))]
    for split, code in (("train", 0), ("val", 1), ("test", 2)):
        assert {stream.generator_seed(s, split) & 3 for s in seeds} == {code}
        assert all(stream.generator_seed(s, split) < 2**32 for s in seeds)  # what mt19937 keeps


def test_2d_validation_and_test_slices_are_held_out_and_disjoint():
    dm = _dm(2, augmentation=Augmentation(0, 0, 0, 0, 0, 0, 0, 0))
    dm.setup()
    slices = dm.slices
    assert not set(slices["train"]) & set(slices["val"])
    assert not set(slices["train"]) & set(slices["test"])
    assert not set(slices["val"]) & set(slices["test"])
    total = sum(map(len, slices.values()))
    assert len(slices["train"]) >= 0.6 * total and len(slices["val"]) >= 0.19 * total
    # Every slice position in the slab is in one split; train never sits 2 slices from another.
    assert sorted(sum(slices.values(), [])) == list(range(total))
    assert max(b - a for a, b in zip(slices["train"], slices["train"][1:])) <= 2
    train = dm.bank("train").t1 * 2 - 1
    for split in ("val", "test"):
        for image in dm.real_images(4, split):
            assert min(float((image[0] - b).abs().max()) for b in train) > 1e-3
    assert dm.record()["heldout"]["slice_positions"]["val"] == slices["val"]
    every = _dm(2, holdout_slices=False)
    assert len(every.bank("val")) == len(every.bank("train")) == total
