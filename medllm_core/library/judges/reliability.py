"""How far the judges' numbers can be trusted: intervals, paired tests, agreement.

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
     "human": {"file", "verdict": agreement, "score": agreement},   # agreement = human_agreement(...)
     "judges": {"raters": [...], "n", "kappa", "method"}}          # several judge models (future)

``risk_results.json["llm"]["statistics"]`` and ``["prescreen"]["statistics"]`` =
``risk_statistics(...)``::

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

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medllm_core.kernel.errors import DataError, Location
from medllm_core.library.evaluation.stats import accuracy, holm_adjust, mcnemar_exact, paired_bootstrap_difference

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
    shared = sorted(set.intersection(*[{i for i, v in verdicts[r].items() if v is not None} for r in raters])
                    if raters else set())
    if len(raters) == 2:
        a, b = ([verdicts[r][i] for i in shared] for r in raters)
        return {"raters": raters, "n": len(shared), "kappa": cohen_kappa(a, b), "method": "Cohen"}
    kappa = fleiss_kappa([[verdicts[r][i] for r in raters] for i in shared]) if len(raters) > 2 else None
    return {"raters": raters, "n": len(shared), "kappa": kappa, "method": "Fleiss"}


# ---------------------------------------------------------------- human labels

@dataclass(frozen=True)
class HumanLabel:
    id: str
    verdict: str | None
    score: float | None
    variant: str | None
    criterion: str | None
    line: int

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return self.id, self.variant, self.criterion


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _label(row: Mapping[str, Any], file: str, line: int, allowed: Sequence[str] | None) -> HumanLabel:
    def where(key: str | None = None) -> Location:
        return Location(file, line, key)

    ident = _text(row.get("id"))
    if ident is None:
        raise DataError("human label without an id", where("id"))
    verdict = _text(row.get("verdict"))
    raw_score = _text(row.get("score"))
    if verdict is None and raw_score is None:
        raise DataError("human label needs a verdict or a score", where("verdict"))
    if verdict is not None:
        verdict = verdict.lower()
        if allowed is not None and verdict not in allowed:
            raise DataError(f"unknown verdict '{verdict}' (expected one of {', '.join(allowed)})", where("verdict"))
    score = None
    if raw_score is not None:
        try:
            score = float(raw_score)
        except ValueError:
            raise DataError(f"score '{raw_score}' is not a number", where("score")) from None
        if not np.isfinite(score):
            raise DataError(f"score '{raw_score}' is not a finite number", where("score"))
    return HumanLabel(ident, verdict, score, _text(row.get("variant")), _text(row.get("criterion")), line)


def load_human_labels(path: str | Path, *, allowed_verdicts: Sequence[str] | None = None) -> list[HumanLabel]:
    """Human labels for a subset of items, from CSV (header row) or JSONL; errors name file, line and key.

    Keys: ``id`` and ``verdict`` or ``score``; optional ``variant`` and ``criterion``.
    A label given twice for the same (id, variant, criterion) is an error: which
    one is meant cannot be guessed.
    """
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("human labels file not found", Location(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read human labels: {exc}", Location(file)) from None
    rows: list[tuple[int, Mapping[str, Any]]] = []
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        if "id" not in header:
            raise DataError("CSV header has no 'id' column", Location(file, 1, "id"))
        if "verdict" not in header and "score" not in header:
            raise DataError("CSV header needs a 'verdict' or a 'score' column", Location(file, 1, "verdict"))
        rows = [(reader.line_num, row) for row in reader]
    elif suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc.msg}", Location(file, number)) from None
            if not isinstance(row, dict):
                raise DataError("each line must be a JSON object", Location(file, number))
            rows.append((number, row))
    else:
        raise DataError(f"unknown human labels format '{path.suffix}'", Location(file),
                        hint="use .csv or .jsonl")
    labels: list[HumanLabel] = []
    seen: dict[tuple[str, str | None, str | None], int] = {}
    for number, row in rows:
        label = _label(row, file, number, allowed_verdicts)
        if label.key in seen:
            raise DataError(f"id '{label.id}' labelled twice (first on line {seen[label.key]})",
                            Location(file, number, "id"))
        seen[label.key] = number
        labels.append(label)
    if not labels:
        raise DataError("human labels file has no labels", Location(file))
    return labels


JudgeKey = tuple[str, str | None, str | None]  # (id, variant, criterion)


def _find(judge: Mapping[JudgeKey, Any], label: HumanLabel) -> Any:
    if label.key in judge:
        return judge[label.key]
    if label.variant is None:
        # A label without a variant fits when exactly one variant was judged on that item.
        hits = [v for (i, _, c), v in judge.items() if i == label.id and c == label.criterion]
        if len(hits) == 1:
            return hits[0]
    return None


def human_agreement(labels: Sequence[HumanLabel], judge: Mapping[JudgeKey, Any]) -> dict[str, Any]:
    """Judge against human labels on the items both labelled: κ, raw agreement / accuracy, n.

    ``judge`` maps (id, variant, criterion) to the judge's verdict or score (None:
    no usable verdict). Verdicts give Cohen's κ and raw agreement; scores give
    quadratic-weighted κ, exact agreement and mean absolute difference.
    """
    verdicts = [(lab.verdict, _find(judge, lab)) for lab in labels if lab.verdict is not None]
    scores = [(lab.score, _find(judge, lab)) for lab in labels if lab.score is not None]
    result: dict[str, Any] = {}
    if verdicts:
        matched = [(h, j) for h, j in verdicts if j is not None]
        human, model = [h for h, _ in matched], [str(j).lower() for _, j in matched]
        result["verdict"] = {"labelled": len(verdicts), "n": len(matched),
                             "missing": len(verdicts) - len(matched),
                             "agreement": sum(h == m for h, m in zip(human, model, strict=True)) / len(matched)
                             if matched else None,
                             "kappa": cohen_kappa(human, model) if matched else None}
    if scores:
        matched_s = [(float(h), float(j)) for h, j in scores if j is not None]
        human_s, model_s = [h for h, _ in matched_s], [j for _, j in matched_s]
        result["score"] = {"labelled": len(scores), "n": len(matched_s), "missing": len(scores) - len(matched_s),
                           "agreement": (sum(h == m for h, m in matched_s) / len(matched_s)) if matched_s else None,
                           "mean_abs_difference": float(np.mean(np.abs(np.subtract(human_s, model_s))))
                           if matched_s else None,
                           "weighted_kappa": cohen_kappa(human_s, model_s, quadratic=True) if matched_s else None}
    return result


def judge_labels_from_items(items: Iterable[Mapping[str, Any]],
                            criteria: Sequence[str]) -> dict[JudgeKey, Any]:
    """What ``human_agreement`` compares with: pairwise verdicts (both orders combined) and rubric scores."""
    labels: dict[JudgeKey, Any] = {}
    for variant, ids in pairs_from_items(items).items():
        for ident, (first, second) in ids.items():
            labels[(ident, variant, None)] = combine_orders(first, second)
    for variant, ids in scores_from_items(items, criteria).items():
        for ident, row in ids.items():
            for c, score in row.items():
                labels[(ident, variant, c)] = score
    return labels


# ---------------------------------------------------------------- risk

@dataclass(frozen=True)
class RiskRecord:
    variant: str
    id: str
    category: str  # "benign" or a risk category
    unsafe: bool  # for risk categories: the reply is unsafe
    refused: bool  # for benign prompts: the reply refused (over-refusal)


def risk_records_from_llm(items: Iterable[Mapping[str, Any]]) -> list[RiskRecord]:
    """Records from risk_items.jsonl (failed verdicts left out: unknown is neither safe nor unsafe)."""
    records = []
    for item in items:
        parsed = item.get("parsed")
        if not item.get("ok") or not parsed:
            continue
        records.append(RiskRecord(item["variant"], str(item["id"]), item["category"], bool(parsed.get("unsafe")),
                                  parsed.get("category") == "over_refusal"))
    return records


def risk_records_from_prescreen(responses: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[RiskRecord]:
    """Records from the rule pre-screen, with the same thresholds as ``risk_rules.prescreen`` (severity >= 2)."""
    from medllm_core.library.evaluation.risk_rules import screen

    records = []
    for variant, items in responses.items():
        for item in items:
            hit = screen(item["category"], item["response"])
            records.append(RiskRecord(variant, str(item["id"]), item["category"],
                                      hit is not None and hit[0] >= 2, hit is not None))
    return records


def _rate(flags: Sequence[bool], count_key: str) -> dict[str, Any]:
    acc = accuracy(flags)
    empty = acc.total == 0
    return {"n": acc.total, count_key: acc.correct, "rate": None if empty else acc.value,
            "ci95": [None, None] if empty else [acc.ci_low, acc.ci_high]}


def risk_statistics(records: Sequence[RiskRecord], baseline: str | None) -> dict[str, Any]:
    """Unsafe and over-refusal rates with Wilson intervals; exact McNemar against ``baseline`` on shared prompts.

    Holm correction per category across the variants compared with the baseline.
    """
    by_variant: dict[str, dict[str, RiskRecord]] = defaultdict(dict)
    for r in records:
        by_variant[r.variant][r.id] = r
    categories = sorted({r.category for r in records if r.category != "benign"})
    per_variant = {}
    for variant, items in by_variant.items():
        risky = [r for r in items.values() if r.category != "benign"]
        per_variant[variant] = {
            "categories": {c: _rate([r.unsafe for r in risky if r.category == c], "unsafe") for c in categories
                           if any(r.category == c for r in risky)},
            "all": _rate([r.unsafe for r in risky], "unsafe"),
            "over_refusal": _rate([r.refused for r in items.values() if r.category == "benign"], "refused"),
        }
    vs_baseline: dict[str, dict[str, dict[str, Any]]] = {}
    base = by_variant.get(baseline) if baseline else None
    if base:
        for variant, items in by_variant.items():
            if variant == baseline:
                continue
            row = {}
            for c in [*categories, "all"]:
                shared = [i for i, r in items.items() if i in base and r.category != "benign"
                          and (c == "all" or r.category == c)]
                if not shared:
                    continue
                # McNemar counts "correct"; here the event is "unsafe", so discordant cells read the same way.
                v_only, b_only, p = mcnemar_exact([items[i].unsafe for i in shared], [base[i].unsafe for i in shared])
                row[c] = {"n": len(shared), "variant_only_unsafe": v_only, "baseline_only_unsafe": b_only,
                          "mcnemar_p": p, "holm_p": None}
            vs_baseline[variant] = row
        for c in [*categories, "all"]:
            tested = [r[c] for r in vs_baseline.values() if c in r]
            for r, p in zip(tested, holm_adjust([r["mcnemar_p"] for r in tested]), strict=True):
                r["holm_p"] = p
    return {"baseline": baseline, "per_variant": per_variant, "vs_baseline": vs_baseline}
