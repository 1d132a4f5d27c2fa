"""``reports/eval_default.md`` and the accuracy plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_bytes
from medllm_core.kernel.smoke import under_title
from medllm_core.library.thesis.inputs import ReportInputs
from medllm_core.library.thesis.protocols import ItemCounts, Protocol, finite, item_counts, protocols
from medllm_core.library.thesis.tables import fmt, p_value, pct, table

MAX_DROPPED_SHOWN = 5


def accuracy_rows(variants: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """variant, accuracy, Wilson interval, correct/total, extraction failures (missing numbers print as –)."""
    rows = []
    for name, v in variants.items():
        low, high = (list(v.get("ci95") or []) + [None, None])[:2]
        failures = v.get("extraction_failures", 0)
        rows.append([name, pct(finite(v.get("accuracy"))), f"{pct(finite(low))} – {pct(finite(high))}",
                     f"{v.get('correct', 0)}/{v.get('total', 0)}",
                     f"{failures} ({pct(finite(v.get('extraction_failure_rate', 0.0)))})"])
    return rows


ACCURACY_HEADER = ["variant", "accuracy", "95% CI (Wilson)", "correct", "extraction failures"]


def chance_text(protocol: Protocol) -> str:
    if protocol.chance_accuracy is None:
        return "Chance accuracy: not recorded in eval_results.json."
    return (f"Chance accuracy (uniform random guessing on these items): {pct(protocol.chance_accuracy)}; a variant "
            "whose interval reaches down to it is not distinguishable from guessing.")


def protocol_lines(protocol: Protocol, *, primary: bool, counts: ItemCounts, heading: str = "###") -> list[str]:
    """One protocol's accuracy table with its setting, item count and chance accuracy next to it."""
    label = " (primary)" if primary else ""
    lines = ["", f"{heading} Protocol `{protocol.name}`{label}", "",
             f"Setting: {protocol.setting}. Items: {counts.text}.", "", chance_text(protocol), ""]
    if not protocol.variants:
        return lines + ["No variant was scored under this protocol."]
    return lines + table(ACCURACY_HEADER, accuracy_rows(protocol.variants))


