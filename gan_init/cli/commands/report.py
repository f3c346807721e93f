"""``gan-init report``: the report of a runs folder, or the map of committed run tables.

    gan-init report runs                          # report.md with plots from run folders
    gan-init report docs/results/sweep_2d.csv docs/results/sweep_3d.csv   # the map, tables only
    gan-init report runs --table runs/my_table.csv # write the run table of a runs folder

A path ending in ``.csv`` is a run table (``gan_init.experiment.run_table``): the map
(``map.md``, ``map.png``) is rebuilt from it and its ``.json`` beside it alone, without
``runs/``; verdicts are refused for tables whose seeds are declared tuning seeds unless
``--pilot`` (descriptive, no verdicts).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gan_init.cli.commands.args import Parser
from gan_init.experiment.report import write_report


def main(argv: list[str]) -> int:
    p = Parser(prog="gan-init report", description=__doc__)
    p.add_argument(
        "inputs", nargs="*", default=["runs"], help="a runs folder, or run tables (.csv)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default RUNS_DIR/report, or beside the first table)",
    )
    p.add_argument(
        "--pilot", action="store_true", help="tables of tuning seeds: describe, no verdicts"
    )
    p.add_argument(
        "--table", default=None, help="write the run table of the runs folder to this .csv"
    )
    p.add_argument(
        "--runs", default=None, nargs="+", metavar="DIR",
        help="with tables: the runs folder(s) they came from (e.g. one per dimensionality), to "
        "draw scratch beside cyclegan",
    )  # fmt: skip
    p.add_argument(
        "--plan", default=None, metavar="SWEEP.yaml",
        help="with --table: the analysis plan (endpoints, declared seeds) of this sweep file",
    )  # fmt: skip
    args = p.parse_args(argv)
    tables = [Path(x) for x in args.inputs if x.endswith(".csv")]
    try:
        if tables:
            if len(tables) != len(args.inputs):
                raise ValueError("give either one runs folder or run tables (.csv), not both")
            from gan_init.experiment.report.map_render import write_map_report

            out = Path(args.out) if args.out else tables[0].parent / f"{tables[0].stem}_map"
            path = write_map_report(tables, out, pilot=args.pilot, runs_dirs=args.runs)
            print(f"map: {path}")
            return 0
        if len(args.inputs) != 1:
            raise ValueError(f"expected one runs folder, got {len(args.inputs)}: {args.inputs}")
        if args.table:
            from gan_init.experiment.run_table import collect, write_table

            rows = collect(args.inputs[0])
            meta = {"runs_dir": args.inputs[0], **_plan(args.plan)}
            print(f"run table: {write_table(rows, args.table, meta)}")
            return 0
        report = write_report(args.inputs[0], args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"gan-init report: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


def _plan(sweep_file: str | None) -> dict:
    """The endpoints and declared seeds of a sweep file, for a table's meta."""
    if sweep_file is None:
        return {}
    from gan_init.experiment.report.map import SeedPlan
    from gan_init.experiment.sweep import SEEDS_KEY, _read_sweep_file, load_endpoints

    spec = load_endpoints(sweep_file)
    seeds = SeedPlan.from_dict(_read_sweep_file(Path(sweep_file)).get(SEEDS_KEY), sweep_file)
    return {"sweep_file": sweep_file, "endpoints": spec.to_dict() if spec else None,
            SEEDS_KEY: seeds.to_dict()}  # fmt: skip
