"""The side-by-side figure of ``make train-2d``/``train-3d`` shows each run's last fixed-latent
grid (generated beside real), one full-width row per run, under the curves."""

from pathlib import Path

import numpy as np
from PIL import Image

from gan_init.callbacks.samples import GRID_NAME
from gan_init.experiment.compare import _picture, comparison_figure


def _run(tmp_path: Path, name: str, grids: list[int], samples: bool = True) -> dict:
    run = tmp_path / name
    (run / "images").mkdir(parents=True)
    (run / "samples").mkdir()
    for step in grids:
        Image.fromarray(np.full((20, 40), step % 255, np.uint8)).save(
            run / "images" / GRID_NAME.format(step)
        )
    if samples:
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(run / "samples" / "samples.png")
    return {"run_dir": str(run), "samples": str(run / "samples"), "init_strategy": name,
            "grow": "full", "seed": 0}  # fmt: skip


def test_the_last_grid_is_shown_else_the_samples(tmp_path):
    with_grids = _run(tmp_path, "cyclegan", [5000, 34000, 10000])
    assert _picture(with_grids)[0].name == "samples_000034000.png"
    assert "real" in _picture(with_grids)[1]
    without = _run(tmp_path, "scratch", [])
    assert _picture(without) == (Path(without["samples"]) / "samples.png", "samples")
    bare = _run(tmp_path, "none", [], samples=False)
    assert _picture(bare) == (None, "no samples")


def test_the_figure_has_a_full_width_row_per_run(tmp_path):
    runs = [_run(tmp_path, "cyclegan", [100]), _run(tmp_path, "scratch", [100])]
    out = comparison_figure(runs, tmp_path / "comparison.png")
    width, height = Image.open(out).size
    assert width == 1000 and height > 2 * 0.5 * width * 20 / 40  # two rows of 2:1 pictures
    assert (
        comparison_figure([_run(tmp_path, "empty", [], samples=False)], tmp_path / "x.png") is None
    )
