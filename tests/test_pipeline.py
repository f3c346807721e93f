"""Miniature end-to-end runs of the experiment: `gan-init pipeline` and `gan-init sweep`, then
`gan-init report`, on the built-in data at tiny sizes (a few steps each)."""

import json
from pathlib import Path

import pytest
import yaml

from gan_init.cli.commands import pipeline as pipeline_cmd
from gan_init.experiment.pipeline import CONFIGS, PipelineOptions, load_yaml, resolve_config
from gan_init.experiment.report import write_report
from gan_init.experiment.sweep import run_sweep
from tests.tiny_configs import pipeline_configs

pytestmark = pytest.mark.slow


def test_resolved_config_sends_everything_into_the_run_folder(tmp_path):
    config = resolve_config(
        load_yaml(CONFIGS / "noise_2d.yaml"), tmp_path / "run", seed=3, run_name="r", group="g"
    )
    assert config["seed_everything"] == 3
    assert config["trainer"]["default_root_dir"] == str(tmp_path / "run")
    for logger in config["trainer"]["logger"]:
        assert logger["init_args"]["save_dir"] == str(tmp_path / "run")
    ckpt = [
        c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")
    ]
    assert ckpt[0]["init_args"]["dirpath"] == str(tmp_path / "run" / "checkpoints")


def test_bad_pipeline_options_are_named():
    with pytest.raises(ValueError, match="did you mean 'cyclegan'"):
        PipelineOptions(init_strategy="cyclgan")
    with pytest.raises(ValueError, match="--grow"):
        PipelineOptions(grow="stme")
    assert pipeline_cmd.main(["--init_strategy", "nope"]) == 2


@pytest.mark.parametrize("dims", [2, 3])
def test_miniature_pipeline_end_to_end(tmp_path, dims, capsys, monkeypatch):
    monkeypatch.setenv("GAN_INIT_THREADS", "1")  # as `gan-init pipeline` leaves it
    cyc, noise = pipeline_configs(tmp_path, dims)
    runs = tmp_path / "runs"
    args = ["--dims", str(dims), "--cyclegan_config", str(cyc), "--noise_config", str(noise)]
    args += ["--runs_dir", str(runs), "--n_samples", "4", "--grow", "stem"]
    # make train-2d/3d: the cyclegan run and a scratch run of the same seed, side by side.
    assert pipeline_cmd.main([*args, "--baseline", "scratch"]) == 0
    out = capsys.readouterr().out
    run = runs / f"noise_{dims}d" / "cyclegan-stem-seed0"
    scratch = runs / f"noise_{dims}d" / "scratch-stem-seed0"
    assert f"run:     {run}" in out and f"run:     {scratch}" in out
    compare = run.parent / "compare-cyclegan-stem-seed0-vs-scratch"
    assert f"side by side: {compare / 'comparison.md'}" in out
    text = (compare / "comparison.md").read_text()
    assert "| eval/swd (lower is better) |" in text and "cyclegan − scratch" in text
    assert "val/psnr_t2_to_t1" in text  # the CycleGAN stage's validation scores
    assert (compare / "comparison.png").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished", summary
    assert "val/psnr_t2_to_t1" in summary["cyclegan"]["val"]
    # the stage's thread count is its own record (a stage trained once serves later runs)
    assert summary["cyclegan"]["threads"] == summary["threads"] == 1
    assert "CycleGAN stage validation" in (run / "summary.md").read_text()
    assert json.loads((scratch / "summary.json").read_text())["status"] == "finished"
    # the CycleGAN epoch its ModelCheckpoint kept as best, chosen on purpose and recorded
    done = json.loads(next((runs / "cyclegan").glob("*/done.json")).read_text())
    assert summary["source"] == done["checkpoint"] and Path(summary["source"]).is_file()
    assert done["selected"]["rule"] == "best val/psnr_t2_to_t1 on validation data"
    assert "val/psnr_t2_to_t1" in done["val"] and "val/psnr_t2_to_t1" in done["val_final"]
    assert f"the noise GAN starts from {done['checkpoint']}" in out
    assert "eval/swd" in summary["metrics"] and summary["metrics"]["eval/swd"] >= 0
    assert (run / "config.yaml").is_file() and (run / "summary.md").is_file()
    assert list((run / "samples").glob("*.png"))
    transfer = json.loads(next(run.rglob("transfer_summary.json")).read_text())
    assert "cyclegan" in json.dumps(transfer)
    assert list(run.rglob("metrics.csv")) and list(run.rglob("wandb"))

    # Same seed, another strategy: the CycleGAN stage is reused, not trained again.
    args2 = [a if a != "stem" else "full" for a in args] + ["--init_strategy", "cyclegan_frozen"]
    assert pipeline_cmd.main(args2) == 0
    assert "CycleGAN stage: reusing" in capsys.readouterr().out
    assert len(list((runs / "cyclegan").iterdir())) == 1
    # A finished run is skipped.
    assert pipeline_cmd.main(args) == 0
    assert "already finished; skipping" in capsys.readouterr().out

    report = write_report(runs)
    text = report.read_text()
    assert f"## {dims}D" in text and "cyclegan (stem)" in text and "cyclegan_frozen (full)" in text


