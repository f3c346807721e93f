"""One preprocessing chain: a volume preprocessed for training (``NiftiFolderDataModule``) and
for translation (``gan-init translate``) is the same tensor, in 2D and 3D."""

import pytest
import torch

from data_modules import NiftiFolderDataModule
from data_modules.geometry import AXIS_INDEX, slab_bounds
from data_modules.nifti_folder import find_subjects
from data_modules.preprocessing import preprocess, read_volume
from gan_init.cli.commands.translate import TrainingGrid, scale_intensity, to_training_grid
from gan_init.core import visualize
from tests.builders.subjects import subjects_folder


@pytest.mark.parametrize("dims", [2, 3])
def test_training_and_translation_see_the_same_tensor(tmp_path, dims):
    """Scans of random voxel sizes and orientations. 2D: translate keeps the input's slices
    (at its own spacing along the slice axis), so the scans' superior axis has the training
    spacing here, and the training slices are the translated slab's."""
    size = 16 if dims == 2 else 8
    root = subjects_folder(tmp_path / "data", n=3, slice_mm=240 / size if dims == 2 else None)
    dm = NiftiFolderDataModule(str(root), spatial_dims=dims, size=size, fov_mm=240)
    axis = AXIS_INDEX[dm.prep.axis]
    grid = TrainingGrid(dm.image_shape, dm.voxel_spacing, axis=axis, upright=True)
    for files in find_subjects(root, dm.t1_pattern, dm.t2_pattern):
        trained = preprocess(files, dm.prep)["t1"]
        image, fg = to_training_grid(read_volume(files.t1, "T1"), grid, str(files.t1))
        scaled, _ = scale_intensity(image.data[0].numpy(), fg[0].numpy(), dm.intensity)
        seen = torch.from_numpy(scaled)
        if dims == 3:
            assert torch.equal(seen[None], trained), files.subject
            continue
        first, last = slab_bounds(fg[0], axis, dm.prep.slice_range)
        slab = seen.movedim(axis, 0)[first : last + 1][:, None]
        assert torch.equal(visualize.upright(slab)[:, 0], trained), files.subject
