"""How callbacks and the run's seed meet: a callback never looks another up in
``trainer.callbacks`` (what one tells the others is set on the model), and every reader of the
run's seed gets ``run_seed()``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from data_modules.stream import resolve_seed
from gan_init.callbacks import EMA, ProgressiveSchedule
from gan_init.core.seeding import run_seed
from tests.builders.images import BlobData
from tests.builders.networks import tiny_cyclegan, tiny_noise_gan

CALLBACKS = Path(__file__).resolve().parents[1] / "gan_init" / "callbacks"


def test_no_callback_reads_trainer_callbacks():
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(CALLBACKS.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "callbacks"
    ]
    assert not found, f"callbacks look each other up in trainer.callbacks: {found}"


def test_schedule_and_ema_are_set_on_the_model(make_trainer):
    gan = tiny_noise_gan(2, "stem")
    assert gan.image_schedule is None and not gan.ema_active and gan.transfer_summary is None
    schedule = ProgressiveSchedule(train_images=4, fade_images=2)
    make_trainer(0, [schedule, EMA()]).fit(gan, BlobData(2))
    assert gan.image_schedule == schedule.plan and gan.ema_active
    assert gan.image_schedule.level_starts == schedule.bounds[:-1]
    assert gan.image_schedule.total_images == schedule.total_images == 10


@pytest.mark.parametrize("env", [None, "11"])
def test_every_reader_of_the_run_seed_agrees(env, monkeypatch):
    if env is None:
        monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    else:
        monkeypatch.setenv("PL_GLOBAL_SEED", env)
    gan = tiny_noise_gan(2, "stem", seed=5)  # seeds torch with 5 first
    expected = 5 if env is None else 11
    assert run_seed() == expected
    assert gan.rng_seed == tiny_cyclegan(2).rng_seed == expected
    assert resolve_seed(None)[0] == expected and resolve_seed(3) == (3, "data seed")
