"""``gan-init report RUNS_DIR``: the answer, as a Markdown report with PNG plots.

Reads every noise-GAN run under ``RUNS_DIR/{2d,3d}/*/`` (its ``summary.json`` and the CSV metrics
its CSVLogger wrote) and writes ``RUNS_DIR/report/report.md`` with:

- each metric against images shown, per strategy and growth mode (mean and spread over seeds);
- a table at fixed budgets (mean and 95% t-interval over seeds);
- images needed to reach the scratch baseline's final quality;
- divergence counts;
- a significance test of each strategy's final value against ``scratch`` (Welch's t-test and the
  Mann-Whitney U test; with few seeds their power is low, and the report says how many);
- a sample grid per strategy; 2D and 3D side by side when both exist.
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.files import csv_attempts, read_json, write_atomic

# Lower is better for these; higher for precision/recall. MS-SSIM of samples is compared with
# the real images' (closer is better), so it gets no direction of its own.
LOWER_IS_BETTER = {"eval/swd", "eval/fid", "eval/kid", "eval/memo_fraction"}
HIGHER_IS_BETTER = {"eval/precision", "eval/recall"}
PRIMARY = ("eval/swd", "eval/fid")
PLOTTED = (
    "eval/swd", "eval/fid", "eval/kid", "eval/precision", "eval/recall",
    "eval/msssim_fake", "eval/memo_fraction",
)  # fmt: skip
X_KEY = "progress/images_shown"


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
            if key.startswith("eval/") and value not in (None, ""):
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
    """A run's curves over all its attempts (``gan_init.files.csv_attempts``). A later attempt's
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


def significance(values: list[float], baseline: list[float]) -> tuple[float, float]:
    """Two-sided p-values (Welch's t-test, Mann-Whitney U); nan when either side has < 2 runs."""
    from scipy import stats

    if len(values) < 2 or len(baseline) < 2:
        return math.nan, math.nan
    t = stats.ttest_ind(values, baseline, equal_var=False).pvalue
    u = stats.mannwhitneyu(values, baseline, alternative="two-sided").pvalue
    return float(t), float(u)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def _fmt_ci(mean: float, half: float) -> str:
    return _fmt(mean) if math.isnan(half) else f"{_fmt(mean)} ± {_fmt(half, 2)}"


