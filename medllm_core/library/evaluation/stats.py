"""Statistics a thesis reports for paired accuracy comparisons.

Accuracy gets a Wilson 95% interval; each variant is compared with a baseline on
the same items by an exact McNemar test (Holm-corrected across comparisons) and
a paired bootstrap interval of the accuracy difference. statsmodels does the
tests; only the bootstrap resampling is ours (vectorised numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedComparison:
    variant: str
    baseline: str
    n: int
    only_variant_correct: int  # discordant pairs that favour the variant
    only_baseline_correct: int
    mcnemar_p: float
    holm_p: float | None  # filled by holm_adjust over a family of comparisons
    difference: float  # variant accuracy - baseline accuracy
    diff_ci_low: float
    diff_ci_high: float


def accuracy(correct: Sequence[bool], alpha: float = 0.05) -> Accuracy:
    from statsmodels.stats.proportion import proportion_confint

    total = len(correct)
    hits = int(sum(bool(c) for c in correct))
    if total == 0:
        return Accuracy(0, 0, float("nan"), float("nan"), float("nan"))
    low, high = proportion_confint(hits, total, alpha=alpha, method="wilson")
    return Accuracy(hits, total, hits / total, float(low), float(high))


def mcnemar_exact(variant: Sequence[bool], baseline: Sequence[bool]) -> tuple[int, int, float]:
    """(variant-only correct, baseline-only correct, exact two-sided p) on paired items."""
    from statsmodels.stats.contingency_tables import mcnemar

    if len(variant) != len(baseline):
        raise ValueError("paired tests need the same items for both models")
    v = np.asarray(variant, dtype=bool)
    b = np.asarray(baseline, dtype=bool)
    both, only_v, only_b, neither = (int(np.sum(v & b)), int(np.sum(v & ~b)),
                                     int(np.sum(~v & b)), int(np.sum(~v & ~b)))
    if only_v + only_b == 0:
        return only_v, only_b, 1.0
    result = mcnemar([[both, only_v], [only_b, neither]], exact=True)
    return only_v, only_b, float(result.pvalue)


def paired_bootstrap_difference(variant: Sequence[bool], baseline: Sequence[bool], *, resamples: int = 10_000,
                                seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """Accuracy difference and its percentile interval, resampling items (pairs kept together)."""
    v = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if len(v) != len(b) or len(v) == 0:
        raise ValueError("paired bootstrap needs the same, non-empty item set")
    diff = v - b
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[samples].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(diff.mean()), float(low), float(high)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not pvalues:
        return []
    return [float(p) for p in multipletests(list(pvalues), method="holm")[1]]


def compare(variant_name: str, variant: Sequence[bool], baseline_name: str, baseline: Sequence[bool],
            *, seed: int = 0) -> PairedComparison:
    only_v, only_b, p = mcnemar_exact(variant, baseline)
    diff, low, high = paired_bootstrap_difference(variant, baseline, seed=seed)
    return PairedComparison(variant_name, baseline_name, len(variant), only_v, only_b, p, None, diff, low, high)


def with_holm(comparisons: list[PairedComparison]) -> list[PairedComparison]:
    """Holm-correct a family of comparisons (e.g. every variant against the base model)."""
    from dataclasses import replace

    adjusted = holm_adjust([c.mcnemar_p for c in comparisons])
    return [replace(c, holm_p=p) for c, p in zip(comparisons, adjusted, strict=True)]
