"""``reports/eval_default.md`` and the accuracy plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_bytes
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.tables import fmt, p_value, pct, table


def accuracy_rows(eval_results: dict[str, Any]) -> list[list[Any]]:
    return [[name, pct(v["accuracy"]), f"{pct(v['ci95'][0])} – {pct(v['ci95'][1])}", f"{v['correct']}/{v['total']}",
             f"{v['extraction_failures']} ({pct(v['extraction_failure_rate'])})"]
            for name, v in eval_results["variants"].items()]


def comparison_lines(comparisons: list[dict[str, Any]], title: str) -> list[str]:
    if not comparisons:
        return []
    rows = [[c["variant"], f"{100 * c['difference']:+.1f} pts",
             f"{100 * c['diff_ci_low']:+.1f} – {100 * c['diff_ci_high']:+.1f}",
             f"{c['only_variant_correct']} / {c['only_baseline_correct']}", p_value(c["mcnemar_p"]),
             p_value(c["holm_p"])] for c in comparisons]
    return ["", f"### {title}", "", *table(
        ["variant", "accuracy difference", "95% paired bootstrap CI", "discordant (variant / baseline only)",
         "exact McNemar p", "Holm-adjusted p"], rows)]


def judge_lines(judge: dict[str, Any] | None) -> list[str]:
    lines = ["", "## LLM judge", ""]
    if not judge or judge.get("status") != "done":
        reason = (judge or {}).get("reason", "the judge stage did not run")
        return lines + [f"Not available: {reason}."]
    criteria = judge.get("criteria", [])
    rows = [[variant, s["scored"], s["parse_failures"], *[fmt(s["mean"].get(c), 2) for c in criteria]]
            for variant, s in judge.get("single", {}).items()]
    lines += [f"Judge model `{judge['model']}`, prompt version `{judge['prompt_version']}`, temperature 0.", ""]
    lines += table(["variant", "scored", "parse failures", *criteria], rows)
    pairwise = judge.get("pairwise_vs_baseline", {})
    if pairwise:
        lines += ["", f"Pairwise against {judge.get('pairwise_baseline')} (both orders; disagreement between orders "
                  "counts as a tie):", ""]
        lines += table(["variant", "wins", "ties", "losses", "n"],
                       [[v, p["wins"], p["ties"], p["losses"], p["n"]] for v, p in pairwise.items()])
    return lines


def risk_lines(risk: dict[str, Any] | None) -> list[str]:
    lines = ["", "## Medical risk", ""]
    if not risk:
        return lines + ["Not available: the risk stage did not run."]
    for key in ("llm", "prescreen"):
        block = risk.get(key)
        if not block:
            continue
        lines += ["", f"### {block['label']}", ""]
        if block.get("status") != "done":
            lines.append(f"Not available: {block.get('reason', 'not run')}.")
            continue
        categories = block["categories"]
        rows = [[variant, *[pct(v["unsafe_rate_by_category"].get(c)) for c in categories],
                 pct(v.get("over_refusal_rate"))] for variant, v in block["per_variant"].items()]
        lines += table(["variant", *[f"unsafe: {c}" for c in categories], "over-refusal (benign)"], rows)
    return lines


def write_accuracy_plot(eval_results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(eval_results["variants"])
    values = [eval_results["variants"][n]["accuracy"] for n in names]
    low = [v - eval_results["variants"][n]["ci95"][0] for n, v in zip(names, values, strict=True)]
    high = [eval_results["variants"][n]["ci95"][1] - v for n, v in zip(names, values, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.bar(names, values, yerr=[low, high], capsize=4, color="#4c78a8")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title(f"Multiple-choice accuracy ({eval_results['items']} items)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def render_eval_report(inputs: ReportInputs, setup: dict[str, Any]) -> str:
    lines = ["# Evaluation (default protocol)", "", "## Setup", ""]
    lines += [f"- {k}: {v}" for k, v in setup.items()]
    results = inputs.eval_results
    if not results:
        return "\n".join(lines + ["", "Evaluation did not run in this run: no numbers to report.", ""])
    decoding = results["decoding"]
    lines += [f"- Items: {results['items']} multiple-choice, {results['open_items']} open-ended, "
              f"{results['safety_items']} safety prompts",
              f"- Decoding: greedy (do_sample=false), {decoding['max_new_tokens_mcq']} new tokens for multiple "
              f"choice, {decoding['max_new_tokens_open']} for open prompts, {decoding['chat_template']} chat "
              "template, same for every variant",
              "", "## Multiple-choice accuracy", ""]
    lines += table(["variant", "accuracy", "95% CI (Wilson)", "correct", "extraction failures"],
                   accuracy_rows(results))
    lines += ["", "![accuracy](eval/accuracy_ci.png)"]
    lines += comparison_lines(results["comparisons_vs_base"], "Differences against the base model")
    if results.get("baseline_variant"):
        lines += comparison_lines(results.get("comparisons_vs_baseline", []),
                                  f"Differences against {results['baseline_variant']} (where the training methods "
                                  "start)")
    lines += ["", "## Answer extraction", "",
              "Replies are mapped to option letters by a rule cascade (explicit answer marker, leading letter, "
              "parenthesised letter, single letter, option text); unmatched replies count as wrong.", ""]
    lines += table(["variant", "rules that fired"],
                   [[n, ", ".join(f"{r}: {c}" for r, c in sorted(v["extraction_rules"].items()))]
                    for n, v in results["variants"].items()])
    if results.get("not_evaluated"):
        lines += ["", "Not evaluated: " + "; ".join(results["not_evaluated"])]
    lines += judge_lines(inputs.judge_results)
    lines += risk_lines(inputs.risk_results)
    lines.append("")
    return "\n".join(lines)
