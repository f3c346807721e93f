"""``gan-init report RUNS_DIR``: the answer, as a Markdown report with PNG plots.

Reads every noise-GAN run folder ``RUNS_DIR/<group>/<run>/`` (its ``summary.json`` and the CSV
metrics its CSVLogger wrote, over all attempts) and the sweep state files
``RUNS_DIR/sweeps/<sweep>.json``, and writes ``RUNS_DIR/report/report.md`` with:

- the pre-specified endpoints of each sweep (the ``endpoints:`` key of its sweep file, recorded in
  its state file; ``gan_init.experiment.stats.DEFAULT_SPEC`` for runs outside a sweep), before
  any number;
- the plot to look at first: each strategy's paired difference to ``scratch`` (same seed, growth
  mode and noise config) in the primary endpoint, with its 95% CI, the zero line and the
  equivalence band;
- per sweep (dims x noise config): the paired analysis of the primary endpoint (mean difference
  and CI, Holm-adjusted p, TOST, one-word verdict, the smallest difference detectable at the
  stated power) and of the secondary ones, next to the metric's noise floor (``eval/swd_floor``);
- each metric and transfer diagnostic (``diag/...``) against images shown (mean and min-max over
  seeds), a table at fixed budgets, divergence counts, a sample grid per strategy; 2D and 3D side
  by side when both exist.

The modules, in the order the data flows: ``read`` (run folders and sweep states -> ``Run``),
``analysis`` (endpoint values, paired comparisons), ``tables`` (Markdown), ``plots`` (PNG),
``assemble`` (``write_report``).
"""

from gan_init.experiment.report.analysis import (
    PRIMARY,
    analyse,
    endpoint_values,
    images_to_reach,
    mean_ci,
    value_at,
)
from gan_init.experiment.report.assemble import write_report
from gan_init.experiment.report.plots import (
    DIAGNOSTICS,
    PLOTTED,
    plot_diagnostic,
    plot_metric,
    plot_paired,
)
from gan_init.experiment.report.read import (
    X_KEY,
    Run,
    collect_runs,
    read_curves,
    read_run_curves,
    sweep_specs,
)

__all__ = [
    "DIAGNOSTICS", "PLOTTED", "PRIMARY", "X_KEY", "Run", "analyse", "collect_runs",
    "endpoint_values", "images_to_reach", "mean_ci", "plot_diagnostic", "plot_metric",
    "plot_paired", "read_curves", "read_run_curves", "sweep_specs", "value_at", "write_report",
]  # fmt: skip
