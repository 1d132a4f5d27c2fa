"""``thesis_readiness.json|.md``: is this run something a thesis can be written from?

``ready_for_writing`` is true only when the strict completion check passed,
evaluation produced numbers that are not degenerate (enough items, some variant
distinguishable from guessing, answers that could be read), every report
exists, every judge the profile turned on actually ran, and the model is a real
one (not a smoke test). Each unmet condition carries its reason, with numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.smoke import smoke_notice, smoke_reason, under_title
from medllm_core.kernel.stages import StageKind
from medllm_core.library import report_paths as rp
from medllm_core.library.judges.settings import turned_off
from medllm_core.library.thesis.inputs import ReportInputs, load_json
from medllm_core.library.thesis.protocols import finite, item_counts, protocols
from medllm_core.library.thesis.settings import ThesisReportSettings, thesis_settings
from medllm_core.library.thesis.tables import pct

REQUIRED_REPORTS = (
    rp.EVAL_DEFAULT_MD,
    rp.SOTA_COMPARE_MD,
    rp.ERROR_ANALYSIS_MD,
    rp.THESIS_DRAFT_MATERIAL,
    rp.EXPERIMENT_RECORD,
    rp.COMPLETION_CHECK_JSON,
)


@dataclass
class Condition:
    name: str
    met: bool
    reason: str
    blocking: bool = True


def _judge_condition(name: str, enabled: bool, block: dict[str, Any] | None, switch: str) -> Condition:
    if not enabled:
        return Condition(name, True, f"turned off ({switch}): its tables are absent from the reports",
                         blocking=False)
    if block and block.get("status") == "done":
        return Condition(name, True, f"ran with model {block.get('model')}")
    reason = (block or {}).get("reason", "the stage did not run")
    if block and block.get("status") in ("partial", "failed") and "coverage" in block:
        # It ran, but too few verdicts to cite: not counted, and the reason carries the numbers.
        return Condition(name, False, f"enabled but not counted as run ({block['status']}, coverage "
                                      f"{100 * float(block['coverage']):.0f}%): {reason}")
    return Condition(name, False, f"enabled but did not run: {reason}")


def _judge_conditions(context: Any) -> list[Condition]:
    """One condition per enabled judge stage of the plan: turned off, ran, or why it did not."""
    conditions = []
    for planned in context.plan:
        if not planned.enabled or StageKind(planned.spec.kind) != StageKind.JUDGE:
            continue
        use_llm = getattr(planned.settings, "use_llm", True)
        result = context.results.get(planned.spec.name)
        data = load_json(Path(result.metrics_path)) if result is not None and result.metrics_path else None
        block = data.get("llm", data) if isinstance(data, dict) and "llm" in data else data
        if result is not None and not block:
            block = {"status": "skipped", "reason": result.reason or "the stage wrote no results"}
        conditions.append(_judge_condition(planned.spec.name, use_llm, block, turned_off(planned.spec)))
    return conditions


def _upper(variant: dict[str, Any]) -> float | None:
    return finite((list(variant.get("ci95") or []) + [None, None])[1])


def above_chance_condition(results: dict[str, Any] | None) -> Condition:
    """(a) Degenerate when every variant, the base included, has its Wilson upper bound at or below chance."""
    found = protocols(results)
    if not found or not found[0].variants:
        return Condition("above_chance", False, "not checked: no variant evaluated", blocking=False)
    protocol = found[0]
    chance = protocol.chance_accuracy
    if chance is None:
        return Condition("above_chance", True, "not checked: eval_results.json records no chance_accuracy (older "
                         "evaluation)", blocking=False)
    bounds = {name: _upper(v) for name, v in protocol.variants.items()}
    above = [name for name, upper in bounds.items() if upper is not None and upper > chance]
    shown = ", ".join(f"{name} ≤ {pct(upper)}" for name, upper in bounds.items())
    if not above:
        return Condition("above_chance", False, f"every variant is at or below chance on protocol "
                         f"`{protocol.name}` (chance {pct(chance)}; upper 95% Wilson bounds: {shown})")
    return Condition("above_chance", True, f"on protocol `{protocol.name}`, {len(above)} of {len(bounds)} "
                     f"variant(s) have an upper 95% Wilson bound above chance {pct(chance)} "
                     f"({', '.join(above)})")


def extraction_condition(results: dict[str, Any] | None, limit: float) -> Condition:
    """(b) Degenerate when any variant's replies failed answer extraction more often than ``limit``."""
    rates = {f"{p.name}/{name}": finite(v.get("extraction_failure_rate", 0.0)) or 0.0
             for p in protocols(results) for name, v in p.variants.items()}
    if not rates:
        return Condition("extraction_failures", False, "not checked: no variant evaluated", blocking=False)
    over = {key: rate for key, rate in rates.items() if rate > limit}
    setting = f"max_extraction_failure_rate = {limit:g}"
    if over:
        listed = ", ".join(f"{key} {pct(rate)}" for key, rate in over.items())
        return Condition("extraction_failures", False,
                         f"extraction-failure rate above {pct(limit)} ({setting}): {listed}")
    worst_key = max(rates, key=lambda k: rates[k])
    return Condition("extraction_failures", True, f"every variant at or below {pct(limit)} ({setting}); highest "
                     f"{worst_key} {pct(rates[worst_key])}")


