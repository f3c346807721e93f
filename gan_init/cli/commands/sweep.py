"""``gan-init sweep FILE``: run a W&B sweep file locally (no server, no account), resumably.

The same file works online with ``wandb sweep FILE`` + ``wandb agent``; here W&B's own search
logic (the ``sweeps`` package) proposes the runs and each runs once. Kill it and start it again:
finished runs are skipped, an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import sys

from gan_init.cli.commands.args import Parser
from gan_init.core.processes import Interrupted, LockedError
from gan_init.experiment.sweep import run_sweep


def main(argv: list[str]) -> int:
    p = Parser(
        prog="gan-init sweep",
        description=__doc__,
    )
    p.add_argument("file", help="W&B sweep YAML, e.g. experiments/sweeps/init_strategy_2d.yaml")
    p.add_argument("--runs_dir", default=os.environ.get("GAN_INIT_RUNS_DIR", "runs"))
    p.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    try:
        state = run_sweep(
            args.file, runs_dir=args.runs_dir, max_runs=args.max_runs, dry_run=args.dry_run
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
