"""A training set of N subjects in the ICBM stream (``train_subjects``): exactly N distinct subjects
in training, the held-out sets unchanged, and no image shared between what chose the CycleGAN
epoch (validation) and what judges the noise GAN (the evaluation's test reference)."""

import pytest
import torch

from data_modules import IcbmDataModule
from gan_init.callbacks.evaluation import FLOOR_SPLIT, REFERENCE_SPLIT
from tests.builders.icbm import require_icbm

require_icbm()


def _dm(dims: int, **kw) -> IcbmDataModule:
    kw.setdefault("size", 16 if dims == 2 else 8)
    return IcbmDataModule(
        spatial_dims=dims, mode="noise", batch_size=4, samples_per_epoch=8, val_samples=4, **kw
    )


def _stream(dm: IcbmDataModule, n: int) -> torch.Tensor:
    data = dm.train_dataset()
    return torch.stack([data.image(k, -1, "t1") for k in range(n)])


def _distinct(images: torch.Tensor) -> int:
    return len({tuple(x.flatten().tolist()) for x in images})


@pytest.mark.parametrize("dims", [2, 3])
def test_training_stream_holds_exactly_n_subjects(dims):
    dm = _dm(dims, train_subjects=4)
    data = dm.train_dataset()
    slices = len(dm.bank("train"))
    picks = {data.subject_and_item(data_seed) for data_seed in _seeds(dm, 300)}
    assert {s for s, _ in picks} == set(range(4))  # every subject, no other
    images = _stream(dm, 300 if dims == 3 else 120)
    # Every training image is one of the N x slices fixed images, and (3D) there are exactly N.
    fixed = dm.real_images(4 * slices, split="train")
    assert _distinct(torch.cat([images, fixed])) == _distinct(fixed) == 4 * slices
    if dims == 3:
        assert _distinct(images) == 4
    # The endless stream: every sample its own subject.
    assert _distinct(_stream(_dm(dims), 40)) == 40


def _seeds(dm: IcbmDataModule, n: int) -> list[int]:
    from data_modules.stream import sample_seed

    return [sample_seed(dm.seed, "train", k, "t1") for k in range(n)]


@pytest.mark.parametrize("dims", [2, 3])
def test_subjects_follow_the_split_seed_and_held_out_sets_do_not_change(dims):
    a, b = _dm(dims, train_subjects=4, seed=1), _dm(dims, train_subjects=4, seed=2)
    endless = _dm(dims, seed=1)
    # The same subjects for every run seed (the run seed orders the stream, not who is in it).
    everything = 4 * len(a.bank("train"))
    fixed_a, fixed_b = a.real_images(everything, "train"), b.real_images(everything, "train")
    assert _distinct(torch.cat([fixed_a, fixed_b])) == _distinct(fixed_a) == everything
    assert not torch.equal(fixed_a, fixed_b)  # the same images, in each run's own order
    for split in ("val", "test"):
        assert torch.equal(a.real_images(6, split), endless.real_images(6, split))
    assert a.record()["train_subjects"] == 4 and endless.record()["train_subjects"] is None
    other = _dm(dims, train_subjects=4, split_seed=1)
    assert _distinct(torch.cat([other.real_images(everything, "train"), fixed_a])) == 2 * everything
    with pytest.raises(ValueError, match="train_subjects"):
        _dm(dims, train_subjects=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_cyclegan_validation_and_noise_reference_are_disjoint(dims):
    cyclegan = IcbmDataModule(spatial_dims=dims, size=16 if dims == 2 else 8, val_samples=16)
    noise = _dm(dims)
    chose = torch.cat([batch["t1"] for batch in cyclegan.val_dataloader()])  # picks the epoch
    judges = noise.real_images(64, REFERENCE_SPLIT)
    floor = noise.real_images(64, FLOOR_SPLIT)
    assert REFERENCE_SPLIT != "val" and len(chose) == 16
    assert _distinct(torch.cat([chose, judges])) == len(chose) + _distinct(judges)
    assert _distinct(torch.cat([floor, judges])) == _distinct(floor) + _distinct(judges)
