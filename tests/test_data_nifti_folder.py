"""The NIfTI folder module on small volumes written here, with IXI and BraTS names."""

import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from data_modules import Augmentation, DataError, NiftiFolderDataModule
from data_modules import preprocessing as prep
from tests.builders.nifti import NIFTI_SHAPE as SHAPE
from tests.builders.nifti import brats_folder, ixi_folder
from tests.builders.nifti import head_volumes as _volumes
from tests.builders.nifti import save_nifti as _save


def _dm(root: Path, tmp_path: Path, **kw) -> NiftiFolderDataModule:
    kw.setdefault("size", 16)
    kw.setdefault("batch_size", 2)
    return NiftiFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"), **kw)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("layout", ["ixi", "brats"])
def test_batches_from_ixi_and_brats_folders(tmp_path, dims, layout):
    make = ixi_folder if layout == "ixi" else brats_folder
    dm = _dm(make(tmp_path / "data"), tmp_path, layout=layout, spatial_dims=dims)
    shape = dm.image_shape
    train, val = next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))
    for batch in (train, val):
        assert set(batch) == {"t1", "t2"}
        for x in batch.values():
            assert x.shape[1:] == (1, *shape) and x.dtype == torch.float32
            assert x.min() >= -1 and x.max() <= 1
    noise = next(
        iter(
            _dm(
                tmp_path / "data", tmp_path, layout=layout, spatial_dims=dims, mode="noise"
            ).train_dataloader()
        )
    )
    assert noise["image"].shape == (2, 1, *shape)
    # Subject-level split: no subject in two splits.
    subjects = {s: set(dm.bank(s).subjects) for s in ("train", "val", "test")}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert sum(map(len, subjects.values())) == len(dm.manifest["kept"])


def test_pairs_are_aligned_and_keep_their_contrast(tmp_path):
    dm = _dm(ixi_folder(tmp_path / "data"), tmp_path, size=24)
    bank = dm.bank("train")
    fg1, fg2 = bank.t1 > 0.05, bank.t2 > 0.05
    assert float(2 * (fg1 & fg2).sum() / (fg1.sum() + fg2.sum())) > 0.9
    csf = fg1 & (bank.t2 > bank.t2[fg2].quantile(0.9))  # T2-bright = CSF: dark in T1
    assert bank.t1[csf].mean() < bank.t1[fg1].mean()


def test_augmentation_keeps_pairs_aligned(tmp_path):
    dm = _dm(ixi_folder(tmp_path / "data"), tmp_path, size=24, augmentation=Augmentation())
    pair = dm.pair_dataset("train")
    pair.augmentation = dm.augmentation  # validation is unaugmented; force it for the check
    sample = pair[3]
    fg1, fg2 = sample["t1"] > -0.9, sample["t2"] > -0.9
    assert float(2 * (fg1 & fg2).sum() / (fg1.sum() + fg2.sum())) > 0.9


def test_train_t1_and_t2_come_from_independent_shuffles(tmp_path):
    dm = _dm(ixi_folder(tmp_path / "data", n=8), tmp_path, batch_size=64)
    indices = list(dm.train_dataloader().sampler)
    assert any(i != j for _, i, j in indices)
    assert sorted(i for _, i, _ in indices) == sorted(j for _, _, j in indices)  # each once


def test_split_and_stream_reproduce_from_the_seed(tmp_path):
    root = ixi_folder(tmp_path / "data", n=8)
    a, b, c = (_dm(root, tmp_path, seed=s) for s in (1, 1, 2))
    assert a.bank("val").subjects == b.bank("val").subjects
    assert torch.equal(
        next(iter(a.train_dataloader()))["t1"], next(iter(b.train_dataloader()))["t1"]
    )
    assert a.bank("train").subjects != c.bank("train").subjects or not torch.equal(
        next(iter(a.train_dataloader()))["t1"], next(iter(c.train_dataloader()))["t1"]
    )
    assert torch.equal(a.real_images(3, "val"), b.real_images(3, "val"))
    assert a.real_images(3, "train", "t2").shape == (3, 1, 16, 16)


