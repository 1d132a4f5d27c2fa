"""Several judge models: agreed verdicts and the κ between them, checked by hand."""

from __future__ import annotations

import pytest

from medllm_core.library.judges.panel import agreement, combine
from medllm_core.library.judges.records import JudgeResult


def _result(model: str, parsed: dict | None) -> JudgeResult:
    return JudgeResult(parsed is not None, parsed, "{}", "ok" if parsed else "parse_failure", 1, False,
                       "" if parsed else "bad", model, "p", "v1", 0.0)


META = ([{"kind": "grade", "variant": "sft", "id": str(i)} for i in range(4)]
        + [{"kind": "pairwise", "variant": "dpo", "id": str(i), "order": "variant_first"} for i in range(4)])


def _per_model() -> dict[str, list[JudgeResult]]:
    a = [_result("a", {"overall": s}) for s in (2, 4, 6, 8)] + [_result("a", {"winner": w}) for w in "AABB"]
    b = [_result("b", {"overall": s}) for s in (2, 4, 8, 8)] + [_result("b", {"winner": w}) for w in "ABBB"]
    b[0] = _result("b", None)  # one grade b could not parse: a's verdict stands alone
    return {"a": a, "b": b}


def test_agreed_verdicts_mean_scores_and_majority_winners() -> None:
    combined = combine(_per_model(), META, ["overall"])
    assert [r.parsed["overall"] for r in combined[:4]] == [2, 4, 7, 8]
    # two judges: same winner stays, a split vote is a tie
    assert [r.parsed["winner"] for r in combined[4:]] == ["A", "tie", "B", "B"]
    assert all(r.ok and r.model == "a+b" for r in combined)


def test_kappa_between_two_judges_by_hand() -> None:
    block = agreement(_per_model(), META, ["overall"])
    pairwise = block["pairwise"]
    # winners a = AABB, b = ABBB: p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; κ = (3/4 - 1/2) / (1/2) = 1/2
    assert pairwise["n"] == 4 and pairwise["method"] == "Cohen"
    assert pairwise["kappa"] == pytest.approx(0.5)
    rubric = block["rubric"]["overall"]
    assert rubric["n"] == 3  # item 0 has no usable score from b
    # scores a = 4, 6, 8; b = 4, 8, 8 on the shared items; unweighted κ over the labels {4, 6, 8}:
    # p_o = 2/3; p_e = (1/3)(1/3) + (1/3)(0) + (1/3)(2/3) = 1/3; κ = (2/3 - 1/3) / (2/3) = 1/2
    assert rubric["kappa"] == pytest.approx(0.5)
    assert rubric["weighted_kappa"] is not None and rubric["weighted_kappa"] > rubric["kappa"]
