"""Run a W&B sweep file locally, with no server: W&B's own search logic (the ``sweeps`` package,
what the W&B server runs) proposes each run; this module runs its ``command`` as ``wandb agent``
would, and keeps a state file so that a killed sweep picks up where it stopped.

- Each proposed run runs once; its state (finished, failed, crashed) and summary are recorded.
- A failed or diverged run is recorded and the sweep goes on (grid search does not retry it).
- A run that was running when the sweep was killed is run again first on restart; the pipeline
  itself resumes it from its last checkpoint.
- Several runs may run at once (``parallel``), each a child process with its share of the CPU
  threads; this process alone writes the state file. Runs of one seed that need the same
  CycleGAN stage do not train it twice: the pipeline's lock on the stage's folder makes the
  second wait, then reuse it.

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
import subprocess
import sys
import time
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from gan_init.core.files import read_state, write_json
from gan_init.core.processes import Interrupted, forward_signals, run_lock, start_child
from gan_init.core.threads import set_thread_environment
from gan_init.experiment.stats import EndpointSpec
from gan_init.runs import SWEEP_RUN_ENV, sweep_run_summary

ENDPOINTS_KEY = "endpoints"  # project key, not W&B's: taken out before W&B's engine sees the file
SEEDS_KEY = "seeds"  # project key: the declared tuning and confirmatory seeds (report.map.SeedPlan)


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
    config.pop(SEEDS_KEY, None)
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
                "summary.json, which holds each run's result"
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

    def sweep_runs(self, in_flight: Collection[str] = ()) -> list[Any]:
        """The runs for W&B's engine: finished and failed ones, and the ones running now
        (``in_flight``), so that it proposes each once; a run left "running" by a killed sweep
        is not among them (it is run again first)."""
        sweeps = _sweeps()
        out = []
        for record in self.runs:
            if record["state"] == "running" and record["name"] not in in_flight:
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
    parallel: int = 1,
    threads: int | None = None,
    pipeline_args: Sequence[str] = (),
    tag: str | None = None,
) -> SweepState:
    """Run every run the sweep proposes (up to ``max_runs`` new ones), ``parallel`` at once, each
    with ``threads`` CPU threads (None: this process's setting). Returns the state.

    Raises ``LockedError`` when another ``gan-init sweep`` runs the same sweep into the same runs
    folder, ``Interrupted`` when a signal stopped it (the runs it was on are run again first on
    restart), ``CorruptFileError`` for a damaged state file."""
    if parallel < 1:
        raise ValueError(f"parallel: expected a number of runs >= 1, got {parallel}")
    sweep = load_sweep(path)
    spec = load_endpoints(path)
    if pipeline_args:  # `gan-init sweep --data ...`: arguments of every run (gan_init.cli)
        default = ["${env}", "${interpreter}", "${program}", "${args}"]
        sweep["command"] = [*(sweep.get("command") or default), *pipeline_args]
    runs_dir = Path(runs_dir)
    # ``tag`` (the data's name): one state per dataset, so another folder's sweep starts afresh.
    state_file = runs_dir / "sweeps" / f"{Path(path).stem}{'-' + tag if tag else ''}.json"
    with run_lock(state_file.parent, "gan-init sweep", wait=False, name=f"{state_file.stem}.lock"):
        state = SweepState(state_file)
        state.sweep_file = str(path)
        state.endpoints = spec.to_dict() if spec else None
        if dry_run:
            _dry_run(sweep, state, max_runs)
            state.runs = SweepState.read(state.path).get("runs", [])
            return state
        _Workers(sweep, state, runs_dir, parallel, threads).run(max_runs)
        write_sweep_table(path, state, runs_dir, threads)
        return state


def write_sweep_table(path: str | Path, state: SweepState, runs_dir: Path, threads: int | None):
    """The sweep's run table (``gan_init.experiment.run_table``) beside its state file:
    ``<runs>/sweeps/<sweep>.table.csv`` and ``.table.json`` (its analysis plan, declared seeds, threads per
    run); commit both under ``docs/results/`` and ``gan-init report`` rebuilds the map."""
    from gan_init.experiment.report.map import SeedPlan
    from gan_init.experiment.run_table import collect, write_table

    raw = _read_sweep_file(Path(path))
    plan = SeedPlan.from_dict(raw.get(SEEDS_KEY), f"{path}: {SEEDS_KEY}")
    meta = {
        "sweep": raw.get("name", Path(path).stem),
        "sweep_file": str(path),
        "endpoints": state.endpoints,
        SEEDS_KEY: plan.to_dict(),
        "threads": threads or int(os.environ.get("GAN_INIT_THREADS", "0") or 0) or None,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rows = collect(runs_dir, sweep=state.path.stem)
    table = write_table(rows, state.path.with_name(f"{state.path.stem}.table.csv"), meta)
    print(f"run table: {table} ({len(rows)} runs)", flush=True)
    _log_to_wandb(table, state.path.stem)
    return table


def _log_to_wandb(table: Path, sweep: str) -> None:
    """The run table as a W&B table artifact, grouped with the sweep's runs (offline unless a
    key is set). W&B is a mirror: its failure costs a warning, never the sweep's table."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return
    from gan_init.experiment.wandb_log import log_run_table

    try:
        folder = log_run_table(table, name=sweep, group=sweep)
    except Exception as err:  # noqa: BLE001 - a mirror's failure must not fail the sweep
        print(f"gan-init sweep: warning: run table not logged to W&B ({err})", flush=True)
        return
    print(f"run table in W&B: {folder}", flush=True)


