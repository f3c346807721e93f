"""``gan-init pipeline``/``sweep`` as a preempted job sees them: killed by any signal, they take
their trainer with them; one process per run folder; damaged state files are named and kept
aside, never read as empty and overwritten; a run whose samples failed is not "finished"."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock

from gan_init.cli.commands import pipeline as pipeline_cmd
from gan_init.cli.commands import sweep as sweep_cmd
from gan_init.core.files import CorruptFileError
from gan_init.experiment import pipeline
from gan_init.experiment.pipeline import PipelineOptions, load_yaml
from gan_init.experiment.sweep import run_sweep
from tests.builders.processes import fake_sweep_file, subprocess_env, wait_for
from tests.tiny_configs import pipeline_configs


def endless_noise_config(tmp_path: Path) -> Path:
    """The tiny 2D noise config, training until it is stopped, checkpointing every 4 steps."""
    _, noise = pipeline_configs(tmp_path, 2)
    config = load_yaml(noise)
    for cb in config["trainer"]["callbacks"]:
        if cb["class_path"].endswith("ProgressiveSchedule"):
            n = len(cb["init_args"]["train_images"])
            cb["init_args"]["train_images"] = [10**9] * n
        elif cb["class_path"].endswith("EvaluationCallback"):
            cb["init_args"]["every_n_images"] = 10**9
    noise.write_text(yaml.safe_dump(config))
    return noise


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def descendants(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        out += [child, *descendants(child)]
    return out


def is_fit(pid: int) -> bool:
    try:
        return b"\0fit\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def gone(pid: int) -> bool:
    """Exited (a zombie nobody reaps in a container counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "launcher, signum",
    [("pipeline", signal.SIGKILL), ("pipeline", signal.SIGTERM), ("sweep", signal.SIGKILL)],
    ids=["pipeline-KILL", "pipeline-TERM", "sweep-KILL"],
)
def test_a_killed_pipeline_or_sweep_takes_its_trainer_with_it(tmp_path, launcher, signum):
    noise = endless_noise_config(tmp_path)
    runs = tmp_path / "runs"
    args = ["--dims", "2", "--init_strategy", "scratch", "--grow", "stem", "--n_samples", "2"]
    args += ["--noise_config", str(noise), "--runs_dir", str(runs)]
    if launcher == "pipeline":
        cmd = [sys.executable, "-m", "gan_init", "pipeline", *args]
    else:
        params = dict(zip(args[::2], args[1::2], strict=True))
        sweep = {
            "method": "grid",
            "parameters": {k[2:]: {"value": v} for k, v in params.items()},
            "command": ["gan-init", "pipeline", "${args}"],
        }
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
        cmd = [sys.executable, "-m", "gan_init", "sweep", str(tmp_path / "s.yaml")]
        cmd += ["--runs_dir", str(runs)]
    run = runs / noise.stem / "scratch-stem-seed0"
    proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.DEVNULL)
    fits: list[int] = []
    try:
        wait_for(
            lambda: (run / "checkpoints" / "last.ckpt").is_file() or proc.poll() is not None,
            "the trainer to write its first checkpoint",
        )
        assert proc.poll() is None, f"{launcher} ended on its own"
        # The trainer and what it forked (data-loader workers share its command line).
        fits = [pid for pid in descendants(proc.pid) if is_fit(pid)]
        assert fits
        proc.send_signal(signum)
        code = proc.wait(timeout=120)
        wait_for(lambda: all(gone(pid) for pid in fits), "the trainer to exit after its parent")
    finally:
        for pid in [proc.pid, *fits]:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert code == -signum if signum == signal.SIGKILL else code == 128 + signum
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step >= 4
    # The trainer saved on the signal (forwarded, or the parent-death signal), then exited.
    assert "stopped by a signal at step" in (run / "log.txt").read_text(errors="replace")
    if signum == signal.SIGTERM:
        assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))


def test_a_second_pipeline_on_the_same_run_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "_fit", lambda *a, **k: pytest.fail("trained while locked"))
    opts = PipelineOptions(dims=2, init_strategy="scratch", grow="stem", runs_dir=str(tmp_path))
    run = pipeline.noise_run_dir(opts, "stem")
    run.mkdir(parents=True)
    held = FileLock(run / ".lock")
    held.acquire()
    try:
        code = pipeline_cmd.main(
            ["--dims", "2", "--init_strategy", "scratch", "--grow", "stem", "--runs_dir", str(tmp_path)]
        )  # fmt: skip
    finally:
        held.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "in use by another process" in err[0]
    assert not (run / "summary.json").exists()


