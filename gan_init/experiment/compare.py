"""Two or more finished noise-GAN runs side by side: the shape of the answer for one seed.

``make train-2d`` trains a ``cyclegan`` run and a ``scratch`` run of the same seed (one CycleGAN
stage) and ends here: ``comparison.md`` (final metrics of each run, the difference to the first,
the CycleGAN stage's validation scores) and ``comparison.png`` (every evaluation curve against
images shown, then each run's last fixed-latent grid, generated beside real, under its name).
One seed is an illustration, not a test: ``make sweep-2d`` and ``make report`` give the paired
statistics over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gan_init.callbacks.samples import fixed_latent_grids
from gan_init.core.files import write_atomic
from gan_init.experiment.report import X_KEY, read_run_curves
from gan_init.runs import SUMMARY, RunSummary

# Shown first, in this order, when present; other eval/* keys follow alphabetically.
FIRST = ("eval/swd", "eval/fid", "eval/kid", "eval/precision", "eval/recall", "eval/msssim_fake")
LOWER_IS_BETTER = ("eval/swd", "eval/fid", "eval/kid", "eval/memo_fraction")


def _label(summary: dict[str, Any]) -> str:
    return f"{summary['init_strategy']} ({summary['grow']}, seed {summary['seed']})"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def _metric_order(summaries: list[dict[str, Any]]) -> list[str]:
    keys = {k for s in summaries for k in (s.get("metrics") or {}) if k.startswith("eval/")}
    return [k for k in FIRST if k in keys] + sorted(keys.difference(FIRST))


def comparison_markdown(summaries: list[dict[str, Any]], figure: str | None) -> str:
    """The table of final metrics, one column per run, and the difference to the first run."""
    base, labels = summaries[0], [_label(s) for s in summaries]
    lines = [
        f"# {base['dims']}D: {' vs '.join(labels)}",
        "",
        "One seed each: an illustration of the comparison, not a test of it (run a sweep and "
        "`gan-init report` for paired statistics over seeds).",
        "",
        "| metric | " + " | ".join(labels) + " | " + " | ".join(
            f"{s['init_strategy']} − {base['init_strategy']}" for s in summaries[1:]
        ) + " |",
        "| --- |" + " --- |" * (2 * len(summaries) - 1),
    ]  # fmt: skip
    rows = [("status", [s.get("status") for s in summaries])]
    rows.append(("minutes", [round(s.get("seconds", 0) / 60, 1) for s in summaries]))
    for key in _metric_order(summaries):
        rows.append((key, [(s.get("metrics") or {}).get(key) for s in summaries]))
    for key, values in rows:
        diffs = []
        for v in values[1:]:
            both = all(isinstance(x, (int, float)) for x in (v, values[0]))
            diffs.append(_fmt(float(v) - float(values[0])) if both and key != "status" else "")
        hint = " (lower is better)" if key in LOWER_IS_BETTER else ""
        lines.append(f"| {key}{hint} | " + " | ".join(map(_fmt, values + diffs)) + " |")
    cyclegan = next((s.get("cyclegan") for s in summaries if s.get("cyclegan")), None)
    if cyclegan:
        lines += ["", "CycleGAN stage (shared): " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in sorted((cyclegan.get("val") or {}).items())
        ) + f" ({cyclegan.get('checkpoint')})"]  # fmt: skip
    if figure:
        lines += ["", f"![curves and samples]({figure})"]
    lines += ["", "| run | folder |", "| --- | --- |"]
    lines += [f"| {label} | {s['run_dir']} |" for label, s in zip(labels, summaries)]
    return "\n".join(lines) + "\n"


def _picture(summary: dict[str, Any]) -> tuple[Path | None, str]:
    """The run's last fixed-latent grid (generated beside real, from ``NoiseSampleGrid``), else
    its final sample grid; with what it shows."""
    grids = fixed_latent_grids(summary["run_dir"])
    if grids:
        return grids[-1], "last grid: generated from the fixed latents (left), real (right)"
    pngs = sorted(Path(summary["samples"]).glob("*.png")) if summary.get("samples") else []
    return (pngs[0], "samples") if pngs else (None, "no samples")


def comparison_figure(summaries: list[dict[str, Any]], out: Path) -> Path | None:
    """Curves (one panel per metric with more than one point) above each run's pictures, a
    full-width row per run, so runs of the same seed (the same fixed latents) line up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    curves = [read_run_curves(Path(s["run_dir"])) for s in summaries]
    # Quality metrics only (not eval/resolution, the floor or per-level SWD), when they are curves.
    keys = [k for k in FIRST if any(len(c.get(k, ((),))[0]) > 1 for c in curves)][:3]
    pictures = [_picture(s) for s in summaries]
    pictures = [(s, png, what) for s, (png, what) in zip(summaries, pictures) if png is not None]
    images = [mpimg.imread(png) for _, png, _ in pictures]
    heights = ([4.0] if keys else []) + [10.0 * im.shape[0] / im.shape[1] + 0.5 for im in images]
    if not heights:
        return None
    fig = plt.figure(figsize=(10.0, sum(heights)), dpi=100)
    grid = fig.add_gridspec(len(heights), max(len(keys), 1), height_ratios=heights)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(grid[0, i])
        for s, c in zip(summaries, curves):
            if key in c:
                ax.plot(*c[key], marker="o", ms=3, label=_label(s))
        ax.set_xlabel(f"images shown ({X_KEY})")
        ax.set_ylabel(key)
        ax.set_title(key + (" (lower is better)" if key in LOWER_IS_BETTER else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for row, ((s, _, what), image) in enumerate(zip(pictures, images), start=int(bool(keys))):
        ax = fig.add_subplot(grid[row, :])
        ax.axis("off")
        ax.set_title(f"{_label(s)}: {what}", fontsize=11)
        ax.imshow(image, cmap="gray", interpolation="nearest")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def compare_runs(run_dirs: list[Path], out_dir: Path) -> Path:
    """Write ``comparison.md`` and ``comparison.png`` for finished runs; returns the Markdown."""
    summaries = []
    for run_dir in run_dirs:
        summary = RunSummary.read(run_dir)
        if summary is None:
            raise ValueError(f"{run_dir}: no {SUMMARY} (run `gan-init pipeline` for it first)")
        summaries.append(summary.to_dict())
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = comparison_figure(summaries, out_dir / "comparison.png")
    text = comparison_markdown(summaries, figure.name if figure else None)
    path = out_dir / "comparison.md"
    write_atomic(path, text)
    return path