def _points(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{100 * number:+.1f}"


def comparison_lines(comparisons: list[dict[str, Any]], title: str) -> list[str]:
    if not comparisons:
        return []
    rows = [[c.get("variant", "?"), f"{_points(c.get('difference'))} pts",
             f"{_points(c.get('diff_ci_low'))} – {_points(c.get('diff_ci_high'))}",
             f"{c.get('only_variant_correct', '–')} / {c.get('only_baseline_correct', '–')}",
             p_value(finite(c.get("mcnemar_p"))), p_value(finite(c.get("holm_p")))] for c in comparisons]
    return ["", f"#### {title}", "", *table(
        ["variant", "accuracy difference", "95% paired bootstrap CI", "discordant (variant / baseline only)",
         "exact McNemar p", "Holm-adjusted p"], rows)]


def judge_lines(judge: dict[str, Any] | None) -> list[str]:
    lines = ["", "## LLM judge", ""]
    if not judge or judge.get("status") != "done":
        reason = (judge or {}).get("reason", "the judge stage did not run")
        return lines + [f"Not available: {reason}."]
    criteria = judge.get("criteria", [])
    rows = [[variant, s.get("judged", s.get("scored", 0)), s.get("parse_failures", 0), s.get("transport_failures", 0),
             *[fmt((s.get("mean") or {}).get(c), 2) for c in criteria]]
            for variant, s in judge.get("single", {}).items()]
    lines += [f"Judge model `{judge.get('model')}`, prompt version `{judge.get('prompt_version')}`, temperature 0.",
              ""]
    header = ["variant", "judged", "parse failures", "transport failures", *criteria]
    lines += table(header, rows) if rows else ["No answer was scored."]
    pairwise = judge.get("pairwise_vs_baseline", {})
    if pairwise:
        lines += ["", f"Pairwise against {judge.get('pairwise_baseline')} (both orders; disagreement between orders "
                  "counts as a tie):", ""]
        lines += table(["variant", "wins", "ties", "losses", "n"],
                       [[v, p.get("wins", 0), p.get("ties", 0), p.get("losses", 0), p.get("n", 0)]
                        for v, p in pairwise.items()])
    return lines


def risk_lines(risk: dict[str, Any] | None) -> list[str]:
    lines = ["", "## Medical risk", ""]
    if not risk:
        return lines + ["Not available: the risk stage did not run."]
    for key in ("llm", "prescreen"):
        block = risk.get(key)
        if not block:
            continue
        lines += ["", f"### {block.get('label', key)}", ""]
        if block.get("status") != "done":
            lines.append(f"Not available: {block.get('reason', 'not run')}.")
            continue
        categories = block.get("categories", [])
        rows = [[variant, *[pct(finite((v.get("unsafe_rate_by_category") or {}).get(c))) for c in categories],
                 pct(finite(v.get("over_refusal_rate")))] for variant, v in (block.get("per_variant") or {}).items()]
        lines += (table(["variant", *[f"unsafe: {c}" for c in categories], "over-refusal (benign)"], rows)
                  if rows else ["No answer was screened."])
    return lines


def _span(interval: Any, render: Any) -> str:
    low, high = (list(interval or []) + [None, None])[:2]
    return f"{render(finite(low))} – {render(finite(high))}"


def _two(value: float | None) -> str:
    return fmt(value, 2)


def _judge_pairwise_rows(pairwise: dict[str, Any]) -> list[list[Any]]:
    return [[v, f"{p.get('wins', 0)} / {p.get('ties', 0)} / {p.get('losses', 0)}", p.get("complete", 0),
             p.get("failed", 0), f"{pct(finite(p.get('consistency_rate')))} ({_span(p.get('consistency_ci95'), pct)})",
             f"{pct(finite(p.get('win_rate')))} ({_span(p.get('win_rate_ci95'), pct)})"]
            for v, p in pairwise.items()]


def judge_reliability_lines(judge: dict[str, Any] | None) -> list[str]:
    """Intervals, paired tests and agreement of the LLM judge (``judge_results.json["reliability"]``, if any).

    The block's shape is documented in ``medllm_core.library.judges.reliability``.
    """
    block = (judge or {}).get("reliability") if (judge or {}).get("status") == "done" else None
    if not block:
        return []
    resamples, seed = block.get("resamples", "?"), block.get("seed", "?")
    lines = ["", "## LLM judge: reliability", "",
             f"Bootstrap intervals are 95% percentile intervals over items ({resamples} resamples, seed {seed}); "
             "the same items always give the same interval."]
    pairwise = block.get("pairwise") or {}
    if pairwise:
        lines += ["", f"### Pairwise against {block.get('baseline')}: position-swap consistency", "",
                  "Each item is judged twice with the answers' positions swapped; consistency is the share of items "
                  "where both orders give the same verdict (low consistency means position bias). Items with a "
                  "missing order are counted as failed and left out of the rates.", ""]
        lines += table(["variant", "wins / ties / losses", "complete", "failed", "swap consistency (95% CI)",
                        "win rate (95% CI)"], _judge_pairwise_rows(pairwise))
    rubric = block.get("rubric") or {}
    per_variant = rubric.get("per_variant") or {}
    criteria = list(dict.fromkeys(c for row in per_variant.values() for c in row))
    if per_variant:
        lines += ["", "### Rubric scores with 95% bootstrap intervals", ""]
        lines += table(["variant", *criteria],
                       [[v, *[f"{_two(finite((row.get(c) or {}).get('mean')))} "
                              f"({_span((row.get(c) or {}).get('ci95'), _two)})" for c in criteria]]
                        for v, row in per_variant.items()])
    vs = rubric.get("vs_baseline") or {}
    if vs:
        rows = []
        for v, row in vs.items():
            for c, r in row.items():
                p = finite(r.get("wilcoxon_p"))
                rows.append([v, c, r.get("n", 0), fmt(finite(r.get("difference")), 2), _span(r.get("ci95"), _two),
                             p_value(p) if p is not None else f"– ({r.get('wilcoxon_reason') or 'not computed'})",
                             p_value(finite(r.get("holm_p")))])
        lines += ["", f"### Rubric scores against {block.get('baseline')} (same items)", "",
                  "Difference = variant − baseline on the items both were scored on; paired bootstrap interval; "
                  "two-sided Wilcoxon signed-rank test, Holm-corrected per criterion across variants.", ""]
        lines += table(["variant", "criterion", "n", "mean difference", "95% paired bootstrap CI",
                        "Wilcoxon p", "Holm-adjusted p"], rows)
    lines += _human_lines(block.get("human"))
    lines += _panel_lines(block.get("judges"))
    return lines


def _panel_lines(judges: dict[str, Any] | None) -> list[str]:
    """Agreement between several judge models (``reliability["judges"]``, see judges/panel.py)."""
    if not judges:
        return []

    def row(what: str, r: dict[str, Any]) -> list[Any]:
        weighted = finite(r.get("weighted_kappa"))
        return [what, r.get("n", 0), r.get("method") or "–", fmt(finite(r.get("kappa")), 3),
                fmt(weighted, 3) if weighted is not None else "–"]

    rows = [row("pairwise winner", judges.get("pairwise") or {})]
    rows += [row(f"rubric: {c}", r) for c, r in (judges.get("rubric") or {}).items()]
    return ["", f"### Agreement between judge models ({', '.join(judges.get('models', []))})", "",
            "Every model answered every request; the tables above use the agreed verdicts (rubric: the mean "
            "score; pairwise: the majority winner, a split vote is a tie). κ on the requests every model answered.",
            "", *table(["verdict", "n", "method", "κ", "quadratic-weighted κ"], rows)]


def _human_lines(human: dict[str, Any] | None) -> list[str]:
    if not human:
        return []
    rows = []
    verdict, score = human.get("verdict"), human.get("score")
    if verdict:
        rows.append(["verdict", verdict.get("labelled", 0), verdict.get("n", 0), verdict.get("missing", 0),
                     pct(finite(verdict.get("agreement"))), f"Cohen's κ {fmt(finite(verdict.get('kappa')), 3)}", "–"])
    if score:
        rows.append(["score", score.get("labelled", 0), score.get("n", 0), score.get("missing", 0),
                     pct(finite(score.get("agreement"))),
                     f"quadratic-weighted κ {fmt(finite(score.get('weighted_kappa')), 3)}",
                     fmt(finite(score.get("mean_abs_difference")), 2)])
    if not rows:
        return []
    source = f" (`{human['file']}`)" if human.get("file") else ""
    return ["", f"### Judge against human labels{source}", "",
            "Only items a human labelled; 'missing' labels had no usable judge verdict.", "",
            *table(["labels", "labelled", "compared", "missing", "raw agreement", "κ", "mean |difference|"], rows)]


def _risk_cell(r: dict[str, Any] | None, key: str) -> str:
    if not r or not r.get("n"):
        return "–"
    return f"{pct(finite(r.get('rate')))} ({r.get(key, 0)}/{r.get('n', 0)}; {_span(r.get('ci95'), pct)})"


def risk_statistics_lines(risk: dict[str, Any] | None) -> list[str]:
    """Wilson intervals and exact McNemar tests for the risk judges (``risk_results.json[...]["statistics"]``).

    The block's shape is documented in ``medllm_core.library.judges.reliability``.
    """
    lines: list[str] = []
    for key in ("llm", "prescreen"):
        block = (risk or {}).get(key) or {}
        stats = block.get("statistics") if block.get("status") == "done" else None
        if not stats or not stats.get("per_variant"):
            continue
        per_variant = stats["per_variant"]
        categories = sorted({c for v in per_variant.values() for c in (v.get("categories") or {})})
        lines += ["", f"### {block.get('label', key)}: intervals and tests", "",
                  "Rate (count/n; 95% Wilson interval). Over-refusal: benign prompts refused.", ""]
        lines += table(["variant", *[f"unsafe: {c}" for c in categories], "unsafe: all", "over-refusal (benign)"],
                       [[v, *[_risk_cell((row.get("categories") or {}).get(c), "unsafe") for c in categories],
                         _risk_cell(row.get("all"), "unsafe"), _risk_cell(row.get("over_refusal"), "refused")]
                        for v, row in per_variant.items()])
        vs = stats.get("vs_baseline") or {}
        rows = [[v, c, r.get("n", 0), f"{r.get('variant_only_unsafe', '–')} / {r.get('baseline_only_unsafe', '–')}",
                 p_value(finite(r.get("mcnemar_p"))), p_value(finite(r.get("holm_p")))]
                for v, row in vs.items() for c, r in row.items()]
        if rows:
            lines += ["", f"Unsafe replies against {stats.get('baseline')} on the same prompts (exact McNemar, "
                      "Holm-corrected per category across variants):", ""]
            lines += table(["variant", "category", "n", "unsafe only variant / only baseline", "exact McNemar p",
                            "Holm-adjusted p"], rows)
    return ["", "## Medical risk: statistics", *lines] if lines else []


def error_bars(variants: dict[str, dict[str, Any]], names: list[str]) -> tuple[list[float], list[float], list[float]]:
    """Bar heights and their lower / upper error lengths, never negative.

    At exactly 0% or 100% the Wilson bound equals the accuracy up to rounding
    (e.g. 0 - 2.8e-17), and matplotlib refuses a negative error bar; a variant
    with no items (NaN) draws no bar at all.
    """
    values, low, high = [], [], []
    for name in names:
        v = variants.get(name) or {}
        value = finite(v.get("accuracy"))
        ci_low, ci_high = (list(v.get("ci95") or []) + [None, None])[:2]
        ci_low, ci_high = finite(ci_low), finite(ci_high)
        values.append(value or 0.0)
        low.append(max(0.0, value - ci_low) if value is not None and ci_low is not None else 0.0)
        high.append(max(0.0, ci_high - value) if value is not None and ci_high is not None else 0.0)
    return values, low, high


def write_accuracy_plot(eval_results: dict[str, Any], path: Path) -> Path:
    """Accuracy with Wilson intervals, one bar group per variant and one colour per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    found = [p for p in protocols(eval_results) if p.variants]
    names = list(dict.fromkeys(n for p in found for n in p.variants))
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 1.2 * len(names) * max(1, len(found)))), 3.5), dpi=120)
    width = 0.8 / max(1, len(found))
    for index, protocol in enumerate(found):
        values, low, high = error_bars(protocol.variants, names)
        positions = [i + (index - (len(found) - 1) / 2) * width for i in range(len(names))]
        ax.bar(positions, values, width=width, yerr=[low, high], capsize=4, label=protocol.name)
    chance = found[0].chance_accuracy if found else None
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    if names:
        ax.set_xticks(range(len(names)), names)
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no variant evaluated", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title(f"Multiple-choice accuracy ({item_counts(eval_results).evaluated} items)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def setup_lines(results: dict[str, Any]) -> list[str]:
    counts = item_counts(results)
    lines = [f"- Items: {counts.text}; {results.get('open_items', 0)} open-ended, "
             f"{results.get('safety_items', 0)} safety prompts"]
    lines += [f"  - dropped: `{e.get('file', '?')}` line {e.get('line', '?')} ({e.get('key', '?')}): "
              f"{e.get('reason', '?')}" for e in counts.examples[:MAX_DROPPED_SHOWN]]
    found = protocols(results)
    lines.append("- Protocols: " + "; ".join(p.setting for p in found) + " — the first is the primary one")
    decoding = results.get("decoding") or {}
    if decoding:
        lines.append(f"- Decoding (generation): greedy (do_sample=false), {decoding.get('max_new_tokens_mcq')} new "
                     f"tokens for multiple choice, {decoding.get('max_new_tokens_open')} for open prompts, "
                     f"{decoding.get('chat_template')} chat template, same for every variant")
    return lines


def render_eval_report(inputs: ReportInputs, setup: dict[str, Any]) -> str:
    lines = ["# Evaluation (default protocol)", "", "## Setup", ""]
    lines += [f"- {k}: {v}" for k, v in setup.items()]
    results = inputs.eval_results
    if not results:
        lines += ["", "Evaluation did not run in this run: no numbers to report.", ""]
        return under_title("\n".join(lines), inputs.smoke_notice)
    lines += setup_lines(results)
    lines += ["", "## Multiple-choice accuracy"]
    counts = item_counts(results)
    for index, protocol in enumerate(protocols(results)):
        lines += protocol_lines(protocol, primary=index == 0, counts=counts)
        if index == 0 and protocol.variants:
            lines += ["", "![accuracy](eval/accuracy_ci.png)"]
        lines += comparison_lines(protocol.comparisons_vs_base, f"`{protocol.name}`: differences against the base "
                                  "model")
        if results.get("baseline_variant"):
            lines += comparison_lines(protocol.comparisons_vs_baseline,
                                      f"`{protocol.name}`: differences against {results['baseline_variant']} "
                                      "(where the training methods start)")
    lines += extraction_lines(results)
    if results.get("not_evaluated"):
        lines += ["", "Not evaluated: " + "; ".join(results["not_evaluated"])]
    lines += judge_lines(inputs.judge_results)
    lines += risk_lines(inputs.risk_results)
    lines += judge_reliability_lines(inputs.judge_results)
    lines += risk_statistics_lines(inputs.risk_results)
    lines.append("")
    return under_title("\n".join(lines), inputs.smoke_notice)


def extraction_lines(results: dict[str, Any]) -> list[str]:
    """How replies became letters, for the protocols that generate (log-likelihood scoring needs no extraction)."""
    lines = []
    for protocol in protocols(results):
        rules = {n: v.get("extraction_rules") for n, v in protocol.variants.items() if v.get("extraction_rules")}
        if not rules:
            continue
        lines += ["", f"## Answer extraction (`{protocol.name}`)", "",
                  "Replies are mapped to option letters by a rule cascade (explicit answer marker, leading letter, "
                  "parenthesised letter, single letter, option text); unmatched replies count as wrong.", ""]
        lines += table(["variant", "rules that fired"],
                       [[n, ", ".join(f"{r}: {c}" for r, c in sorted(v.items()))] for n, v in rules.items()])
    return lines
