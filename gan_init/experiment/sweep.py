"""Run a W&B sweep file locally, with no server: W&B's own search logic (the ``sweeps`` package,
what the W&B server runs) proposes each run; this module runs its ``command`` as ``wandb agent``
would, and keeps a state file so that a killed sweep picks up where it stopped.

- Each proposed run runs once; its state (finished, failed, crashed) and summary are recorded.
- A failed or diverged run is recorded and the sweep goes on (grid search does not retry it).
- A run that was running when the sweep was killed is run again first on restart; the pipeline
  itself resumes it from its last checkpoint.

A sweep file may carry the project's pre-specified analysis under a top-level ``endpoints:`` key
(``gan_init.experiment.stats.EndpointSpec``). W&B's schema allows no extra top-level key, so ``load_sweep``
takes it out before the file is checked and handed to W&B's engine, and the state file records it
for ``gan-init report``. ``wandb sweep FILE`` (cloud controller) creates the sweep and prints a
"Malformed sweep config" warning naming ``endpoints``, which it ignores; ``wandb sweep
--controller`` (local controller) refuses the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from gan_init.core.files import read_json, read_state, write_json
from gan_init.core.processes import run_child, run_lock
from gan_init.experiment.stats import EndpointSpec

ENDPOINTS_KEY = "endpoints"  # project key, not W&B's: taken out before W&B's engine sees the file


def _sweeps():
    with warnings.catch_warnings():  # pydantic v2 warns about the package's v1-style config
        warnings.simplefilter("ignore")
        import sweeps

    return sweeps


def _read_sweep_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a W&B sweep mapping (method, parameters, command)")
    return config


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read a W&B sweep file and check it against W&B's own schema (without the project's
    ``endpoints`` key, which W&B's schema does not allow)."""
    path = Path(path)
    config = _read_sweep_file(path)
    config.pop(ENDPOINTS_KEY, None)
    violations = _sweeps().schema_violations_from_proposed_config(config)
    if violations:
        raise ValueError(f"{path}: not a valid W&B sweep: " + "; ".join(violations))
    return config


def load_endpoints(path: str | Path) -> EndpointSpec | None:
    """The pre-specified analysis under the sweep file's ``endpoints:`` key (None when absent)."""
    path = Path(path)
    raw = _read_sweep_file(path).get(ENDPOINTS_KEY)
    if raw is None:
        return None
    return EndpointSpec.from_dict(raw, f"{path}: {ENDPOINTS_KEY}", source=str(path))


def _arg_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def expand_command(sweep: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The run's command line, with the macros ``wandb agent`` expands."""
    args = [f"--{k}={_arg_value(v)}" for k, v in params.items()]
    macros: dict[str, list[str]] = {
        "${env}": ["/usr/bin/env"],
        "${interpreter}": [sys.executable],
        "${program}": [sweep.get("program", "")],
        "${args}": args,
        "${args_no_hyphens}": [a[2:] for a in args],
        "${args_no_boolean_flags}": [
            f"--{k}" if v is True else f"--{k}={_arg_value(v)}"
            for k, v in params.items()
            if v is not False
        ],
        "${args_json}": [json.dumps(params)],
    }
    template = sweep.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]
    command: list[str] = []
    for part in template:
        command += macros.get(part, [part])
    # Run the project's own command from this interpreter, whatever PATH says.
    if command and command[0] == "gan-init":
        command = [sys.executable, "-m", "gan_init", *command[1:]]
    elif command[:2] == ["/usr/bin/env", "gan-init"]:
        command = [sys.executable, "-m", "gan_init", *command[2:]]
    return command


def run_name(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True).encode()
    label = "-".join(str(v) for v in params.values() if not isinstance(v, (list, dict)))
    return f"{label[:60]}-{hashlib.sha1(blob).hexdigest()[:6]}"


