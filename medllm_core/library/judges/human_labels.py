"""Human labels for a subset of judged items, and how well the judge agrees with them.

File format (README "Human labels"): CSV with a header row, or JSONL; keys ``id`` and
``verdict`` or ``score``, optionally ``variant`` and ``criterion``. Bad rows stop
with a ``DataError`` naming the file, line and key. The agreement block's shape
is in ``reliability``'s docstring (``"human"``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medllm_core.kernel.errors import DataError, Location
from medllm_core.kernel.user_files import read_user_text
from medllm_core.library.judges.reliability import cohen_kappa, combine_orders, pairs_from_items, scores_from_items


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
    text = read_user_text(path, "human labels file", DataError)  # FIFOs refused unopened
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
