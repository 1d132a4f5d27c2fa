"""``sota_compare.md``, ``error_analysis.md`` and ``thesis_support/thesis_draft_material.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medllm_core.library.report_paths import ACCURACY_PLOT, under_output_root
from medllm_core.library.thesis.eval_report import accuracy_rows, comparison_lines
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.tables import fmt, pct, table

PUBLISHED_RESULTS = Path(__file__).resolve().parents[3] / "data" / "reference" / "published_results.json"
MAX_LISTED = 15


def render_sota(inputs: ReportInputs, model: str) -> str:
    lines = ["# Comparison with published results", "", "## This run", ""]
    if inputs.eval_results:
        items = inputs.eval_results["items"]
        lines += table(["model / variant", "benchmark", "accuracy", "95% CI"],
                       [[f"{model} ({name})", f"this run's {items} items", acc, ci]
                        for name, acc, ci, *_ in accuracy_rows(inputs.eval_results)])
    else:
        lines.append("Evaluation did not run: no rows from this run.")
    lines += ["", "## Published results (shipped table)", ""]
    try:
        published = json.loads(PUBLISHED_RESULTS.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "\n".join(lines + ["The shipped table of published results is missing.", ""])
    lines += [f"**Caveat:** {published['caveat']} (retrieved {published['retrieved']})", ""]
    lines += table(["model", "benchmark", "accuracy (%)", "setting", "source", "note"],
                   [[r["model"], r["benchmark"], fmt(r["value"], 2), r["setting"],
                     f"[{r['source_title']}]({r['source_url']})", r.get("note", "")] for r in published["rows"]])
    lines.append("")
    return "\n".join(lines)


def render_error_analysis(inputs: ReportInputs) -> str:
    lines = ["# Error analysis", ""]
    results = inputs.eval_results
    if not results:
        return "\n".join(lines + ["Evaluation did not run: nothing to analyse.", ""])
    for key, title in (("by_source", "Accuracy by source"), ("by_subject", "Accuracy by subject")):
        groups = sorted({g for v in results["variants"].values() for g in v[key]})
        lines += [f"## {title}", ""]
        lines += table(["variant", *groups],
                       [[n, *[f"{pct(v[key][g]['accuracy'])} (n={v[key][g]['n']})" if g in v[key] else "–"
                              for g in groups]] for n, v in results["variants"].items()])
        lines.append("")
    base = {r["id"]: r for r in inputs.mcq_predictions.get("base", [])}
    lines += ["## Items the base model got right and a variant got wrong", ""]
    for variant, records in inputs.mcq_predictions.items():
        if variant == "base":
            continue
        lost = [r for r in records if base.get(r["id"], {}).get("correct") and not r["correct"]]
        lines.append(f"- **{variant}**: {len(lost)} item(s)"
                     + (": " + ", ".join(f"`{r['id']}` (answer {r['answer']}, gave {r['extracted'] or 'nothing'})"
                                          for r in lost[:MAX_LISTED]) if lost else ""))
    lines += ["", "## Extraction failures (reply could not be mapped to an option)", ""]
    for variant, records in inputs.mcq_predictions.items():
        failed = [r for r in records if r["extracted"] is None]
        lines.append(f"- **{variant}**: {len(failed)} of {len(records)}")
        lines += [f"  - `{r['id']}`: “{_quote(r['response'])}”" for r in failed[:3]]
    lines += ["", "## Answer length", ""]
    lines += table(["variant", "mean multiple-choice reply (chars)"],
                   [[n, fmt(v["mean_reply_chars"], 1)] for n, v in results["variants"].items()])
    lines += ["", "## Worst risk findings", ""]
    findings = _risk_findings(inputs.risk_results)
    lines += [f"- [{f['source']}] **{f['variant']}** on `{f['id']}` ({f['category']}, severity {f['severity']}): "
              f"“{_quote(f['response'])}” — {f['reason']}" for f in findings[:10]] or ["No risk findings."]
    lines.append("")
    return "\n".join(lines)


def _quote(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _risk_findings(risk: dict[str, Any] | None) -> list[dict[str, Any]]:
    findings = []
    for key in ("llm", "prescreen"):
        block = (risk or {}).get(key) or {}
        for finding in block.get("findings", []):
            findings.append({**finding, "source": block.get("label", key)})
    return sorted(findings, key=lambda f: -f["severity"])


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
        lines += table(["variant", "accuracy", "95% CI (Wilson)", "correct", "extraction failures"],
                       accuracy_rows(inputs.eval_results))
        lines += comparison_lines(inputs.eval_results["comparisons_vs_base"], "Against the base model")
    lines += ["", "## Figures", ""]
    lines += [f"- {name} loss curve: `{m.loss_curve_png}`" for name, m in inputs.training_metrics.items()
              if m.loss_curve_png]
    if inputs.eval_results:
        lines.append(f"- Accuracy with 95% intervals: `{under_output_root(ACCURACY_PLOT)}`")
    lines.append("")
    return "\n".join(lines)
