"""``gan-init report RUNS_DIR``: the answer, as a Markdown report with PNG plots.

Reads every noise-GAN run under ``RUNS_DIR/{2d,3d}/*/`` (its ``summary.json`` and the CSV metrics
its CSVLogger wrote) and writes ``RUNS_DIR/report/report.md`` with:

- the pre-specified endpoints of each sweep (the ``endpoints:`` key of its sweep file, recorded in
  ``RUNS_DIR/sweeps/<sweep>.json``; ``gan_init.experiment.stats.DEFAULT_SPEC`` for runs outside a sweep),
  before any number;
- the plot to look at first: each strategy's paired difference to ``scratch`` (same seed, growth
  mode and noise config) in the primary endpoint, with its 95% CI, the zero line and the
  equivalence band;
- per sweep (dims x noise config): the paired analysis of the primary endpoint (mean difference
  and CI, Holm-adjusted p, TOST, one-word verdict, the smallest difference detectable at the
  stated power) and of the secondary ones, next to the metric's noise floor (``eval/swd_floor``);
- each metric and transfer diagnostic (``diag/...``) against images shown (mean and min-max over
  seeds), a table at fixed budgets, divergence counts, a sample grid per strategy; 2D and 3D side
  by side when both exist.
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.core.files import csv_attempts, read_json, write_atomic
from gan_init.experiment.stats import (
    BASELINE,
    DEFAULT_SPEC,
    HIGHER_IS_BETTER,
    VERDICT_RULE,
    Comparison,
    Endpoint,
    EndpointSpec,
    compare_to_baseline,
    normalized_auc,
)

PRIMARY = ("eval/swd", "eval/fid")
PLOTTED = (
    "eval/swd", "eval/fid", "eval/kid", "eval/precision", "eval/recall",
    "eval/msssim_fake", "eval/memo_fraction",
)  # fmt: skip
X_KEY = "progress/images_shown"
CURVE_PREFIXES = ("eval/", "diag/")
# Transfer diagnostics, logged per part as diag/<kind>/<part> (latent_stem, trunk, decoder, head).
DIAGNOSTICS = {
    "weight_dist": "relative L2 distance of the weights from their start",
    "cka": "linear CKA of the activations on fixed latents against step 0",
    "update_ratio": "|dw| / |w| per step",
}


@dataclass
class Run:
    """One noise-GAN run: identity, status and metric curves ``{metric: (images_shown, value)}``."""

    dims: int
    strategy: str
    grow: str
    seed: int
    status: str
    path: Path
    config: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    samples: Path | None = None

    @property
    def group(self) -> str:
        return f"{self.strategy} ({self.grow})"


def read_curves(csv_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Metric curves against images shown from a Lightning CSVLogger file (sparse rows)."""
    points: dict[str, list[tuple[float, float]]] = {}
    images_at_step: dict[int, float] = {}
    rows = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
            if row.get(X_KEY) not in (None, "") and row.get("step") not in (None, ""):
                images_at_step[int(float(row["step"]))] = float(row[X_KEY])
    steps = sorted(images_at_step)
    for row in rows:
        x = row.get(X_KEY)
        if x in (None, "") and row.get("step") not in (None, "") and steps:
            step = int(float(row["step"]))
            i = int(np.searchsorted(steps, step, side="right")) - 1
            x = images_at_step[steps[max(i, 0)]]
        if x in (None, ""):
            continue
        for key, value in row.items():
            if key.startswith(CURVE_PREFIXES) and value not in (None, ""):
                v = float(value)
                if math.isfinite(v):
                    points.setdefault(key, []).append((float(x), v))
    curves = {}
    for key, pts in points.items():
        pts.sort()
        xs, ys = zip(*pts)
        curves[key] = (np.asarray(xs), np.asarray(ys))
    return curves


