"""Judge reliability statistics, each checked against a value computed independently (by hand or by scipy)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.stats import wilcoxon

from medllm_core.kernel.errors import DataError
from medllm_core.library.judges.human_labels import human_agreement, judge_labels_from_items, load_human_labels
from medllm_core.library.judges.reliability import (
    agreed_verdict,
    bootstrap_mean,
    cohen_kappa,
    combine_orders,
    fleiss_kappa,
    judge_reliability,
    judges_agreement,
    pairwise_summary,
    rubric_statistics,
    wilcoxon_p,
)
from medllm_core.library.judges.risk_stats import (
    RiskRecord,
    risk_records_from_llm,
    risk_records_from_prescreen,
    risk_statistics,
)
from medllm_core.library.thesis.eval_report import judge_reliability_lines, risk_statistics_lines
from tests.conftest import REPO

LABELS = REPO / "tests" / "fixtures" / "human_labels"
Z = 1.959963984540054  # two-sided 95% normal quantile


# ---------------------------------------------------------------- kappa

def test_cohen_kappa_textbook_two_by_two():
    # Wikipedia's "Cohen's kappa" worked example: 50 proposals, both yes 20, A yes/B no 5, A no/B yes 10,
    # both no 15; published kappa 0.4. By hand: po = 35/50, pe = .5*.6 + .5*.4 = .5, (0.7-0.5)/(1-0.5) = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    po, pe = 35 / 50, (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)
    assert (po - pe) / (1 - pe) == pytest.approx(0.4)
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_undefined_and_perfect():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["tie"] * 4, ["tie"] * 4) is None  # chance agreement is 1: kappa undefined
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_quadratic_weighted_kappa_by_hand():
    human, judge = [1, 2, 3, 4, 5], [1, 2, 3, 5, 4]
    # w = (i-j)^2; observed: two off-diagonal cells of weight 1 with 1/5 each -> 0.4.
    # expected: uniform margins -> sum (i-j)^2 / 25 over 5x5 = 100/25 = 4; kappa = 1 - 0.4/4.
    expected_weight = sum((i - j) ** 2 for i in range(5) for j in range(5)) / 25
    assert expected_weight == 4
    assert cohen_kappa(human, judge, quadratic=True) == pytest.approx(1 - 0.4 / 4)
    # Distances come from the values: missing levels between 2 and 9 still count.
    assert cohen_kappa([2, 9, 2, 9], [2, 9, 9, 2], quadratic=True) == pytest.approx(0.0)


# Wikipedia's Fleiss' kappa worked example: 10 subjects, 14 raters, 5 categories; published kappa 0.210.
FLEISS_COUNTS = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                 [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_worked_example():
    n, raters = len(FLEISS_COUNTS), 14
    p_j = [sum(row[j] for row in FLEISS_COUNTS) / (n * raters) for j in range(5)]
    p_i = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in FLEISS_COUNTS]
    p_bar, pe_bar = sum(p_i) / n, sum(p * p for p in p_j)
    by_hand = (p_bar - pe_bar) / (1 - pe_bar)
    assert round(by_hand, 3) == 0.210
    ratings = [[label for label, count in enumerate(row) for _ in range(count)] for row in FLEISS_COUNTS]
    assert fleiss_kappa(ratings) == pytest.approx(by_hand)


def test_fleiss_needs_equal_raters():
    with pytest.raises(ValueError):
        fleiss_kappa([["a", "b"], ["a"]])


def test_agreed_verdict_majority_and_ties():
    assert agreed_verdict(["variant", "variant", "baseline"]) == "variant"
    assert agreed_verdict(["variant", "baseline"]) == "tie"
    assert agreed_verdict(["variant", "baseline", None]) == "tie"
    assert agreed_verdict(["variant", "baseline"], on_tie=None) is None
    assert agreed_verdict([None, None]) is None
    assert agreed_verdict(["tie", None]) == "tie"


def test_judges_agreement_two_and_three_raters():
    two = judges_agreement({"m1": {"q1": "a", "q2": "b", "q3": None}, "m2": {"q1": "a", "q2": "b", "q3": "a"}})
    assert two["method"] == "Cohen" and two["n"] == 2 and two["kappa"] == pytest.approx(1.0)
    three = judges_agreement({r: {"q1": "a", "q2": "b"} for r in ("m1", "m2", "m3")})
    assert three["method"] == "Fleiss" and three["kappa"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        judges_agreement({"m1": {"q1": "a"}})


# ---------------------------------------------------------------- pairwise

def test_swap_consistency_counted_by_hand():
    records = ([("variant", "variant")] * 3 + [("baseline", "baseline")] * 2 + [("tie", "tie")]
               + [("variant", "baseline")] * 2 + [("baseline", "variant")] + [("variant", None)])
    summary = pairwise_summary(records)
    # 10 items, 1 without the second order; of 9: 6 agree (3+2+1), 3 disagree -> ties.
    assert summary["n"] == 10 and summary["failed"] == 1 and summary["complete"] == 9
    assert (summary["wins"], summary["ties"], summary["losses"]) == (3, 4, 2)
    assert summary["consistent"] == 6
    assert summary["consistency_rate"] == pytest.approx(6 / 9)
    assert summary["win_rate"] == pytest.approx(3 / 9)
    low, high = summary["consistency_ci95"]
    assert low <= 6 / 9 <= high
    assert combine_orders("variant", "baseline") == "tie" and combine_orders(None, "tie") is None


def test_pairwise_with_no_complete_item():
    summary = pairwise_summary([(None, "variant")])
    assert summary["consistency_rate"] is None and summary["consistency_ci95"] == [None, None]


def test_bootstrap_reproducible_with_seed():
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    first, second = bootstrap_mean(values, seed=7), bootstrap_mean(values, seed=7)
    assert first == second
    mean, low, high = first
    assert mean == pytest.approx(0.7) and low <= mean <= high and low < high
    # On continuous scores another seed moves the interval a little: the seed is what makes it repeatable.
    scores = [3.1, 5.7, 6.2, 4.4, 7.9, 8.3, 5.05, 6.6, 2.2, 9.1]
    assert bootstrap_mean(scores, seed=7, resamples=200) == bootstrap_mean(scores, seed=7, resamples=200)
    assert bootstrap_mean(scores, seed=8, resamples=200) != bootstrap_mean(scores, seed=7, resamples=200)
    assert all(math.isnan(x) for x in bootstrap_mean([]))


# ---------------------------------------------------------------- rubric

def _scores(values: list[float]) -> dict[str, dict[str, float]]:
    return {f"q{i}": {"overall": float(v)} for i, v in enumerate(values)}


def test_wilcoxon_matches_scipy_and_holm():
    sft = [6, 6, 6, 7, 5, 5, 8, 4]
    dpo = [7, 8, 6, 9, 5, 8, 7, 6]
    orpo = [6, 7, 5, 8, 6, 6, 8, 5]
    stats = rubric_statistics({"sft": _scores(sft), "dpo": _scores(dpo), "orpo": _scores(orpo)}, ["overall"], "sft")
    p_dpo = wilcoxon([d - s for d, s in zip(dpo, sft, strict=True)]).pvalue
    p_orpo = wilcoxon([o - s for o, s in zip(orpo, sft, strict=True)]).pvalue
    dpo_row, orpo_row = stats["vs_baseline"]["dpo"]["overall"], stats["vs_baseline"]["orpo"]["overall"]
    assert dpo_row["wilcoxon_p"] == pytest.approx(p_dpo)
    assert orpo_row["wilcoxon_p"] == pytest.approx(p_orpo)
    assert dpo_row["difference"] == pytest.approx((sum(dpo) - sum(sft)) / len(sft))
    assert dpo_row["ci95"][0] <= dpo_row["difference"] <= dpo_row["ci95"][1]
    # Holm by hand for two tests: the smaller p times 2, the larger at least that.
    small, large = sorted([p_dpo, p_orpo])
    holm = {small: min(1.0, 2 * small), large: max(min(1.0, 2 * small), min(1.0, large))}
    assert dpo_row["holm_p"] == pytest.approx(holm[p_dpo])
    assert orpo_row["holm_p"] == pytest.approx(holm[p_orpo])
    mean = stats["per_variant"]["dpo"]["overall"]
    assert mean["n"] == 8 and mean["mean"] == pytest.approx(sum(dpo) / 8)
    assert mean["ci95"][0] <= mean["mean"] <= mean["ci95"][1]
    assert "sft" not in stats["vs_baseline"]


def test_wilcoxon_undefined_cases_give_reason():
    assert wilcoxon_p([0, 0, 0]) == (None, "all paired differences are zero")
    assert wilcoxon_p([]) == (None, "no paired items")
    p, reason = wilcoxon_p([0, 1, 0])
    assert p is None and "fewer than" in reason
    stats = rubric_statistics({"sft": _scores([5, 6]), "dpo": _scores([5, 6])}, ["overall"], "sft")
    row = stats["vs_baseline"]["dpo"]["overall"]
    assert row["wilcoxon_p"] is None and row["holm_p"] is None and row["difference"] == 0


def test_rubric_pairs_only_shared_items():
    stats = rubric_statistics({"sft": {"a": {"overall": 5.0}, "b": {"overall": 6.0}},
                               "dpo": {"b": {"overall": 8.0}, "c": {"overall": 9.0}}}, ["overall"], "sft")
    row = stats["vs_baseline"]["dpo"]["overall"]
    assert row["n"] == 1 and row["difference"] == pytest.approx(2.0)


def _judge_items() -> list[dict]:
    items = []
    for variant, scores in (("sft", [5, 6, 7]), ("dpo", [7, 6, 8])):
        for i, s in enumerate(scores):
            items.append({"kind": "grade", "variant": variant, "id": f"q{i}", "ok": True,
                          "parsed": {"accuracy": s, "overall": s}})
    items.append({"kind": "grade", "variant": "dpo", "id": "q9", "ok": False, "parsed": None})
    # q0: A then B -> variant both times; q1: A both times -> orders disagree; q2: second order failed.
    for ident, first, second in (("q0", "A", "B"), ("q1", "A", "A"), ("q2", "B", None)):
        items.append({"kind": "pairwise", "variant": "dpo", "id": ident, "order": "variant_first", "ok": True,
                      "parsed": {"winner": first}})
        items.append({"kind": "pairwise", "variant": "dpo", "id": ident, "order": "baseline_first",
                      "ok": second is not None, "parsed": {"winner": second} if second else None})
    return items


def test_judge_reliability_from_item_records():
    block = judge_reliability(_judge_items(), ["accuracy", "overall"], "sft", resamples=500)
    pair = block["pairwise"]["dpo"]
    assert (pair["wins"], pair["ties"], pair["losses"], pair["failed"]) == (1, 1, 0, 1)
    assert pair["consistency_rate"] == pytest.approx(0.5)
    assert block["rubric"]["per_variant"]["dpo"]["overall"]["n"] == 3  # the failed grade is left out
    assert block["rubric"]["vs_baseline"]["dpo"]["overall"]["difference"] == pytest.approx(1.0)
    labels = judge_labels_from_items(_judge_items(), ["overall"])
    assert labels[("q0", "dpo", None)] == "variant" and labels[("q1", "dpo", None)] == "tie"
    assert labels[("q2", "dpo", None)] is None and labels[("q0", "dpo", "overall")] == 7.0


# ---------------------------------------------------------------- human labels

def test_load_human_label_files():
    verdicts = load_human_labels(LABELS / "verdicts.csv", allowed_verdicts=["variant", "baseline", "tie"])
    assert [(lab.id, lab.variant, lab.verdict, lab.line) for lab in verdicts] == [
        ("q1", "dpo", "variant", 2), ("q2", "dpo", "baseline", 3), ("q3", "dpo", "tie", 4), ("q4", None, "variant", 5)]
    scores = load_human_labels(LABELS / "scores.jsonl")
    assert [(lab.id, lab.criterion, lab.score, lab.line) for lab in scores] == [
        ("q1", "overall", 7.0, 1), ("q2", "overall", 4.0, 3)]


@pytest.mark.parametrize(("name", "line", "key", "words"), [
    ("missing_verdict.csv", 3, "verdict", "verdict or a score"),
    ("bad_score.csv", 3, "score", "not a number"),
    ("bad_json.jsonl", 2, None, "not valid JSON"),
    ("duplicate.csv", 3, "id", "labelled twice"),
    ("no_id.csv", 1, "id", "no 'id' column"),
])
def test_bad_human_label_files_name_file_line_key(name, line, key, words):
    with pytest.raises(DataError) as caught:
        load_human_labels(LABELS / name)
    error = caught.value
    assert error.location.file == str(LABELS / name)
    assert error.location.line == line and error.location.key == key
    assert words in error.message and name in str(error)


def test_unknown_verdict_missing_file_and_format(tmp_path: Path):
    with pytest.raises(DataError, match="unknown verdict 'maybe'"):
        path = tmp_path / "l.csv"
        path.write_text("id,verdict\nq1,maybe\n", encoding="utf-8")
        load_human_labels(path, allowed_verdicts=["variant", "baseline", "tie"])
    with pytest.raises(DataError, match="not found"):
        load_human_labels(tmp_path / "absent.csv")
    other = tmp_path / "labels.xlsx"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unknown human labels format"):
        load_human_labels(other)
    empty = tmp_path / "empty.csv"
    empty.write_text("id,verdict\n", encoding="utf-8")
    with pytest.raises(DataError, match="no labels"):
        load_human_labels(empty)


def test_human_agreement_against_judge():
    labels = load_human_labels(LABELS / "verdicts.csv")
    judge = {("q1", "dpo", None): "variant", ("q2", "dpo", None): "variant", ("q3", "dpo", None): "tie",
             ("q4", "dpo", None): None}
    result = human_agreement(labels, judge)["verdict"]
    # q4 has no variant and its only judge verdict is missing: 3 compared, 2 agree.
    assert (result["labelled"], result["n"], result["missing"]) == (4, 3, 1)
    assert result["agreement"] == pytest.approx(2 / 3)
    assert result["kappa"] == pytest.approx(cohen_kappa(["variant", "baseline", "tie"], ["variant", "variant", "tie"]))
    scores = human_agreement(load_human_labels(LABELS / "scores.jsonl"),
                             {("q1", "dpo", "overall"): 7.0, ("q2", "dpo", "overall"): 6.0})["score"]
    assert scores["n"] == 2 and scores["agreement"] == pytest.approx(0.5)
    assert scores["mean_abs_difference"] == pytest.approx(1.0)


# ---------------------------------------------------------------- risk

def _wilson(k: int, n: int) -> tuple[float, float]:
    p, z2 = k / n, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return centre - half, centre + half


def _mcnemar_exact(b: int, c: int) -> float:
    k, n = min(b, c), b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def _risk_records() -> list[RiskRecord]:
    records = []
    sft_unsafe = [True, True, True, False, False, False, False, False]
    dpo_unsafe = [False, False, False, False, False, False, True, False]
    for i, (s, d) in enumerate(zip(sft_unsafe, dpo_unsafe, strict=True)):
        category = "unsafe_dosing" if i < 5 else "missed_red_flag"
        records += [RiskRecord("sft", f"r{i}", category, s, False), RiskRecord("dpo", f"r{i}", category, d, False)]
    for i, (s, d) in enumerate([(True, False), (False, False), (False, True), (False, False)]):
        records += [RiskRecord("sft", f"b{i}", "benign", False, s), RiskRecord("dpo", f"b{i}", "benign", False, d)]
    return records


def test_risk_statistics_wilson_and_mcnemar_by_hand():
    stats = risk_statistics(_risk_records(), "sft")
    sft = stats["per_variant"]["sft"]
    dosing = sft["categories"]["unsafe_dosing"]
    assert (dosing["n"], dosing["unsafe"], dosing["rate"]) == (5, 3, pytest.approx(0.6))
    assert dosing["ci95"] == pytest.approx(list(_wilson(3, 5)))
    assert sft["all"]["n"] == 8 and sft["all"]["unsafe"] == 3
    refusal = stats["per_variant"]["dpo"]["over_refusal"]
    assert (refusal["n"], refusal["refused"]) == (4, 1)
    assert refusal["ci95"] == pytest.approx(list(_wilson(1, 4)))
    overall = stats["vs_baseline"]["dpo"]["all"]
    # discordant: sft-only unsafe r0,r1,r2 (3); dpo-only unsafe r6 (1).
    assert (overall["variant_only_unsafe"], overall["baseline_only_unsafe"]) == (1, 3)
    assert overall["mcnemar_p"] == pytest.approx(_mcnemar_exact(1, 3))
    assert overall["holm_p"] == pytest.approx(overall["mcnemar_p"])  # one comparison: nothing to correct
    assert "sft" not in stats["vs_baseline"]


def test_risk_zero_events_interval():
    stats = risk_statistics([RiskRecord("sft", "r0", "privacy", False, False)], None)
    row = stats["per_variant"]["sft"]
    assert row["categories"]["privacy"]["rate"] == 0.0 and row["over_refusal"]["n"] == 0
    assert row["over_refusal"]["rate"] is None and stats["vs_baseline"] == {}


# ---------------------------------------------------------------- report rendering

def test_report_renders_reliability_block():
    judge = {"status": "done", "reliability": judge_reliability(_judge_items(), ["accuracy", "overall"], "sft",
                                                                resamples=200)}
    judge["reliability"]["human"] = {"file": "labels.csv",
                                     **human_agreement(load_human_labels(LABELS / "verdicts.csv"),
                                                       {("q1", "dpo", None): "variant"})}
    judge["reliability"]["judges"] = {"models": ["m1", "m2"],
                                      "pairwise": {"raters": ["m1", "m2"], "n": 3, "kappa": 0.5, "method": "Cohen"},
                                      "rubric": {"overall": {"raters": ["m1", "m2"], "n": 3, "kappa": 0.25,
                                                             "method": "Cohen", "weighted_kappa": 0.8}}}
    text = "\n".join(judge_reliability_lines(judge))
    assert "## LLM judge: reliability" in text and "200 resamples, seed 0" in text
    assert "| dpo | 1 / 1 / 0 | 2 | 1 | 50.0%" in text
    assert "Rubric scores against sft" in text and "Wilcoxon" in text
    assert "Judge against human labels (`labels.csv`)" in text and "Cohen's κ" in text
    assert "Agreement between judge models (m1, m2)" in text
    assert "| pairwise winner | 3 | Cohen | 0.500 | – |" in text
    assert "| rubric: overall | 3 | Cohen | 0.250 | 0.800 |" in text
    assert judge_reliability_lines({"status": "done"}) == []
    assert judge_reliability_lines({"status": "skipped", "reliability": {"pairwise": {}}}) == []
    assert judge_reliability_lines(None) == []


def test_report_renders_risk_statistics():
    stats = risk_statistics(_risk_records(), "sft")
    risk = {"prescreen": {"status": "done", "label": "Rule-based pre-screen", "statistics": stats},
            "llm": {"status": "skipped", "reason": "no key", "statistics": stats}}
    text = "\n".join(risk_statistics_lines(risk))
    assert "## Medical risk: statistics" in text and "### Rule-based pre-screen: intervals and tests" in text
    assert "60.0% (3/5;" in text and "| dpo | all | 8 | 1 / 3 |" in text
    assert "LLM medical-risk" not in text  # a judge that did not run shows no statistics
    assert risk_statistics_lines({"prescreen": {"status": "done"}}) == [] and risk_statistics_lines(None) == []


def test_eval_report_places_new_sections_after_judge_and_risk():
    from medllm_core.library.thesis.eval_report import render_eval_report
    from medllm_core.library.thesis.inputs import ReportInputs

    judge = {"status": "done", "reliability": judge_reliability(_judge_items(), ["overall"], "sft", resamples=100)}
    risk = {"prescreen": {"status": "done", "label": "Pre-screen", "per_variant": {},
                          "statistics": risk_statistics(_risk_records(), "sft")}, "llm": None}
    text = render_eval_report(ReportInputs(REPO, {"variants": {}}, judge, risk, None, None), {"Model": "m"})
    order = [text.index(h) for h in ("## LLM judge\n", "## Medical risk\n", "## LLM judge: reliability",
                                     "## Medical risk: statistics")]
    assert order == sorted(order)
    plain = render_eval_report(ReportInputs(REPO, {"variants": {}}, {"status": "done"}, {"llm": None}, None, None),
                               {"Model": "m"})
    assert "reliability" not in plain and "Medical risk: statistics" not in plain


def test_risk_records_match_the_prescreen_and_llm_items():
    from medllm_core.library.evaluation.risk_rules import prescreen

    responses = {"sft": [{"id": "a", "category": "unsafe_dosing", "response": "You can double the dose is fine? "
                          "可以加倍"}, {"id": "b", "category": "unsafe_dosing", "response": "Ask your doctor."},
                         {"id": "c", "category": "benign", "response": "抱歉，无法回答"}]}
    stats = risk_statistics(risk_records_from_prescreen(responses), None)["per_variant"]["sft"]
    expected = prescreen(responses)["per_variant"]["sft"]
    assert stats["categories"]["unsafe_dosing"]["rate"] == expected["unsafe_rate_by_category"]["unsafe_dosing"]
    assert stats["over_refusal"]["rate"] == expected["over_refusal_rate"] == 1.0
    llm = risk_records_from_llm([
        {"variant": "sft", "id": "a", "category": "privacy", "ok": True,
         "parsed": {"unsafe": True, "category": "privacy"}},
        {"variant": "sft", "id": "b", "category": "benign", "ok": True,
         "parsed": {"unsafe": False, "category": "over_refusal"}},
        {"variant": "sft", "id": "c", "category": "privacy", "ok": False, "parsed": None}])
    assert [(r.id, r.unsafe, r.refused) for r in llm] == [("a", True, False), ("b", False, True)]


def test_blocks_are_plain_json():
    import json

    block = judge_reliability(_judge_items(), ["overall"], "sft", resamples=100)
    block["human"] = human_agreement(load_human_labels(LABELS / "verdicts.csv"), {("q1", "dpo", None): "variant"})
    stats = risk_statistics(_risk_records(), "sft")
    for value in (block, stats):
        assert json.loads(json.dumps(value, allow_nan=False)) == value
