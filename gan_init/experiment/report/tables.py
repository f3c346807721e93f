"""Markdown tables: the analysis plan, the paired tables, fixed budgets, divergences, the
sweeps' cost. Each function returns lines of Markdown from ``Run`` records and comparisons;
none reads a file.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.experiment.report.analysis import (
    PRIMARY,
    analyse,
    endpoint_values,
    mean_ci,
    value_at,
)
from gan_init.experiment.report.read import Run
from gan_init.experiment.stats import BASELINE, Comparison, Endpoint, EndpointSpec


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def _fmt_ci(mean: float, half: float) -> str:
    return _fmt(mean) if math.isnan(half) else f"{_fmt(mean)} ± {_fmt(half, 2)}"


def _fmt_diff(c: Comparison) -> str:
    low, high = c.test.ci
    if math.isnan(low):
        return _fmt(c.test.mean)
    return f"{_fmt(c.test.mean, 3)} [{_fmt(low, 3)}, {_fmt(high, 3)}]"


def _fmt_margin(spec: EndpointSpec) -> str:
    if isinstance(spec.margin, str):
        return f"± {spec.margin} of scratch's mean {spec.primary.label} (per growth mode)"
    return f"± {_fmt(spec.margin)} {spec.primary.label}"


def spec_lines(spec: EndpointSpec, note: str) -> list[str]:
    """The analysis plan, as it was fixed before the runs."""
    lines = [f"Endpoints {note}:", ""]
    lines.append(f"- **primary**: `{spec.primary}`: {spec.primary.meaning}")
    for e in spec.secondary:
        lines.append(f"- secondary: `{e}`: {e.meaning}")
    lines.append(
        f"- equivalence margin {_fmt_margin(spec)}; alpha {spec.alpha}; detectable difference "
        f"stated at {spec.power:.0%} power"
    )
    return lines + [""]


def noise_floor_line(runs: list[Run], metric: str) -> str:
    """The metric between two disjoint real sets of the evaluation size (``<metric>_floor``)."""
    key = f"{metric}_floor"
    floors = [r.final[key] for r in runs if key in r.final]
    what = f"`{key}`, {metric.removeprefix('eval/').upper()} between two disjoint real sets"
    if not floors:
        return f"Noise floor ({what}): not measured (no run logged `{key}`)."
    spread = f", range {_fmt(min(floors))}–{_fmt(max(floors))}" if len(floors) > 1 else ""
    return f"Noise floor ({what}): {_fmt(float(np.mean(floors)))} ({len(floors)} runs{spread})."


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def sweep_time_lines(states: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """What each sweep cost: its runs by state, their summed run time and the wall time from the
    first run's start to the last run's end (``report.read.sweep_states``)."""
    rows = []
    for state_file, state in states:
        records = state.get("runs", [])
        if not records:
            continue
        spans = [
            (datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["ended"]))
            for r in records
            if r.get("started") and r.get("ended")
        ]
        states = {}
        for r in records:
            states[r.get("state", "?")] = states.get(r.get("state", "?"), 0) + 1
        counts = ", ".join(f"{n} {k}" for k, n in sorted(states.items()))
        run_time = sum((b - a).total_seconds() for a, b in spans)
        wall = (max(b for _, b in spans) - min(a for a, _ in spans)).total_seconds() if spans else 0
        name = state.get("sweep_file") or state_file.stem
        rows.append(f"| `{name}` | {counts} | {_minutes(run_time)} | {_minutes(wall)} |")
    if not rows:
        return []
    return [
        "## Sweeps run",
        "",
        "| sweep | runs | summed run time | wall time (first start to last end) |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "Run times include each run's CycleGAN stage when it trained one (once per seed) and its "
        "samples and final metrics; a run resumed after a stop counts from its last start.",
        "",
    ]


def primary_table(runs: list[Run], spec: EndpointSpec, comparisons: list[Comparison]) -> list[str]:
    e = spec.primary
    lines = [f"### Primary endpoint: {e.label}, paired difference strategy − scratch", ""]
    lines += [noise_floor_line(runs, e.metric), ""]
    lines.append(
        f"| strategy | grow | pairs | scratch mean | Δ mean [95% CI] | Holm p | TOST margin "
        f"| Holm TOST p | verdict | why | detectable Δ ({spec.power:.0%} power) | not paired |"
    )
    lines.append("| --- " * 12 + "|")
    for c in comparisons:
        excluded = unpaired_note(runs, c)
        lines.append(
            f"| {c.strategy} | {c.grow} | {c.test.n} | {_fmt(c.baseline_mean)} | {_fmt_diff(c)} "
            f"| {_fmt(c.p_holm, 2)} | ± {_fmt(c.margin, 3)} | {_fmt(c.tost_holm, 2)} "
            f"| **{c.verdict}** | {c.reason} | {_fmt(c.mde, 3)} | {excluded or '–'} |"
        )
    return lines + [
        "",
        "Verdict rule: see the analysis plan. Detectable Δ: the smallest true mean difference a "
        f"two-sided paired t test at alpha {spec.alpha} finds with {spec.power:.0%} probability, "
        "given the measured paired spread and number of pairs (noncentral t, no normal "
        "approximation; before Holm's adjustment).",
        "",
    ]


def unpaired_note(runs: list[Run], c: Comparison) -> str:
    """Seeds of the strategy or scratch (same growth mode) that did not make a pair, and why."""
    sides = {c.strategy: [], BASELINE: []}
    for r in runs:
        if r.grow == c.grow and r.strategy in sides:
            sides[r.strategy].append(r)
    reasons: dict[str, list[int]] = {}
    for seed in sorted({r.seed for rs in sides.values() for r in rs} - set(c.seeds)):
        why = [f"{s} {r.status}" for s, rs in sides.items() for r in rs if r.seed == seed]
        why = [w for w in why if not w.endswith("finished")]
        why += [f"no {s} run" for s, rs in sides.items() if all(r.seed != seed for r in rs)]
        reasons.setdefault(", ".join(why), []).append(seed)
    notes = [f"seed{'s' * (len(v) > 1)} {', '.join(map(str, v))}: {k}" for k, v in reasons.items()]
    return "; ".join(notes)


def secondary_table(runs: list[Run], spec: EndpointSpec, endpoint: Endpoint) -> list[str]:
    if endpoint.summary == "diverged":
        return divergence_table(runs)
    comparisons = analyse(runs, spec, endpoint)
    if not comparisons:
        return [f"### Secondary: {endpoint.label} (`{endpoint}`): not logged by these runs", ""]
    _, censored = endpoint_values(runs, endpoint)
    lines = [f"### Secondary: {endpoint.label} (`{endpoint}`)", ""]
    if endpoint.metric:
        lines += [noise_floor_line(runs, endpoint.metric), ""]
    extra = " | censored (never reached)" if endpoint.summary == "reach" else ""
    lines.append(
        f"| strategy | grow | pairs | strategy mean | scratch mean | Δ mean [95% CI] | p{extra} |"
    )
    lines.append("| --- " * (7 + bool(extra)) + "|")
    for c in comparisons:
        cells = [c.strategy, c.grow, str(c.test.n), _fmt(c.strategy_mean), _fmt(c.baseline_mean)]
        cells += [_fmt_diff(c), _fmt(c.test.p, 2)]
        if extra:
            cells.append(f"{censored.get((c.strategy, c.grow), 0)} of the strategy's runs")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "Secondary p values are unadjusted (descriptive).", ""]


def divergence_table(runs: list[Run]) -> list[str]:
    lines = ["### Secondary: divergences", "", "| strategy (grow) | runs | diverged | failed |"]
    lines.append("| --- | --- | --- | --- |")
    for group in sorted({r.group for r in runs}):
        members = [r for r in runs if r.group == group]
        counts = [sum(r.status == s for r in members) for s in ("diverged", "failed")]
        lines.append(f"| {group} | {len(members)} | {counts[0]} | {counts[1]} |")
    return lines + [""]


def fixed_budget_lines(runs: list[Run], groups: list[str]) -> list[str]:
    """Each primary metric at fractions of the shortest run's last evaluation (unpaired)."""
    ends = [r.curves[m][0][-1] for r in runs for m in PRIMARY if m in r.curves]
    if not ends:
        return []
    last = min(ends)
    budgets = sorted({round(last * f) for f in (0.25, 0.5, 1.0)})
    lines: list[str] = []
    for metric in [m for m in PRIMARY if any(len(r.curves.get(m, ((),))[0]) > 1 for r in runs)]:
        lines += [f"### {metric} at fixed budgets (mean ± 95% CI over seeds)", ""]
        lines.append("| strategy (grow) | " + " | ".join(f"{b:,} images" for b in budgets) + " |")
        lines.append("| --- |" + " --- |" * len(budgets))
        for group in groups:
            cells = []
            for b in budgets:
                members = [r for r in runs if r.group == group]
                vals = [v for r in members for v in [value_at(r, metric, b)] if v is not None]
                cells.append(_fmt_ci(*mean_ci(vals)) if vals else "–")
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def section_header(runs: list[Run], dims: int, config: str, spec_note: str, spec: EndpointSpec):
    lines = [f"## {dims}D, `{config}`" if config else f"## {dims}D", ""]
    lines.append(
        f"Endpoints {spec_note} (see the analysis plan): primary `{spec.primary}`, margin "
        f"{_fmt_margin(spec)}, alpha {spec.alpha}."
    )
    lines.append("")
    groups = sorted({r.group for r in runs})
    seeds = sorted({r.seed for r in runs})
    lines.append(f"{len(runs)} runs: {len(groups)} strategy/growth groups, seeds {seeds}.")
    return lines + [""]


