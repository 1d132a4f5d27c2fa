"""``thesis_readiness.json|.md``: is this run something a thesis can be written from?

``ready_for_writing`` is true only when the strict completion check passed,
evaluation produced numbers, every report exists, every judge the profile
turned on actually ran, and the model is a real one (the tiny embedded model is
a smoke test). Each unmet condition carries its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medllm_core.kernel.stages import StageKind
from medllm_core.library import report_paths as rp
from medllm_core.library.judges.settings import turned_off
from medllm_core.library.thesis.inputs import ReportInputs, load_json

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
        f"{len(variants)} variant(s) evaluated on {(inputs.eval_results or {}).get('items', 0)} items"
        if len(variants) >= 2 else "evaluation needs the base model and at least one trained variant"))
    tiny = context.profile.model.tier == "tiny"
    conditions.append(Condition("real_model", not tiny,
                                "the embedded tiny model is a smoke test of the pipeline, not a result to write "
                                "about" if tiny else f"model {context.profile.model.name_or_path}"))
    missing = [r for r in REQUIRED_REPORTS if not (inputs.reports_dir / r).is_file()]
    conditions.append(Condition("reports_present", not missing,
                                "all required reports written" if not missing else f"missing: {', '.join(missing)}"))
    conditions.extend(_judge_conditions(context))
    unmet = [c for c in conditions if c.blocking and not c.met]
    return {
        "ready_for_writing": not unmet,
        "run_id": context.run.run_id,
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
    return "\n".join(lines)
