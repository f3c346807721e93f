"""The time left of an image-counted run follows the current level's pace: at least that pace
for every image left, at most later levels scaled by their voxel count (3D: 8x per level); not the
mean pace of the cheap early levels."""

from types import SimpleNamespace

from gan_init.callbacks import progress
from gan_init.callbacks.progress import TrainingProgress


def test_time_left_follows_the_level_pace_scaled_for_later_levels(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock["now"])
    bar = TrainingProgress(terminal=False)
    bar._schedule = SimpleNamespace(bounds=[0, 1000, 2000, 4000], n_levels=3)
    bar._start, bar._start_done = 0.0, 0.0
    module = SimpleNamespace(level=0, spatial_dims=3, resolution=8)

    def left(done: float, at: float) -> float:
        clock["now"] = at
        return bar._seconds_left(done, 4000.0, at, module)

    # level 0: 1,000 images in 10 s; the run's mean pace until the level has shown enough
    assert left(50, 0.5) == (0.5 * 3950 / 50,) * 2
    module.level, module.resolution = 1, 16
    assert left(1000, 10.0) == (10.0 * 3000 / 1000,) * 2  # the level just started: mean pace
    # 500 images of level 1 in 500 s: 1 s per image here, 8 s per image at the next level
    # at least this pace for all images left, at most later levels scaled by voxels
    assert left(1500, 510.0) == (2500 * 1.0, 500 * 1.0 + 2000 * 1.0 * 8)
    module.resolution = 8  # the same pace at a tiny level is not scaled up: the mean pace
    assert left(1500, 510.0) == (510.0 * 2500 / 1500,) * 2
    module.level, module.resolution = 2, 32
    left(2000, 1010.0)
    assert left(3000, 9010.0) == (1000 * 8.0,) * 2  # the last level: its own pace only


def test_without_a_schedule_the_mean_pace_is_used(monkeypatch):
    bar = TrainingProgress(terminal=False)
    bar._start_done = 0.0
    assert bar._seconds_left(25, 100.0, 10.0, SimpleNamespace(level=0)) == (30.0, 30.0)
    assert bar._seconds_left(100, 100.0, 10.0, SimpleNamespace(level=0)) is None
