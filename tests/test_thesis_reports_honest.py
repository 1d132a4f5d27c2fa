"""The thesis reports say what the numbers are worth: degenerate evaluations, smoke tests, protocols, edge cases.

Everything here calls the readiness and report functions directly on
hand-built ``eval_results.json`` dicts (the new shape with protocols and
dropped items, and the older shape without), so no model is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from medllm_core.kernel import smoke
from medllm_core.kernel.day1_summary import write_day1_summary
from medllm_core.kernel.errors import ExitCode
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.schema import SchemaError, build
from medllm_core.kernel.stages import StageResult
from medllm_core.library import report_paths as rp
from medllm_core.library.evaluation.stats import accuracy
from medllm_core.library.thesis.eval_report import (
    error_bars,
    judge_lines,
    render_eval_report,
    risk_lines,
    write_accuracy_plot,
)
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.other_reports import (
    PUBLISHED_RESULTS,
    render_draft_material,
    render_error_analysis,
    render_sota,
)
from medllm_core.library.thesis.readiness import evaluate_readiness, render_readiness
from medllm_core.library.thesis.record import build_experiment_record
from medllm_core.library.thesis.settings import ThesisReportSettings
from tests.conftest import REPO

TINY = REPO / "profiles" / "cpu_tiny.toml"
REAL = {"model.tier": "7b", "model.name_or_path": "Qwen/Qwen2.5-7B-Instruct"}
NOTICE = "> **Smoke test** — "


# --- building eval_results dicts -------------------------------------------------------------

def variant(correct: int, total: int, failures: int = 0) -> dict[str, Any]:
    acc = accuracy([True] * correct + [False] * (total - correct))
    return {"correct": acc.correct, "total": acc.total, "accuracy": acc.value, "ci95": [acc.ci_low, acc.ci_high],
            "extraction_failures": failures, "extraction_failure_rate": failures / total if total else 0.0,
            "extraction_rules": {"answer_marker": total - failures, "none": failures},
            "by_source": {"MedQA-style": {"n": total, "accuracy": acc.value}},
            "by_subject": {"general": {"n": total, "accuracy": acc.value}}, "mean_reply_chars": 12.0}


def new_shape(variants: dict[str, dict[str, Any]], *, items: int | None = None, chance: float | None = 0.243,
              loglik: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    items = items if items is not None else next(iter(variants.values()))["total"]
    generate = {"description": "greedy generation with each model's chat template, then the rule cascade",
                "prompt_template": "mcq-v2", "shots": 0, "max_new_tokens": 16, "variants": variants,
                "comparisons_vs_base": [], "comparisons_vs_baseline": [], "chance_accuracy": chance}
    protocols = {"generate": generate}
    if loglik is not None:
        protocols["loglik"] = {"description": "log-likelihood of each option letter after the prompt",
                               "prompt_template": "mcq-v2", "shots": 0, "max_new_tokens": None, "variants": loglik,
                               "comparisons_vs_base": [], "chance_accuracy": chance}
    return {"items": items, "items_loaded": items, "items_in_file": items + 2,
            "dropped": {"count": 2, "by_reason": {"options unreadable": 1, "answer not among options": 1},
                        "examples": [{"file": "mcq.jsonl", "line": 7, "key": "options",
                                      "reason": "options unreadable"}]},
            "protocol": "generate", "protocols": protocols, "chance_accuracy": chance, "variants": variants,
            "comparisons_vs_base": [], "baseline_variant": None, "comparisons_vs_baseline": [],
            "decoding": {"do_sample": False, "max_new_tokens_mcq": 16, "max_new_tokens_open": 48,
                         "chat_template": "each model's own", "batch_size": 8},
            "not_evaluated": [], "reused_variants": [], "open_items": 20, "safety_items": 24}


def old_shape(variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An eval_results.json from before protocols, dropped items and chance accuracy."""
    items = next(iter(variants.values()))["total"]
    return {"items": items, "variants": variants, "comparisons_vs_base": [], "baseline_variant": None,
            "comparisons_vs_baseline": [], "not_evaluated": [], "open_items": 0, "safety_items": 0,
            "decoding": {"do_sample": False, "max_new_tokens_mcq": 32, "max_new_tokens_open": 256,
                         "chat_template": "each model's own", "batch_size": 8}}


HEALTHY = {"base": variant(120, 200), "sft": variant(130, 200, failures=4)}


# --- contexts --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalogue():
    return load_plugins(environ={}).catalogue()


def profile_of(catalogue, overrides: dict[str, Any] | None = None):
    return load_profile(TINY, environ={}, cli_overrides=overrides or {}, stages=catalogue)