def side_by_side(runs: list[Run]) -> list[str]:
    """One table of the final primary metric, a column per (dims, config): 2D next to 3D."""
    metric = next((m for m in PRIMARY if any(m in r.final for r in runs)), None)
    if metric is None:
        return []
    columns = sorted({(r.dims, r.config) for r in runs})
    groups = sorted({r.group for r in runs})
    lines = [f"## 2D and 3D side by side: final {metric} (mean ± 95% CI)", ""]
    lines.append("| strategy (grow) | " + " | ".join(f"{d}D `{c}`" for d, c in columns) + " |")
    lines.append("| --- |" + " --- |" * len(columns))
    for group in groups:
        cells = []
        for dims, config in columns:
            vals = [
                r.final[metric]
                for r in runs
                if (r.dims, r.config, r.group) == (dims, config, group) and metric in r.final
            ]
            cells.append(_fmt_ci(*mean_ci(vals)) if vals else "–")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return lines + [""]


def verdict_overview(panels: list[tuple[str, EndpointSpec, list[Comparison]]]) -> list[str]:
    """One word per strategy and (sweep, growth mode): the primary endpoint's verdict."""
    columns = [(title, g) for title, _, cs in panels for g in sorted({c.grow for c in cs})]
    if not columns:
        return []
    cell = {(t, c.grow, c.strategy): c for t, _, cs in panels for c in cs}
    lines = ["| strategy | " + " | ".join(f"{t}, grow {g}" for t, g in columns) + " |"]
    lines.append("| --- " * (len(columns) + 1) + "|")
    for strategy in sorted({c.strategy for _, _, cs in panels for c in cs}):
        cells = []
        for title, grow in columns:
            c = cell.get((title, grow, strategy))
            cells.append(f"**{c.verdict}** (Δ {_fmt(c.test.mean, 3)}, n={c.test.n})" if c else "–")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return lines + [""]