def test_a_second_sweep_on_the_same_state_is_refused(tmp_path, capsys):
    path = fake_sweep_file(tmp_path, ["scratch"])
    (tmp_path / "runs" / "sweeps").mkdir(parents=True)
    held = FileLock(tmp_path / "runs" / "sweeps" / "grid.lock")
    held.acquire()
    try:
        code = sweep_cmd.main([str(path), "--runs_dir", str(tmp_path / "runs")])
    finally:
        held.release()
    assert code == 2 and "in use by another process" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "sweeps" / "grid.json").exists()


@pytest.mark.parametrize(
    "content, problem",
    [("{\"runs\": [{\"name\": ", "not valid JSON"), ("[]", "expected a JSON object"),
     ('{"runs": [{"name": "a"}]}', "runs[0] has no params, state"), ('{"state": 1}', "expected {'runs'")],
    ids=["truncated", "a list", "record without state", "no runs"],
)  # fmt: skip
def test_a_damaged_sweep_state_is_named_kept_aside_and_not_overwritten(
    tmp_path, monkeypatch, content, problem
):
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.jsonl"))
    path = fake_sweep_file(tmp_path, ["scratch"])
    state = tmp_path / "runs" / "sweeps" / "grid.json"
    state.parent.mkdir(parents=True)
    state.write_text(content)
    with pytest.raises(CorruptFileError, match=re.escape(problem)) as caught:
        run_sweep(path, runs_dir=tmp_path / "runs")
    message = str(caught.value)
    assert "\n" not in message and "Run the sweep again" in message
    (kept,) = state.parent.glob("grid.json.corrupt-*")
    assert kept.read_text() == content and kept.name in message
    assert not state.exists() and not (tmp_path / "calls.jsonl").exists()  # nothing ran
    assert len(run_sweep(path, runs_dir=tmp_path / "runs").runs) == 2  # a new record
    assert kept.read_text() == content


def fake_training(run_dir_holder: list, step: int = 6):
    """A ``_fit`` that 'trains': writes last.ckpt and the final metrics, exits 0."""

    def fit(config_file, args, run_dir, **kwargs) -> int:
        run_dir_holder.append(run_dir)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": step}, run_dir / "checkpoints" / "last.ckpt")
        final = {"global_step": step, "images_shown": 12, "metrics": {"swd": 1.5}}
        (run_dir / "metrics_final.json").write_text(json.dumps(final))
        return 0

    return fit


@pytest.mark.parametrize("dims", [2, 3])
def test_a_run_whose_samples_failed_is_recorded_failed_not_finished(tmp_path, monkeypatch, dims):
    holder: list = []
    monkeypatch.setattr(pipeline, "_fit", fake_training(holder))
    # The fake checkpoint holds no generator: sampling (in the pipeline's process) fails.
    opts = PipelineOptions(dims=dims, init_strategy="scratch", grow="stem", runs_dir=str(tmp_path))
    summary = pipeline.run_pipeline(opts)
    assert summary["status"] == "failed"
    assert summary["failure"].startswith("gan-init sample failed (")
    assert "\n" not in summary["failure"] and "log.txt" in summary["failure"]
    assert "Traceback" in (holder[0] / "log.txt").read_text()
    assert summary["samples"] is None
    # The metrics and the checkpoint they came from are still recorded.
    assert summary["metrics"]["eval/swd"] == 1.5
    assert summary["checkpoint"] == str(holder[0] / "checkpoints" / "last.ckpt")
    assert summary["checkpoint_global_step"] == summary["metrics_global_step"] == 6


@pytest.mark.parametrize("dims", [2, 3])
def test_a_damaged_summary_is_named_and_kept_aside(tmp_path, monkeypatch, capsys, dims):
    holder: list = []
    monkeypatch.setattr(pipeline, "_fit", fake_training(holder))
    monkeypatch.setattr(pipeline, "_sample", lambda *args, **kwargs: None)
    args = ["--dims", str(dims), "--init_strategy", "scratch", "--grow", "stem"]
    args += ["--runs_dir", str(tmp_path)]
    opts = PipelineOptions(dims=dims, init_strategy="scratch", grow="stem", runs_dir=str(tmp_path))
    run = pipeline.noise_run_dir(opts, "stem")
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "fini')
    assert pipeline_cmd.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summary.json: not valid JSON" in err[0]
    assert "run the same command again" in err[0].lower()
    (kept,) = run.glob("summary.json.corrupt-*")
    assert kept.read_text() == '{"status": "fini'
    assert pipeline_cmd.main(args) == 0  # the same command again: the run goes on
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