def context_of(tmp_path: Path, profile, settings: ThesisReportSettings | None = None) -> SimpleNamespace:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    plan = []
    if settings is not None:
        plan.append(SimpleNamespace(spec=SimpleNamespace(name="thesis_reports", kind="report"), enabled=True,
                                    required=False, settings=settings, source_plugin="thesis_reports"))
    return SimpleNamespace(
        run=SimpleNamespace(reports_dir=reports, run_id="run-test", events_path=tmp_path / "events.jsonl",
                            output_dir=tmp_path),
        results={}, plan=plan, profile=profile, decisions=[], preflight=None,
        hardware=SimpleNamespace(describe=lambda: "CPU (test)", to_dict=lambda: {"description": "CPU (test)"}),
        precision=SimpleNamespace(dtype="fp32", reason="test"), gate=SimpleNamespace(verdict="ok", reason="test"),
        events=SimpleNamespace(mask=lambda text: text),
    )


def inputs_of(context, results: dict[str, Any] | None, **extra: Any) -> ReportInputs:
    return ReportInputs(reports_dir=context.run.reports_dir, eval_results=results, judge_results=None,
                        risk_results=None, method_comparison=None, completion={"strict_pass": True},
                        smoke_reason=smoke.smoke_reason(context.profile), **extra)


def write_required_reports(reports: Path) -> None:
    for name in (rp.EVAL_DEFAULT_MD, rp.SOTA_COMPARE_MD, rp.ERROR_ANALYSIS_MD, rp.THESIS_DRAFT_MATERIAL,
                 rp.EXPERIMENT_RECORD, rp.COMPLETION_CHECK_JSON):
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text("{}", encoding="utf-8")


def conditions(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["conditions"]}


# --- the degenerate-evaluation rules ----------------------------------------------------------

