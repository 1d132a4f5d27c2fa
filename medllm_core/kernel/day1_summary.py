"""``reports/migration/day1_run_summary.md``: the first file a user opens after a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medllm_core.kernel.atomic import write_text
from medllm_core.kernel.errors import ExitCode
from medllm_core.kernel.kept_reports import kept_line
from medllm_core.kernel.report_paths import DAY1_SUMMARY
from medllm_core.kernel.resume_command import resume_command
from medllm_core.kernel.smoke import smoke_notice, smoke_reason, under_title
from medllm_core.kernel.stages import StageKind

if TYPE_CHECKING:
    from medllm_core.kernel.context import RunContext
    from medllm_core.kernel.runner import RunOutcome

EXIT_MEANING = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL_ERROR: "internal error",
    ExitCode.CONFIG_ERROR: "configuration or data error",
    ExitCode.PREFLIGHT_BLOCKED: "stopped by the preflight VRAM gate",
    ExitCode.STAGE_FAILED: "a stage failed",
    ExitCode.STRICT_CHECK_FAILED: "strict completion check failed",
    ExitCode.INTERRUPTED: "interrupted",
}


def _rel(path: str | None, root: Path) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _evaluation_results(context: RunContext) -> list[tuple[str, dict[str, Any]]]:
    """(stage, its results file) for every evaluation stage that wrote multiple-choice numbers."""
    found = []
    for planned in context.plan:
        result = context.results.get(planned.spec.name)
        if StageKind(planned.spec.kind) != StageKind.EVALUATION or result is None or not result.metrics_path:
            continue
        try:
            data = json.loads(Path(result.metrics_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "items" in data and "variants" in data:
            found.append((planned.spec.name, data))
    return found


def evaluation_line(stage: str, data: dict[str, Any]) -> str:
    """Items evaluated and dropped, and the protocol (older files: greedy generation, nothing dropped)."""
    dropped = data.get("dropped") or {}
    count = int(dropped.get("count") or 0)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted((dropped.get("by_reason") or {}).items()))
    dropped_text = f"{count} dropped" + (f" ({reasons})" if reasons else "") if count else "none dropped"
    protocol = data.get("protocol") or "generate"
    others = [name for name in data.get("protocols") or {} if name != protocol]
    chance = data.get("chance_accuracy")
    return (f"- {stage}: {data.get('items', 0)} multiple-choice items evaluated, {dropped_text}; protocol "
            f"`{protocol}`" + (f" (also {', '.join(f'`{o}`' for o in others)})" if others else "")
            + (f"; chance accuracy {100 * chance:.1f}%" if isinstance(chance, (int, float)) else ""))


def _continue_line(context: RunContext, outcome: RunOutcome) -> list[str]:
    """The exact command that continues a run that did not finish cleanly (unless the message has it)."""
    if outcome.exit_code == ExitCode.OK or "--resume" in (outcome.message or ""):
        return []
    command = resume_command(context.run.run_dir, context.profile.source_path, sys.argv)
    return [f"- Continue with: `{command}`"]


def write_day1_summary(context: RunContext, outcome: RunOutcome) -> Path:
    root = context.run.output_dir
    profile = context.profile
    lines = [
        "# Day-1 run summary",
        "",
        f"- Run: `{context.run.run_id}` (events: `{_rel(str(context.run.events_path), root)}`)",
        f"- Profile: `{profile.name}` from `{profile.source_path}`",
        f"- Model: `{profile.model.name_or_path}` (tier {profile.model.tier}, slug `{profile.model_slug}`)",
        f"- Device: {context.hardware.describe()}",
        f"- Precision: **{context.precision.dtype}** — {context.precision.reason}",
        f"- VRAM gate: **{context.gate.verdict}** — {context.gate.reason}",
        f"- Exit code: **{int(outcome.exit_code)}** ({EXIT_MEANING.get(outcome.exit_code, '?')})"
        + (f" — {outcome.message}" if outcome.message else ""),
        *_continue_line(context, outcome),
        *kept_line(context, int(outcome.exit_code)),
        "",
        "## Stages",
        "",
        "| stage | plugin | required | status | detail |",
        "|---|---|---|---|---|",
    ]
    for planned in context.plan:
        name = planned.spec.name
        result = context.results.get(name)
        if not planned.enabled:
            status, detail = "disabled", "turned off in the profile"
        elif result is None:
            status, detail = "not run", ""
        else:
            status = str(result.status)
            detail = result.reason or ", ".join(f"{k}={_short(v)}" for k, v in result.summary.items())
        lines.append(f"| {name} | {planned.source_plugin} | {'yes' if planned.required else 'no'} | "
                     f"{status} | {_cell(detail)} |")

    lines += ["", "## Completion", ""]
    checks = [p for p in context.plan if p.enabled and StageKind(p.spec.kind) == StageKind.CHECK]
    for planned in checks:
        result = context.results.get(planned.spec.name)
        if result is None or result.verdict is None:
            lines.append(f"- {planned.spec.name}: not evaluated in this run")
            continue
        # A check names its verdict in its summary (the completion check: the seed's strict_pass).
        label = next((f"`{key}`" for key, value in result.summary.items() if value is result.verdict),
                     planned.spec.name)
        where = f" (see `{_rel(result.artifacts.get('report_md') or result.metrics_path, root)}`)"
        lines.append(f"- {label}: **{str(result.verdict).lower()}**{where}")
        for failure in result.summary.get("failures", []):
            lines.append(f"  - failed: {failure}")
    if not checks:
        lines.append("- `strict_pass`: not evaluated in this run")

    evaluations = _evaluation_results(context)
    if evaluations:
        lines += ["", "## Evaluation", ""]
        lines += [evaluation_line(stage, data) for stage, data in evaluations]

    if context.decisions:
        lines += ["", "## Decisions taken", ""]
        for decision in context.decisions:
            lines.append(f"- [{decision.stage or 'run'}] {decision.kind}: {decision.summary}")

    preflight = context.preflight
    if preflight:
        env = preflight.get("env_file", {})
        lines += ["", "## Preflight facts", ""]
        lines.append(f"- .env: {'present' if env.get('exists') else 'missing'} at `{env.get('path')}`"
                     + (f", mode {env.get('mode')}" if env.get("mode") else "")
                     + (" — **readable by others: chmod 600 it**" if env.get("readable_by_others") else "")
                     + f"; API key configured: {'yes' if env.get('api_key_configured') else 'no'}")
        disk = preflight.get("disk", {})
        lines.append(f"- Free disk at output: {disk.get('free_gb')} GB")
        cache = preflight.get("hf_cache", {})
        lines.append(f"- HF cache: `{cache.get('hub_cache')}` ({cache.get('free_gb')} GB free)"
                     + (f" — {cache['advice']}" if cache.get("advice") else ""))

    artifacts = [(name, r.metrics_path) for name, r in context.results.items() if r.metrics_path]
    artifacts += [(name, r.checkpoint_path) for name, r in context.results.items() if r.checkpoint_path]
    if artifacts:
        lines += ["", "## Artifacts", ""]
        lines += [f"- {name}: `{_rel(path, root)}`" for name, path in artifacts]
    lines.append("")
    text = under_title("\n".join(lines), smoke_notice(smoke_reason(profile)))
    return write_text(context.run.reports_dir / DAY1_SUMMARY, context.events.mask(text))


def _short(value: object) -> str:
    """A summary number as a reader needs it (final_loss=7.471, not 7.471303939819336)."""
    return str(round(value, 4)) if isinstance(value, float) else str(value)  # a plugin's own rounding stays
