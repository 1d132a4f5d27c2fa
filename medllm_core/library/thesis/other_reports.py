"""``sota_compare.md``, ``error_analysis.md`` and ``thesis_support/thesis_draft_material.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medllm_core.kernel.smoke import under_title
from medllm_core.library.report_paths import ACCURACY_PLOT, under_output_root
from medllm_core.library.thesis.eval_report import accuracy_rows, comparison_lines, protocol_lines
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.protocols import finite, item_counts, primary, protocols
from medllm_core.library.thesis.tables import fmt, pct, table

PUBLISHED_RESULTS = Path(__file__).resolve().parents[3] / "data" / "reference" / "published_results.json"
MAX_LISTED = 15


NOT_STATED = "not stated in source"


def protocol_warning(row_protocol: str, run_protocol: str | None) -> str:
    """Empty when a published row was scored like this run; else why the two numbers measure different things."""
    if run_protocol is None:
        return ""
    if row_protocol == NOT_STATED:
        return f"⚠ protocol not stated: cannot be matched with this run's `{run_protocol}`"
    if row_protocol != run_protocol:
        return f"⚠ differs from this run's `{run_protocol}`"
    return ""


def render_sota(inputs: ReportInputs, model: str) -> str:
    lines = ["# Comparison with published results", "", "## This run", ""]
    results = inputs.eval_results
    found = protocols(results)
    run_protocol = found[0].name if found else None
    if results:
        counts = item_counts(results)
        lines += [f"Items: {counts.text}. " + " ".join(f"Under {p.setting}." for p in found), ""]
        lines += table(["model / variant", "benchmark", "protocol", "accuracy", "95% CI"],
                       [[f"{model} ({name})", f"this run's {counts.evaluated} items", p.name, acc, ci]
                        for p in found for name, acc, ci, *_ in accuracy_rows(p.variants)])
    else:
        lines.append("Evaluation did not run: no rows from this run.")
    lines += ["", "## Published results (shipped table)", ""]
    try:
        published = json.loads(PUBLISHED_RESULTS.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return under_title("\n".join(lines + ["The shipped table of published results is missing.", ""]),
                           inputs.smoke_notice)
    lines += [f"**Caveat:** {published.get('caveat', '')} (retrieved {published.get('retrieved', '?')})", ""]
    rows = published.get("rows", [])
    differing = sum(1 for r in rows if protocol_warning(r.get("protocol", NOT_STATED), run_protocol))
    if run_protocol and differing:
        lines += [f"**Protocol:** this run scored with `{run_protocol}`; {differing} of the {len(rows)} published "
                  "rows used another protocol or did not state one (marked ⚠): compare them as context, not as a "
                  "like-for-like result.", ""]
    lines += table(["model", "benchmark", "accuracy (%)", "protocol", "setting", "source", "note"],
                   [[r.get("model"), r.get("benchmark"), fmt(r.get("value"), 2),
                     " ".join(x for x in (r.get("protocol", NOT_STATED),
                                          protocol_warning(r.get("protocol", NOT_STATED), run_protocol)) if x),
                     r.get("setting", NOT_STATED), f"[{r.get('source_title')}]({r.get('source_url')})",
                     r.get("note", "")] for r in rows])
    lines.append("")
    return under_title("\n".join(lines), inputs.smoke_notice)


def _group_cell(group: dict[str, Any] | None) -> str:
    if not group:
        return "–"
    return f"{pct(finite(group.get('accuracy')))} (n={group.get('n', 0)})"


def render_error_analysis(inputs: ReportInputs) -> str:
    lines = ["# Error analysis", ""]
    results = inputs.eval_results
    protocol = primary(results)
    if not results or protocol is None:
        return under_title("\n".join(lines + ["Evaluation did not run: nothing to analyse.", ""]),
                           inputs.smoke_notice)
    variants = protocol.variants
    lines += [f"Numbers of the primary protocol: {protocol.setting}. Items: {item_counts(results).text}.", ""]
    for key, title in (("by_source", "Accuracy by source"), ("by_subject", "Accuracy by subject")):
        groups = sorted({g for v in variants.values() for g in (v.get(key) or {})})
        lines += [f"## {title}", ""]
        lines += table(["variant", *groups],
                       [[n, *[_group_cell((v.get(key) or {}).get(g)) for g in groups]] for n, v in variants.items()])
        lines.append("")
    base = {r.get("id"): r for r in inputs.mcq_predictions.get("base", [])}
    lines += ["## Items the base model got right and a variant got wrong", ""]
    for variant, records in inputs.mcq_predictions.items():
        if variant == "base":
            continue
        lost = [r for r in records if base.get(r.get("id"), {}).get("correct") and not r.get("correct")]
        lines.append(f"- **{variant}**: {len(lost)} item(s)"
                     + (": " + ", ".join(f"`{r.get('id')}` (answer {r.get('answer')}, gave "
                                          f"{r.get('extracted') or 'nothing'})" for r in lost[:MAX_LISTED])
                        if lost else ""))
    lines += ["", "## Extraction failures (reply could not be mapped to an option)", ""]
    for variant, records in inputs.mcq_predictions.items():
        failed = [r for r in records if "extracted" in r and r["extracted"] is None]
        lines.append(f"- **{variant}**: {len(failed)} of {len(records)}")
        lines += [f"  - `{r.get('id')}`: “{_quote(str(r.get('response', '')))}”" for r in failed[:3]]
    lines += ["", "## Answer length", ""]
    lines += table(["variant", "mean multiple-choice reply (chars)"],
                   [[n, fmt(v.get("mean_reply_chars"), 1)] for n, v in variants.items()])
    lines += ["", "## Worst risk findings", ""]
    findings = _risk_findings(inputs.risk_results)
    lines += [f"- [{f['source']}] **{f.get('variant')}** on `{f.get('id')}` ({f.get('category')}, severity "
              f"{f.get('severity')}): “{_quote(str(f.get('response', '')))}” — {f.get('reason', '')}"
              for f in findings[:10]] or ["No risk findings."]
    lines.append("")
    return under_title("\n".join(lines), inputs.smoke_notice)


def _quote(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _risk_findings(risk: dict[str, Any] | None) -> list[dict[str, Any]]:
    findings = []
    for key in ("llm", "prescreen"):
        block = (risk or {}).get(key) or {}
        for finding in block.get("findings", []):
            findings.append({**finding, "source": block.get("label", key)})
    return sorted(findings, key=lambda f: -(finite(f.get("severity")) or 0.0))


def methods_sentence(inputs: ReportInputs) -> str:
    """The training methods of this run (from the method comparison and their metrics), in one sentence."""
    comparison = inputs.method_comparison or {}
    trained = [row["method"] for row in comparison.get("methods", []) if row.get("status") == "trained"]
    if not trained:
        return ""
    described = []
    for name in trained:
        metrics = inputs.training_metrics.get(name)
        title = (metrics.extra.get("title") if metrics else None) or name
        reference = metrics.reference_model if metrics else None
        described.append(f"{title} (reference model: {reference})" if reference else title)
    listed = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    count = f"{len(trained)} training method{'s' if len(trained) > 1 else ''} {'were' if len(trained) > 1 else 'was'}"
    return (f" Starting from the same {comparison.get('starts_from')} adapter, with the same seed and preference "
            f"data split, {count} trained: {listed}.")


def render_draft_material(inputs: ReportInputs, record: dict[str, Any]) -> str:
    profile = record["effective_profile"]
    lora = profile["model"]["lora"]
    lines = [
        "# Thesis draft material",
        "",
        "Numbers below come from this run's own files; copy them with their context.",
        "",
        "## Methods",
        "",
        f"The base model `{profile['model']['name_or_path']}` was adapted with LoRA (rank {lora['r']}, alpha "
        f"{lora['alpha']}, dropout {lora['dropout']}, target modules {lora['target_modules']}) by supervised "
        "fine-tuning (TRL SFTTrainer)." + methods_sentence(inputs),
        "",
        "## Setup",
        "",
        f"- Hardware: {record['hardware']['description']}; precision {record['precision']['dtype']} "
        f"({record['precision']['reason']})",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
        f"- Seed: {profile['run']['seed']}",
        "",
        "## Training",
        "",
    ]
    lines += table(["stage", "steps", "final loss", "effective batch", "learning rate", "wall time (s)", "tokens/s"],
                   [[name, m.steps, fmt(m.final_loss, 4),
                     m.effective_settings.get("effective_batch_size"),
                     m.effective_settings.get("learning_rate"),
                     m.wall_time_s, m.tokens_per_second]
                    for name, m in inputs.training_metrics.items()])
    if inputs.eval_results:
        lines += ["", "## Results", ""]
        counts = item_counts(inputs.eval_results)
        for index, protocol in enumerate(protocols(inputs.eval_results)):
            lines += protocol_lines(protocol, primary=index == 0, counts=counts)
            lines += comparison_lines(protocol.comparisons_vs_base, f"`{protocol.name}`: against the base model")
    lines += ["", "## Figures", ""]
    lines += [f"- {name} loss curve: `{m.loss_curve_png}`" for name, m in inputs.training_metrics.items()
              if m.loss_curve_png]
    if inputs.eval_results:
        lines.append(f"- Accuracy with 95% intervals: `{under_output_root(ACCURACY_PLOT)}`")
    lines.append("")
    return under_title("\n".join(lines), inputs.smoke_notice)
