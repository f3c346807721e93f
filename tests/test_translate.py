"""``gan-init translate`` on small NIfTI files written in the test, 2D and 3D."""

import subprocess
import sys
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from gan_init.cli import main as cli_main
from gan_init.cli.commands import translate
from gan_init.cli.commands.translate import (
    apply_generator,
    from_ras,
    percentile_scale,
    percentile_unscale,
    to_ras,
    translate_file,
)
from gan_init.core import visualize
from gan_init.transfer import CheckpointError
from tests.builders.checkpoints import write_checkpoint
from tests.builders.nifti import GRID, HEAD_CENTRE_MM, HEAD_RADII_MM, write_head, write_nifti


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_translate_keeps_geometry_and_input_range(tmp_path, spatial_dims):
    ckpt = tmp_path / "c.ckpt"
    write_checkpoint(ckpt, spatial_dims)
    source = write_nifti(tmp_path / "t2.nii.gz")
    out = translate_file(ckpt, tmp_path / "t2.nii.gz", tmp_path / "out" / "t1.nii.gz")
    result = nib.load(str(out))
    assert result.shape == source.shape
    np.testing.assert_allclose(result.affine, source.affine)
    assert result.header["descrip"] == source.header["descrip"]
    np.testing.assert_allclose(result.header.get_zooms(), source.header.get_zooms())
    values = np.asarray(result.dataobj)
    data = np.asarray(source.dataobj, dtype=np.float32)
    hi = np.percentile(data[data > 0], 99.5)  # the data modules' scaling: 0 -> -1, p99.5 -> 1
    assert np.isfinite(values).all() and values.min() >= -1e-3 and values.max() <= hi + 1e-3


