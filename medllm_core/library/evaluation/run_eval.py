"""The evaluation stage: every variant answers the same items with the same greedy decoding.

Writes per-variant predictions (MCQ, open-ended, safety) and the MCQ summary
with intervals and paired tests; the judge and report stages read these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json, write_text
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.fingerprint import file_sha256
from medllm_core.kernel.graph import method_baseline
from medllm_core.kernel.stages import StageResult
from medllm_core.library.evaluation.generation import generate
from medllm_core.library.evaluation.mcq import extract_by_option_text, extract_choice, format_prompt, load_mcq_file
from medllm_core.library.evaluation.prompts import load_prompt_file
from medllm_core.library.evaluation.scoring import comparisons, summarise_variant
from medllm_core.library.evaluation.settings import EvalSettings
from medllm_core.library.evaluation.variant_cache import VariantAnswers, load_answers, store_answers, variant_key
from medllm_core.library.evaluation.variants import (
    Variant,
    check_variant_names,
    load_variant,
    release,
    variants_to_evaluate,
)
from medllm_core.library.report_paths import ReportPaths

EVAL_DATA_KEYS = ("eval_mcq", "eval_open", "eval_safety")


def eval_dir(ctx: StageContext) -> Path:
    return ReportPaths.of(ctx.run).eval


def _data_path(ctx: StageContext, key: str) -> str | None:
    section = ctx.profile.data.get(key)
    return str(ctx.profile.resolve_path(section.path)) if section is not None and section.path else None


def check_eval_inputs(ctx: StageContext) -> None:
    check_variant_names(ctx, ctx.settings.variants)
    if (path := _data_path(ctx, "eval_mcq")) is not None:
        load_mcq_file(path)
    for key in ("eval_open", "eval_safety"):
        if (path := _data_path(ctx, key)) is not None:
            load_prompt_file(path)


def _limit(items: list, settings: EvalSettings) -> list:
    return items[: settings.max_items] if settings.max_items > 0 else items


def _as_chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _data_items_identity(ctx: StageContext, paths: dict[str, str | None]) -> dict[str, Any]:
    return {key: file_sha256(Path(path)) if path else None for key, path in paths.items()}


def _answer(ctx: StageContext, variant: Variant, items: tuple[list, list, list], total: int,
            done: int) -> VariantAnswers:
    """Load ``variant`` and let it answer every item (greedy, its own chat template)."""
    settings: EvalSettings = ctx.settings
    mcq_items, open_items, safety_items = items
    model, tokenizer = load_variant(ctx, variant)

    def advance(count: int, offset: int) -> None:
        ctx.progress(offset + count, total)

    replies = generate(model, tokenizer, [_as_chat(format_prompt(i)) for i in mcq_items],
                       max_new_tokens=settings.max_new_tokens_mcq, batch_size=settings.batch_size,
                       on_batch=lambda n, o=done: advance(n, o))
    done += len(mcq_items)
    answers = VariantAnswers([_score(item, reply) for item, reply in zip(mcq_items, replies, strict=True)], [], [])
    for kind, prompts in (("open", open_items), ("safety", safety_items)):
        replies = generate(model, tokenizer, [_as_chat(i.prompt) for i in prompts],
                           max_new_tokens=settings.max_new_tokens_open, batch_size=settings.batch_size,
                           on_batch=lambda n, o=done: advance(n, o))
        done += len(prompts)
        getattr(answers, kind).extend(
            {"id": i.id, "prompt": i.prompt, "category": i.category, "reference": i.reference,
             "language": i.language, "response": r} for i, r in zip(prompts, replies, strict=True))
    release(model)
    return answers


def run_evaluation(ctx: StageContext) -> StageResult:
    settings: EvalSettings = ctx.settings
    paths = {key: _data_path(ctx, key) for key in EVAL_DATA_KEYS}
    if not any(paths.values()):
        return StageResult.skipped("no evaluation data in the profile ([data.eval_mcq], [data.eval_open], "
                                   "[data.eval_safety])")
    mcq_items = _limit(load_mcq_file(paths["eval_mcq"])[0], settings) if paths["eval_mcq"] else []
    open_items = _limit(load_prompt_file(paths["eval_open"]), settings) if paths["eval_open"] else []
    safety_items = _limit(load_prompt_file(paths["eval_safety"]), settings) if paths["eval_safety"] else []
    variants, notes = variants_to_evaluate(ctx, settings.variants)
    for note in notes:
        ctx.log(note, level="warning")

    items = (mcq_items, open_items, safety_items)
    identity = _data_items_identity(ctx, paths)
    total = len(variants) * sum(len(i) for i in items)
    done = 0
    mcq_records: dict[str, list[dict[str, Any]]] = {}
    responses: dict[str, dict[str, list[dict[str, Any]]]] = {"open": {}, "safety": {}}
    reused: list[str] = []
    for variant in variants:
        key = variant_key(ctx, variant.name, variant.adapter, identity)
        answers = load_answers(ctx, variant.name, key)
        if answers is not None:
            reused.append(variant.name)
            ctx.log(f"{variant.name}: answers reused (its adapter and the items are unchanged)")
        else:
            ctx.log(f"evaluating {variant.name}")
            answers = _answer(ctx, variant, items, total, done)
            store_answers(ctx, variant.name, key, answers)
        done += sum(len(i) for i in items)
        ctx.progress(done, total)
        mcq_records[variant.name] = answers.mcq
        responses["open"][variant.name] = answers.open
        responses["safety"][variant.name] = answers.safety
    if reused:
        ctx.decide("eval_answers_reused", f"answers of {', '.join(reused)} reused: their adapters and the "
                   "evaluation items are unchanged", variants=reused,
                   generated=[v.name for v in variants if v.name not in reused])

    if settings.llm_fallback and mcq_items:
        llm_fallback_extraction(ctx, mcq_items, mcq_records)
    out = ReportPaths.of(ctx.run)
    for name, records in mcq_records.items():
        write_text(out.mcq_predictions(name),
                   "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for kind, per_variant in responses.items():
        if any(per_variant.values()):
            write_json(out.responses(kind), per_variant)
    seed = ctx.profile.run.seed
    baseline = method_baseline(ctx.plan)
    summary = {
        "items": len(mcq_items),
        "data": {k: v for k, v in paths.items() if v},
        "decoding": {"do_sample": False, "max_new_tokens_mcq": settings.max_new_tokens_mcq,
                     "max_new_tokens_open": settings.max_new_tokens_open, "chat_template": "each model's own",
                     "batch_size": settings.batch_size},
        "variants": {name: summarise_variant(records) for name, records in mcq_records.items() if records},
        "comparisons_vs_base": comparisons(mcq_records, "base", seed=seed) if mcq_items else [],
        "baseline_variant": baseline,
        "comparisons_vs_baseline": comparisons(mcq_records, baseline, seed=seed, exclude=("base",))
        if mcq_items and baseline else [],
        "not_evaluated": notes,
        "reused_variants": reused,
        "open_items": len(open_items),
        "safety_items": len(safety_items),
    }
    summary_path = write_json(out.eval_results, summary)
    return StageResult.done(
        metrics_path=str(summary_path),
        summary={name: round(v["accuracy"], 4) for name, v in summary["variants"].items()},
    )


def _score(item: Any, reply: str) -> dict[str, Any]:
    chosen, rule = extract_choice(reply, set(item.options))
    if chosen is None and (by_text := extract_by_option_text(reply, item.options)) is not None:
        chosen, rule = by_text, "option_text"
    return {
        "id": item.id,
        "source": item.source,
        "subject": item.subject,
        "answer": "".join(sorted(item.answer)),
        "response": reply,
        "extracted": "".join(sorted(chosen)) if chosen else None,
        "rule": rule,
        "correct": bool(chosen) and chosen == item.answer,
    }


def llm_fallback_extraction(ctx: StageContext, items: list[Any], records: dict[str, list[dict[str, Any]]]) -> None:
    """ENABLE_V2_LLM_FALLBACK: ask the judge model which option a reply chose when every rule failed."""
    from medllm_core.library.judges.client import JudgeRequest
    from medllm_core.library.judges.prompts import EXTRACT_VERSION, extract_check_for, extract_messages
    from medllm_core.library.judges.stages import open_client

    failed = [(variant, index) for variant, rows in records.items() for index, r in enumerate(rows)
              if r["extracted"] is None]
    if not failed:
        return
    client, reason = open_client(ctx, ctx.settings.fallback_judge)
    if client is None:
        ctx.decide("v2_llm_fallback_unavailable", f"extraction fallback enabled but the judge cannot run: {reason}",
                   unmatched_replies=len(failed))
        return
    requests = [JudgeRequest(f"extract:{variant}:{items[i].id}", EXTRACT_VERSION,
                             extract_messages(items[i].question, items[i].options, records[variant][i]["response"]),
                             extract_check_for(set(items[i].options))) for variant, i in failed]
    with client:
        results = client.map(requests)
    recovered = 0
    for (variant, i), result in zip(failed, results, strict=True):
        record = records[variant][i]
        record["llm_fallback"] = {"parse_status": result.parse_status, "raw": result.raw, "model": result.model,
                                  "prompt_version": result.prompt_version}
        choice = str((result.parsed or {}).get("choice", "")).strip().upper() if result.ok else ""
        if choice and choice != "NONE":
            record.update(extracted="".join(sorted(set(choice))), rule="llm_fallback",
                          correct=frozenset(choice) == frozenset(record["answer"]))
            recovered += 1
    ctx.decide("v2_llm_fallback", f"judge model extracted {recovered} of {len(failed)} unmatched replies",
               model=client.config.model, unmatched=len(failed), recovered=recovered)
