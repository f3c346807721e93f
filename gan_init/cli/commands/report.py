"""``gan-init report RUNS_DIR``: Markdown report with PNG plots from the runs' metrics."""

from __future__ import annotations

import sys

from gan_init.cli.commands.args import Parser
from gan_init.experiment.report import write_report


def main(argv: list[str]) -> int:
    p = Parser(prog="gan-init report", description=__doc__)
    p.add_argument("runs_dir", nargs="?", default="runs")
    p.add_argument(
        "--out", default=None, help="folder for report.md and plots (default RUNS_DIR/report)"
    )
    args = p.parse_args(argv)
    try:
        report = write_report(args.runs_dir, args.out)
    except FileNotFoundError as err:
        print(f"gan-init report: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0
