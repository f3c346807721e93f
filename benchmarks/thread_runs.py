"""A whole ``gan-init fit`` run of each CPU sweep config at 1 and at 2 CPU threads, alone and
two at once, against the thread policy's choice (gan_init.core.threads).

    python benchmarks/thread_runs.py [--shrink 4] [--configs noise_2d_sweep,...] [--no-pairs]

thread_steps.py times a step's compute; this times the whole process (imports, data loading
with the config's loader workers, evaluation, checkpoints). Three settings:

- 1 thread: what the policy picks on 2 CPUs (and each run of a sweep);
- 2 threads, passive wait: ``--threads 2`` as the project runs it (OpenMP threads sleep while
  they wait, ``OMP_WAIT_POLICY=PASSIVE``);
- 2 threads, OpenMP's default wait (threads spin a while first): torch's behaviour before the
  policy, and what a user gets with ``OMP_WAIT_POLICY=`` (empty) and ``--threads 2``.

"alone" is one run on the machine; "pair" is two of the same at once (each run's wall time, the
mean of the two; a pair that takes over ``--cap`` times its lone time is stopped and shown as
">"). ``--shrink N`` divides the noise GAN's images per level and the CycleGAN's samples per
epoch by N (same model and sizes, fewer steps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from parallel import REPO, env, fit_cmd, shrunk

from gan_init.core.threads import available_cpus, choose_threads

CONFIGS = ["noise_2d_sweep", "noise_3d_sweep", "cyclegan_2d_sweep", "cyclegan_3d_sweep"]
SETTINGS = {  # label: (threads, OMP_WAIT_POLICY; "" is OpenMP's default)
    "1 thread": (1, None),
    "2 passive": (2, None),
    "2 default": (2, ""),
}


def timed(cmds: list[list[str]], cwd: Path, environ: dict[str, str], cap: float) -> float | None:
    """Start ``cmds`` at once; their mean wall seconds, or None if they ran past ``cap``."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=cwd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c in cmds
    ]
    ends = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, cap - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            return None
        if proc.returncode != 0:
            raise SystemExit(f"failed: {proc.args}\n{err.decode(errors='replace')[-2000:]}")
        ends.append(time.perf_counter() - start)
    return sum(ends) / len(ends)


def measure(config: str, tmp: Path, pairs: bool, cap: float) -> dict[str, dict]:
    out = {}
    for label, (threads, wait) in SETTINGS.items():
        environ = env()
        if wait is not None:
            environ["OMP_WAIT_POLICY"] = wait
        name = label.replace(" ", "_")

        def cmd(tag: str, name=name, threads=threads) -> list[str]:
            run_dir = tmp / f"{Path(config).stem}-{name}-{tag}"
            return [*fit_cmd(config, run_dir), "--threads", str(threads)]

        alone = timed([cmd("alone")], tmp, environ, cap=3600)
        pair = timed([cmd("a"), cmd("b")], tmp, environ, cap=cap * alone) if pairs else None
        out[label] = {"alone_s": alone, "pair_s": pair, "cap_s": cap * alone}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shrink", type=int, default=4)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--no-pairs", dest="pairs", action="store_false", help="lone runs only")
    p.add_argument("--cap", type=float, default=4.0, help="stop a pair past this x its lone time")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    cpus, results = available_cpus(), {}
    pick = choose_threads(cpus)
    print(f"whole gan-init fit, wall s; {cpus} CPUs; images / {args.shrink}; policy: {pick} thread")
    print(f"  {'config':<18}" + "".join(f"{s:>22}" for s in SETTINGS))
    print(f"  {'':<18}" + f"{'alone     pair':>22}" * len(SETTINGS))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            config = str(REPO / "experiments" / "configs" / f"{name}.yaml")
            if args.shrink > 1:
                config = shrunk(config, args.shrink, Path(tmp))
            r = results[name] = measure(config, Path(tmp), args.pairs, args.cap)
            cells = []
            for s in r.values():
                pair = f"{s['pair_s']:.1f}" if s["pair_s"] else f">{s['cap_s']:.0f}"
                pair = pair if args.pairs else "-"
                cells.append(f"{s['alone_s']:8.1f} {pair:>8}")
            print(f"  {name:<18}" + "".join(f"{c:>22}" for c in cells), flush=True)
    print(f"  (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs when it ended)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
