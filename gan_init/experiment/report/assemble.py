"""The report assembled: ``RUNS_DIR/report/report.md`` and its PNGs, from the runs ``report.read``
collects, the analysis, the tables and the plots."""

from __future__ import annotations

import shutil
from pathlib import Path

from gan_init.core.files import write_atomic
from gan_init.experiment.report.analysis import analyse, section_spec
from gan_init.experiment.report.plots import (
    DIAGNOSTICS,
    PLOTTED,
    plot_diagnostic,
    plot_metric,
    plot_paired,
)
from gan_init.experiment.report.read import Run, collect_runs, sweep_specs, sweep_states
from gan_init.experiment.report.tables import (
    fixed_budget_lines,
    primary_table,
    secondary_table,
    section_header,
    side_by_side,
    spec_lines,
    sweep_time_lines,
    verdict_overview,
)
from gan_init.experiment.stats import (
    BASELINE,
    DEFAULT_SPEC,
    HOLM_FAMILY,
    VERDICT_RULE,
    EndpointSpec,
)


def curve_lines(runs: list[Run], dims: int, config: str, out_dir: Path) -> list[str]:
    """Every metric and transfer diagnostic against images shown."""
    tag = f"{config or dims}"
    lines: list[str] = []
    metrics = {m for r in runs for m in r.curves} | {m for r in runs for m in r.final}
    for metric in [m for m in PLOTTED if m in metrics]:
        png = plot_metric(
            runs,
            metric,
            out_dir / f"{tag}_{metric.replace('/', '_')}.png",
            f"{dims}D {config} {metric}",
        )
        if png:
            lines.append(f"![{dims}D {metric}]({png.name})")
    lines.append("")
    diag_pngs = [
        (kind, plot_diagnostic(runs, kind, out_dir / f"{tag}_diag_{kind}.png", f"{dims}D {kind}"))
        for kind in DIAGNOSTICS
    ]
    if any(png for _, png in diag_pngs):
        lines += ["### Transfer diagnostics", ""]
        for kind, png in diag_pngs:
            if png:
                lines += [f"**{kind}**: {DIAGNOSTICS[kind]}", "", f"![{kind}]({png.name})", ""]
    return lines


def sample_lines(runs: list[Run], tag: str, out_dir: Path) -> list[str]:
    lines = ["### Samples (first seed of each group)", ""]
    for group in sorted({r.group for r in runs}):
        member = min(
            (r for r in runs if r.group == group and r.samples), key=lambda r: r.seed, default=None
        )
        if member and member.samples:
            target = out_dir / f"{tag}_samples_{member.strategy}_{member.grow}.png"
            shutil.copyfile(member.samples, target)
            lines.append(f"**{group}**, seed {member.seed}\n\n![{group}]({target.name})\n")
    return lines


def dims_section(
    runs: list[Run],
    dims: int,
    out_dir: Path,
    config: str = "",
    spec: EndpointSpec = DEFAULT_SPEC,
    spec_note: str = "",
) -> list[str]:
    """One section per (dims, noise config): the plan, the paired tables, then the curves."""
    lines = section_header(runs, dims, config, spec_note or "(the report's default)", spec)
    lines += primary_table(runs, spec, analyse(runs, spec, spec.primary))
    for endpoint in spec.secondary:
        lines += secondary_table(runs, spec, endpoint)
    lines += curve_lines(runs, dims, config, out_dir)
    lines += fixed_budget_lines(runs, sorted({r.group for r in runs}))
    return lines + sample_lines(runs, f"{config or dims}", out_dir)


Section = tuple[int, str, list[Run], EndpointSpec, str]  # dims, config, runs, spec, its source


def sections_of(runs: list[Run], runs_dir: Path) -> list[Section]:
    """The runs split by (dims, noise config), each with the endpoints it was run under."""
    specs = sweep_specs(runs_dir)
    sections = []
    for dims, config in sorted({(r.dims, r.config) for r in runs}):
        members = [r for r in runs if r.dims == dims and r.config == config]
        spec, note = section_spec(members, specs)
        sections.append((dims, config, members, spec, note))
    return sections


def plan_lines(sections: list[Section]) -> list[str]:
    """The analysis plan, once per distinct spec, naming the sections it covers."""
    lines = ["## Analysis plan (fixed before the runs)", ""]
    plans: dict[str, list[str]] = {}
    for dims, config, _, spec, note in sections:
        plans.setdefault("\n".join(spec_lines(spec, note)), []).append(f"{dims}D `{config}`")
    for plan, names in plans.items():
        lines += [f"**{', '.join(names)}**", "", plan]
    return lines + [f"Verdict rule: {VERDICT_RULE} {HOLM_FAMILY}", ""]


def headline_lines(sections: list[Section], out_dir: Path) -> list[str]:
    """The plot to look at first (paired differences to scratch) and the verdicts under it."""
    panels = [
        (f"{dims}D {config}", spec, analyse(members, spec, spec.primary))
        for dims, config, members, spec, _ in sections
    ]
    headline = plot_paired(panels, out_dir / "paired_difference.png")
    if not headline:
        return []
    return [
        "## Paired difference to scratch (primary endpoint)",
        "",
        f"![paired difference to scratch]({headline.name})",
        "",
        "Diamond and bar: mean paired difference and its 95% t interval (not adjusted); "
        "grey dots: the seeds; shaded: the equivalence band; left of zero is better for a "
        "lower-is-better endpoint. The verdicts use Holm-adjusted p across the strategies of "
        "a panel, so a bar that misses zero can still be inconclusive.",
        "",
        *verdict_overview(panels),
    ]


def write_report(runs_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and its PNGs to ``out_dir`` (default ``RUNS_DIR/report``)."""
    runs_dir = Path(runs_dir)
    runs = collect_runs(runs_dir)
    if not runs:
        raise FileNotFoundError(
            f"{runs_dir}: no finished runs (expected {runs_dir}/2d/<run>/summary.json or 3d/...); "
            "run `make train-2d` or `make sweep-2d` first"
        )
    out_dir = Path(out_dir) if out_dir else runs_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = sections_of(runs, runs_dir)
    lines = [
        "# gan-init report: CycleGAN generator as initialization for a progressive noise GAN",
        "",
        f"Runs read from `{runs_dir}`. Each strategy is compared with `{BASELINE}` of the same "
        "seed, growth mode and noise config (they share the critic and stem init, the latent "
        "draws and the data stream): a paired analysis by seed.",
        "",
        *plan_lines(sections),
        *sweep_time_lines(sweep_states(runs_dir)),
        *headline_lines(sections, out_dir),
    ]
    if len({r.dims for r in runs}) == 2:
        lines += side_by_side(runs)
    for dims, config, members, spec, note in sections:
        lines += dims_section(members, dims, out_dir, config, spec, note)
    report = out_dir / "report.md"
    write_atomic(report, "\n".join(lines) + "\n")
    return report
