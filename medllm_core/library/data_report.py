"""``medllm-tui data check``: format, rows, lengths and every problem with its line."""

from __future__ import annotations

import statistics
from typing import Any

from medllm_core.library.data import load_dataset_file

# Tried when no --tokenizer is given: the tokenizer of the default model, if it is in the local HF cache.
DEFAULT_TOKENIZER = "Qwen/Qwen2.5-7B-Instruct"

STAGE_LOADER = {"sft": "sft", "preference": "preference", "dpo": "preference", "simpo": "preference", "kto": "kto"}


def _row_text(row: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in row:
        return row["messages"]
    messages = list(row.get("prompt", []))
    for key in ("chosen", "completion"):
        messages.extend(row.get(key, []))
    return messages


def _lengths(rows: list[dict[str, Any]], tokenizer_name: str | None) -> tuple[str, list[int], str]:
    if tokenizer_name is None:
        unit, lengths, note = _lengths(rows, DEFAULT_TOKENIZER)
        if unit == "tokens":
            return unit, lengths, f"{note} (default; choose another with --tokenizer)"
        return "characters", lengths, "no --tokenizer given and the default model's tokenizer is not cached; " \
                                      "showing characters"
    if tokenizer_name:
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_name, local_files_only=True)
            lengths = []
            for row in rows:
                encoded = tokenizer.apply_chat_template(_row_text(row), tokenize=True, return_dict=True)
                lengths.append(len(encoded["input_ids"]))
            return "tokens", lengths, f"tokenizer {tokenizer_name}"
        except Exception as exc:
            note = f"tokenizer '{tokenizer_name}' unavailable ({type(exc).__name__}); showing characters"
            return "characters", [sum(len(m["content"]) for m in _row_text(r)) for r in rows], note
    return "characters", [sum(len(m["content"]) for m in _row_text(r)) for r in rows], \
        "no --tokenizer given; showing characters"


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def check_mcq_file(path: str, fmt: str = "auto") -> dict[str, Any]:
    """``--stage eval`` / ``eval_mcq``: multiple-choice items; every item left out is an error with its line."""
    from collections import Counter

    from medllm_core.library.evaluation.mcq import load_mcq_file

    items, problems = load_mcq_file(path, fmt)
    sources = Counter(i.source for i in items)
    formats = Counter(i.format for i in items)
    return {
        "path": path,
        "stage": "eval",
        "format": "multiple choice, " + ", ".join(f"{f} {n}" for f, n in formats.most_common())
                  + " (sources " + ", ".join(f"{s}: {n}" for s, n in sources.most_common()) + ")",
        "rows": len(items),
        "length_unit": "characters",
        "length_note": "question + options",
        "lengths": _summary([len(i.question) + sum(len(o) for o in i.options.values()) for i in items]),
        "derived_from_preference": False,
        "errors": [p for p in problems if p.severity == "error"],
        "warnings": [p for p in problems if p.severity == "warning"],
    }


def check_data_file(path: str, stage: str, fmt: str = "auto", *, dataset_info: str | None = None,
                    dataset_name: str | None = None, tokenizer: str | None = None, max_length: int | None = None,
                    max_prompt_length: int | None = None) -> dict[str, Any]:
    if stage in ("eval", "eval_mcq"):
        return check_mcq_file(path, fmt)
    loaded = load_dataset_file(path, STAGE_LOADER[stage], fmt, dataset_info=dataset_info, dataset_name=dataset_name)
    unit, lengths, note = _lengths(loaded.rows, tokenizer)
    return {"length_check": _length_check(loaded.rows, stage, tokenizer, max_length, max_prompt_length), **{
        "path": loaded.path,
        "stage": stage,
        "format": loaded.format,
        "rows": len(loaded.rows),
        "length_unit": unit,
        "length_note": note,
        "lengths": _summary(lengths),
        "derived_from_preference": loaded.derived_from_preference,
        "errors": [p for p in loaded.problems if p.severity == "error"],
        "warnings": [p for p in loaded.problems if p.severity == "warning"],
    }}


def _length_check(rows: list[dict[str, Any]], stage: str, tokenizer: str | None, max_length: int | None,
                  max_prompt_length: int | None) -> str | None:
    """With --max-length: rows over it and (preference stages) prompts over the prompt budget."""
    from medllm_core.library.data.lengths import count_lengths, local_tokenizer, skipped

    if max_length is None:
        return None
    name = tokenizer or DEFAULT_TOKENIZER
    loaded = local_tokenizer(name)
    if loaded is None:
        return skipped(name)
    budget = None if stage == "sft" else (max_prompt_length or max_length // 2)  # the stages' default budget
    return count_lengths(loaded, rows, max_length, budget).describe()


def _problem_line(problem: Any) -> str:
    where = problem.file + (f":{problem.line}" if problem.line else "")
    key = f" [{problem.key}]" if problem.key else ""
    return f"  {problem.severity}: {where}{key}: {problem.message}"


def render_data_report(report: dict[str, Any], max_problems: int = 50) -> str:
    lines = [
        f"file:    {report['path']}",
        f"stage:   {report['stage']}",
        f"format:  {report['format']}",
        f"rows:    {report['rows']} valid",
    ]
    if report["derived_from_preference"]:
        lines.append("note:    KTO rows derived from preference pairs (chosen → desirable, rejected → undesirable)")
    if report["lengths"]:
        s = report["lengths"]
        lines.append(f"length ({report['length_unit']}): min {s['min']}, median {s['median']}, "
                     f"p95 {s['p95']}, max {s['max']}  ({report['length_note']})")
    if report.get("length_check"):
        lines.append(report["length_check"])
    problems = report["errors"] + report["warnings"]
    lines.append(f"problems: {len(report['errors'])} error(s), {len(report['warnings'])} warning(s)")
    lines += [_problem_line(p) for p in problems[:max_problems]]
    if len(problems) > max_problems:
        lines.append(f"  … {len(problems) - max_problems} more (use --max-problems)")
    lines.append("result: " + ("FAIL — fix the errors above before training" if report["errors"] else "OK"))
    return "\n".join(lines)