def _next_params(
    sweep: dict[str, Any], state: SweepState, in_flight: Collection[str]
) -> dict[str, Any] | None:
    """The next run's parameters: a run a killed sweep left "running" first, then W&B's
    proposal (None when the sweep has no run left to start)."""
    for record in state.runs:
        if record["state"] == "running" and record["name"] not in in_flight:
            return record["params"]
    proposal = _sweeps().next_run(sweep, state.sweep_runs(in_flight), validate=False)
    return None if proposal is None else {k: v["value"] for k, v in proposal.config.items()}


def _dry_run(sweep: dict[str, Any], state: SweepState, max_runs: int | None) -> None:
    """Print the commands of the runs left, as if each finished (nothing is saved)."""
    while max_runs is None or max_runs > 0:
        params = _next_params(sweep, state, ())
        if params is None:
            break
        print(" ".join(expand_command(sweep, params)))
        name = run_name(params)
        state.runs = [r for r in state.runs if r["name"] != name]
        state.runs.append({"name": name, "params": params, "state": "finished"})
        max_runs = None if max_runs is None else max_runs - 1


class _Workers:
    """Up to ``parallel`` runs at once, as child processes of this one, which alone writes the
    sweep state (a record is saved when its run starts and when it ends). A signal is
    forwarded to every run; the sweep then waits for them and raises ``Interrupted``, their
    records left "running" so that a restart runs them first (each resumes from its
    checkpoint). With more than one run at once, each run's output goes to
    ``<runs>/sweeps/<sweep>/<run>.log`` (its training log is in its run folder as always)."""

    POLL_SECONDS = 0.2

    def __init__(
        self,
        sweep: dict[str, Any],
        state: SweepState,
        runs_dir: Path,
        parallel: int,
        threads: int | None,
    ) -> None:
        self.sweep, self.state, self.runs_dir = sweep, state, runs_dir
        self.parallel, self.threads = parallel, threads
        self.folder = state.path.parent / state.path.stem  # logs of the runs
        self.children: dict[str, subprocess.Popen] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, IO[bytes]] = {}
        self.received: list[int] = []  # signals forwarded to the runs
        self.tag = f"[sweep {state.path.stem}]"

    def run(self, max_runs: int | None) -> None:
        received = self.received
        started = 0
        try:
            with forward_signals(self.children.values(), received):
                while True:
                    while (
                        not received
                        and len(self.children) < self.parallel
                        and (max_runs is None or started < max_runs)
                    ):
                        params = _next_params(self.sweep, self.state, self.children)
                        if params is None:
                            break
                        self._start(params)
                        started += 1
                    if not self.children:
                        break
                    self._reap()
        finally:
            for log in self.logs.values():
                log.close()
        if received:
            raise Interrupted(received[0])

    def _start(self, params: dict[str, Any]) -> None:
        name = run_name(params)
        command = expand_command(self.sweep, params)
        record = {"name": name, "params": params, "state": "running", "command": command}
        record["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.state.upsert(record)
        env = dict(
            os.environ,
            GAN_INIT_RUNS_DIR=str(self.runs_dir),
            **{SWEEP_RUN_ENV: self._sweep_run(name)},
        )
        if self.threads is not None:  # each run's share of the CPUs
            set_thread_environment(self.threads, env, given=True)
        out = None
        if self.parallel > 1:  # runs side by side: one log each, not one mixed screen
            self.folder.mkdir(parents=True, exist_ok=True)
            out = self.logs[name] = open(self._log(name), "ab")  # noqa: SIM115
        where = f" (output: {self._log(name)})" if out else ""
        print(f"{self.tag} run {name}: {' '.join(command)}{where}", flush=True)
        self.children[name] = start_child(command, env=env, stdout=out)
        self.records[name] = record

    def _log(self, name: str) -> Path:
        # A run's name holds its parameter values, paths among them: one file, no folders.
        return self.folder / (name.strip("/").replace("/", "_") + ".log")

    def _sweep_run(self, name: str) -> str:
        """The run's name in its summary (``gan_init.runs.SWEEP_RUN_ENV``)."""
        return f"{self.folder.name}/{name}"

    def _reap(self) -> None:
        """Wait until a run ends, and record it (unless a signal stopped the sweep)."""
        while True:
            ended = [n for n, proc in self.children.items() if proc.poll() is not None]
            if ended:
                break
            time.sleep(self.POLL_SECONDS)
        for name in ended:
            code = int(self.children.pop(name).returncode)
            if name in self.logs:
                self.logs.pop(name).close()
            record = self.records.pop(name)
            if self.received and code != 0:
                continue  # stopped by the signal: stays "running", run again first on restart
            found = sweep_run_summary(self.runs_dir, self._sweep_run(name))
            summary = found.to_dict() if found else None
            record.update(
                state="finished" if code == 0 else "failed",
                exit_code=code,
                status=(summary or {}).get("status", "failed" if code else "finished"),
                run_dir=(summary or {}).get("run_dir"),
                metrics=_flat_metrics(summary),
                ended=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            self.state.upsert(record)
            print(f"{self.tag} run {name}: {record['status']} (exit code {code})", flush=True)
