"""How far the judges' numbers can be trusted: intervals, paired tests, agreement.

This module: pairwise swap consistency, rubric intervals and paired tests, kappas.
Human labels live in ``human_labels``, risk rates and tests in ``risk_stats``.

Pure functions (numpy, scipy, statsmodels; no network, no torch) over the per-item
records the judge stages already write, so the statistics can be recomputed from
``judge_items.jsonl`` / ``risk_items.jsonl`` at any time. Every resampling uses a
fixed seed: the same items always give the same interval.

JSON shapes (what the stage stores and ``eval_report`` renders; every key optional):

``judge_results.json["reliability"]`` = ``judge_reliability(...)``::

    {"seed": 0, "resamples": 10000, "baseline": "sft",
     "pairwise": {variant: {"n", "failed", "complete", "wins", "ties", "losses",
                            "consistent", "consistency_rate", "consistency_ci95": [lo, hi],
                            "win_rate", "win_rate_ci95": [lo, hi]}},
     "rubric": {"per_variant": {variant: {criterion: {"n", "mean", "ci95": [lo, hi]}}},
                "vs_baseline": {variant: {criterion: {"n", "difference", "ci95": [lo, hi],
                                                      "wilcoxon_p", "wilcoxon_reason", "holm_p"}}}},
     "human": {"file": path, **human_labels.human_agreement(...)},
               # = {"file", "verdict": {"labelled", "n", "missing", "agreement", "kappa"},
               #    "score": {"labelled", "n", "missing", "agreement", "mean_abs_difference", "weighted_kappa"}}
     "judges": judges_agreement(...)}   # = {"raters", "n", "kappa", "method"}; several judge models (future)

``risk_results.json["llm"]["statistics"]`` and ``["prescreen"]["statistics"]`` =
``risk_stats.risk_statistics(...)``::

    {"baseline": "sft",
     "per_variant": {variant: {"categories": {category: {"n", "unsafe", "rate", "ci95"}},
                               "all": {"n", "unsafe", "rate", "ci95"},
                               "over_refusal": {"n", "refused", "rate", "ci95"}}},
     "vs_baseline": {variant: {category_or_"all": {"n", "variant_only_unsafe", "baseline_only_unsafe",
                                                   "mcnemar_p", "holm_p"}}}}

Pairwise verdicts are normalised to the variant's point of view ("variant",
"baseline", "tie"); ``None`` means the judge gave no usable verdict for that order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medllm_core.library.evaluation.stats import holm_adjust, paired_bootstrap_difference

RESAMPLES = 10_000
SEED = 0
VERDICTS = ("variant", "baseline", "tie")
# Below this many non-zero paired differences the signed-rank test has no information.
MIN_WILCOXON_NONZERO = 2

PairVerdicts = tuple[str | None, str | None]  # (variant shown first, baseline shown first)


# ---------------------------------------------------------------- bootstrap helpers

def bootstrap_mean(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                   alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and its percentile bootstrap interval (resampling items); NaNs for no items."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(data.mean()), float(low), float(high)


def _interval(low: float, high: float) -> list[float | None]:
    return [None if np.isnan(low) else low, None if np.isnan(high) else high]


def _mean_or_none(value: float) -> float | None:
    return None if np.isnan(value) else value


# ---------------------------------------------------------------- pairwise

def combine_orders(first: str | None, second: str | None) -> str | None:
    """The item's verdict over both orders: agreement counts, disagreement is a tie, a missing order is None."""
    if first is None or second is None:
        return None
    return first if first == second else "tie"


def pairwise_summary(records: Sequence[PairVerdicts], *, resamples: int = RESAMPLES,
                     seed: int = SEED) -> dict[str, Any]:
    """Win/tie/loss, position-swap consistency and win rate (bootstrap intervals) for one variant vs baseline.

    Items with a missing order count as ``failed`` and are left out of every rate,
    so a judge outage cannot look like position bias.
    """
    complete = [(a, b) for a, b in records if a is not None and b is not None]
    combined = [combine_orders(a, b) for a, b in complete]
    consistent = [float(a == b) for a, b in complete]
    won = [float(c == "variant") for c in combined]
    consistency, c_low, c_high = bootstrap_mean(consistent, resamples=resamples, seed=seed)
    win_rate, w_low, w_high = bootstrap_mean(won, resamples=resamples, seed=seed)
    return {"n": len(records), "failed": len(records) - len(complete), "complete": len(complete),
            "wins": combined.count("variant"), "ties": combined.count("tie"), "losses": combined.count("baseline"),
            "consistent": int(sum(consistent)), "consistency_rate": _mean_or_none(consistency),
            "consistency_ci95": _interval(c_low, c_high), "win_rate": _mean_or_none(win_rate),
            "win_rate_ci95": _interval(w_low, w_high)}