def test_miniature_sweep_survives_a_restart_and_reports(tmp_path):
    cyc, noise = pipeline_configs(tmp_path, 2)
    sweep = {
        "method": "grid",
        "metric": {"name": "eval/swd", "goal": "minimize"},
        "parameters": {
            "dims": {"value": 2},
            "init_strategy": {"values": ["scratch", "cyclegan"]},
            "grow": {"value": "stem"},
            "seed": {"values": [0]},
            "n_samples": {"value": 4},
            "cyclegan_config": {"value": str(cyc)},
            "noise_config": {"value": str(noise)},
        },
        "command": ["gan-init", "pipeline", "${args}"],
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(sweep))
    runs = tmp_path / "runs"
    state = run_sweep(path, runs_dir=runs, max_runs=1)  # stopped after the first run
    assert [r["status"] for r in state.runs] == ["finished"]
    state = run_sweep(path, runs_dir=runs)
    assert sorted(r["params"]["init_strategy"] for r in state.runs) == ["cyclegan", "scratch"]
    assert all(r["status"] == "finished" and "eval/swd" in r["metrics"] for r in state.runs)
    report = write_report(runs).read_text()
    assert "scratch (stem)" in report and "cyclegan (stem)" in report


def test_a_second_pipeline_waits_for_the_shared_cyclegan_stage_then_reuses_it(
    tmp_path, monkeypatch
):
    """make train-2d beside make sweep-2d: one trains stage 1, the other waits and reuses it."""
    import threading

    from filelock import FileLock

    from gan_init.experiment import pipeline

    opts = PipelineOptions(dims=2, seed=0, runs_dir=str(tmp_path))
    key = pipeline.config_hash(
        load_yaml(opts.config_path("cyclegan")), opts.fit_args + opts.cyclegan_args
    )
    run_dir = tmp_path / "cyclegan" / f"2d-{key}-seed0"
    run_dir.mkdir(parents=True)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"

    def never_fit(*args, **kwargs):
        raise AssertionError("the waiting pipeline trained stage 1 a second time")

    monkeypatch.setattr(pipeline, "_fit", never_fit)
    other = FileLock(run_dir / ".lock")
    other.acquire()
    got: list[Path] = []
    waiter = threading.Thread(target=lambda: got.append(pipeline.run_cyclegan(opts)))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "the second pipeline did not wait for the lock"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"trained")
    (run_dir / "done.json").write_text(json.dumps({"checkpoint": str(checkpoint)}))
    other.release()
    waiter.join(timeout=30)
    assert got == [checkpoint]


@pytest.mark.parametrize("dims", [2, 3])
def test_g_and_d_gets_the_patch_stem_critic_other_strategies_keep_the_config(
    tmp_path, monkeypatch, dims
):
    from gan_init.experiment import pipeline

    monkeypatch.setattr(pipeline, "run_cyclegan", lambda opts: tmp_path / "source.ckpt")
    monkeypatch.setattr(pipeline, "_fit", lambda *args, **kwargs: 1)
    for strategy, expected in [("cyclegan", False), ("cyclegan_g_and_d", True)]:
        opts = PipelineOptions(dims=dims, init_strategy=strategy, runs_dir=str(tmp_path))
        summary = pipeline.run_pipeline(opts)
        config = load_yaml(Path(summary["run_dir"]) / "config.yaml")
        disc = config["model"]["init_args"]["discriminator"]["init_args"]
        assert disc["patch_stem"] is expected, strategy


def test_a_new_strategy_is_a_function_and_a_name_with_its_needs_as_metadata(tmp_path, monkeypatch):
    """The pipeline asks the registry what a strategy needs (a source, the patch-stem critic);
    it never tests strategy names."""
    from gan_init.experiment import pipeline
    from gan_init.transfer import strategies

    registry = strategies.Registry("init strategy", uses_source=True, patch_stem_critic=False)
    for name in strategies.INIT_STRATEGIES:
        registry.register(name, **strategies.INIT_STRATEGIES.meta(name))(
            strategies.INIT_STRATEGIES.get(name)
        )
    registry.register("mine", uses_source=False, patch_stem_critic=True)(strategies.scratch)
    monkeypatch.setattr(strategies, "INIT_STRATEGIES", registry)
    trained = []
    monkeypatch.setattr(pipeline, "run_cyclegan", lambda opts: trained.append(opts) or tmp_path)
    monkeypatch.setattr(pipeline, "_fit", lambda *args, **kwargs: 1)
    summary = pipeline.run_pipeline(PipelineOptions(init_strategy="mine", runs_dir=str(tmp_path)))
    config = load_yaml(Path(summary["run_dir"]) / "config.yaml")
    assert config["model"]["init_args"]["discriminator"]["init_args"]["patch_stem"] is True
    assert not trained and summary["source"] is None  # no CycleGAN stage for it
    with pytest.raises(ValueError, match="unknown metadata"):
        registry.register("typo", patch_stem=True)
    assert "mine: Random initialization" in registry.describe()
