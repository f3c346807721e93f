"""What `gan-init pipeline` hands each stage: the child `gan-init fit` arguments and configs of
the experiment's factors (training-set size, stress, augmentation), and the run names, checked
without training (the stages' `_fit` is replaced)."""

from pathlib import Path

import pytest

from gan_init.cli.commands import pipeline as pipeline_cmd
from gan_init.experiment import pipeline
from gan_init.experiment.pipeline import PipelineOptions


def stage_commands(tmp_path, monkeypatch, argv: list[str]) -> dict[str, list[str]]:
    """The pipeline's child arguments per stage, from ``gan-init pipeline argv``."""
    calls: dict[str, list[str]] = {}

    def fake_fit(config_file: Path, args: list[str], run_dir: Path, **kwargs) -> int:
        stage = "cyclegan" if run_dir.parent.name == "cyclegan" else "noise"
        calls[stage] = args
        if stage == "cyclegan":  # a trained stage 1: its checkpoint, as the pipeline reads it
            monkeypatch.setattr(
                pipeline,
                "selected_checkpoint",
                lambda last: (last, {"rule": "final weights", "epoch": 0}),
            )
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
            return 0
        return 1  # the noise stage "fails": nothing after it runs

    monkeypatch.setattr(pipeline, "_fit", fake_fit)
    monkeypatch.setattr(pipeline, "last_values", lambda *a, **k: {})
    pipeline_cmd.main([*argv, "--runs_dir", str(tmp_path)])
    return calls


def test_default_factors_add_nothing_and_keep_the_run_name(tmp_path, monkeypatch):
    calls = stage_commands(tmp_path, monkeypatch, ["--grow", "stem"])
    assert not any("train_subjects" in a or "stress" in a for a in calls["noise"])
    assert not any("augment" in a for a in calls["noise"] + calls["cyclegan"])
    assert (tmp_path / "noise_2d" / "cyclegan-stem-seed0" / "summary.json").is_file()


def test_factors_reach_the_right_stages_and_the_run_name(tmp_path, monkeypatch):
    argv = ["--grow", "stem", "--train_subjects", "16", "--stress", "4", "--augment"]
    calls = stage_commands(tmp_path, monkeypatch, [*argv, "color,translation"])
    n = "--data.init_args.train_subjects=16"
    assert n in calls["cyclegan"] and n in calls["noise"]
    assert "--model.init_args.stress=4" in calls["noise"]
    assert "--model.init_args.augment=color,translation" in calls["noise"]
    assert not any("stress" in a or "augment" in a for a in calls["cyclegan"])
    run = tmp_path / "noise_2d" / "cyclegan-stem-seed0-n16-stress4-aug-color+translation"
    summary = pipeline.read_json(run / "summary.json")
    assert (summary["train_subjects"], summary["stress"]) == (16, 4.0)
    assert summary["augment"] == "color,translation"
    # another training-set size trains its own CycleGAN stage (its config hash differs)
    stage_commands(tmp_path, monkeypatch, ["--grow", "stem", "--train_subjects", "8"])
    assert len(list((tmp_path / "cyclegan").iterdir())) == 2


def test_sweep_style_arguments_parse(tmp_path, monkeypatch):
    """`gan-init sweep` passes parameters as --key=value; `none` is no augmentation."""
    calls = stage_commands(
        tmp_path, monkeypatch, ["--grow=none", "--stress=0.5", "--augment=none", "--seed=1"]
    )
    assert "--model.init_args.stress=0.5" in calls["noise"]
    assert not any("augment" in a for a in calls["noise"])
    assert (tmp_path / "noise_2d" / "cyclegan-none-seed1-stress0.5").is_dir()


def test_bad_factors_are_one_line_errors(capsys):
    with pytest.raises(ValueError, match="--train_subjects 0"):
        PipelineOptions(train_subjects=0)
    with pytest.raises(ValueError, match="--stress -1"):
        PipelineOptions(stress=-1)
    assert pipeline_cmd.main(["--stress", "0"]) == 2
    assert "--stress 0" in capsys.readouterr().err


def test_an_arm_sets_strategy_and_critic_augmentation(tmp_path, monkeypatch):
    calls = stage_commands(
        tmp_path, monkeypatch, ["--grow", "none", "--arm", "scratch+aug", "--train_subjects", "all"]
    )
    assert "cyclegan" not in calls  # scratch needs no CycleGAN
    augment = f"--model.init_args.augment={pipeline_cmd.ARM_AUGMENT}"
    assert augment in calls["noise"] and not any("train_subjects" in a for a in calls["noise"])
    assert (tmp_path / "noise_2d" / "scratch-none-seed0-aug-translation+cutout").is_dir()
    calls = stage_commands(tmp_path, monkeypatch, ["--grow", "none", "--arm", "cyclegan_shuffled"])
    assert not any("augment" in a for a in calls["noise"]) and "cyclegan" in calls


def test_a_bad_arm_is_one_line(tmp_path, capsys):
    assert pipeline_cmd.main(["--arm", "scratch+flip", "--runs_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--arm scratch+flip" in err and "scratch+aug" in err
