"""Paired statistics for the init-strategy sweeps: every strategy against ``scratch`` of the same
seed, growth mode and noise config (same critic and stem init, latent draws and data stream).

- ``normalized_auc``: the primary endpoint, the area under a metric's curve over images shown
  divided by the span (a mean metric value over training; lower SWD-AUC = reaches quality sooner).
- ``paired_t``: mean paired difference, exact t 95% CI, two-sided paired-t p value.
- ``tost``: two one-sided tests against an equivalence margin (Schuirmann 1987).
- ``holm``: Holm's step-down adjustment of a family of p values (Holm 1979).
- ``mcnemar_exact``: paired failures (arm vs baseline of the same seed), exact on the
  discordant pairs; ``paired_variance_test``: Pitman-Morgan, equal spread of paired values.
- ``mde_paired``: the smallest true mean difference a two-sided paired t test detects with the
  given power, from the noncentral t distribution (not the normal approximation).
- ``compare_to_baseline``: all of the above per (strategy, growth mode), with a one-word verdict
  by ``VERDICT_RULE``.
- ``EndpointSpec``: the pre-specified analysis a sweep file carries under ``endpoints:``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASELINE = "scratch"
VERDICT_RULE = (
    "**better** / **worse**: Holm-adjusted paired-t p < alpha, by the sign of the mean "
    "difference; otherwise **equivalent**: Holm-adjusted TOST p < alpha (the 90% CI of the "
    "difference lies inside ± the margin); otherwise **inconclusive** (neither a difference nor "
    "equivalence is shown: more seeds, or a smaller spread, would be needed); **n/a**: fewer "
    "than 2 complete pairs."
)
# Holm's family in the runs-folder report; in the map it is the arms of one cell.
HOLM_FAMILY = (
    "Holm's family: the strategies of one growth mode in one sweep (dims x noise config), "
    "adjusted separately for the difference and the equivalence tests."
)

# Direction of each metric (None: no better/worse, e.g. MS-SSIM of samples, compared with the
# real images' own value). Images-to-reach and divergences are lower-is-better.
LOWER_IS_BETTER = {"eval/swd", "eval/fid", "eval/kid", "eval/memo_fraction"}
HIGHER_IS_BETTER = {"eval/precision", "eval/recall"}
SUMMARIES = {
    "auc": "area under `{m}` over images shown from the first evaluation to the last, divided by "
    "that span",
    "final": "final `{m}`",
    "reach": "images shown until the run first reaches scratch's final `{m}` (same seed), "
    "censored at the run's budget when never reached",
}


def normalized_auc(images: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` against ``images`` from the first evaluation to the last,
    divided by that span: the curve's mean height (in the metric's units). One point: its value.
    """
    x = np.asarray(images, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"normalized_auc: expected two equal-length 1-D sequences, got {x.shape}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    span = x[-1] - x[0]
    if span == 0:
        return float(y.mean())
    return float(np.trapezoid(y, x) / span)


def direction(metric: str) -> int:
    """+1 when lower is better, -1 when higher is better, 0 when neither. A metric at one
    resolution (``eval/full/swd``, ``eval/at32/swd``) or its window mean (``eval/full/swd_mean``)
    has its metric's direction."""
    base = re.sub(r"^eval/(full|at\d+)/", "eval/", metric).removesuffix("_mean")
    return 1 if base in LOWER_IS_BETTER else (-1 if base in HIGHER_IS_BETTER else 0)


# ---------------------------------------------------------------------------------------------
# Tests on a vector of paired differences


@dataclass(frozen=True)
class PairedT:
    n: int
    mean: float
    sd: float
    ci: tuple[float, float]
    p: float


def paired_t(diffs: Sequence[float], alpha: float = 0.05) -> PairedT:
    """Mean of the paired differences, its exact t (1 - alpha) CI, and the two-sided p value of
    the paired t test (H0: mean 0). A zero spread gives a zero-width CI and p 0 (or 1 at 0)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return PairedT(0, math.nan, math.nan, (math.nan, math.nan), math.nan)
    mean = float(d.mean())
    if n < 2:
        return PairedT(1, mean, math.nan, (math.nan, math.nan), math.nan)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:
        return PairedT(n, mean, 0.0, (mean, mean), 0.0 if mean != 0 else 1.0)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return PairedT(n, mean, sd, (mean - half, mean + half), p)


def tost(diffs: Sequence[float], margin: float) -> float:
    """p value of the two one-sided paired t tests of H0: |mean difference| >= margin (the larger
    of the two one-sided p values). Equivalence at level alpha <=> the (1 - 2 alpha) CI lies in
    (-margin, margin). nan with fewer than 2 differences or no margin."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2 or not (margin > 0):
        return math.nan
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        return 0.0 if abs(mean) < margin else 1.0
    p_low = stats.t.sf((mean + margin) / se, n - 1)  # H0: mean <= -margin
    p_high = stats.t.cdf((mean - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(p_low, p_high))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p values, in the input order (nan entries stay nan and do not
    count in the family): the k-th smallest of m is multiplied by (m - k + 1), running maximum,
    capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    m = len(idx)
    running = 0.0
    for k, i in enumerate(idx):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def mcnemar_exact(
    arm_failed: Sequence[bool], base_failed: Sequence[bool]
) -> tuple[int, int, float]:
    """Exact McNemar test of paired failures (seeds in the same order): ``(b, c, p)`` with b the
    pairs where only the arm failed, c where only the baseline failed, and the two-sided exact
    binomial p value of b among b + c discordant pairs at 1/2 (concordant pairs carry no
    information about a difference). p = 1 with no discordant pair."""
    from scipy import stats

    if len(arm_failed) != len(base_failed):
        raise ValueError("mcnemar_exact: expected two equal-length sequences (one per seed)")
    b = sum(bool(a) and not bool(z) for a, z in zip(arm_failed, base_failed))
    c = sum(bool(z) and not bool(a) for a, z in zip(arm_failed, base_failed))
    if b + c == 0:
        return 0, 0, 1.0
    return b, c, float(stats.binomtest(b, b + c, 0.5).pvalue)


def paired_variance_test(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Pitman-Morgan test of equal variances of paired samples (seeds in the same order):
    ``(sd_x, sd_y, p)``. var(x) = var(y) exactly when x + y and x - y are uncorrelated, so p is
    the two-sided p value of Pearson's r between them (t with n - 2 degrees of freedom). nan
    with fewer than 3 pairs or a constant sum or difference."""
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_variance_test: expected two equal-length 1-D sequences")
    if len(a) < 3:
        return math.nan, math.nan, math.nan
    sd_a, sd_b = float(a.std(ddof=1)), float(b.std(ddof=1))
    total, diff = a + b, a - b
    if np.ptp(total) == 0 or np.ptp(diff) == 0:
        return sd_a, sd_b, math.nan
    return sd_a, sd_b, float(stats.pearsonr(total, diff).pvalue)


def mde_paired(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean paired difference a two-sided paired t test at ``alpha`` detects with
    probability ``power``, for ``n`` pairs of spread ``sd``: solves
    P(|T| > t_{1-alpha/2, n-1}) = power for T ~ noncentral t(n - 1, delta * sqrt(n) / sd)."""
    from scipy import optimize, stats

    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:
        wrong_side = stats.nct.cdf(-crit, df, nc)  # tiny for nc > 0; scipy may give nan there
        return stats.nct.sf(crit, df, nc) + float(np.nan_to_num(wrong_side)) - power

    high = 1.0
    while shortfall(high) < 0:  # bracket the root
        high *= 2
    nc = optimize.brentq(shortfall, 0.0, high, xtol=1e-12)
    return float(nc * sd / math.sqrt(n))


def verdict(
    mean: float, p_holm: float, tost_holm: float, n: int, alpha: float, sign: int
) -> tuple[str, str]:
    """One word by ``VERDICT_RULE`` and the reason. ``sign`` is ``direction(metric)``."""
    if n < 2:
        return "n/a", f"{n} complete pair{'s' if n != 1 else ''} (needs 2)"
    if p_holm < alpha:
        if sign == 0:
            return "different", f"Holm p {p_holm:.2g} < {alpha}"
        better = mean * sign < 0
        return ("better" if better else "worse"), f"Holm p {p_holm:.2g} < {alpha}"
    if tost_holm < alpha:
        return "equivalent", f"Holm TOST p {tost_holm:.2g} < {alpha}"
    if math.isnan(tost_holm):
        return "inconclusive", f"Holm p {p_holm:.2g} >= {alpha}; no equivalence margin"
    return "inconclusive", f"Holm p {p_holm:.2g}, Holm TOST p {tost_holm:.2g}, both >= {alpha}"


# ---------------------------------------------------------------------------------------------
# Strategies against the baseline


@dataclass
class Comparison:
    """One strategy against the baseline in one growth mode: paired by seed."""

    strategy: str
    grow: str
    seeds: list[int]
    diffs: list[float]
    strategy_mean: float
    baseline_mean: float
    test: PairedT
    margin: float
    tost_p: float
    mde: float
    p_holm: float = math.nan
    tost_holm: float = math.nan
    verdict: str = "n/a"
    reason: str = ""
    unpaired: list[int] = field(default_factory=list)  # seeds without a partner


def pair_by_seed(
    values: Mapping[tuple[str, str, int], float], strategy: str, grow: str, baseline: str
) -> tuple[list[int], list[float], list[int]]:
    """Seeds present for both, their differences strategy - baseline, and the unpaired seeds."""
    mine = {s: v for (st, g, s), v in values.items() if (st, g) == (strategy, grow)}
    base = {s: v for (st, g, s), v in values.items() if (st, g) == (baseline, grow)}
    seeds = sorted(set(mine) & set(base))
    unpaired = sorted(set(mine) ^ set(base))
    return seeds, [mine[s] - base[s] for s in seeds], unpaired


def resolve_margin(margin: float | str | None, baseline_mean: float) -> float:
    """An absolute margin as given; ``"10%"`` as 10% of |the baseline's mean|."""
    if margin is None:
        return math.nan
    if isinstance(margin, str):
        return abs(baseline_mean) * float(margin.rstrip("%")) / 100
    return float(margin)


def compare_to_baseline(
    values: Mapping[tuple[str, str, int], float],
    *,
    metric: str,
    margin: float | str | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline: str = BASELINE,
) -> list[Comparison]:
    """Every (strategy, growth mode) of ``values`` (keyed ``(strategy, grow, seed)``, one sweep:
    one dims and noise config) against ``baseline`` of the same seed and growth mode. Holm
    adjusts across the strategies of each growth mode."""
    sign = direction(metric)
    out: list[Comparison] = []
    for grow in sorted({g for _, g, _ in values}):
        family: list[Comparison] = []
        base_vals = [v for (st, g, _), v in values.items() if (st, g) == (baseline, grow)]
        base_mean = float(np.mean(base_vals)) if base_vals else math.nan
        for strategy in sorted({st for st, g, _ in values if g == grow and st != baseline}):
            seeds, diffs, unpaired = pair_by_seed(values, strategy, grow, baseline)
            mine = [v for (st, g, _), v in values.items() if (st, g) == (strategy, grow)]
            test = paired_t(diffs, alpha)
            abs_margin = resolve_margin(margin, base_mean)
            family.append(
                Comparison(
                    strategy=strategy,
                    grow=grow,
                    seeds=seeds,
                    diffs=diffs,
                    strategy_mean=float(np.mean(mine)) if mine else math.nan,
                    baseline_mean=base_mean,
                    test=test,
                    margin=abs_margin,
                    tost_p=tost(diffs, abs_margin),
                    mde=mde_paired(test.sd, test.n, alpha, power),
                    unpaired=unpaired,
                )
            )
        for c, p, q in zip(
            family, holm([c.test.p for c in family]), holm([c.tost_p for c in family])
        ):
            c.p_holm, c.tost_holm = p, q
            c.verdict, c.reason = verdict(c.test.mean, p, q, c.test.n, alpha, sign)
        out += family
    return out


# ---------------------------------------------------------------------------------------------
# The pre-specified analysis in a sweep file


_ENDPOINT = re.compile(r"^(auc|final|reach)\((eval/[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)?)\)$")


@dataclass(frozen=True)
class Endpoint:
    """``summary(metric)``, e.g. ``auc(eval/swd)``; ``diverged`` counts diverged runs."""

    summary: str
    metric: str = ""

    @classmethod
    def parse(cls, text: str, where: str) -> Endpoint:
        text = str(text).strip()
        if text == "diverged":
            return cls("diverged")
        m = _ENDPOINT.match(text)
        if not m:
            raise ValueError(
                f"{where}: endpoint {text!r} is not one of auc(eval/<metric>), "
                "final(eval/<metric>), reach(eval/<metric>), diverged; e.g. primary: auc(eval/swd)"
            )
        return cls(m.group(1), m.group(2))

    def __str__(self) -> str:
        return self.summary if self.summary == "diverged" else f"{self.summary}({self.metric})"

    @property
    def sign(self) -> int:
        return 1 if self.summary in ("reach", "diverged") else direction(self.metric)

    @property
    def label(self) -> str:
        name = self.metric.removeprefix("eval/").upper()
        return {
            "auc": f"{name}-AUC",
            "final": f"final {name}",
            "reach": f"images to scratch's final {name}",
            "diverged": "diverged runs",
        }[self.summary]

    @property
    def meaning(self) -> str:
        if self.summary == "diverged":
            return "runs that diverged (counted, not paired)"
        better = {1: "lower is better", -1: "higher is better", 0: "no direction"}[self.sign]
        return f"{SUMMARIES[self.summary].format(m=self.metric)}; {better}"


@dataclass(frozen=True)
class EndpointSpec:
    """The analysis fixed before the runs: primary and secondary endpoints, the equivalence
    margin of the primary (absolute, in its units, or ``"N%"`` of scratch's mean), alpha and the
    power the detectable difference is stated at."""

    primary: Endpoint
    secondary: tuple[Endpoint, ...]
    margin: float | str
    alpha: float = 0.05
    power: float = 0.8
    source: str = ""  # where it was read from ("" = the report's default)

    @classmethod
    def from_dict(cls, raw: Any, where: str, source: str = "") -> EndpointSpec:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping with primary, secondary, margin, alpha")
        unknown = set(raw) - {"primary", "secondary", "margin", "alpha", "power"}
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected primary, secondary, margin, "
                "alpha, power"
            )
        if "primary" not in raw or "margin" not in raw:
            raise ValueError(
                f"{where}: primary and margin are required, e.g. primary: auc(eval/swd), margin: 10%"
            )
        primary = Endpoint.parse(raw["primary"], f"{where}.primary")
        if primary.summary == "diverged" or primary.sign == 0:
            raise ValueError(
                f"{where}.primary: {primary} has no better/worse direction; use e.g. auc(eval/swd)"
            )
        secondary = tuple(
            Endpoint.parse(e, f"{where}.secondary") for e in raw.get("secondary") or []
        )
        margin = raw["margin"]
        ok = (isinstance(margin, str) and re.fullmatch(r"\d+(\.\d+)?%", margin.strip())) or (
            isinstance(margin, (int, float)) and not isinstance(margin, bool) and margin > 0
        )
        if not ok:
            raise ValueError(
                f"{where}.margin: expected a positive number (primary's units) or a percentage "
                f"of scratch's mean like 10%, got {margin!r}"
            )
        alpha, power = float(raw.get("alpha", 0.05)), float(raw.get("power", 0.8))
        if not (0 < alpha < 0.5 and 0 < power < 1):
            raise ValueError(f"{where}: alpha must be in (0, 0.5) and power in (0, 1)")
        margin = margin.strip() if isinstance(margin, str) else float(margin)
        return cls(primary, secondary, margin, alpha, power, source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": str(self.primary),
            "secondary": [str(e) for e in self.secondary],
            "margin": self.margin,
            "alpha": self.alpha,
            "power": self.power,
        }


DEFAULT_SPEC = EndpointSpec.from_dict(
    {
        "primary": "auc(eval/swd)",
        "secondary": [
            "reach(eval/swd)",
            "final(eval/swd)",
            "final(eval/kid)",
            "final(eval/msssim_fake)",
            "diverged",
        ],
        "margin": "10%",
        "alpha": 0.05,
        "power": 0.8,
    },
    "default endpoints",
)
