"""``gan-init translate`` on small NIfTI files written in the test, 2D and 3D."""

import nibabel as nib
import numpy as np
import pytest
import torch

from gan_init.cli import main as cli_main
from gan_init.commands.translate import (
    apply_generator,
    from_ras,
    percentile_scale,
    percentile_unscale,
    to_ras,
    translate_file,
)
from gan_init.transfer import CheckpointError
from tests.helpers import phantom, tiny_cyclegan


def write_checkpoint(path, spatial_dims, image_shape=None):
    """A project checkpoint without Lightning: state_dict + gan_init metadata."""
    torch.manual_seed(0)
    model = tiny_cyclegan(spatial_dims)
    if image_shape is not None:
        model.data_info["image_shape"] = list(image_shape)
    torch.save({"state_dict": model.state_dict(), "gan_init": model.metadata()}, path)
    return model


def write_nifti(path, shape=(11, 13, 9), affine=None):
    _, t2 = phantom(shape, torch.Generator().manual_seed(3))
    data = ((t2[0].numpy() + 1) * 400).astype(np.int16)  # scanner-like integer intensities
    affine = np.diag([1.5, -1.0, 2.0, 1.0]) if affine is None else affine
    affine[:3, 3] = [-8.0, 6.0, -9.0]
    image = nib.Nifti1Image(data, affine)
    image.header["descrip"] = b"test volume"
    nib.save(image, str(path))
    return image


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
    write_nifti(tmp_path / "t1.nii.gz")
    argv = ["translate", "--checkpoint", str(tmp_path / "c3.ckpt"), "--input"]
    argv += [str(tmp_path / "t1.nii.gz"), "--output", str(tmp_path / "t2.nii.gz")]
    assert cli_main([*argv, "--direction", "t1_to_t2"]) == 0
    assert nib.load(str(tmp_path / "t2.nii.gz")).shape == (11, 13, 9)
    assert "wrote" in capsys.readouterr().out
    torch.save({"weights": torch.zeros(2)}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="expected a CycleGAN generator"):
        translate_file(tmp_path / "junk.pt", tmp_path / "t1.nii.gz", tmp_path / "x.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(tmp_path / "2d.nii"))
    with pytest.raises(ValueError, match=r"shape \(4, 4\); expected 3D"):
        translate_file(tmp_path / "c3.ckpt", tmp_path / "2d.nii", tmp_path / "x.nii.gz")
