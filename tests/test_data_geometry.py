"""The slab of 2D slices both data modules cut: bounds, checks, size and orientation."""

import numpy as np
import pytest
import torch

from data_modules.geometry import (
    check_slice_range,
    mask_extent,
    slab_bounds,
    upright,
    upright_slices,
)


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slab_bounds_fraction_of_the_mask_extent(axis, as_tensor):
    mask = np.zeros((21, 17, 13), bool)
    index = [slice(None)] * 3
    index[axis] = slice(2, 12)  # extent 2..11 along the axis
    mask[tuple(index)] = True
    mask = torch.from_numpy(mask) if as_tensor else mask
    assert mask_extent(mask, axis) == (2, 11)
    assert slab_bounds(mask, axis, (0.0, 1.0)) == (2, 11)
    assert slab_bounds(mask, axis, (0.4, 0.75)) == (2 + round(0.4 * 9), 2 + round(0.75 * 9))
    assert slab_bounds(mask, axis, (0.5, 0.5)) == (2 + round(4.5), 2 + round(4.5))


def test_empty_mask_takes_the_whole_axis():
    mask = torch.zeros(5, 7, 9, dtype=torch.bool)
    assert mask_extent(mask, 2) == (0, 8)
    assert slab_bounds(mask, 1, (0.0, 1.0)) == (0, 6)


def test_check_slice_range():
    assert check_slice_range((0, 1)) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"slice_range=\(0.8, 0.2\) must satisfy"):
        check_slice_range((0.8, 0.2))


@pytest.mark.parametrize("side", [11, 16])
def test_upright_slices_resizes_only_when_needed(side):
    g = torch.Generator().manual_seed(0)
    slab = torch.rand(3, side, side, generator=g)
    out = upright_slices(slab, 16, mode="area")
    assert out.shape == (3, 16, 16) and out.is_contiguous()
    if side == 16:
        assert torch.equal(out, upright(slab))