def read_run_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A run's curves over all its attempts (``gan_init.core.files.csv_attempts``). A later attempt's
    points replace an earlier attempt's from where the later one starts (the earlier went past
    the checkpoint the later resumed from)."""
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path in csv_attempts(run_dir):
        for key, (xs, ys) in read_curves(path).items():
            if key in merged:
                old_x, old_y = merged[key]
                keep = old_x < xs[0]
                xs, ys = np.concatenate([old_x[keep], xs]), np.concatenate([old_y[keep], ys])
            merged[key] = (xs, ys)
    return merged


def collect_runs(runs_dir: Path) -> list[Run]:
    runs = []
    for summary_file in sorted(runs_dir.glob("*/*/summary.json")):
        summary = read_json(summary_file)
        if (
            not summary
            or summary.get("status") in ("running", "interrupted")
            or "dims" not in summary
        ):
            continue
        run_dir = summary_file.parent
        curves = read_run_curves(run_dir)
        final = {k: float(v) for k, v in (summary.get("metrics") or {}).items() if _is_number(v)}
        for key, (_, ys) in curves.items():
            final.setdefault(key, float(ys[-1]))
        samples = None
        if summary.get("samples"):
            pngs = sorted(Path(summary["samples"]).glob("*.png"))
            samples = pngs[0] if pngs else None
        runs.append(
            Run(
                dims=int(summary["dims"]),
                strategy=summary["init_strategy"],
                grow=summary["grow"],
                seed=int(summary["seed"]),
                status=summary["status"],
                path=run_dir,
                config=config_of(summary),
                curves=curves,
                final=final,
                samples=samples,
            )  # fmt: skip
        )
    return runs


def config_of(summary: dict[str, Any]) -> str:
    """The noise config a run used (runs of different configs are never pooled)."""
    if summary.get("noise_config"):
        return summary["noise_config"]
    options = summary.get("options") or {}
    if options.get("noise_config"):
        return Path(options["noise_config"]).stem
    gpu = "_gpu" if summary.get("scale") == "gpu" else ""
    return f"noise_{summary['dims']}d{gpu}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval (nan half-width for one value)."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    if len(arr) == 1:
        return float(arr[0]), math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return float(arr.mean()), float(half)


def value_at(run: Run, metric: str, budget: float) -> float | None:
    """The last evaluation at or before ``budget`` images shown."""
    if metric not in run.curves:
        return None
    xs, ys = run.curves[metric]
    i = int(np.searchsorted(xs, budget, side="right")) - 1
    return float(ys[i]) if i >= 0 else None


def images_to_reach(run: Run, metric: str, target: float) -> float | None:
    if metric not in run.curves:
        return None
    xs, ys = run.curves[metric]
    ok = ys >= target if metric in HIGHER_IS_BETTER else ys <= target
    return float(xs[np.argmax(ok)]) if ok.any() else None


# ---------------------------------------------------------------------------------------------
# Endpoints: one value per run, then paired by seed (gan_init.experiment.stats)


def sweep_specs(runs_dir: Path) -> dict[tuple[str, str], EndpointSpec]:
    """Each sweep run's pre-specified endpoints, keyed by its folder (``<parent>/<name>``, so a
    moved runs folder still matches), from the sweep state files ``gan-init sweep`` writes."""
    specs: dict[tuple[str, str], EndpointSpec] = {}
    for state_file in sorted((runs_dir / "sweeps").glob("*.json")):
        state = read_json(state_file) or {}
        if not state.get("endpoints"):
            continue
        source = state.get("sweep_file") or state_file.name
        spec = EndpointSpec.from_dict(state["endpoints"], f"{state_file}: endpoints", source)
        for record in state.get("runs", []):
            if record.get("run_dir"):
                run_dir = Path(record["run_dir"])
                specs[(run_dir.parent.name, run_dir.name)] = spec
    return specs


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def sweep_time_lines(runs_dir: Path) -> list[str]:
    """What each sweep cost: its runs by state, their summed run time and the wall time from the
    first run's start to the last run's end (from ``runs/sweeps/<name>.json``)."""
    rows = []
    for state_file in sorted((runs_dir / "sweeps").glob("*.json")):
        state = read_json(state_file) or {}
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


def section_spec(
    runs: list[Run], specs: dict[tuple[str, str], EndpointSpec]
) -> tuple[EndpointSpec, str]:
    """The spec the section's runs were run under, and where it comes from."""
    found = [specs.get((r.path.parent.name, r.path.name)) for r in runs]
    distinct = {s.source: s for s in found if s is not None}
    if not distinct:
        return (
            DEFAULT_SPEC,
            "not pre-specified (no sweep recorded these runs): the report's default",
        )
    source = max(distinct, key=lambda k: sum(s is not None and s.source == k for s in found))
    note = f"pre-specified in `{source}`"
    if len(distinct) > 1:
        note += f" (the runs come from {len(distinct)} sweep files; this one holds most)"
    return distinct[source], note


