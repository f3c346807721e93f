"""Pictures for people: every picture the project writes shows images the same way up, labelled
and large enough; the noise GAN logs sample grids while it trains; progress reads in images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning.loggers import CSVLogger

from data_modules.preview import save_preview
from gan_init.callbacks import NoiseSampleGrid, ProgressiveSchedule, TrainingProgress
from gan_init.callbacks.image_grid import CycleGANImageGrid
from gan_init.core.visualize import image_grid, mid_slice_montage, save_png
from gan_init.metrics.memorization import save_closest_pairs
from tests.builders.images import BlobData
from tests.builders.networks import tiny_progan

SIZE = {2: 16, 3: 8}


def levels(shape, seed=0) -> torch.Tensor:
    """Random gray levels that map exactly to uint8 values (no rounding ambiguity)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 255 * 2 - 1


def expected_views(image: torch.Tensor) -> list[np.ndarray]:
    """How a person must see ``image [1, *S]``, written from first principles (uint8).

    2D slices come from the data modules already upright: shown as they are. A RAS volume
    [x, y, z]: sagittal (y, z), coronal (x, z) and axial (x, y) middle slices, each with its
    second axis running up the picture (superior / anterior at the top) and its first axis
    running to the right."""
    x = image[0].numpy()
    if x.ndim == 2:
        views = [x]
    else:
        c = [n // 2 for n in x.shape]
        views = [np.flipud(p.T) for p in (x[c[0]], x[:, c[1]], x[:, :, c[2]])]
    return [np.round((v + 1) / 2 * 255).astype(np.uint8) for v in views]


def shows(picture: np.ndarray, view: np.ndarray) -> bool:
    """Whether ``picture`` holds ``view`` enlarged by an integer factor, the same way up."""
    h, w = view.shape
    for y, x in zip(*np.nonzero(picture == view[0, 0])):
        for s in range(1, 33):
            window = picture[y : y + h * s : s, x : x + w * s : s]
            if window.shape == view.shape and (window == view).all():
                return True
    return False


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


SHAPES = {2: (1, 12, 9), 3: (1, 9, 7, 11)}  # odd, unequal sides: a turn or flip cannot match


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_every_picture_shows_an_asymmetric_image_the_same_way_up(tmp_path, spatial_dims):
    image = levels((3, *SHAPES[spatial_dims]))
    other = levels((3, *SHAPES[spatial_dims]), seed=1)
    views = expected_views(image[0])
    pictures = {
        "data preview": png(save_preview(image, other, tmp_path / "preview.png")),
        "sample grid": png(save_png(image_grid(image), tmp_path / "samples.png")),
        "cyclegan grid": CycleGANImageGrid.grid_of(
            {
                "real_t2": image,
                "fake_t1": other,
                "real_t1": other,
                "fake_t2": other,
                "rec_t2": other,
            },
            n_images=3,
        ),  # fmt: skip
        "memorization pairs": png(
            save_closest_pairs(image, other, [(0, 1, 0.5)], tmp_path / "pairs.png")
        ),
    }
    if spatial_dims == 3:
        pictures["3d montage"] = mid_slice_montage(image[0, 0])
    for name, picture in pictures.items():
        for plane, view in enumerate(views):
            assert shows(picture, view), f"{name}: view {plane} not shown upright"
            assert not shows(picture, np.rot90(view)), f"{name}: view {plane} also turned"


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_cyclegan_grid_has_n_images_rows_named_columns_and_a_readable_size(spatial_dims):
    shape = (1,) + (SIZE[spatial_dims],) * spatial_dims
    batches = [levels((2, *shape), seed=s) for s in range(2)]  # two batches of 2 cases
    grid_cb = CycleGANImageGrid(n_images=4)

    class T:  # the trainer state the callback reads
        sanity_checking, current_epoch, is_global_zero = False, 0, True

    for i, b in enumerate(batches):
        outputs = {k: b for k in ("real_t2", "fake_t1", "real_t1", "fake_t2", "rec_t2")}
        grid_cb.on_validation_batch_end(T, None, outputs, None, i)
    assert len(grid_cb._images["real_t2"]) == 4
    grid = CycleGANImageGrid.grid_of(grid_cb._images, n_images=4)
    side = SIZE[spatial_dims]
    scale = -(-128 // side)
    assert grid.shape[0] >= 4 * side * scale  # 4 rows, each cell at least 128 px
    assert grid.shape[1] >= 5 * side * scale * (1 if spatial_dims == 2 else 3)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_noise_gan_logs_labelled_sample_grids_per_level(tmp_path, make_trainer, spatial_dims):
    logged = []

    class ImageLogger(CSVLogger):
        def log_image(self, key, images, step=None, **kwargs):
            logged.append((key, images[0].shape, kwargs["caption"][0]))

    gan = tiny_progan(spatial_dims, size=8)  # levels 4, 8
    samples = NoiseSampleGrid(every_n_images=8, n_samples=4)
    trainer = make_trainer(
        200, [ProgressiveSchedule(train_images=4, fade_images=4, batch_size=4), samples],
        logger=ImageLogger(tmp_path), reload_dataloaders_every_n_epochs=1,
    )  # fmt: skip
    data = BlobData(spatial_dims, batch_size=4, n=8)
    data.dataset.images = levels((8, 1) + (8,) * spatial_dims)
    trainer.fit(gan, data)
    # Levels 4, 8 px; 12 images in batches of 4: grids at the level change (4 images), at a
    # multiple of 8 and at the end of training.
    names = sorted(p.name for p in (tmp_path / "lightning_logs").rglob("images/*.png"))
    assert names == [f"samples_{n:09d}.png" for n in (4, 8, 12)], names
    assert [key for key, _, _ in logged] == ["samples"] * 3
    assert logged[0][2] == "level 2/2, 8 px, 4 images shown", logged
    picture = png(samples.written[-1])
    assert picture.shape == logged[-1][1]
    assert picture.shape[0] >= 2 * 128 and picture.shape[1] >= 2 * 2 * 128


def test_progress_off_a_terminal_prints_images_level_and_time_left(make_trainer, capsys):
    trainer = make_trainer(
        -1, [
            ProgressiveSchedule(train_images=4, fade_images=4, batch_size=4),
            TrainingProgress(every_seconds=3600, every_percent=25, terminal=False),
        ],
        max_epochs=-1, enable_progress_bar=True, enable_checkpointing=True,
        reload_dataloaders_every_n_epochs=1,
    )  # fmt: skip
    trainer.fit(tiny_progan(), BlobData(2, batch_size=4, n=8, size=16, coarse=4))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[progress]")]
    # 4 + (4 + 4) * 2 = 20 images over three levels in batches of 4: a line at the start, at
    # each 25 % step passed, and at the end.
    assert lines[0].startswith("[progress] training started | 0/20 images (0.0%) | level 1/3")
    assert any("level 2/3 (8 px), fade-in alpha" in ln for ln in lines), lines
    assert any(" left" in ln for ln in lines), lines
    assert "20/20 images" in lines[-2] and lines[-1].startswith("[progress] training ended")
    assert not any("-1" in ln or "/-" in ln for ln in lines), lines
    assert 5 <= len(lines) <= 8, lines
