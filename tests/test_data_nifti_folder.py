"""The NIfTI folder module on small volumes written here, with IXI and BraTS names."""

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from data_modules import Augmentation, DataError, NiftiFolderDataModule
from data_modules import nifti_folder as nf

SHAPE = (12, 14, 10)


def _volumes(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 'head' (ellipsoid) with a 'ventricle' dark in T1 and bright in T2."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    r = 0.75 + 0.1 * rng.random()
    head = (x**2 + y**2 + z**2) < r**2
    csf = (x**2 + (y / 2) ** 2 + z**2) < 0.1
    t1 = head * 100.0 - csf * 70 + rng.random(SHAPE) * 3
    t2 = head * 40.0 + csf * 80 + rng.random(SHAPE) * 3
    return t1.astype(np.float32), t2.astype(np.float32)


def _save(data: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([16.0, 16.0, 16.0, 1.0])), path)


def ixi_folder(root: Path, n: int = 5) -> Path:
    for i in range(n):
        t1, t2 = _volumes(i)
        _save(t1, root / f"IXI{i:03d}-HH-{1200 + i}-T1.nii.gz")
        _save(t2, root / f"IXI{i:03d}-HH-{1200 + i}-T2.nii.gz")
    return root


def brats_folder(root: Path, n: int = 4) -> Path:
    for i in range(n):
        name = f"BraTS20_Training_{i:03d}"
        t1, t2 = _volumes(i)
        _save(t1, root / name / f"{name}_t1.nii.gz")
        _save(t2, root / name / f"{name}_t2.nii.gz")
        _save(t1, root / name / f"{name}_t1ce.nii.gz")  # must not be taken for T1
    return root


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

    monkeypatch.setattr(nf, "read_volume", refuse)
    monkeypatch.setattr(nf.nib, "load", refuse)
    again = _dm(root, tmp_path)
    assert torch.equal(again.bank("train").t1, first)
    # A new setting is a new cache key: it needs the files again.
    with pytest.raises(AssertionError, match="NIfTI read"):
        _dm(root, tmp_path, percentiles=(1.0, 99.0)).setup()


def test_an_interrupted_cache_build_leaves_no_cache(tmp_path, monkeypatch):
    root = ixi_folder(tmp_path / "data")
    real = nf.read_volume
    calls = []

    def interrupted(path, what):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(path, what)

    monkeypatch.setattr(nf, "read_volume", interrupted)
    dm = _dm(root, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        dm.setup()
    cache = tmp_path / "cache"
    assert not dm.cache_path().exists() and list(cache.iterdir()) == []
    monkeypatch.setattr(nf, "read_volume", real)
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
