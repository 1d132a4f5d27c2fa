"""Several judge models on the same items: their agreement, and the agreed verdicts the tables use.

``[stages.llm_judge] models = ["a", "b"]`` asks each model every request at the same
endpoint. The verdicts are combined per request: a rubric criterion gets the mean of
the judges' scores (an ordinal scale: the mean keeps the judges' spread visible in the
intervals), a pairwise order gets the majority winner (a tie for first place is a
tie). A request counts as judged when at least one judge gave a usable verdict. The
agreement between judges is reported as Cohen's κ (two judges; quadratic-weighted
for rubric scores) or Fleiss' κ (three or more) on the requests every judge answered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from medllm_core.library.judges.records import JudgeResult
from medllm_core.library.judges.reliability import agreed_verdict, cohen_kappa, judges_agreement


def combine(per_model: dict[str, list[JudgeResult]], meta: list[dict[str, Any]],
            criteria: tuple[str, ...] | list[str]) -> list[JudgeResult]:
    """One agreed result per request from every model's results (same order as ``meta``)."""
    models = list(per_model)
    combined = []
    for index, m in enumerate(meta):
        answers = [per_model[model][index] for model in models]
        usable = [a for a in answers if a.ok and a.parsed]
        if not usable:
            combined.append(answers[0])
            continue
        if m["kind"] == "grade":
            parsed = {c: sum(float(a.parsed[c]) for a in usable) / len(usable) for c in criteria
                      if all(c in a.parsed for a in usable)}
        else:
            parsed = {"winner": agreed_verdict([a.parsed.get("winner") for a in usable])}
        combined.append(replace(usable[0], parsed=parsed, model="+".join(models), raw=None))
    return combined


def agreement(per_model: dict[str, list[JudgeResult]], meta: list[dict[str, Any]],
              criteria: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """κ between the judge models: pairwise winners per request, and each rubric criterion."""
    models = list(per_model)

    def labels(kind: str, key: str) -> dict[str, dict[str, Any]]:
        return {model: {f"{m['variant']}:{m['id']}:{m.get('order', '')}": (r.parsed or {}).get(key)
                        for m, r in zip(meta, per_model[model], strict=True) if m["kind"] == kind and r.ok}
                for model in models}

    block: dict[str, Any] = {"models": models, "pairwise": _safe(labels("pairwise", "winner")), "rubric": {}}
    for criterion in criteria:
        scores = labels("grade", criterion)
        row = _safe(scores)
        if len(models) == 2 and row.get("n"):
            a, b = models
            shared = sorted(set(scores[a]) & set(scores[b]))
            row["weighted_kappa"] = cohen_kappa([scores[a][i] for i in shared], [scores[b][i] for i in shared],
                                                quadratic=True)
        block["rubric"][criterion] = row
    return block


def _safe(verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """judges_agreement, or n = 0 when no request was answered by every judge."""
    if not any(verdicts.values()):
        return {"raters": list(verdicts), "n": 0, "kappa": None, "method": None}
    return judges_agreement(verdicts)