def items_condition(results: dict[str, Any] | None, minimum: int) -> Condition:
    """(c) Too few multiple-choice items for an interval a thesis can use."""
    counts = item_counts(results)
    setting = f"min_eval_items = {minimum}"
    if counts.evaluated < minimum:
        return Condition("eval_items", False, f"{counts.evaluated} multiple-choice items evaluated, fewer than "
                         f"{minimum} ({setting})")
    return Condition("eval_items", True, f"{counts.evaluated} multiple-choice items evaluated ({setting})")


def protocol_condition(results: dict[str, Any] | None) -> Condition:
    """Information only: how the numbers were scored and which items were left out."""
    found = protocols(results)
    if not found:
        return Condition("eval_protocol", True, "no evaluation results", blocking=False)
    names = ", ".join(p.name for p in found)
    return Condition("eval_protocol", True, f"primary {found[0].setting}; protocols: {names}; "
                     f"{item_counts(results).text}", blocking=False)


def evaluation_conditions(results: dict[str, Any] | None, settings: ThesisReportSettings) -> list[Condition]:
    """The degenerate-evaluation rules, one row each, then the protocol line."""
    return [above_chance_condition(results), extraction_condition(results, settings.max_extraction_failure_rate),
            items_condition(results, settings.min_eval_items), protocol_condition(results)]


def evaluate_readiness(context: Any, inputs: ReportInputs) -> dict[str, Any]:
    conditions = []
    completion = inputs.completion
    if completion is None:
        conditions.append(Condition("strict_pass", False, "the completion check did not run"))
    else:
        failures = "; ".join(completion.get("failures", []))
        conditions.append(Condition("strict_pass", bool(completion.get("strict_pass")),
                                    "strict_pass is true" if completion.get("strict_pass")
                                    else f"strict_pass is false: {failures}"))
    variants = (inputs.eval_results or {}).get("variants", {})
    conditions.append(Condition(
        "evaluation", len(variants) >= 2,
        f"{len(variants)} variant(s) evaluated on {item_counts(inputs.eval_results).evaluated} items"
        if len(variants) >= 2 else "evaluation needs the base model and at least one trained variant"))
    conditions.extend(evaluation_conditions(inputs.eval_results, thesis_settings(context)))
    model = context.profile.model
    reason = smoke_reason(context.profile)
    conditions.append(Condition("real_model", not model.is_smoke_test,
                                f"a smoke test: {reason}, not a result to write about"
                                if model.is_smoke_test else f"model {model.name_or_path}"))
    missing = [r for r in REQUIRED_REPORTS if not (inputs.reports_dir / r).is_file()]
    conditions.append(Condition("reports_present", not missing,
                                "all required reports written" if not missing else f"missing: {', '.join(missing)}"))
    conditions.extend(_judge_conditions(context))
    unmet = [c for c in conditions if c.blocking and not c.met]
    return {
        "ready_for_writing": not unmet,
        "run_id": context.run.run_id,
        "smoke_test": model.is_smoke_test,
        "smoke_reason": reason,
        "conditions": [asdict(c) for c in conditions],
        "unmet": [f"{c.name}: {c.reason}" for c in unmet],
    }


def render_readiness(report: dict[str, Any]) -> str:
    verdict = "**true**" if report["ready_for_writing"] else "**false**"
    lines = ["# Thesis readiness", "", f"- `ready_for_writing`: {verdict}", f"- Run: `{report['run_id']}`", "",
             "| condition | met | blocking | reason |", "|---|---|---|---|"]
    for c in report["conditions"]:
        lines.append(f"| {c['name']} | {'yes' if c['met'] else 'no'} | {'yes' if c['blocking'] else 'no'} | "
                     f"{c['reason'].replace('|', '/')} |")
    if report["unmet"]:
        lines += ["", "## Why not ready", ""] + [f"- {u}" for u in report["unmet"]]
    lines.append("")
    return under_title("\n".join(lines), smoke_notice(report.get("smoke_reason")))