def usable(runs: list[Run]) -> list[Run]:
    """Runs that enter the paired analysis: finished (diverged and failed runs are counted, and
    their seed's pair is incomplete)."""
    return [r for r in runs if r.status == "finished"]


def reach_value(run: Run, scratch: Run | None, metric: str) -> tuple[float, bool] | None:
    """Images until ``run`` first reaches ``scratch``'s final ``metric`` (same seed), and whether
    it was censored at the run's budget (never reached)."""
    if scratch is None or metric not in run.curves or metric not in scratch.final:
        return None
    images = images_to_reach(run, metric, scratch.final[metric])
    if images is None:
        return float(run.curves[metric][0][-1]), True
    return images, False


def endpoint_values(
    runs: list[Run], endpoint: Endpoint
) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, str], int]]:
    """``{(strategy, grow, seed): value}`` over the usable runs, and the censored count per
    (strategy, grow) (``reach`` only)."""
    values: dict[tuple[str, str, int], float] = {}
    censored: dict[tuple[str, str], int] = {}
    good = usable(runs)
    scratch = {(r.grow, r.seed): r for r in good if r.strategy == BASELINE}
    for run in good:
        key = (run.strategy, run.grow, run.seed)
        if endpoint.summary == "auc" and endpoint.metric in run.curves:
            values[key] = normalized_auc(*run.curves[endpoint.metric])
        elif endpoint.summary == "final" and endpoint.metric in run.final:
            values[key] = run.final[endpoint.metric]
        elif endpoint.summary == "reach":
            reached = reach_value(run, scratch.get((run.grow, run.seed)), endpoint.metric)
            if reached is not None:
                values[key] = reached[0]
                censored[key[:2]] = censored.get(key[:2], 0) + reached[1]
    return values, censored


def analyse(runs: list[Run], spec: EndpointSpec, endpoint: Endpoint) -> list[Comparison]:
    """Paired comparisons to scratch; the margin (and so TOST) applies to the primary only."""
    values, _ = endpoint_values(runs, endpoint)
    margin = spec.margin if endpoint == spec.primary else None
    return compare_to_baseline(
        values, metric=endpoint.metric, margin=margin, alpha=spec.alpha, power=spec.power
    )


# ---------------------------------------------------------------------------------------------
# Formatting


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


# ---------------------------------------------------------------------------------------------
# Tables


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


# ---------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _strategy_colors(strategies: list[str]) -> dict[str, Any]:
    colors = _pyplot().get_cmap("tab10" if len(strategies) <= 10 else "tab20")
    return {s: colors(i) for i, s in enumerate(strategies)}


def _mean_band(ax: Any, members: list[Run], metric: str, color: Any, label: str) -> None:
    """Mean over seeds on the span all of them cover, min-max band."""
    end = min(r.curves[metric][0][-1] for r in members)
    start = max(r.curves[metric][0][0] for r in members)
    grid = np.linspace(start, end, 50) if end > start else np.array([end])
    ys = np.stack([np.interp(grid, *r.curves[metric]) for r in members])
    ax.plot(grid, ys.mean(axis=0), color=color, label=f"{label} (n={len(members)})")
    if len(members) > 1:
        ax.fill_between(grid, ys.min(axis=0), ys.max(axis=0), alpha=0.15, color=color)


