"""``gan-init sweep FILE``: run a W&B sweep file locally (no server, no account), resumably.

The same file works online with ``wandb sweep FILE`` + ``wandb agent``; here W&B's own search
logic (the ``sweeps`` package) proposes the runs and each runs once. Kill it and start it again:
finished runs are skipped, an interrupted run resumes from its last checkpoint.

Runs run side by side, by default one per CPU at one CPU thread each (on a 2-core machine: two
at once, measured 1.74x the runs per hour of one at a time at 2 threads, docs/performance.md);
``--threads N`` gives each run N threads (and as many runs at once as the CPUs allow),
``--parallel K`` sets the runs at once. With a GPU visible, one run at a time unless ``--parallel`` says otherwise.
"""

from __future__ import annotations

import os
import sys

from gan_init.cli.commands.args import Parser
from gan_init.core.processes import Interrupted, LockedError
from gan_init.core.threads import available_cpus, given_threads, sweep_shares
from gan_init.experiment.sweep import run_sweep


def main(argv: list[str]) -> int:
    p = Parser(
        prog="gan-init sweep",
        description=__doc__,
    )
    p.add_argument(
        "file", help="W&B sweep YAML, e.g. experiments/sweeps/map_2d_scarce_stressed.yaml"
    )
    p.add_argument("--runs_dir", default=os.environ.get("GAN_INIT_RUNS_DIR", "runs"))
    p.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        metavar="K",
        help="runs at once (default: one per CPU at one thread each; 1 with a GPU)",
    )
    data = p.add_argument_group(
        "your data", "every run on a folder of T1/T2 NIfTI files (see gan-init pipeline --help)"
    )
    data.add_argument("--data", default=None, metavar="DIR")
    data.add_argument("--layout", default=None, metavar="NAME", help="ixi, brats or custom")
    data.add_argument("--t1_pattern", default=None, metavar="GLOB")
    data.add_argument("--t2_pattern", default=None, metavar="GLOB")
    data.add_argument("--share_subjects", action="store_true")
    args = p.parse_args(argv)
    try:
        pipeline_args, tag = _run_args(args)
        parallel, threads = _shares(args.parallel)
        if not args.dry_run:
            print(
                f"gan-init sweep: {parallel} run{'s' * (parallel > 1)} at once, {threads} CPU "
                f"thread{'s' * (threads > 1)} each ({available_cpus()} CPUs; --parallel K, "
                "--threads N to change)",
                flush=True,
            )
        state = run_sweep(
            args.file,
            runs_dir=args.runs_dir,
            max_runs=args.max_runs,
            dry_run=args.dry_run,
            parallel=parallel,
            threads=threads,
            pipeline_args=pipeline_args,
            tag=tag,
        )
    except (ValueError, FileNotFoundError, LockedError) as err:  # CorruptFileError: a ValueError
        print(f"gan-init sweep: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"gan-init sweep: {stop}; run the same command again to resume", file=sys.stderr)
        return stop.exit_code
    counts: dict[str, int] = {}
    for record in state.runs:
        key = record.get("status", record["state"])
        counts[key] = counts.get(key, 0) + 1
    print(f"sweep {args.file}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(f"state: {state.path}")
    return 0


def _run_args(args) -> tuple[list[str], str | None]:
    """The data options every run gets, the W&B group of the sweep's runs, and the data's name
    (None for the built-in data); the folder is checked here, in one line."""
    from pathlib import Path

    from gan_init.experiment.pipeline import PipelineOptions

    opts = PipelineOptions(
        data=args.data, layout=args.layout, t1_pattern=args.t1_pattern,
        t2_pattern=args.t2_pattern, share_subjects=args.share_subjects,
    )  # fmt: skip
    tag = opts.factors()["data"]["name"] if opts.data else None
    out = [f"--wandb_group={Path(args.file).stem}{'-' + tag if tag else ''}"]
    if opts.data:
        out += [f"--data={opts.data}", f"--layout={opts.layout}"]
        out += [
            f"--{k}={getattr(opts, k)}" for k in ("t1_pattern", "t2_pattern") if getattr(opts, k)
        ]
        out += ["--share_subjects"] if opts.share_subjects else []
    return out, tag


def _shares(parallel: int | None) -> tuple[int, int]:
    """(runs at once, threads per run) from the CPUs this process may use, the threads the user
    gave (``--threads``, ``GAN_INIT_THREADS``, ``OMP_NUM_THREADS``) and ``--parallel``."""
    if parallel is None and _gpus() > 0:
        parallel = 1  # the runs would share one device's memory
    return sweep_shares(available_cpus(), parallel, given_threads())


def _gpus() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return 0
    import torch  # only when the count is not given: about a second

    return torch.cuda.device_count()
