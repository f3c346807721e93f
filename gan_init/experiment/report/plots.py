"""PNG plots: metric and diagnostic curves against images shown, and the paired differences.

Each function draws from ``Run`` records or comparisons into the file it is given and returns
it (``None`` when there is nothing to draw). Matplotlib is imported on first use.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gan_init.experiment.report.read import Run
from gan_init.experiment.stats import Comparison, EndpointSpec

PLOTTED = (
    "eval/swd", "eval/fid", "eval/kid", "eval/precision", "eval/recall",
    "eval/msssim_fake", "eval/memo_fraction",
)  # fmt: skip


DIAGNOSTICS = {
    "weight_dist": "relative L2 distance of the weights from their start",
    "cka": "linear CKA of the activations on fixed latents against step 0",
    "update_ratio": "|dw| / |w| per step",
}


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