def plot_metric(runs: list[Run], metric: str, out: Path, title: str) -> Path | None:
    """One panel per growth mode (curves of different modes are measured at different sizes
    early on), one colour per strategy in every panel; mean over seeds, min-max band."""
    plt = _pyplot()
    runs = [r for r in runs if metric in r.curves]
    if not runs:
        return None
    strategies = sorted({r.strategy for r in runs})
    color = _strategy_colors(strategies)
    grows = sorted({r.grow for r in runs})
    fig, axes = plt.subplots(
        1, len(grows), figsize=(5.2 * len(grows) + 1.0, 4.0), dpi=120, sharey=True, squeeze=False
    )
    for ax, grow in zip(axes[0], grows):
        for strategy in strategies:
            members = [r for r in runs if r.strategy == strategy and r.grow == grow]
            if members:
                _mean_band(ax, members, metric, color[strategy], strategy)
        note = " (measured at the current level's size)" if grow == "full" else ""
        ax.set_title(f"grow {grow}{note}", fontsize=9)
        ax.set_xlabel("images shown")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(metric.removeprefix("eval/"))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_diagnostic(runs: list[Run], kind: str, out: Path, title: str) -> Path | None:
    """``diag/<kind>/<part>`` against images shown: a row per growth mode, a column per part,
    a colour per strategy (mean over seeds, min-max band)."""
    plt = _pyplot()
    prefix = f"diag/{kind}/"
    parts = sorted({k.removeprefix(prefix) for r in runs for k in r.curves if k.startswith(prefix)})
    if not parts:
        return None
    runs = [r for r in runs if any(k.startswith(prefix) for k in r.curves)]
    color = _strategy_colors(sorted({r.strategy for r in runs}))
    grows = sorted({r.grow for r in runs})
    fig, axes = plt.subplots(
        len(grows), len(parts), figsize=(3.6 * len(parts) + 1, 3.0 * len(grows) + 0.6),
        dpi=110, squeeze=False, sharex=True,
    )  # fmt: skip
    for (i, grow), (j, part) in ((g, p) for g in enumerate(grows) for p in enumerate(parts)):
        ax, metric = axes[i][j], prefix + part
        for strategy in color:
            members = [r for r in runs if (r.strategy, r.grow) == (strategy, grow)]
            members = [r for r in members if metric in r.curves]
            if members:
                _mean_band(ax, members, metric, color[strategy], strategy)
        if kind == "update_ratio":
            ax.set_yscale("log")
        ax.set_title(f"{part}, grow {grow}", fontsize=9)
        ax.grid(alpha=0.3)
        if i == len(grows) - 1:
            ax.set_xlabel("images shown")
        if ax.lines:
            ax.legend(fontsize=6)
        else:  # e.g. `to_image` exists in `full` growth only: say so, not an empty frame
            ax.text(0.5, 0.5, f"no {part} in grow {grow}", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="0.45")  # fmt: skip
            ax.set_yticks([])
    fig.suptitle(f"{title}: {DIAGNOSTICS.get(kind, kind)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_paired(panels: list[tuple[str, EndpointSpec, list[Comparison]]], out: Path) -> Path | None:
    """The plot to look at first: per sweep (a column of panels) and growth mode (a panel), each
    strategy's mean paired difference to scratch in the primary endpoint with its 95% CI (bar),
    the per-seed differences (dots), zero (solid) and the equivalence band (shaded). Sized so its
    labels stay readable at the README's width (about 900 px)."""
    plt = _pyplot()
    rows = [(title, spec, cs) for title, spec, cs in panels if cs]
    if not rows:
        return None
    grows = sorted({c.grow for _, _, cs in rows for c in cs})
    strategies = sorted({c.strategy for _, _, cs in rows for c in cs}, reverse=True)
    fig, axes = plt.subplots(
        len(grows), len(rows), figsize=(6.4 * len(rows), (0.55 * len(strategies) + 1.3) * len(grows) + 0.4),
        dpi=110, squeeze=False, sharey=True,
    )  # fmt: skip
    for (j, (title, spec, comparisons)), (i, grow) in (
        (r, g) for r in enumerate(rows) for g in enumerate(grows)
    ):
        ax = axes[i][j]
        _paired_panel(ax, [c for c in comparisons if c.grow == grow], strategies, spec)
        ax.set_title(f"{title}, grow {grow}", fontsize=10)
        if i == len(grows) - 1:
            ax.set_xlabel(f"Δ {spec.primary.label}: strategy − scratch (same seed)", fontsize=9)
    fig.tight_layout(w_pad=1.0)
    fig.savefig(out)
    plt.close(fig)
    return out


def _deciding_p(c: Comparison) -> str:
    """The pairs and the Holm-adjusted p values behind a verdict, for a plot label."""
    parts = [f"n={c.test.n}"]
    if c.verdict in ("better", "worse", "inconclusive") and math.isfinite(c.p_holm):
        parts.append(f"Holm p {c.p_holm:.2g}")
    if c.verdict in ("equivalent", "inconclusive") and math.isfinite(c.tost_holm):
        parts.append(f"TOST {c.tost_holm:.2g}")
    return ", ".join(parts)


def _paired_panel(
    ax: Any, comparisons: list[Comparison], strategies: list[str], spec: EndpointSpec
) -> None:
    ax.set_yticks(range(len(strategies)), strategies, fontsize=9)
    ax.set_ylim(-0.7, len(strategies) - 0.3)
    ax.axvline(0.0, color="black", lw=1)
    margins = [c.margin for c in comparisons if math.isfinite(c.margin)]
    if margins:
        ax.axvspan(-margins[0], margins[0], color="tab:green", alpha=0.12, label="equivalence")
    colour = {"better": "tab:blue", "worse": "tab:red", "equivalent": "tab:green"}
    for c in comparisons:
        y = strategies.index(c.strategy)
        ax.plot(c.diffs, [y] * len(c.diffs), "o", ms=3, color="0.55", zorder=2)
        low, high = c.test.ci
        col = colour.get(c.verdict, "0.2")
        if math.isfinite(low):
            ax.errorbar(c.test.mean, y, xerr=[[c.test.mean - low], [high - c.test.mean]],
                        fmt="D", color=col, ms=5, capsize=3, zorder=3)  # fmt: skip
        ax.annotate(f"{c.verdict}\n{_deciding_p(c)}", (1.02, y), fontsize=8.5, va="center",
                    xycoords=("axes fraction", "data"), color=col)  # fmt: skip
    for strategy in sorted(set(strategies) - {c.strategy for c in comparisons}):
        ax.annotate("not run here", (1.02, strategies.index(strategy)), fontsize=8.5, va="center",
                    xycoords=("axes fraction", "data"), color="0.55")  # fmt: skip
    better = "← better | worse →" if spec.primary.sign > 0 else "← worse | better →"
    ax.text(0.5, 0.02, better, transform=ax.transAxes, ha="center", va="bottom", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if margins:
        ax.legend(fontsize=8, loc="upper right")


# ---------------------------------------------------------------------------------------------
# Sections


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


def write_report(runs_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    runs_dir = Path(runs_dir)
    runs = collect_runs(runs_dir)
    if not runs:
        raise FileNotFoundError(
            f"{runs_dir}: no finished runs (expected {runs_dir}/2d/<run>/summary.json or 3d/...); "
            "run `make train-2d` or `make sweep-2d` first"
        )
    out_dir = Path(out_dir) if out_dir else runs_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = sweep_specs(runs_dir)
    sections = []
    for dims, config in sorted({(r.dims, r.config) for r in runs}):
        members = [r for r in runs if r.dims == dims and r.config == config]
        spec, note = section_spec(members, specs)
        sections.append((dims, config, members, spec, note))
    lines = [
        "# gan-init report: CycleGAN generator as initialization for a progressive noise GAN",
        "",
        f"Runs read from `{runs_dir}`. Each strategy is compared with `{BASELINE}` of the same "
        "seed, growth mode and noise config (they share the critic and stem init, the latent "
        "draws and the data stream): a paired analysis by seed.",
        "",
        "## Analysis plan (fixed before the runs)",
        "",
    ]
    plans: dict[str, list[str]] = {}
    for dims, config, _, spec, note in sections:
        plans.setdefault("\n".join(spec_lines(spec, note)), []).append(f"{dims}D `{config}`")
    for plan, names in plans.items():
        lines += [f"**{', '.join(names)}**", "", plan]
    lines += [f"Verdict rule: {VERDICT_RULE}", ""]
    lines += sweep_time_lines(runs_dir)
    panels = [
        (f"{dims}D {config}", spec, analyse(members, spec, spec.primary))
        for dims, config, members, spec, _ in sections
    ]
    headline = plot_paired(panels, out_dir / "paired_difference.png")
    if headline:
        lines += [
            "## Paired difference to scratch (primary endpoint)",
            "",
            f"![paired difference to scratch]({headline.name})",
            "",
            "Diamond and bar: mean paired difference and its 95% t interval (not adjusted); "
            "grey dots: the seeds; shaded: the equivalence band; left of zero is better for a "
            "lower-is-better endpoint. The verdicts use Holm-adjusted p across the strategies of "
            "a panel, so a bar that misses zero can still be inconclusive.",
            "",
        ]
        lines += verdict_overview(panels)
    if len({r.dims for r in runs}) == 2:
        lines += side_by_side(runs)
    for dims, config, members, spec, note in sections:
        lines += dims_section(members, dims, out_dir, config, spec, note)
    report = out_dir / "report.md"
    write_atomic(report, "\n".join(lines) + "\n")
    return report