def plot_metric(runs: list[Run], metric: str, out: Path, title: str) -> Path | None:
    """One panel per growth mode (curves of different modes are measured at different sizes
    early on), one colour per strategy in every panel; mean over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if metric in r.curves]
    if not runs:
        return None
    strategies = sorted({r.strategy for r in runs})
    colors = plt.get_cmap("tab10" if len(strategies) <= 10 else "tab20")
    color = {s: colors(i) for i, s in enumerate(strategies)}
    grows = sorted({r.grow for r in runs})
    fig, axes = plt.subplots(
        1, len(grows), figsize=(5.2 * len(grows) + 1.0, 4.0), dpi=120, sharey=True, squeeze=False
    )
    for ax, grow in zip(axes[0], grows):
        for strategy in strategies:
            members = [r for r in runs if r.strategy == strategy and r.grow == grow]
            if not members:
                continue
            end = min(r.curves[metric][0][-1] for r in members)
            start = max(r.curves[metric][0][0] for r in members)
            grid = np.linspace(start, end, 50) if end > start else np.array([end])
            ys = np.stack([np.interp(grid, *r.curves[metric]) for r in members])
            ax.plot(
                grid, ys.mean(axis=0), color=color[strategy], label=f"{strategy} (n={len(members)})"
            )
            if len(members) > 1:
                ax.fill_between(
                    grid, ys.min(axis=0), ys.max(axis=0), alpha=0.15, color=color[strategy]
                )
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


def dims_section(runs: list[Run], dims: int, out_dir: Path, config: str = "") -> list[str]:
    """One section per (dims, noise config)."""
    lines = [f"## {dims}D, `{config}`" if config else f"## {dims}D", ""]
    tag = f"{config or dims}"
    groups = sorted({r.group for r in runs})
    metrics = sorted({m for r in runs for m in r.curves} | {m for r in runs for m in r.final})
    metrics = [m for m in PLOTTED if m in metrics]
    seeds = sorted({r.seed for r in runs})
    lines.append(f"{len(runs)} runs: {len(groups)} strategy/growth groups, seeds {seeds}.")
    lines.append("")

    # Curves.
    for metric in metrics:
        png = plot_metric(
            runs,
            metric,
            out_dir / f"{tag}_{metric.replace('/', '_')}.png",
            f"{dims}D {config} {metric}",
        )
        if png:
            lines.append(f"![{dims}D {metric}]({png.name})")
    lines.append("")

    # Fixed budgets: fractions of the shortest run's last evaluation.
    ends = [r.curves[m][0][-1] for r in runs for m in PRIMARY if m in r.curves]
    if ends:
        last = min(ends)
        budgets = sorted({round(last * f) for f in (0.25, 0.5, 1.0)})
        for metric in [m for m in PRIMARY if any(len(r.curves.get(m, ((),))[0]) > 1 for r in runs)]:
            lines += [f"### {metric} at fixed budgets (mean ± 95% CI over seeds)", ""]
            lines.append(
                "| strategy (grow) | " + " | ".join(f"{b:,} images" for b in budgets) + " |"
            )
            lines.append("| --- |" + " --- |" * len(budgets))
            for group in groups:
                cells = []
                for b in budgets:
                    vals = [
                        v
                        for r in runs
                        if r.group == group
                        for v in [value_at(r, metric, b)]
                        if v is not None
                    ]
                    cells.append(_fmt_ci(*mean_ci(vals)) if vals else "–")
                lines.append(f"| {group} | " + " | ".join(cells) + " |")
            lines.append("")

    # Final values, significance against scratch, images to reach scratch's final quality.
    for metric in [m for m in PRIMARY if any(m in r.final for r in runs)]:
        lines += [f"### Final {metric} and comparison with scratch", ""]
        lines.append(
            "| strategy (grow) | runs | diverged | final (mean ± 95% CI) | p Welch | p Mann-Whitney "
            "| images to reach scratch's final |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for group in groups:
            members = [r for r in runs if r.group == group]
            grow = members[0].grow
            base = [
                r for r in runs if r.strategy == "scratch" and r.grow == grow and metric in r.final
            ]
            vals = [r.final[metric] for r in members if metric in r.final]
            base_vals = [r.final[metric] for r in base]
            p_t, p_u = (
                significance(vals, base_vals)
                if members[0].strategy != "scratch"
                else (math.nan,) * 2
            )
            target = float(np.mean(base_vals)) if base_vals else None
            reach = (
                [images_to_reach(r, metric, target) for r in members] if target is not None else []
            )
            reached = [x for x in reach if x is not None]
            reach_txt = (
                f"{_fmt(float(np.mean(reached)))} ({len(reached)}/{len(members)} runs)"
                if reached
                else "not reached"
            )
            if target is None:
                reach_txt = "no scratch run"
            diverged = sum(r.status == "diverged" for r in members)
            lines.append(
                f"| {group} | {len(members)} | {diverged} | {_fmt_ci(*mean_ci(vals))} | {_fmt(p_t, 2)} "
                f"| {_fmt(p_u, 2)} | {reach_txt} |"
            )
        lines.append("")

    # Samples.
    lines += ["### Samples (first seed of each group)", ""]
    for group in groups:
        member = min(
            (r for r in runs if r.group == group and r.samples), key=lambda r: r.seed, default=None
        )
        if member and member.samples:
            target = out_dir / f"{tag}_samples_{member.strategy}_{member.grow}.png"
            shutil.copyfile(member.samples, target)
            lines.append(f"**{group}**, seed {member.seed}\n\n![{group}]({target.name})\n")
    return lines


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
    lines = [
        "# gan-init report: CycleGAN generator as initialization for a progressive noise GAN",
        "",
        f"Runs read from `{runs_dir}`. Lower is better for SWD, FID and KID; higher for precision "
        "and recall. Spread bands show min-max over seeds.",
        "",
    ]
    dims_present = sorted({r.dims for r in runs})
    if len(dims_present) == 2:
        lines += side_by_side(runs)
    for dims, config in sorted({(r.dims, r.config) for r in runs}):
        members = [r for r in runs if r.dims == dims and r.config == config]
        lines += dims_section(members, dims, out_dir, config)
    report = out_dir / "report.md"
    write_atomic(report, "\n".join(lines) + "\n")
    return report
