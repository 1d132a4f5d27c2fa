"""Turn per-item predictions into the numbers a thesis reports."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict
from typing import Any

from medllm_core.library.evaluation.stats import accuracy, compare, with_holm


def summarise_variant(records: list[dict[str, Any]]) -> dict[str, Any]:
    correct = [r["correct"] for r in records]
    acc = accuracy(correct)
    failures = [r for r in records if r["extracted"] is None]

    def grouped(key: str) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[bool]] = defaultdict(list)
        for r in records:
            groups[r[key]].append(r["correct"])
        return {name: {"n": len(v), "accuracy": sum(v) / len(v)} for name, v in sorted(groups.items())}

    return {
        "correct": acc.correct,
        "total": acc.total,
        "accuracy": acc.value,
        "ci95": [acc.ci_low, acc.ci_high],
        "extraction_failures": len(failures),
        "extraction_failure_rate": len(failures) / len(records) if records else 0.0,
        "extraction_rules": dict(Counter(r["rule"] for r in records)),
        "by_source": grouped("source"),
        "by_subject": grouped("subject"),
        "mean_reply_chars": sum(len(r["response"]) for r in records) / len(records) if records else 0.0,
    }


def comparisons(per_variant: dict[str, list[dict[str, Any]]], baseline: str, *, seed: int,
                exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Variants against ``baseline`` on the same items, Holm-corrected as one family."""
    if baseline not in per_variant:
        return []
    base = [r["correct"] for r in per_variant[baseline]]
    family = [compare(name, [r["correct"] for r in records], baseline, base, seed=seed)
              for name, records in per_variant.items() if name != baseline and name not in exclude]
    return [asdict(c) for c in with_holm(family)]
