"""`gan-init pipeline --data DIR --layout ...`: both stages on a folder of NIfTI subjects
(synthetic here: random ellipsoid heads with T1/T2-like contrast, each with its own voxel size
and orientation), disjoint CycleGAN and noise subjects, the same held-out subjects, one-line
errors for too little data before anything trains."""

import json
from pathlib import Path

import pytest

from data_modules import NiftiFolderDataModule
from gan_init.cli.commands import pipeline as pipeline_cmd
from gan_init.experiment import pipeline
from gan_init.experiment.pipeline import PipelineOptions
from tests.builders.subjects import subjects_folder
from tests.tiny_configs import pipeline_configs


def stage_modules(opts: PipelineOptions, tmp_path: Path) -> dict[str, NiftiFolderDataModule]:
    """Each stage's data module as its resolved config builds it (nothing trains)."""
    modules = {}
    for stage in ("cyclegan", "noise"):
        config = pipeline.resolve_config(
            opts.stage_config(stage), tmp_path / stage, seed=0, run_name="r", group="g"
        )
        args = {**config["data"]["init_args"], "cache_dir": str(tmp_path / "cache")}
        modules[stage] = NiftiFolderDataModule(**args)
        modules[stage].setup()
    return modules


@pytest.mark.parametrize("dims", [2, 3])
def test_stages_train_on_disjoint_subjects_and_hold_out_the_same(tmp_path, dims):
    root = subjects_folder(tmp_path / "data", n=8)
    cyc, noise = pipeline_configs(tmp_path, dims)
    opts = PipelineOptions(
        dims=dims, data=str(root), cyclegan_config=str(cyc), noise_config=str(noise)
    )
    modules = stage_modules(opts, tmp_path)
    cyclegan, noise_dm = modules["cyclegan"], modules["noise"]
    trained = {s: set(m.bank("train").subjects) for s, m in modules.items()}
    assert trained["cyclegan"] and trained["noise"]
    assert not trained["cyclegan"] & trained["noise"]
    for split in ("val", "test"):
        assert cyclegan.bank(split).subjects == noise_dm.bank(split).subjects
        assert not set(cyclegan.bank(split).subjects) & (trained["cyclegan"] | trained["noise"])
    assert cyclegan.cache_path() == noise_dm.cache_path()  # one preprocessing for both stages
    # Shared subjects, recorded: both stages train on the same, held-out subjects unchanged.
    shared = PipelineOptions(
        dims=dims, data=str(root), cyclegan_config=str(cyc), noise_config=str(noise),
        share_subjects=True,
    )  # fmt: skip
    both = stage_modules(shared, tmp_path)
    assert set(both["cyclegan"].bank("train").subjects) == set(both["noise"].bank("train").subjects)
    assert set(both["noise"].bank("train").subjects) == trained["cyclegan"] | trained["noise"]
    assert both["noise"].bank("test").subjects == noise_dm.bank("test").subjects
    assert shared.factors()["data"]["shared_subjects"] is True
    assert opts.factors()["data"]["shared_subjects"] is False
    assert "-shared" in shared.name_suffix() and "-shared" not in opts.name_suffix()


def _fails_before_training(tmp_path, monkeypatch, capsys, argv) -> str:
    monkeypatch.setattr(pipeline, "_fit", lambda *a, **k: pytest.fail("trained"))
    cache = f"--data.init_args.cache_dir={tmp_path / 'cache'}"
    assert pipeline_cmd.main([*argv, "--runs_dir", str(tmp_path / "runs"), cache]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not (tmp_path / "runs").exists()
    return err[0]


def test_too_little_data_is_one_line_before_anything_trains(tmp_path, monkeypatch, capsys):
    few = subjects_folder(tmp_path / "few", n=3)
    err = _fails_before_training(tmp_path, monkeypatch, capsys, ["--data", str(few)])
    assert "3 subjects are too few for roles" in err and "--share_subjects" in err
    root = subjects_folder(tmp_path / "data", n=6)
    err = _fails_before_training(
        tmp_path, monkeypatch, capsys, ["--data", str(root), "--train_subjects", "5"]
    )
    assert "train_subjects=5 but the " in err and "lower --train_subjects" in err
    (root / "IXI001-T2.nii.gz").unlink()  # a subject without T2
    err = _fails_before_training(tmp_path, monkeypatch, capsys, ["--data", str(root)])
    assert "'IXI001'" in err and "IXI001-T1.nii.gz but no T2 file" in err
    assert "--data.init_args.skip_bad_subjects=true" in err
    (root / "IXI002-T1.nii.gz").write_bytes(b"not a nifti")  # a volume nothing can read
    argv = ["--data", str(root), "--data.init_args.skip_bad_subjects=true"]
    with pytest.warns(UserWarning):
        err = _fails_before_training(tmp_path, monkeypatch, capsys, argv)
    assert "too few for roles" in err  # 6 - 2 skipped
    err = _fails_before_training(tmp_path, monkeypatch, capsys, ["--data", str(tmp_path / "no")])
    assert "no such folder" in err
    err = _fails_before_training(
        tmp_path, monkeypatch, capsys, ["--data", str(root), "--layout", "custom"]
    )
    assert "--layout custom needs --t1_pattern and --t2_pattern" in err


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_pipeline_on_a_folder_of_subjects_end_to_end(tmp_path, dims, capsys):
    root = subjects_folder(tmp_path / "data", n=6, layout="brats")
    cyc, noise = pipeline_configs(tmp_path, dims)
    runs = tmp_path / "runs"
    args = ["--dims", str(dims), "--cyclegan_config", str(cyc), "--noise_config", str(noise)]
    args += ["--runs_dir", str(runs), "--n_samples", "4", "--grow", "stem"]
    args += ["--data", str(root), "--layout", "brats", "--train_subjects", "1"]
    args += [f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.num_workers=0"]
    assert pipeline_cmd.main(args) == 0, capsys.readouterr().err
    (run,) = (runs / f"noise_{dims}d").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished", summary
    assert summary["data"]["root"] == str(root.resolve()) and summary["data"]["layout"] == "brats"
    name = summary["data"]["name"]
    assert name.startswith("data-") and run.name == f"cyclegan-stem-seed0-{name}-n1"
    records = {}
    for stage_dir in (run, next((runs / "cyclegan").iterdir())):
        data = json.loads(next(stage_dir.rglob("data.json")).read_text())
        assert data["source"]["root"] == str(root.resolve()) and data["train_subjects"] == 1
        records[data["mode"]] = data["subjects"]
    roles = records["noise"]["subjects"]
    assert records["cyclegan"]["subjects"] == roles
    assert len(roles["cyclegan"]) == len(roles["noise"]) == 1
    assert not set(roles["cyclegan"]) & set(roles["noise"])
    assert "eval/swd" in summary["metrics"] or any(
        k.startswith("eval/") for k in summary["metrics"]
    )