def test_healthy_evaluation_of_a_real_model_is_ready(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    write_required_reports(context.run.reports_dir)
    report = evaluate_readiness(context, inputs_of(context, new_shape(HEALTHY)))
    found = conditions(report)
    assert found["above_chance"]["met"] and found["extraction_failures"]["met"] and found["eval_items"]["met"]
    assert "2 of 2 variant(s)" in found["above_chance"]["reason"] and "24.3%" in found["above_chance"]["reason"]
    assert "200 multiple-choice items evaluated (min_eval_items = 100)" == found["eval_items"]["reason"]
    assert report["ready_for_writing"] is True, report["unmet"]
    assert report["smoke_test"] is False and report["smoke_reason"] is None
    assert NOTICE not in render_readiness(report)


def test_every_variant_at_or_below_chance_is_degenerate(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape({"base": variant(5, 200), "sft": variant(8, 200)})
    report = evaluate_readiness(context, inputs_of(context, results))
    above = conditions(report)["above_chance"]
    assert not above["met"] and above["blocking"]
    assert "chance 24.3%" in above["reason"] and "base ≤" in above["reason"] and "sft ≤" in above["reason"]
    assert report["ready_for_writing"] is False
    assert any(u.startswith("above_chance: every variant is at or below chance") for u in report["unmet"])
    # one variant whose interval reaches above chance is enough
    results = new_shape({"base": variant(5, 200), "sft": variant(60, 200)})
    assert conditions(evaluate_readiness(context, inputs_of(context, results)))["above_chance"]["met"]


def test_upper_bound_exactly_at_chance_counts_as_at_chance(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape({"base": variant(10, 200)})
    results["chance_accuracy"] = results["protocols"]["generate"]["chance_accuracy"] = \
        results["variants"]["base"]["ci95"][1]
    assert not conditions(evaluate_readiness(context, inputs_of(context, results)))["above_chance"]["met"]


def test_extraction_failures_above_the_threshold_are_degenerate(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape({"base": variant(120, 200), "sft": variant(90, 200, failures=60)})
    row = conditions(evaluate_readiness(context, inputs_of(context, results)))["extraction_failures"]
    assert not row["met"] and row["blocking"]
    assert "above 20.0%" in row["reason"] and "generate/sft 30.0%" in row["reason"]
    assert "max_extraction_failure_rate = 0.2" in row["reason"]
    loose = context_of(tmp_path, profile_of(catalogue, REAL), ThesisReportSettings(max_extraction_failure_rate=0.5))
    assert conditions(evaluate_readiness(loose, inputs_of(loose, results)))["extraction_failures"]["met"]


def test_too_few_items_is_degenerate_and_the_minimum_is_a_setting(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape({"base": variant(30, 40), "sft": variant(32, 40)})
    row = conditions(evaluate_readiness(context, inputs_of(context, results)))["eval_items"]
    assert not row["met"]
    assert row["reason"] == "40 multiple-choice items evaluated, fewer than 100 (min_eval_items = 100)"
    lower = context_of(tmp_path, profile_of(catalogue, REAL), ThesisReportSettings(min_eval_items=40))
    assert conditions(evaluate_readiness(lower, inputs_of(lower, results)))["eval_items"]["met"]


def test_protocol_and_dropped_items_are_reported_but_do_not_block(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape(HEALTHY, loglik={"base": variant(110, 200), "sft": variant(125, 200)})
    report = evaluate_readiness(context, inputs_of(context, results))
    row = conditions(report)["eval_protocol"]
    assert row["met"] and not row["blocking"]
    assert "protocol `generate`" in row["reason"] and "protocols: generate, loglik" in row["reason"]
    assert "200 of 202 multiple-choice items evaluated; 2 dropped (answer not among options: 1, options " \
           "unreadable: 1)" in row["reason"]
    markdown = render_readiness(report)
    for name in ("above_chance", "extraction_failures", "eval_items", "eval_protocol"):
        assert f"| {name} |" in markdown


def test_an_older_results_file_gets_fallbacks(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    report = evaluate_readiness(context, inputs_of(context, old_shape(HEALTHY)))
    found = conditions(report)
    assert found["above_chance"]["met"] and not found["above_chance"]["blocking"]
    assert "no chance_accuracy" in found["above_chance"]["reason"]
    assert "protocol `generate`" in found["eval_protocol"]["reason"]
    assert "none dropped" in found["eval_protocol"]["reason"]
    text = render_eval_report(inputs_of(context, old_shape(HEALTHY)), {"Model": "m"})
    assert "Protocol `generate` (primary)" in text and "prompt template `not recorded`" in text
    assert "Chance accuracy: not recorded" in text


def test_no_evaluation_at_all_is_not_ready(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    report = evaluate_readiness(context, inputs_of(context, None))
    found = conditions(report)
    assert not found["eval_items"]["met"] and "0 multiple-choice items" in found["eval_items"]["reason"]
    assert report["ready_for_writing"] is False


def test_thesis_settings_are_validated(catalogue, tmp_path):
    with pytest.raises(SchemaError, match="min_eval_items"):
        build(ThesisReportSettings, {"min_eval_items": -1}, "stages.thesis_reports")
    for rate in (-0.1, 1.5):
        with pytest.raises(SchemaError, match="max_extraction_failure_rate"):
            build(ThesisReportSettings, {"max_extraction_failure_rate": rate}, "stages.thesis_reports")
    profile = profile_of(catalogue, {"stages.thesis_reports.min_eval_items": 40,
                                     "stages.thesis_reports.max_extraction_failure_rate": 1})
    assert profile.stages["thesis_reports"]["min_eval_items"] == 40
    assert profile.stages["thesis_reports"]["max_extraction_failure_rate"] == 1.0


# --- the smoke-test notice ---------------------------------------------------------------------

def every_page(tmp_path: Path, profile) -> dict[str, str]:
    """Every markdown page the thesis stages and the runner write, for ``profile``."""
    context = context_of(tmp_path, profile)
    results = new_shape(HEALTHY)
    inputs = inputs_of(context, results)
    record = build_experiment_record(context, inputs)
    pages = {
        "eval_default": render_eval_report(inputs, {"Model": profile.model.name_or_path}),
        "sota_compare": render_sota(inputs, profile.model.name_or_path),
        "error_analysis": render_error_analysis(inputs),
        "thesis_draft_material": render_draft_material(inputs, record),
        "thesis_readiness": render_readiness(evaluate_readiness(context, inputs)),
    }
    eval_json = tmp_path / "eval_results.json"
    eval_json.write_text(json.dumps(results), encoding="utf-8")
    context.plan = [SimpleNamespace(spec=SimpleNamespace(name="eval", kind="evaluation"), enabled=True,
                                    required=False, settings=None, source_plugin="evaluation")]
    context.results = {"eval": StageResult.done(metrics_path=str(eval_json))}
    outcome = SimpleNamespace(exit_code=ExitCode.OK, message="")
    pages["day1_summary"] = write_day1_summary(context, outcome).read_text(encoding="utf-8")
    pages["record"] = json.dumps(record)
    return pages


def assert_notice_under_title(page: str, name: str) -> None:
    lines = page.split("\n")
    assert lines[0].startswith("# "), name
    assert lines[1] == "" and lines[2].startswith(NOTICE), (name, lines[:4])
    assert lines[2].endswith("these numbers test the pipeline, not a model; do not cite them."), name
    assert lines[3] == "", name


def test_every_page_of_a_tiny_run_opens_with_the_smoke_notice(tmp_path, catalogue):
    pages = every_page(tmp_path, profile_of(catalogue))
    record = json.loads(pages.pop("record"))
    for name, page in pages.items():
        assert_notice_under_title(page, name)
        assert "embedded tiny model `medllm/tiny-qwen2`" in page, name
    assert record["smoke_test"] is True and "tiny model" in record["smoke_reason"]


def test_a_profile_marked_as_smoke_test_gets_the_notice(tmp_path, catalogue):
    profile = profile_of(catalogue, {**REAL, "model.smoke_test": True})
    assert profile.model.is_smoke_test
    pages = every_page(tmp_path, profile)
    record = json.loads(pages.pop("record"))
    for name, page in pages.items():
        assert_notice_under_title(page, name)
        assert "(model.smoke_test = true)" in page, name
    assert record["smoke_test"] is True


def test_a_real_model_run_has_no_notice(tmp_path, catalogue):
    profile = profile_of(catalogue, REAL)
    assert not profile.model.is_smoke_test
    pages = every_page(tmp_path, profile)
    record = json.loads(pages.pop("record"))
    for name, page in pages.items():
        assert NOTICE not in page and "Smoke test" not in page, name
    assert record["smoke_test"] is False and record["smoke_reason"] is None
    # a tiny-tier model the profile says is not a smoke test is believed
    assert not profile_of(catalogue, {"model.smoke_test": False}).model.is_smoke_test


def test_the_reason_says_when_gains_are_memorised(tmp_path, catalogue, monkeypatch):
    samples = tmp_path / "samples"
    samples.mkdir()
    question = "Which serum marker is most specific for myocardial infarction?"
    (samples / "mcq.jsonl").write_text(json.dumps({"question": question, "options": {"A": "x", "B": "y"},
                                                   "answer": "A"}) + "\n", encoding="utf-8")
    (samples / "sft.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": question},
                                                                {"role": "assistant", "content": "A"}]}) + "\n",
                                       encoding="utf-8")
    monkeypatch.setattr(smoke, "BUNDLED_SAMPLES", samples)
    profile = profile_of(catalogue, {"data.eval_mcq.path": str(samples / "mcq.jsonl"),
                                     "data.sft.path": str(samples / "sft.jsonl")})
    reason = smoke.smoke_reason(profile)
    assert "1 of the 1 bundled sample multiple-choice questions also appear in the bundled training data" in reason
    assert "memorisation" in reason
    # the same files outside the bundled samples are the user's own: not checked
    monkeypatch.setattr(smoke, "BUNDLED_SAMPLES", tmp_path / "elsewhere")
    assert "memorisation" not in smoke.smoke_reason(profile)


# --- 0%, 100%, a single item, nothing at all ---------------------------------------------------

@pytest.mark.parametrize("variants", [
    {"base": variant(0, 40), "sft": variant(0, 40)},
    {"base": variant(40, 40), "sft": variant(40, 40)},
    {"base": variant(1, 1), "sft": variant(0, 1)},
], ids=["all-wrong", "all-right", "single-item"])
def test_reports_render_at_the_extremes(tmp_path, catalogue, variants):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape(variants)
    inputs = inputs_of(context, results)
    text = render_eval_report(inputs, {"Model": "m"})
    assert "| base |" in text and "| sft |" in text
    render_sota(inputs, "m")
    render_error_analysis(inputs)
    render_readiness(evaluate_readiness(context, inputs))
    png = write_accuracy_plot(results, tmp_path / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_error_bars_are_never_negative_at_0_and_100_percent(tmp_path):
    variants = {f"{k}/{n}": variant(k, n) for n in range(1, 51) for k in (0, n)}
    raw = [(v["accuracy"] - v["ci95"][0], v["ci95"][1] - v["accuracy"]) for v in variants.values()]
    assert any(min(pair) < 0 for pair in raw)  # the rounding this guards against really happens
    values, low, high = error_bars(variants, list(variants))
    assert min(low) >= 0 and min(high) >= 0
    write_accuracy_plot(new_shape(variants, items=50), tmp_path / "plot.png")  # matplotlib rejects negative bars


def test_empty_and_missing_numbers_do_not_crash(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    empty = new_shape({}, items=0)
    inputs = inputs_of(context, empty)
    text = render_eval_report(inputs, {"Model": "m"})
    assert "No variant was scored under this protocol." in text
    render_sota(inputs, "m")
    render_error_analysis(inputs)
    report = evaluate_readiness(context, inputs)
    assert not conditions(report)["above_chance"]["met"] and report["ready_for_writing"] is False
    write_accuracy_plot(empty, tmp_path / "empty.png")
    nothing = {"correct": 0, "total": 0, "accuracy": float("nan"), "ci95": [float("nan"), float("nan")]}
    write_accuracy_plot(new_shape({"base": nothing}, items=0), tmp_path / "nan.png")
    assert "| base | – | – – – | 0/0 |" in render_eval_report(inputs_of(context, new_shape({"base": nothing})), {})
    assert "No answer was scored." in "\n".join(judge_lines({"status": "done", "model": "j", "prompt_version": "1",
                                                              "criteria": ["overall"], "single": {}}))
    screened = risk_lines({"prescreen": {"label": "Rule-based pre-screen", "status": "done", "categories": [],
                                         "per_variant": {}}})
    assert "No answer was screened." in screened


# --- protocols and item counts in every table --------------------------------------------------

def test_eval_report_has_one_table_per_protocol_with_its_setting(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    results = new_shape(HEALTHY, loglik={"base": variant(110, 200), "sft": variant(125, 200)})
    text = render_eval_report(inputs_of(context, results), {"Model": "m"})
    generate, loglik = text.index("Protocol `generate` (primary)"), text.index("Protocol `loglik`")
    assert generate < loglik
    assert text.count("prompt template `mcq-v2`; 0-shot") >= 2
    assert "Chance accuracy (uniform random guessing on these items): 24.3%" in text
    assert "200 of 202 multiple-choice items evaluated; 2 dropped (answer not among options: 1, options " \
           "unreadable: 1)" in text
    assert "`mcq.jsonl` line 7 (options): options unreadable" in text
    assert "| base | 55.0% |" in text  # the loglik table
    assert "Answer extraction (`generate`)" in text


def test_record_and_day1_summary_state_items_and_protocol(tmp_path, catalogue):
    pages = every_page(tmp_path, profile_of(catalogue, REAL))
    record = json.loads(pages["record"])["evaluation"]
    assert record["items_evaluated"] == 200 and record["items_in_file"] == 202
    assert record["dropped"] == {"count": 2, "by_reason": {"options unreadable": 1, "answer not among options": 1}}
    assert record["protocol"] == "generate" and record["chance_accuracy"] == 0.243
    assert record["protocols"]["generate"]["prompt_template"] == "mcq-v2"
    assert ("- eval: 200 multiple-choice items evaluated, 2 dropped (answer not among options: 1, options "
            "unreadable: 1); protocol `generate`; chance accuracy 24.3%") in pages["day1_summary"]


def test_sota_names_each_rows_protocol_and_warns_on_a_mismatch(tmp_path, catalogue):
    context = context_of(tmp_path, profile_of(catalogue, REAL))
    text = render_sota(inputs_of(context, new_shape(HEALTHY)), "Qwen/Qwen2.5-7B-Instruct")
    rows = [line for line in text.splitlines() if "HuatuoGPT-o1" in line]
    assert len(rows) == 7
    assert all("generate (sampled, T=0.5, top-p 0.9) ⚠ differs from this run's `generate`" in r for r in rows)
    assert "⚠ protocol not stated" in text and "**Protocol:** this run scored with `generate`" in text
    assert "| Qwen/Qwen2.5-7B-Instruct (base) | this run's 200 items | generate |" in text


def test_published_table_holds_the_huatuogpt_o1_rows():
    rows = json.loads(PUBLISHED_RESULTS.read_text(encoding="utf-8"))["rows"]
    huatuo = {(r["model"], r["benchmark"]): r for r in rows if "2412.18925" in r["source_url"]}
    assert {k: r["value"] for k, r in huatuo.items()} == {
        ("Qwen2.5-7B-Instruct", "MedQA-USMLE"): 57.0, ("Qwen2.5-7B-Instruct", "MedMCQA"): 55.6,
        ("Qwen2.5-7B-Instruct", "PubMedQA"): 72.7, ("Qwen2.5-7B", "MedQA-MCMLE"): 71.4,
        ("Qwen2.5-7B", "CMB"): 70.7, ("Qwen2.5-7B", "CMExam"): 70.4, ("Qwen2.5-7B", "CMMLU-medical"): 70.5}
    assert {r["protocol"] for r in huatuo.values()} == {"generate (sampled, T=0.5, top-p 0.9)"}
    assert all("protocol" in r for r in rows)