def test_second_run_reads_no_nifti(tmp_path, monkeypatch):
    root = ixi_folder(tmp_path / "data")
    first = _dm(root, tmp_path).bank("train").t1

    def refuse(*args, **kwargs):
        raise AssertionError("NIfTI read although the cache exists")

    monkeypatch.setattr(prep, "read_volume", refuse)
    monkeypatch.setattr(prep.nib, "load", refuse)
    again = _dm(root, tmp_path)
    assert torch.equal(again.bank("train").t1, first)
    # A new setting is a new cache key: it needs the files again.
    with pytest.raises(AssertionError, match="NIfTI read"):
        _dm(root, tmp_path, percentiles=(1.0, 99.0)).setup()


def test_an_interrupted_cache_build_leaves_no_cache(tmp_path, monkeypatch):
    root = ixi_folder(tmp_path / "data")
    real = prep.read_volume
    calls = []

    def interrupted(path, what):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(path, what)

    monkeypatch.setattr(prep, "read_volume", interrupted)
    dm = _dm(root, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        dm.setup()
    cache = tmp_path / "cache"
    assert not dm.cache_path().exists() and list(cache.iterdir()) == []
    monkeypatch.setattr(prep, "read_volume", real)
    assert len(_dm(root, tmp_path).bank("train")) > 0


def _expect(root, tmp_path, match, **kw):
    with pytest.raises(DataError, match=match):
        _dm(root, tmp_path, **kw).setup()


def test_missing_folder_and_empty_folder(tmp_path):
    _expect(tmp_path / "nowhere", tmp_path, r"data folder .*nowhere does not exist")
    (tmp_path / "empty").mkdir()
    _expect(tmp_path / "empty", tmp_path, r"data folder .*empty is empty: expected T1/T2")


def test_pattern_matching_nothing_names_the_pattern(tmp_path):
    root = brats_folder(tmp_path / "data")
    _expect(root, tmp_path, r"no file in .* matches the T1 pattern '\{subject\}-T1.nii.gz'")
    _expect(
        root,
        tmp_path,
        "exactly once",
        layout="custom",
        t1_pattern="*_t1.nii.gz",
        t2_pattern="*_t2.nii.gz",
    )


def test_t1_without_t2(tmp_path):
    root = ixi_folder(tmp_path / "data")
    (root / "IXI001-HH-1201-T2.nii.gz").unlink()
    _expect(
        root,
        tmp_path,
        r"subject 'IXI001-HH-1201': has T1 file .*IXI001-HH-1201-T1.nii.gz but no T2",
    )
    with pytest.warns(UserWarning, match="skipping subject 'IXI001-HH-1201'"):
        dm = _dm(root, tmp_path, skip_bad_subjects=True)
        dm.setup()
    assert len(dm.manifest["kept"]) == 4


def test_missing_file_behind_a_broken_link(tmp_path):
    root = ixi_folder(tmp_path / "data")
    target = root / "IXI002-HH-1202-T1.nii.gz"
    target.rename(tmp_path / "moved.nii.gz")
    os.symlink(tmp_path / "gone.nii.gz", target)
    _expect(root, tmp_path, r"T1 file .*IXI002-HH-1202-T1.nii.gz is missing")


@pytest.mark.parametrize(
    "problem, match",
    [
        ("unreadable", r"could not read T2 file .*IXI003-HH-1203-T2.nii.gz"),
        ("truncated", r"could not read T2 file .*IXI003-HH-1203-T2.nii.gz .*truncated"),
        (
            "4d",
            r"T2 file .*IXI003-HH-1203-T2.nii.gz has shape \(12, 14, 10, 3\): expected one 3D volume",
        ),
        ("nan", r"T2 file .*IXI003-HH-1203-T2.nii.gz has 5 NaN or infinite values"),
    ],
)
def test_bad_files_stop_with_one_clear_message_or_are_skipped(tmp_path, problem, match):
    root = ixi_folder(tmp_path / "data")
    path = root / "IXI003-HH-1203-T2.nii.gz"
    if problem == "unreadable":
        path.write_bytes(gzip.compress(b"this is not a NIfTI file" * 20))
    elif problem == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif problem == "4d":
        _save(np.zeros((*SHAPE, 3), np.float32), path)
    else:
        data = _volumes(3)[1]
        data.flat[:5] = np.nan
        _save(data, path)
    _expect(root, tmp_path, match)
    assert not any((tmp_path / "cache").glob("*/data.pt"))  # nothing half-written
    with pytest.warns(UserWarning, match="skipping subject 'IXI003-HH-1203'"):
        dm = _dm(root, tmp_path, skip_bad_subjects=True)
        dm.setup()
    assert "IXI003-HH-1203" not in {k["subject"] for k in dm.manifest["kept"]}


def test_custom_pattern_and_mask(tmp_path):
    root = tmp_path / "bids"
    for i in range(3):
        t1, t2 = _volumes(i)
        _save(t1, root / f"sub-{i}" / "anat" / f"sub-{i}_T1w.nii")
        _save(t2, root / f"sub-{i}" / "anat" / f"sub-{i}_T2w.nii")
        _save((t1 > 50).astype(np.float32), root / f"sub-{i}" / "anat" / f"sub-{i}_mask.nii")
    dm = _dm(
        root,
        tmp_path,
        layout="custom",
        t1_pattern="{subject}/anat/*_T1w.nii",
        t2_pattern="{subject}/anat/*_T2w.nii",
        mask_pattern="{subject}/anat/*_mask.nii",
    )
    dm.setup()
    assert {k["subject"] for k in dm.manifest["kept"]} == {"sub-0", "sub-1", "sub-2"}
    assert dm.bank("train").t1.min() == 0  # outside the mask: -1 in [-1, 1]


def _record_into(dm: NiftiFolderDataModule, folder: Path) -> dict:
    """Set ``dm`` up under a trainer, as a run does, and read the records it writes."""
    dm.trainer = pl.Trainer(default_root_dir=folder, logger=False, enable_progress_bar=False)
    dm.setup("fit")
    assert json.loads((folder / "data.json").read_text())["subjects"]["subjects"]
    return json.loads((folder / "subjects.json").read_text())


@pytest.mark.parametrize("dims", [2, 3])
def test_roles_split_subjects_into_disjoint_cyclegan_noise_and_evaluation_sets(tmp_path, dims):
    root = ixi_folder(tmp_path / "data", n=8)
    kw = dict(spatial_dims=dims, roles=True)
    cyc = _dm(root, tmp_path, mode="cyclegan", seed=1, **kw)
    noise = _dm(root, tmp_path, mode="noise", seed=2, **kw)  # another run seed: same roles
    record = _record_into(cyc, tmp_path / "run")
    roles = record["subjects"]
    assert set(roles) == {"cyclegan", "noise", "val", "test"} and all(roles.values())
    names = sum(roles.values(), [])
    assert len(names) == len(set(names)) == 8  # disjoint, and every subject has a role
    assert record["roles"] is True and record["trains_on"] == "cyclegan"
    assert set(cyc.bank("train").subjects) == set(roles["cyclegan"])
    assert set(noise.bank("train").subjects) == set(roles["noise"])
    for split in ("val", "test"):
        assert cyc.bank(split).subjects == noise.bank(split).subjects
        assert set(cyc.bank(split).subjects) == set(roles[split])
        assert torch.equal(cyc.real_images(2, split), noise.real_images(2, split))
    assert noise.assignment == cyc.assignment
    others = [_dm(root, tmp_path, split_seed=k, **kw).assignment for k in (1, 2, 3)]
    assert any(a != cyc.assignment for a in others)  # the split seed decides the roles
    assert set(cyc.splits_in_use()) == {"cyclegan", "noise", "val", "test"}


@pytest.mark.parametrize("dims", [2, 3])
def test_run_seed_changes_the_train_stream_not_the_split(tmp_path, dims, monkeypatch):
    root = ixi_folder(tmp_path / "data", n=8)
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    streams, splits = [], []
    for run_seed in (3, 4):
        pl.seed_everything(run_seed)
        dm = _dm(root, tmp_path, spatial_dims=dims, batch_size=4)
        assert dm.seed == run_seed
        streams.append([tuple(i) for i in dm.train_dataloader().sampler])
        splits.append(dm.assignment)
    assert streams[0] != streams[1] and splits[0] == splits[1]


def test_too_few_subjects_for_roles_is_one_clear_error(tmp_path):
    root = ixi_folder(tmp_path / "data", n=3)
    _expect(root, tmp_path, r"^3 subjects are too few for roles .*--data.roles=false", roles=True)
    # Enough found, but a skipped subject leaves a role empty: the same error, with the count.
    root = ixi_folder(tmp_path / "four", n=4)
    _save(np.zeros(SHAPE, np.float32), root / "IXI002-HH-1202-T1.nii.gz")
    with pytest.warns(UserWarning, match="skipping subject 'IXI002-HH-1202'"):
        _expect(
            root,
            tmp_path,
            r"^3 subjects \(after skipping 1 bad\) are too few",
            roles=True,
            skip_bad_subjects=True,
        )


def _bad_subject(root: Path, problem: str) -> tuple[str, str]:
    """Spoil subject 1 of an IXI folder; returns (file that is bad, what the error says)."""
    path_t1, path_t2 = root / "IXI001-HH-1201-T1.nii.gz", root / "IXI001-HH-1201-T2.nii.gz"
    if problem == "zero_t1":  # the finding: a T1 of zeros passed, its T2 stayed unscaled
        _save(np.zeros(SHAPE, np.float32), path_t1)
        return str(path_t1), r"is constant \(every voxel 0\)"
    if problem == "constant_t2":
        _save(np.full(SHAPE, 7.0, np.float32), path_t2)
        return str(path_t2), r"is constant \(every voxel 7\)"
    if problem == "flat_t1":  # blank but for a corner: the whole head is one intensity
        flat = np.full(SHAPE, 100.0, np.float32)
        flat[:2, :2, :2] = 0
        _save(flat, path_t1)
        return str(path_t1), r"intensity scaling failed: .* range inside the head is \[100, 100\]"
    partial = np.zeros(SHAPE, np.float32)  # flat_t2: a T2 slab that misses the head
    partial[:, :, :1] = 5.0
    _save(partial, path_t2)
    return str(path_t2), r"intensity scaling failed: .* is \[0, 0\] \(zero width\)"


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("problem", ["zero_t1", "constant_t2", "flat_t1", "flat_t2"])
def test_data_that_cannot_train_is_a_named_error_or_skipped_and_recorded(tmp_path, dims, problem):
    root = ixi_folder(tmp_path / "data", n=5)
    path, found = _bad_subject(root, problem)
    with pytest.raises(DataError) as err:
        _dm(root, tmp_path, spatial_dims=dims).setup()
    message = str(err.value)
    assert "\n" not in message and path in message
    assert re.search(found, message), message
    assert message.endswith(
        "fix it, or pass --data.skip_bad_subjects=true (YAML: skip_bad_subjects: true) to skip"
    )
    assert not any((tmp_path / "cache").glob("*/data.pt"))
    for attempt in ("build", "cached"):  # a cached run warns and records it too
        with pytest.warns(UserWarning, match="skipping subject 'IXI001-HH-1201'"):
            dm = _dm(root, tmp_path, spatial_dims=dims, skip_bad_subjects=True)
            record = _record_into(dm, tmp_path / attempt)
        assert [s["subject"] for s in record["skipped"]] == ["IXI001-HH-1201"], attempt
        assert re.search(found, record["skipped"][0]["reason"])
        assert "IXI001-HH-1201" not in sum(record["subjects"].values(), [])
    for split in ("train", "val", "test"):
        bank = dm.bank(split)
        assert "IXI001-HH-1201" not in bank.subjects
        if len(bank):
            assert bank.t1.min() >= 0 and bank.t2.max() <= 1


def test_an_empty_mask_is_a_named_error(tmp_path):
    root = tmp_path / "bids"
    for i in range(3):
        t1, t2 = _volumes(i)
        _save(t1, root / f"sub-{i}" / f"sub-{i}_T1w.nii")
        _save(t2, root / f"sub-{i}" / f"sub-{i}_T2w.nii")
        mask = np.zeros(SHAPE, np.float32) if i == 2 else (t1 > 50).astype(np.float32)
        _save(mask, root / f"sub-{i}" / f"sub-{i}_mask.nii")
    kw = dict(
        layout="custom",
        t1_pattern="{subject}/*_T1w.nii",
        t2_pattern="{subject}/*_T2w.nii",
        mask_pattern="{subject}/*_mask.nii",
    )
    _expect(root, tmp_path, r"subject 'sub-2': mask file .*sub-2_mask.nii is empty", **kw)


@pytest.mark.parametrize("roles", [True, False])
def test_train_subjects_takes_the_first_n_of_the_training_set_and_keeps_the_held_out(
    tmp_path, roles
):
    root = ixi_folder(tmp_path / "data", n=10)
    trains_on = "noise" if roles else "train"
    full = _dm(root, tmp_path, roles=roles, mode="noise")
    full.setup()
    smaller = {}
    for n in (1, 2, 3):
        dm = _dm(root, tmp_path, roles=roles, mode="noise", train_subjects=n)
        record = _record_into(dm, tmp_path / f"n{n}")
        assert record["train_subjects"] == n and len(record["subjects"][trains_on]) == n
        assert set(dm.bank("train").subjects) == set(record["subjects"][trains_on])
        for split in ("val", "test"):
            assert dm.assignment[split] == full.assignment[split]
        data = json.loads((tmp_path / f"n{n}" / "data.json").read_text())
        assert data["train_subjects"] == n and data["source"]["layout"] == "ixi"
        smaller[n] = set(record["subjects"][trains_on])
    assert smaller[1] < smaller[2] < smaller[3] < set(full.assignment[trains_on])
    have = len(full.assignment[trains_on])
    with pytest.raises(DataError) as err:
        _dm(root, tmp_path, roles=roles, mode="noise", train_subjects=have + 1).setup()
    role = "the noise role" if roles else "the training set"
    assert str(err.value).startswith(f"train_subjects={have + 1} but {role} has {have} subjects")
    assert "\n" not in str(err.value) and "lower --data.train_subjects" in str(err.value)


@pytest.mark.parametrize("dims", [2, 3])
def test_cyclegan_validation_subjects_never_judge_the_noise_gan(tmp_path, dims):
    """The CycleGAN picks its epoch on validation subjects; the noise GAN's evaluation compares
    its samples with the reference split's subjects: disjoint (issue: the leak closed)."""
    from gan_init.callbacks.evaluation import FLOOR_SPLIT, REFERENCE_SPLIT

    root = ixi_folder(tmp_path / "data", n=8)
    cyc = _dm(root, tmp_path, mode="cyclegan", spatial_dims=dims, roles=True)
    noise = _dm(root, tmp_path, mode="noise", spatial_dims=dims, roles=True)
    chose = set(cyc.bank("val").subjects)  # the CycleGAN's validation (model selection)
    judges = set(noise.bank(REFERENCE_SPLIT).subjects)
    assert chose and judges and not chose & judges
    assert not set(noise.bank(FLOOR_SPLIT).subjects) & judges  # the floor: two disjoint sets
