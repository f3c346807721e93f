"""The local sweep runner: W&B's schema and grid logic, run-once, failures recorded, resume."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from gan_init.experiment.sweep import expand_command, load_sweep, run_sweep
from tests.builders.processes import fake_sweep_file

SWEEPS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_pass_the_wandb_schema_and_name_real_options(path):
    from gan_init.cli.commands.pipeline import build_parser
    from gan_init.transfer.strategies import INIT_STRATEGIES

    sweep = load_sweep(path)
    assert sweep["command"][:2] == ["gan-init", "pipeline"]
    options = {a.dest for a in build_parser()._actions}
    for name, spec in sweep["parameters"].items():
        assert name in options, f"{path.name}: {name} is not a gan-init pipeline option"
        if name == "init_strategy":  # the GPU sweeps run every strategy; the CPU ones a cut
            wanted = (
                set(INIT_STRATEGIES.names()) if "_gpu" in path.name else {"scratch", "cyclegan"}
            )
            assert wanted <= set(spec["values"]) <= set(INIT_STRATEGIES.names())
        if name == "arm":  # an init strategy, or one with the critic's augmentation
            for arm in spec.get("values", [spec.get("value")]):
                assert arm.removesuffix("+aug") in INIT_STRATEGIES.names(), arm
            assert {"scratch", "cyclegan"} <= set(spec["values"])
        if name.endswith("_config"):
            assert (SWEEPS.parents[1] / spec["value"]).is_file(), spec["value"]


def test_bad_sweep_is_refused_with_the_file_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grdi\nparameters: {seed: {values: [0]}}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not a valid W&B sweep"):
        load_sweep(bad)


def test_command_macros_expand_like_wandb_agent():
    sweep = {
        "program": "train.py",
        "command": ["${env}", "${interpreter}", "${program}", "${args}"],
    }
    cmd = expand_command(sweep, {"seed": 1, "grow": "stem"})
    assert cmd == ["/usr/bin/env", sys.executable, "train.py", "--seed=1", "--grow=stem"]
    cmd = expand_command({"command": ["gan-init", "pipeline", "${args}"]}, {"seed": 0})
    assert cmd == [sys.executable, "-m", "gan_init", "pipeline", "--seed=0"]


def _calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_grid_runs_each_once_records_failures_and_resumes(tmp_path, monkeypatch):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALLS", str(calls))
    sweep = fake_sweep_file(tmp_path, ["scratch", "broken", "unstable"])
    runs = tmp_path / "runs"

    state = run_sweep(sweep, runs_dir=runs, max_runs=2)  # "killed" after two runs
    assert len(_calls(calls)) == 2
    state = run_sweep(sweep, runs_dir=runs)  # restart: the remaining four, nothing twice
    seen = [(c["init_strategy"], c["seed"]) for c in _calls(calls)]
    assert len(seen) == 6 and len(set(seen)) == 6
    by_strategy = {}
    for record in state.runs:
        by_strategy.setdefault(record["params"]["init_strategy"], []).append(record)
    assert {r["status"] for r in by_strategy["broken"]} == {"failed"}
    assert {r["exit_code"] for r in by_strategy["broken"]} == {3}
    assert {r["status"] for r in by_strategy["unstable"]} == {"diverged"}
    assert sorted(r["metrics"]["eval/swd"] for r in by_strategy["scratch"]) == [0.0, 1.0]

    run_sweep(sweep, runs_dir=runs)  # a finished sweep runs nothing
    assert len(_calls(calls)) == 6
    # Its run table, beside the state: a row per run that wrote a run folder.
    from gan_init.experiment.run_table import read_table

    rows, meta = read_table(runs / "sweeps" / "grid.table.csv")
    assert sorted((r["arm"], r["seed"], r["status"]) for r in rows) == sorted(
        (r["params"]["init_strategy"], r["params"]["seed"], r["status"])
        for r in state.runs
        if r["status"] != "failed"
    )
    assert meta["sweep_file"] == str(sweep) and meta["runs"] == len(rows)
    # ... and mirrored to W&B as a table artifact (offline), beside the sweep's runs.
    logged = list((runs / "sweeps").rglob("runs*.table.json"))
    assert logged and "scratch" in logged[-1].read_text()


def test_run_interrupted_mid_way_runs_again_first(tmp_path, monkeypatch):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALLS", str(calls))
    sweep = fake_sweep_file(tmp_path, ["scratch"])
    runs = tmp_path / "runs"
    run_sweep(sweep, runs_dir=runs, max_runs=1)
    state_file = runs / "sweeps" / "grid.json"
    state = json.loads(state_file.read_text())
    state["runs"][0]["state"] = "running"  # as if killed while it ran
    state_file.write_text(json.dumps(state))
    run_sweep(sweep, runs_dir=runs, max_runs=1)
    seen = [(c["init_strategy"], c["seed"]) for c in _calls(calls)]
    assert seen == [("scratch", "0"), ("scratch", "0")]
    final = run_sweep(sweep, runs_dir=runs)
    assert sorted(r["params"]["seed"] for r in final.runs) == [0, 1]
    assert all(r["state"] == "finished" for r in final.runs)


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("map_*.yaml")), ids=lambda p: p.name)
def test_map_sweeps_declare_disjoint_seeds_and_an_absolute_margin(path):
    """A confirmatory sweep runs only its declared confirmatory seeds, never a tuning seed, and
    its equivalence margin is a number in the endpoint's units (the map refuses a percentage)."""
    from gan_init.experiment.report.map import SeedPlan

    raw = yaml.safe_load(path.read_text())
    plan = SeedPlan.from_dict(raw["seeds"], path.name)
    seeds = set(raw["parameters"]["seed"]["values"])
    assert len(seeds) >= 8 and seeds <= set(plan.confirmatory) and not seeds & set(plan.tuning)
    assert isinstance(raw["endpoints"]["margin"], float)
    assert raw["endpoints"]["primary"] == "final(eval/full/swd_mean)"
    assert raw["metric"]["name"] == "eval/full/swd_mean"