def test_translate_runs_the_generator_slice_by_slice_in_ras(tmp_path):
    ckpt = tmp_path / "c.ckpt"
    model = write_checkpoint(ckpt, 2)
    affine = np.array([[0, 0, -1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # not RAS
    source = write_nifti(tmp_path / "t2.nii.gz", affine=affine)
    out = translate_file(ckpt, tmp_path / "t2.nii.gz", tmp_path / "t1.nii.gz")
    canonical, ornt = to_ras(np.asarray(source.dataobj, dtype=np.float32), source.affine)
    scaled, lo_hi = percentile_scale(canonical, (0, 99.5), low=0.0, foreground=True)
    g = model.g_t2_to_t1.eval()
    with torch.no_grad():  # axial slices of the RAS volume, one by one
        expected = np.stack(
            [
                g(torch.from_numpy(scaled[:, :, k])[None, None])[0, 0].numpy()
                for k in range(scaled.shape[2])
            ],
            axis=2,
        )
    expected = from_ras(percentile_unscale(expected, lo_hi), ornt)
    np.testing.assert_allclose(
        np.asarray(nib.load(str(out)).dataobj), expected, rtol=1e-4, atol=1e-2
    )


def test_ras_round_trip_and_unscale():
    data = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    affine = np.array([[0, -2.0, 0, 0], [0, 0, 1.0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1]])
    canonical, ornt = to_ras(data, affine)
    assert canonical.shape == (5, 6, 4)  # x <- voxel axis 1, y <- 2, z <- 0
    np.testing.assert_array_equal(from_ras(canonical, ornt), data)
    scaled, lo_hi = percentile_scale(data, (0, 100))
    np.testing.assert_allclose(percentile_unscale(scaled, lo_hi), data, atol=1e-5)


def test_3d_resamples_to_the_training_shape_and_back():
    calls = []

    def generator(x):
        calls.append(tuple(x.shape))
        return x

    volume = np.zeros((11, 13, 9), np.float32)
    out = apply_generator(generator, volume, 3, image_shape=(8, 8, 8))
    assert calls == [(1, 1, 8, 8, 8)] and out.shape == volume.shape
    calls.clear()
    apply_generator(generator, volume, 2, axis=1, image_shape=(16, 16), batch_size=5)
    assert calls == [(5, 1, 16, 16), (5, 1, 16, 16), (3, 1, 16, 16)]


def test_2d_slices_are_turned_upright_as_the_data_modules_show_them():
    seen = []

    def generator(x):
        seen.append(x.clone())
        return x

    volume = np.random.default_rng(0).uniform(-1, 1, (6, 5, 3)).astype(np.float32)
    out = apply_generator(generator, volume, 2, axis=2, upright=True)
    np.testing.assert_array_equal(out, volume)  # turned back
    plane = torch.from_numpy(volume[:, :, 0])
    torch.testing.assert_close(seen[0][0, 0], plane.T.flip(0))  # data_modules.upright


def test_cli_translate_and_bad_inputs(tmp_path, capsys):
    write_checkpoint(tmp_path / "c3.ckpt", 3, image_shape=(8, 8, 8))
    write_nifti(tmp_path / "t1.nii.gz", shape=(8, 9, 8))  # at the training shape: no spacing needed
    argv = ["translate", "--checkpoint", str(tmp_path / "c3.ckpt"), "--input"]
    argv += [str(tmp_path / "t1.nii.gz"), "--output", str(tmp_path / "t2.nii.gz")]
    assert cli_main([*argv, "--direction", "t1_to_t2"]) == 2  # 8x9x8 is not 8x8x8
    assert (
        "records its training image shape (8x8x8) but no voxel spacing" in capsys.readouterr().err
    )
    write_nifti(tmp_path / "t1.nii.gz", shape=(8, 8, 8))
    assert cli_main([*argv, "--direction", "t1_to_t2"]) == 0
    assert nib.load(str(tmp_path / "t2.nii.gz")).shape == (8, 8, 8)
    assert "wrote" in capsys.readouterr().out
    torch.save({"weights": torch.zeros(2)}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="expected a CycleGAN generator"):
        translate_file(tmp_path / "junk.pt", tmp_path / "t1.nii.gz", tmp_path / "x.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(tmp_path / "2d.nii"))
    with pytest.raises(ValueError, match=r"has shape \(4, 4\): expected one 3D volume"):
        translate_file(tmp_path / "c3.ckpt", tmp_path / "2d.nii", tmp_path / "x.nii.gz")


# ---- the training's field of view: a large, finely sampled scan, an off-centre head -------------


def extent_and_centre_mm(mask, affine):
    """Per-axis world extent (mm) of ``mask`` and its centre of mass (world mm)."""
    ijk = np.argwhere(mask)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    zooms = np.abs(np.diag(affine)[:3])
    return world.max(0) - world.min(0) + zooms, world.mean(0)


class Recorder(torch.nn.Module):
    """An identity 'generator' that keeps what it was given."""

    def __init__(self, spatial_dims):
        super().__init__()
        self.spec = SimpleNamespace(spatial_dims=spatial_dims)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_generator_sees_the_training_field_of_view_and_the_output_the_input_grid(
    tmp_path, monkeypatch, spatial_dims
):
    shape, spacing = GRID[spatial_dims]
    write_checkpoint(tmp_path / "c.ckpt", spatial_dims, shape, spacing, upright=True)
    data, affine = write_head(tmp_path / "t2.nii.gz")
    recorder = Recorder(spatial_dims)
    monkeypatch.setattr(translate, "load_cyclegan_generator", lambda *a, **k: recorder)
    out = translate_file(tmp_path / "c.ckpt", tmp_path / "t2.nii.gz", tmp_path / "t1.nii.gz")

    # What the generator saw: the training shape at the training spacing, the head not squeezed
    # (a 90 x 110 x 80 mm head is 6 x 7.3 x 5.3 voxels of 15 mm; 12 x 14.7 pixels of 7.5 mm).
    seen = torch.cat(recorder.seen)
    if spatial_dims == 3:
        assert seen.shape == (1, 1, *shape)
        head = seen[0, 0].numpy() > 0
        axes, voxel = range(3), [spacing] * 3
    else:
        assert seen.shape == (data.shape[2], 1, *shape)  # every input slice, upright
        head = visualize.from_upright(seen)[:, 0].movedim(0, 2).numpy() > 0
        axes, voxel = range(2), [spacing, spacing, 3.5]
    extent = [
        np.ptp(np.nonzero(head.any(tuple(b for b in range(3) if b != a)))[0]) + 1 for a in range(3)
    ]
    for a in axes:
        assert abs(extent[a] * voxel[a] - 2 * HEAD_RADII_MM[a]) <= 1.5 * voxel[a], (extent, a)

    # The output: the input's grid and affine, the head where the input has it, the same size.
    result = nib.load(str(out))
    assert result.shape == data.shape
    np.testing.assert_allclose(result.affine, affine)
    values = np.asarray(result.dataobj)
    got_extent, got_centre = extent_and_centre_mm(values > 300, affine)
    want_extent, want_centre = extent_and_centre_mm(data > 0, affine)
    np.testing.assert_allclose(got_extent, want_extent, atol=spacing)
    np.testing.assert_allclose(got_centre, want_centre, atol=spacing / 2)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_training_grid_output_carries_its_affine(tmp_path, spatial_dims):
    shape, spacing = GRID[spatial_dims]
    write_checkpoint(tmp_path / "c.ckpt", spatial_dims, shape, spacing, upright=True)
    data, _ = write_head(tmp_path / "t2.nii.gz")
    out = translate_file(
        tmp_path / "c.ckpt", tmp_path / "t2.nii.gz", tmp_path / "t1.nii.gz", grid="training"
    )
    result = nib.load(str(out))
    assert nib.aff2axcodes(result.affine) == ("R", "A", "S")
    if spatial_dims == 3:
        assert result.shape == shape
        np.testing.assert_allclose(result.header.get_zooms(), [spacing] * 3)
    else:
        assert result.shape == (*shape, data.shape[2])
        np.testing.assert_allclose(result.header.get_zooms(), [spacing, spacing, 3.5])
    # The field of view is centred on the head: its centre voxel sits on the head's centre.
    centre = result.affine[:3, :3] @ ((np.array(result.shape) - 1) / 2) + result.affine[:3, 3]
    np.testing.assert_allclose(centre[:spatial_dims], HEAD_CENTRE_MM[:spatial_dims], atol=spacing)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize(
    "zooms, radii, expected",
    [
        ((1.0, 1.0, 1.0), HEAD_RADII_MM / 4, "is the voxel size in its affine right"),
        ((3.0, 2.5, 3.5), HEAD_RADII_MM * 2, "crop it to the head"),
    ],
    ids=["head-too-small", "head-too-large"],
)
def test_a_head_that_does_not_fit_the_field_of_view_is_one_line(
    tmp_path, capsys, spatial_dims, zooms, radii, expected
):
    shape, spacing = GRID[spatial_dims]
    write_checkpoint(tmp_path / "c.ckpt", spatial_dims, shape, spacing)
    write_head(tmp_path / "t2.nii.gz", zooms=zooms, radii=radii)
    argv = ["translate", "--checkpoint", str(tmp_path / "c.ckpt"), "--input"]
    argv += [str(tmp_path / "t2.nii.gz"), "--output", str(tmp_path / "t1.nii.gz")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on a field of view of 120" in err[0] and expected in err[0]
    assert "give --input a 3D volume of one head" in err[0]
    assert not (tmp_path / "t1.nii.gz").exists()


def test_data_modules_record_the_spacing_and_intensity_translate_reads(tmp_path):
    from data_modules.icbm import IcbmDataModule, field_of_view_mm
    from data_modules.nifti_folder import NiftiFolderDataModule

    dm = NiftiFolderDataModule(str(tmp_path), spatial_dims=3, size=8, fov_mm=120, spacing=10)
    assert dm.voxel_spacing == pytest.approx(12 * 10 / 8)  # the 12-voxel cube seen at 8 voxels
    assert dm.intensity["percentiles"] == [0.5, 99.5] and dm.intensity["foreground"] == "above_mean"
    icbm = IcbmDataModule(spatial_dims=2, size=64)
    assert icbm.voxel_spacing == pytest.approx(field_of_view_mm(2, True, "axial") / 64)
    assert 150 < field_of_view_mm(2, True, "axial") < 260  # the brain's crop, mm


@pytest.mark.slow
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_cli_subprocess_translates_a_large_scan_onto_its_own_grid(tmp_path, spatial_dims):
    """The real command (the one-line refusals above run through the same ``cli.main``)."""
    shape, spacing = GRID[spatial_dims]
    write_checkpoint(tmp_path / "c.ckpt", spatial_dims, shape, spacing, upright=True)
    data, affine = write_head(tmp_path / "t2.nii.gz")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = ["translate", "--checkpoint", str(tmp_path / "c.ckpt"), "--input"]
    argv += [str(tmp_path / "t2.nii.gz"), "--output", str(tmp_path / "out" / "t1.nii.gz")]
    done = subprocess.run(
        [sys.executable, "-m", "gan_init", *argv], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = nib.load(str(tmp_path / "out" / "t1.nii.gz"))
    assert result.shape == data.shape and np.allclose(result.affine, affine)
    assert np.isfinite(np.asarray(result.dataobj)).all() and not list(cwd.iterdir())