class SweepState:
    """The record of a sweep's runs, in ``<runs_dir>/sweeps/<sweep name>.json`` (atomic writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        saved = self.read(path)
        self.runs: list[dict[str, Any]] = saved.get("runs", [])
        # The sweep file and its endpoint spec, as they were when the runs ran (for the report).
        self.sweep_file: str | None = saved.get("sweep_file")
        self.endpoints: dict[str, Any] | None = saved.get(ENDPOINTS_KEY)

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        """The record in ``path`` ({} if there is none yet); a damaged file is set aside and
        named (``CorruptFileError``), never read as an empty sweep and overwritten."""
        state = read_state(
            path,
            check=_check_state,
            recover=(
                "Run the sweep again to start a new record: finished runs are skipped by their "
                f"summary.json, and each run's last result is in {path.parent / path.stem}/"
            ),
        )
        return state or {}

    def save(self) -> None:
        record: dict[str, Any] = {"runs": self.runs}
        if self.sweep_file:
            record["sweep_file"] = self.sweep_file
        if self.endpoints:
            record[ENDPOINTS_KEY] = self.endpoints
        write_json(self.path, record)

    def sweep_runs(self) -> list[Any]:
        sweeps = _sweeps()
        out = []
        for record in self.runs:
            if record["state"] == "running":
                continue  # killed mid-run: proposed again
            out.append(
                sweeps.SweepRun(
                    name=record["name"],
                    config={k: {"value": v} for k, v in record["params"].items()},
                    state=sweeps.RunState(record["state"]),
                    summaryMetrics=record.get("metrics") or {},
                )
            )
        return out

    def upsert(self, record: dict[str, Any]) -> None:
        self.runs = [r for r in self.runs if r["name"] != record["name"]] + [record]
        self.save()


def _check_state(state: dict[str, Any]) -> str | None:
    """What is wrong with a sweep state's shape, or None."""
    runs = state.get("runs")
    if not isinstance(runs, list):
        return "expected {'runs': [...]} (a gan-init sweep state)"
    for i, record in enumerate(runs):
        if not isinstance(record, dict):
            return f"runs[{i}] is not a mapping"
        missing = [k for k in ("name", "params", "state") if k not in record]
        if missing:
            return f"runs[{i}] has no {', '.join(missing)}"
        if not isinstance(record["params"], dict):
            return f"runs[{i}].params is not a mapping"
    return None


def _flat_metrics(summary: dict[str, Any] | None) -> dict[str, Any]:
    return {
        k: v
        for k, v in ((summary or {}).get("metrics") or {}).items()
        if isinstance(v, (int, float))
    }


def run_sweep(
    path: str | Path,
    *,
    runs_dir: str | Path = "runs",
    max_runs: int | None = None,
    dry_run: bool = False,
) -> SweepState:
    """Run every run the sweep proposes (up to ``max_runs`` new ones). Returns the state.

    Raises ``LockedError`` when another ``gan-init sweep`` runs the same sweep into the same runs
    folder, ``Interrupted`` when a signal stopped it (the run it was on is run again first on
    restart), ``CorruptFileError`` for a damaged state file."""
    sweep = load_sweep(path)
    spec = load_endpoints(path)
    runs_dir = Path(runs_dir)
    state_file = runs_dir / "sweeps" / f"{Path(path).stem}.json"
    with run_lock(state_file.parent, "gan-init sweep", wait=False, name=f"{state_file.stem}.lock"):
        return _run_sweep_locked(sweep, spec, Path(path), state_file, runs_dir, max_runs, dry_run)


def _run_sweep_locked(
    sweep: dict[str, Any],
    spec: EndpointSpec | None,
    path: Path,
    state_file: Path,
    runs_dir: Path,
    max_runs: int | None,
    dry_run: bool,
) -> SweepState:
    state = SweepState(state_file)
    state.sweep_file = str(path)
    state.endpoints = spec.to_dict() if spec else None
    sweeps = _sweeps()
    started = 0
    while max_runs is None or started < max_runs:
        interrupted = [r for r in state.runs if r["state"] == "running"]
        if interrupted:
            params = interrupted[0]["params"]
        else:
            proposal = sweeps.next_run(sweep, state.sweep_runs(), validate=False)
            if proposal is None:
                break
            params = {k: v["value"] for k, v in proposal.config.items()}
        name = run_name(params)
        command = expand_command(sweep, params)
        if dry_run:
            print(" ".join(command))
            state.runs.append({"name": name, "params": params, "state": "finished"})
            continue
        record = {"name": name, "params": params, "state": "running", "command": command}
        record["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        state.upsert(record)
        started += 1
        summary_out = state.path.parent / state.path.stem / f"{name}.json"
        env = dict(
            os.environ, GAN_INIT_RUNS_DIR=str(runs_dir), GAN_INIT_SUMMARY_OUT=str(summary_out)
        )
        print(f"[sweep {Path(path).stem}] run {name}: {' '.join(command)}", flush=True)
        code = run_child(command, env=env)  # Interrupted: the record stays "running"
        summary = read_json(summary_out)
        record.update(
            state="finished" if code == 0 else "failed",
            exit_code=code,
            status=(summary or {}).get("status", "failed" if code else "finished"),
            run_dir=(summary or {}).get("run_dir"),
            metrics=_flat_metrics(summary),
            ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        state.upsert(record)
    if dry_run:
        state.runs = SweepState.read(state.path)
    return state
