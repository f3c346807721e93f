"""``gan-init sweep --parallel K``: K runs at once, each still run exactly once, resumable, each
child with its share of the CPU threads, and a signal stops them all (left to run again first)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from gan_init.experiment.sweep import run_sweep
from tests.builders.processes import subprocess_env, wait_for

# A stand-in for a run: writes <seed>.start (its time and thread count), waits until another run
# is seen running beside it (up to WAIT seconds, so that a lone run still ends), writes <seed>.end.
TIMED_RUN = textwrap.dedent(
    """
    import json, os, sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    folder = os.environ["TIMES"]
    def stamp(what):
        with open(os.path.join(folder, f"{args['seed']}.{what}"), "a") as f:
            f.write(json.dumps({"t": time.time(), "threads": os.environ.get("GAN_INIT_THREADS")}) + "\\n")
    def last(seed, what):
        path = os.path.join(folder, f"{seed}.{what}")
        return json.loads(open(path).read().splitlines()[-1])["t"] if os.path.exists(path) else None
    stamp("start")
    mine = last(args["seed"], "start")
    others = lambda: [n[:-6] for n in os.listdir(folder) if n.endswith(".start") and n[:-6] != args["seed"]]
    deadline = time.time() + float(os.environ.get("WAIT", "10"))
    while time.time() < deadline:
        if any((last(s, "end") or mine + 1) > mine for s in others()):
            break
        time.sleep(0.02)
    stamp("end")
    """
)


def timed_sweep(tmp_path: Path, seeds: int) -> Path:
    (tmp_path / "timed_run.py").write_text(TIMED_RUN)
    (tmp_path / "times").mkdir()
    sweep = {
        "method": "grid",
        "parameters": {"seed": {"values": list(range(seeds))}},
        "command": ["${interpreter}", str(tmp_path / "timed_run.py"), "${args}"],
    }
    path = tmp_path / "timed.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def stamps(folder: Path, what: str) -> dict[str, list[dict]]:
    return {
        p.stem: [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(folder.glob(f"*.{what}"))
    }


def test_two_runs_at_once_each_once_with_their_share_of_threads_and_resume(tmp_path, monkeypatch):
    times = tmp_path / "times"
    monkeypatch.setenv("TIMES", str(times))
    path = timed_sweep(tmp_path, seeds=4)
    runs = tmp_path / "runs"

    run_sweep(path, runs_dir=runs, max_runs=2, parallel=2, threads=1)  # "killed" after two
    start, end = stamps(times, "start"), stamps(times, "end")
    assert sorted(start) == ["0", "1"]
    # They ran at once: each started before the other ended.
    assert start["0"][0]["t"] < end["1"][0]["t"] and start["1"][0]["t"] < end["0"][0]["t"]
    assert {s[0]["threads"] for s in start.values()} == {"1"}

    state = run_sweep(path, runs_dir=runs, parallel=2, threads=1)  # restart: the other two
    start = stamps(times, "start")
    assert sorted(start) == ["0", "1", "2", "3"]
    assert all(len(s) == 1 for s in start.values()), "a run ran twice"
    assert sorted(r["params"]["seed"] for r in state.runs) == [0, 1, 2, 3]
    assert {r["state"] for r in state.runs} == {"finished"}
    logs = runs / "sweeps" / "timed"
    assert len(list(logs.glob("*.log"))) == 4  # one output file per run when side by side

    run_sweep(path, runs_dir=runs, parallel=2)  # a finished sweep runs nothing
    assert all(len(s) == 1 for s in stamps(times, "start").values())


def test_a_signal_stops_every_run_and_a_restart_runs_them_first(tmp_path):
    path = timed_sweep(tmp_path, seeds=3)
    runs = tmp_path / "runs"
    times = tmp_path / "times"
    env = dict(subprocess_env(), TIMES=str(times), WAIT="120")
    cmd = [sys.executable, "-m", "gan_init", "sweep", str(path), "--runs_dir", str(runs)]
    # Seeds 0 and 1 see each other start and end at once; seed 2 then waits alone (WAIT).
    proc = subprocess.Popen([*cmd, "--parallel", "2"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: (times / "2.start").is_file(), "the third run to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    state = json.loads((runs / "sweeps" / "timed.json").read_text())
    by_seed = {r["params"]["seed"]: r["state"] for r in state["runs"]}
    assert by_seed == {0: "finished", 1: "finished", 2: "running"}
    assert not (times / "2.end").exists()  # the forwarded signal ended it

    env["WAIT"] = "0"
    subprocess.run([*cmd, "--parallel", "2"], env=env, check=True, stdout=subprocess.DEVNULL)
    assert [len(s) for s in stamps(times, "start").values()] == [1, 1, 2]  # only seed 2 again
    state = json.loads((runs / "sweeps" / "timed.json").read_text())
    assert {r["state"] for r in state["runs"]} == {"finished"} and len(state["runs"]) == 3
