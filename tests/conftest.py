"""The fixtures many test modules share, built from ``tests/builders``.

``spatial_dims`` is 2 unless a test parametrizes it (``@pytest.mark.parametrize("spatial_dims",
[2, 3])``), and the fixtures below that take it follow: one test body serves 2D and 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gan_init.models import CycleGAN
from tests.builders.checkpoints import save_cyclegan
from tests.builders.images import BlobData
from tests.builders.networks import tiny_spec
from tests.builders.trainer import cpu_trainer


@dataclass(frozen=True)
class SavedCycleGAN:
    """A CycleGAN checkpoint file and the model written into it."""

    path: Path
    model: CycleGAN


@pytest.fixture
def spatial_dims() -> int:
    """2, unless the test parametrizes ``spatial_dims``."""
    return 2


@pytest.fixture
def saved_cyclegan(tmp_path: Path, spatial_dims: int) -> SavedCycleGAN:
    """``tmp_path/c.ckpt``: a tiny CycleGAN (``tiny_spec(spatial_dims)``) of random weights
    (seed 0), recorded as trained at the tiny noise GAN's image size."""
    path = tmp_path / "c.ckpt"
    return SavedCycleGAN(path, save_cyclegan(path, tiny_spec(spatial_dims)))


@pytest.fixture
def make_trainer(tmp_path: Path):
    """``make_trainer(max_steps=-1, callbacks=None, **kwargs)``: ``cpu_trainer`` rooted at
    ``tmp_path`` (one CPU device, no logger, checkpoints or sanity check unless asked)."""

    def make(max_steps: int = -1, callbacks: list | None = None, **kwargs):
        return cpu_trainer(tmp_path, max_steps, callbacks, **kwargs)

    return make


@pytest.fixture
def blob_data(spatial_dims: int) -> BlobData:
    """Eight smooth random blobs at the tiny noise GAN's size, batches of 2."""
    return BlobData(spatial_dims)