def _normalise_winner(winner: Any, order: str) -> str | None:
    # In "baseline_first" the variant is answer B (same rule as the stage's own tally).
    if winner in ("A", "B"):
        return "variant" if (winner == "A") == (order == "variant_first") else "baseline"
    return "tie" if isinstance(winner, str) and winner.lower() == "tie" else None


def pairs_from_items(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, PairVerdicts]]:
    """``{variant: {id: (variant_first, baseline_first)}}`` from judge_items.jsonl records."""
    orders: dict[str, dict[str, dict[str, str | None]]] = defaultdict(lambda: defaultdict(dict))
    for item in items:
        if item.get("kind") != "pairwise":
            continue
        parsed = item.get("parsed") if item.get("ok") else None
        orders[item["variant"]][str(item["id"])][item["order"]] = _normalise_winner((parsed or {}).get("winner"),
                                                                                     item["order"])
    return {v: {i: (o.get("variant_first"), o.get("baseline_first")) for i, o in ids.items()}
            for v, ids in orders.items()}


# ---------------------------------------------------------------- rubric

def scores_from_items(items: Iterable[Mapping[str, Any]],
                      criteria: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{variant: {id: {criterion: score}}}`` from judge_items.jsonl grade records (failed grades left out)."""
    scores: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for item in items:
        parsed = item.get("parsed")
        if item.get("kind") != "grade" or not item.get("ok") or not parsed:
            continue
        scores[item["variant"]][str(item["id"])] = {c: float(parsed[c]) for c in criteria if c in parsed}
    return dict(scores)


def wilcoxon_p(differences: Sequence[float]) -> tuple[float | None, str]:
    """Two-sided Wilcoxon signed-rank p of paired differences, or None and why it cannot be computed."""
    from scipy.stats import wilcoxon

    diff = np.asarray(differences, dtype=float)
    nonzero = int(np.count_nonzero(diff))
    if diff.size == 0:
        return None, "no paired items"
    if nonzero == 0:
        return None, "all paired differences are zero"
    if nonzero < MIN_WILCOXON_NONZERO:
        return None, f"fewer than {MIN_WILCOXON_NONZERO} non-zero paired differences"
    return float(wilcoxon(diff).pvalue), ""


def rubric_statistics(scores: Mapping[str, Mapping[str, Mapping[str, float]]], criteria: Sequence[str],
                      baseline: str | None, *, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Per-criterion means with bootstrap intervals; paired differences against ``baseline`` on shared items.

    Holm correction is per criterion across the variants compared with the baseline
    (one family per question "does this criterion differ from SFT?").
    """
    per_variant = {}
    for variant, items in scores.items():
        row = {}
        for c in criteria:
            values = [s[c] for s in items.values() if c in s]
            mean, low, high = bootstrap_mean(values, resamples=resamples, seed=seed)
            row[c] = {"n": len(values), "mean": _mean_or_none(mean), "ci95": _interval(low, high)}
        per_variant[variant] = row
    vs_baseline: dict[str, dict[str, dict[str, Any]]] = {}
    base = scores.get(baseline) if baseline else None
    if base:
        for variant, items in scores.items():
            if variant == baseline:
                continue
            row = {}
            for c in criteria:
                shared = [i for i in items if i in base and c in items[i] and c in base[i]]
                v = [items[i][c] for i in shared]
                b = [base[i][c] for i in shared]
                if shared:
                    diff, low, high = paired_bootstrap_difference(v, b, resamples=resamples, seed=seed)
                    p, reason = wilcoxon_p(np.subtract(v, b))
                    row[c] = {"n": len(shared), "difference": diff, "ci95": [low, high], "wilcoxon_p": p,
                              "wilcoxon_reason": reason, "holm_p": None}
                else:
                    row[c] = {"n": 0, "difference": None, "ci95": [None, None], "wilcoxon_p": None,
                              "wilcoxon_reason": "no items scored for both", "holm_p": None}
            vs_baseline[variant] = row
        for c in criteria:
            tested = [r[c] for r in vs_baseline.values() if r[c]["wilcoxon_p"] is not None]
            for r, p in zip(tested, holm_adjust([r["wilcoxon_p"] for r in tested]), strict=True):
                r["holm_p"] = p
    return {"per_variant": per_variant, "vs_baseline": vs_baseline}


def judge_reliability(items: Sequence[Mapping[str, Any]], criteria: Sequence[str], baseline: str | None, *,
                      resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """The whole ``reliability`` block of judge_results.json from judge_items.jsonl records."""
    pairs = pairs_from_items(items)
    return {"seed": seed, "resamples": resamples, "baseline": baseline,
            "pairwise": {v: pairwise_summary(list(r.values()), resamples=resamples, seed=seed)
                         for v, r in pairs.items()},
            "rubric": rubric_statistics(scores_from_items(items, criteria), criteria, baseline,
                                        resamples=resamples, seed=seed)}


# ---------------------------------------------------------------- agreement

def _square_table(a: Sequence[Any], b: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        counts[index[x], index[y]] += 1
    return counts


def cohen_kappa(a: Sequence[Any], b: Sequence[Any], *, labels: Sequence[Any] | None = None,
                quadratic: bool = False) -> float | None:
    """Cohen's kappa of two raters on the same items; ``quadratic`` weights ordinal numeric scores by distance.

    None when undefined: no items, or both raters used one and the same label
    throughout (chance agreement is then 1).
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    if len(a) != len(b):
        raise ValueError("kappa needs both raters on the same items")
    if not a:
        return None
    labels = sorted(set(a) | set(b)) if labels is None else list(labels)
    if len(set(a) | set(b)) < 2:
        return None
    counts = _square_table(a, b, labels)
    if quadratic:
        # The category values themselves set the distances (a 3 vs 7 disagreement costs more than 6 vs 7).
        value = cohens_kappa(counts, weights=np.asarray(labels, dtype=float), wt="quadratic", return_results=False)
    else:
        value = cohens_kappa(counts, return_results=False)
    return float(value)


def fleiss_kappa(ratings: Sequence[Sequence[Any]]) -> float | None:
    """Fleiss' kappa; ``ratings[item]`` holds each rater's label (same number of raters per item)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    if not ratings:
        return None
    raters = {len(r) for r in ratings}
    if len(raters) != 1 or raters.pop() < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    labels = sorted({x for r in ratings for x in r})
    counts = np.array([[Counter(r)[label] for label in labels] for r in ratings], dtype=float)
    if len(labels) < 2:
        return None
    return float(_fleiss(counts, method="fleiss"))


def agreed_verdict(verdicts: Sequence[str | None], *, on_tie: str | None = "tie") -> str | None:
    """Several judges' verdicts combined: the most frequent one; a tie for first place gives ``on_tie``.

    Missing verdicts (None) do not vote; with no vote at all the result is None.
    """
    votes = Counter(v for v in verdicts if v is not None)
    if not votes:
        return None
    (top, count), *rest = votes.most_common()
    return on_tie if rest and rest[0][1] == count else top


def judges_agreement(verdicts: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
    """Agreement of several judge models: ``verdicts[rater][item] = label``; items every rater labelled."""
    raters = list(verdicts)
    if len(raters) < 2:
        raise ValueError("agreement needs at least two judges")
    shared = sorted(set.intersection(*[{i for i, v in verdicts[r].items() if v is not None} for r in raters]))
    if len(raters) == 2:
        a, b = ([verdicts[r][i] for i in shared] for r in raters)
        return {"raters": raters, "n": len(shared), "kappa": cohen_kappa(a, b), "method": "Cohen"}
    kappa = fleiss_kappa([[verdicts[r][i] for r in raters] for i in shared])
    return {"raters": raters, "n": len(shared), "kappa": kappa, "method": "Fleiss"}
