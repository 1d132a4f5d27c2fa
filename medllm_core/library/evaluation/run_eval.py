"""The evaluation stage: every variant answers the same items, under each configured protocol.

The base model is loaded once and each variant's adapter is switched on in
turn (``variant_models``). Writes per-variant predictions (MCQ per protocol,
open-ended, safety) and the MCQ summary with intervals and paired tests; the
judge and report stages read these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json, write_text
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError, DataError
from medllm_core.kernel.fingerprint import file_sha256
from medllm_core.kernel.graph import method_baseline
from medllm_core.kernel.profile import profile_location
from medllm_core.kernel.stages import StageResult
from medllm_core.library.data import data_source
from medllm_core.library.data.model import ERROR, Problem
from medllm_core.library.evaluation.batching import token_budget
from medllm_core.library.evaluation.generation import chat_prompt_ids, end_token_ids, generate
from medllm_core.library.evaluation.loglik import LoglikQuery, best_candidate, score_queries
from medllm_core.library.evaluation.mcq import McqItem, drop_summary, load_mcq_file
from medllm_core.library.evaluation.prompts import PromptItem, load_prompt_file
from medllm_core.library.evaluation.protocols import (
    DESCRIPTIONS,
    PROMPT_TEMPLATE_VERSION,
    chance_accuracy,
    conversation,
    score_generated,
    score_loglik,
    shot_pool,
    shots_for,
)
from medllm_core.library.evaluation.scoring import comparisons, summarise_variant
from medllm_core.library.evaluation.settings import DEV_DATA_KEY, EVAL_DATA_KEYS, EvalSettings
from medllm_core.library.evaluation.variant_cache import VariantAnswers, load_answers, store_answers, variant_key
from medllm_core.library.evaluation.variant_models import VariantModels
from medllm_core.library.evaluation.variants import Variant, check_variant_names, variants_to_evaluate
from medllm_core.library.report_paths import ReportPaths
from medllm_core.library.training.quantized_base import base_weights_setup

GPU_BATCH_ITEMS, CPU_BATCH_ITEMS = 256, 8


def eval_dir(ctx: StageContext) -> Path:
    return ReportPaths.of(ctx.run).eval


def _data_path(ctx: StageContext, key: str) -> str | None:
    source = data_source(ctx.profile, key)  # path or dataset_info + dataset_name, like training data
    return source.file if source is not None else None


def _data_format(ctx: StageContext, key: str) -> str:
    section = ctx.profile.data.get(key)
    return section.format if section is not None else "auto"


@dataclass
class McqInputs:
    """The MCQ items to evaluate, the dev items for shots, and what could not be read."""

    items: list[McqItem] = field(default_factory=list)
    dev: list[McqItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    in_file: int = 0


def load_mcq_inputs(ctx: StageContext) -> McqInputs:
    """Read [data.eval_mcq] (and [data.eval_dev] when shots > 0), applying on_bad_items before any model loads."""
    settings: EvalSettings = ctx.settings
    inputs = McqInputs()
    if (path := _data_path(ctx, "eval_mcq")) is not None:
        inputs.items, problems = load_mcq_file(path, _data_format(ctx, "eval_mcq"))
        inputs.problems = [p for p in problems if p.severity == ERROR]
        inputs.in_file = len(inputs.items) + len(inputs.problems)
        if inputs.problems and settings.on_bad_items == "fail":
            first = inputs.problems[0]
            raise DataError(f"{len(inputs.problems)} of {inputs.in_file} multiple-choice items cannot be read "
                            f"(first: {first.message})", first.location,
                            hint="fix them, or set [stages.eval] on_bad_items = \"report\" to evaluate the rest "
                                 "and report what was dropped")
    if settings.shots > 0:
        dev_path = _data_path(ctx, DEV_DATA_KEY)
        if dev_path is None:
            raise ConfigError(f"shots = {settings.shots} needs solved examples: add [data.{DEV_DATA_KEY}] path = "
                              "\"…\" (a dev split in any multiple-choice format)",
                              profile_location(ctx.profile, f"stages.{ctx.name}.shots"))
        inputs.dev = load_mcq_file(dev_path, _data_format(ctx, DEV_DATA_KEY))[0]
    return inputs


def check_eval_inputs(ctx: StageContext) -> None:
    check_variant_names(ctx, ctx.settings.variants)
    load_mcq_inputs(ctx)
    for key in ("eval_open", "eval_safety"):
        if (path := _data_path(ctx, key)) is not None:
            load_prompt_file(path)


def _limit(items: list, settings: EvalSettings) -> list:
    return items[: settings.max_items] if settings.max_items > 0 else items


def _data_items_identity(paths: dict[str, str | None]) -> dict[str, Any]:
    return {key: file_sha256(Path(path)) if path else None for key, path in paths.items()}


@dataclass
class EvalWork:
    """Everything every variant answers, and how far the stage has got (for progress events)."""

    mcq: list[McqItem]
    open: list[PromptItem]
    safety: list[PromptItem]
    conversations: list[list[dict[str, str]]]
    protocols: list[str]
    total: int = 0
    done: int = 0

    @property
    def per_variant(self) -> int:
        return len(self.mcq) * len(self.protocols) + len(self.open) + len(self.safety)


class Evaluator:
    """Answers every item for one variant at a time, on one loaded base model."""

    def __init__(self, ctx: StageContext, work: EvalWork):
        self.ctx = ctx
        self.settings: EvalSettings = ctx.settings
        self.work = work
        self.models = VariantModels(ctx)
        self._budget: int | None = None

    def _batch_items(self) -> int:
        if self.settings.batch_size > 0:
            return self.settings.batch_size
        return GPU_BATCH_ITEMS if self.ctx.hardware.backend == "cuda" else CPU_BATCH_ITEMS

    def _batch_tokens(self) -> int:
        """The configured token budget, or one derived from the free accelerator memory after loading."""
        if self.settings.max_batch_tokens > 0:
            return self.settings.max_batch_tokens
        if self._budget is None:
            free = self.models.free_accelerator_bytes()
            dtype_bytes = 4 if self.ctx.precision.dtype == "fp32" else 2
            self._budget = token_budget(self.models.config, dtype_bytes, free) if free else 0
            if self._budget:
                self.ctx.decide("eval_batch_budget", f"evaluation batches hold up to {self._budget:,} tokens "
                                f"({free / 2**30:.1f} GiB free after loading the model)",
                                max_batch_tokens=self._budget, free_gib=round(free / 2**30, 2),
                                max_batch_items=self._batch_items())
        return self._budget

    def _progress(self, offset: int) -> Any:
        def on_batch(n: int) -> None:
            self.ctx.progress(offset + n, self.work.total)
            # Between batches is the earliest a stop can be honoured without losing a batch's answers.
            if self.ctx.stop_requested():
                raise StopRequested(offset + n)

        return on_batch

    def answer(self, variant: Variant) -> VariantAnswers:
        work = self.work
        answers = VariantAnswers()
        with self.models.use(variant) as model:
            tokenizer = self.models.tokenizer
            batching = {"batch_size": self._batch_items(), "max_batch_tokens": self._batch_tokens()}
            for protocol in work.protocols:
                if protocol == "generate":
                    replies = generate(model, tokenizer, work.conversations,
                                       max_new_tokens=self.settings.max_new_tokens_mcq,
                                       on_batch=self._progress(work.done), **batching)
                    answers.mcq[protocol] = [score_generated(i, r) for i, r in zip(work.mcq, replies, strict=True)]
                else:
                    answers.mcq[protocol] = self._loglik(model, tokenizer, batching)
                work.done += len(work.mcq)
            for kind, prompts in (("open", work.open), ("safety", work.safety)):
                replies = generate(model, tokenizer, [[{"role": "user", "content": i.prompt}] for i in prompts],
                                   max_new_tokens=self.settings.max_new_tokens_open,
                                   on_batch=self._progress(work.done), **batching)
                work.done += len(prompts)
                getattr(answers, kind).extend(
                    {"id": i.id, "prompt": i.prompt, "category": i.category, "reference": i.reference,
                     "language": i.language, "response": r} for i, r in zip(prompts, replies, strict=True))
        return answers

    def _loglik(self, model: Any, tokenizer: Any, batching: dict[str, int]) -> list[dict[str, Any]]:
        work = self.work
        prompts = chat_prompt_ids(tokenizer, work.conversations)
        queries = [LoglikQuery(p, list(i.options), i.multiple) for p, i in zip(prompts, work.mcq, strict=True)]
        ends = end_token_ids(model, tokenizer)
        scores = score_queries(model, tokenizer, queries, end_id=ends[0], on_batch=self._progress(work.done),
                               **batching)
        return [score_loglik(i, s, best_candidate(s)) for i, s in zip(work.mcq, scores, strict=True)]


class StopRequested(Exception):
    """The STOP file appeared mid-evaluation; ``done`` items were answered (whole variants are kept)."""

    def __init__(self, done: int):
        super().__init__(f"stopped on request after {done} item(s)")
        self.done = done


def _protocol_block(protocol: str, settings: EvalSettings, records: dict[str, list[dict[str, Any]]],
                    items: list[McqItem], baseline: str | None, seed: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[protocol],
        "prompt_template": PROMPT_TEMPLATE_VERSION,
        "shots": settings.shots,
        "max_new_tokens": settings.max_new_tokens_mcq if protocol == "generate" else None,
        "chance_accuracy": chance_accuracy(items),
        "variants": {name: summarise_variant(r) for name, r in records.items() if r},
        "comparisons_vs_base": comparisons(records, "base", seed=seed) if items else [],
        "comparisons_vs_baseline": comparisons(records, baseline, seed=seed, exclude=("base",))
        if items and baseline else [],
    }


def run_evaluation(ctx: StageContext) -> StageResult:
    settings: EvalSettings = ctx.settings
    paths = {key: _data_path(ctx, key) for key in EVAL_DATA_KEYS}
    if not any(paths.values()):
        return StageResult.skipped("no evaluation data in the profile ([data.eval_mcq], [data.eval_open], "
                                   "[data.eval_safety])")
    mcq_inputs = load_mcq_inputs(ctx)
    dropped = drop_summary(mcq_inputs.problems)
    if dropped["count"]:
        ctx.log(f"{dropped['count']} of {mcq_inputs.in_file} multiple-choice items cannot be read and are not "
                f"evaluated: " + "; ".join(f"{r}: {n}" for r, n in dropped["by_reason"].items()), level="warning")
        ctx.decide("eval_items_dropped", f"{dropped['count']} unreadable multiple-choice items dropped "
                   "(on_bad_items = \"report\")", **dropped)
    mcq_items = _limit(mcq_inputs.items, settings)
    pool = shot_pool(mcq_inputs.dev, settings.shots)
    work = EvalWork(
        mcq=mcq_items,
        open=_limit(load_prompt_file(paths["eval_open"]), settings) if paths["eval_open"] else [],
        safety=_limit(load_prompt_file(paths["eval_safety"]), settings) if paths["eval_safety"] else [],
        conversations=[conversation(i, shots_for(i, pool, settings.shots)) for i in mcq_items],
        protocols=settings.protocols if mcq_items else [],
    )
    variants, notes = variants_to_evaluate(ctx, settings.variants)
    for note in notes:
        ctx.log(note, level="warning")
    identity = _data_items_identity({**paths, DEV_DATA_KEY: _data_path(ctx, DEV_DATA_KEY)})
    work.total = len(variants) * work.per_variant
    evaluator = Evaluator(ctx, work)
    per_variant: dict[str, VariantAnswers] = {}
    reused: list[str] = []
    try:
        for variant in variants:
            key = variant_key(ctx, variant.name, variant.adapter, identity)
            answers = load_answers(ctx, variant.name, key)
            if answers is not None:
                reused.append(variant.name)
                work.done += work.per_variant
                ctx.log(f"{variant.name}: answers reused (its adapter and the items are unchanged)")
            else:
                if ctx.stop_requested():
                    raise StopRequested(work.done)
                ctx.log(f"evaluating {variant.name}")
                answers = evaluator.answer(variant)
                store_answers(ctx, variant.name, key, answers)
            ctx.progress(work.done, work.total)
            per_variant[variant.name] = answers
    except StopRequested as stop:
        # Variants answered in full are stored, so --resume reuses them and answers the rest.
        ctx.decide("stopped_on_request", f"evaluation stopped on request after {stop.done} of {work.total} "
                   "answers", done=stop.done, total=work.total, variants_kept=list(per_variant))
        return StageResult.stopped(f"stopped on request after {stop.done} of {work.total} answers; "
                                  "continue with --resume")
    finally:
        evaluator.models.close()
    if reused:
        ctx.decide("eval_answers_reused", f"answers of {', '.join(reused)} reused: their adapters and the "
                   "evaluation items are unchanged", variants=reused,
                   generated=[v.name for v in variants if v.name not in reused])
    return _write_results(ctx, work, per_variant, paths, dropped, mcq_inputs, notes, reused)


def _write_results(ctx: StageContext, work: EvalWork, per_variant: dict[str, VariantAnswers],
                   paths: dict[str, str | None], dropped: dict[str, Any], mcq_inputs: McqInputs, notes: list[str],
                   reused: list[str]) -> StageResult:
    settings: EvalSettings = ctx.settings
    records = {p: {name: a.mcq.get(p, []) for name, a in per_variant.items()} for p in work.protocols}
    if settings.llm_fallback and "generate" in records:
        llm_fallback_extraction(ctx, work.mcq, records["generate"])
    out = ReportPaths.of(ctx.run)
    for index, protocol in enumerate(work.protocols):
        for name, rows in records[protocol].items():
            write_text(out.mcq_predictions(name, None if index == 0 else protocol),
                       "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    for kind in ("open", "safety"):
        if any(getattr(a, kind) for a in per_variant.values()):
            write_json(out.responses(kind), {name: getattr(a, kind) for name, a in per_variant.items()})
    baseline = method_baseline(ctx.plan)
    blocks = {p: _protocol_block(p, settings, records[p], work.mcq, baseline, ctx.profile.run.seed)
              for p in work.protocols}
    primary = work.protocols[0] if work.protocols else settings.protocols[0]
    head = blocks.get(primary, {"variants": {}, "comparisons_vs_base": [], "comparisons_vs_baseline": [],
                                "chance_accuracy": 0.0})
    summary = {
        "items": len(work.mcq),
        "items_loaded": len(mcq_inputs.items),
        "items_in_file": mcq_inputs.in_file,
        "dropped": dropped,
        "data": {k: v for k, v in paths.items() if v},
        "protocol": primary,
        "protocols": blocks,
        "prompt_template": PROMPT_TEMPLATE_VERSION,
        "shots": settings.shots,
        "chance_accuracy": head["chance_accuracy"],
        "decoding": {"do_sample": False, "max_new_tokens_mcq": settings.max_new_tokens_mcq,
                     "max_new_tokens_open": settings.max_new_tokens_open, "chat_template": "each model's own",
                     "batch_size": settings.batch_size},
        "base_weights": base_weights_setup(ctx),
        "variants": head["variants"],
        "comparisons_vs_base": head["comparisons_vs_base"],
        "baseline_variant": baseline,
        "comparisons_vs_baseline": head["comparisons_vs_baseline"],
        "not_evaluated": notes,
        "reused_variants": reused,
        "open_items": len(work.open),
        "safety_items": len(work.safety),
    }
    summary_path = write_json(out.eval_results, summary)
    return StageResult.done(
        metrics_path=str(summary_path),
        summary={name: round(v["accuracy"], 4) for name, v in summary["variants"].items()},
    )


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
