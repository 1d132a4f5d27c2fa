"""Run one training stage through a TRL trainer, surviving what rented GPUs do to it.

A method (SFT, DPO, SimPO, KTO, or a plugin's) supplies its data loader and a
function that builds its TRL trainer for a given ``Attempt``; this module owns
everything around it: the gate skip, fresh start or resume from the last
checkpoint, OOM retries that keep the effective batch, the loss guard, the
atomic final checkpoint, the loss curve and the metrics file.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import replace_directory
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.distributed import is_main_process, world_size
from medllm_core.kernel.stages import StageResult
from medllm_core.library.report_paths import ReportPaths
from medllm_core.library.training.callbacks import EventCallback, peak_memory_gb
from medllm_core.library.training.checkpoints import (
    checkpoint_dirs,
    clear_checkpoints,
    last_complete_checkpoint,
    remove_incomplete,
    resumable_checkpoint,
)
from medllm_core.library.training.metrics import (
    RUN_FACTS,
    TrainingMetrics,
    curve_problems,
    loss_curve_from_history,
    write_loss_curve,
    write_metrics,
)
from medllm_core.library.training.recovery import (
    Attempt,
    LossGuardCallback,
    LossGuardTripped,
    cuda_memory_facts,
    next_after_loss_guard,
    next_after_oom,
    release_memory,
)
from medllm_core.library.training.settings import TrainingSettings


@dataclass(frozen=True)
class TrainingPaths:
    metrics: Path
    curve_json: Path
    curve_png: Path
    output_dir: Path  # intermediate checkpoint-N folders

    @property
    def final(self) -> Path:
        return self.output_dir / "final"

    @classmethod
    def under(cls, paths: ReportPaths, prefix: str, output_dir: Path) -> TrainingPaths:
        """``reports/training/<prefix>_metrics.json`` and ``_loss_curve.json|.png``; checkpoints in ``output_dir``."""
        return cls(
            metrics=paths.training_file(prefix, "_metrics.json"),
            curve_json=paths.training_file(prefix, "_loss_curve.json"),
            curve_png=paths.training_file(prefix, "_loss_curve.png"),
            output_dir=output_dir,
        )


TrainerFactory = Callable[[StageContext, Attempt, list[dict], list[Any]], Any]


@dataclass
class TrainingMethod:
    method: str  # "sft", "dpo", ...
    title: str  # for plots and reports
    paths: TrainingPaths
    load_rows: Callable[[StageContext], tuple[list[dict], dict[str, Any]]]
    build_trainer: TrainerFactory
    min_micro_batch: int = 1  # KTO needs > 1 example per device
    # The fast path for this method (training/speed.py); None: plain TRL with the profile's settings.
    plan_speed: Callable[[StageContext, list[dict]], Any] | None = None
    extra_facts: dict[str, Any] = field(default_factory=dict)  # e.g. where the reference model came from


def first_attempt(ctx: StageContext, plan: Any = None) -> Attempt:
    s: TrainingSettings = ctx.settings
    attempt = Attempt(1, s.micro_batch_size, s.gradient_accumulation_steps, s.gradient_checkpointing,
                      s.max_length, ctx.precision.dtype, s.learning_rate)
    return attempt_from_plan(attempt, plan)


def first_attempt_from_plan(plan: Any, *, max_length: int, dtype: str, learning_rate: float) -> Attempt:
    """The attempt a speed plan starts with (bench/ uses this outside a stage)."""
    return attempt_from_plan(Attempt(1, plan.micro_batch_size, plan.gradient_accumulation_steps,
                                     plan.gradient_checkpointing, max_length, dtype, learning_rate), plan)


def attempt_from_plan(attempt: Attempt, plan: Any) -> Attempt:
    if plan is None or not plan.enabled:
        return attempt
    return replace(attempt, micro_batch_size=plan.micro_batch_size,
                   gradient_accumulation_steps=plan.gradient_accumulation_steps,
                   gradient_checkpointing=plan.gradient_checkpointing, attention=plan.attention,
                   packing=plan.packing, padding_free=plan.padding_free, liger=plan.liger,
                   lora_upcast_off=plan.lora_upcast_off, uncheckpointed_layers=plan.uncheckpointed_layers,
                   precompute_ref=plan.precompute_ref, packed_length=plan.packed_length,
                   host_offload=plan.host_offload, offload_checkpoints=plan.offload_checkpoints)


def stage_seed(ctx: StageContext) -> int:
    seed = ctx.settings.seed
    return seed if seed is not None else ctx.profile.run.seed


def base_metrics(ctx: StageContext, method: TrainingMethod, outcome: str, **facts: Any) -> TrainingMetrics:
    """The run facts every metrics file starts with, the method's extra facts, and ``facts`` of the outcome."""
    settings: TrainingSettings = ctx.settings
    typed = {k: v for k, v in method.extra_facts.items() if k in RUN_FACTS}  # a method may restate a run fact
    return TrainingMetrics(
        outcome=outcome,
        stage=ctx.name,
        method=method.method,
        model=ctx.profile.model.name_or_path,
        model_slug=ctx.profile.model_slug,
        device=ctx.hardware.describe(),
        precision=ctx.precision.dtype,
        precision_reason=ctx.precision.reason,
        settings={**vars(settings), "effective_batch_size": settings.effective_batch_size},
        lora=vars(ctx.profile.model.lora),
        seed=stage_seed(ctx),
        checkpoint=str(method.paths.final),
        extra={k: v for k, v in method.extra_facts.items() if k not in typed},
        **{**typed, **facts},
    )


def _write_outcome(ctx: StageContext, method: TrainingMethod, metrics: TrainingMetrics) -> None:
    if not is_main_process():
        return  # rank 0 speaks for the whole distributed stage
    metrics.decisions = ctx.stage_decisions()
    write_metrics(method.paths.metrics, metrics)


def skip(ctx: StageContext, method: TrainingMethod, reason: str) -> StageResult:
    """A skip is still evidence: the metrics file says skipped, and why."""
    _write_outcome(ctx, method, base_metrics(ctx, method, "skipped", skipped=True, reason=reason))
    return StageResult.skipped(reason, metrics_path=str(method.paths.metrics))


def _fail(ctx: StageContext, method: TrainingMethod, reason: str, attempts: list[dict], steps: int = 0) -> StageResult:
    _write_outcome(ctx, method, base_metrics(ctx, method, "failed", failed=True, reason=reason, steps=steps,
                                             attempts=attempts))
    return StageResult.failed(reason, metrics_path=str(method.paths.metrics))


def _stopped(ctx: StageContext, method: TrainingMethod, reason: str, attempts: list[dict], steps: int) -> StageResult:
    """Stopped on request: not a failure, and the metrics file says so (``stopped: true``)."""
    _write_outcome(ctx, method, base_metrics(ctx, method, "stopped", stopped=True, reason=reason, steps=steps,
                                             attempts=attempts))
    return StageResult.stopped(reason, metrics_path=str(method.paths.metrics))


def _starting_checkpoint(ctx: StageContext, output_dir: Path) -> Path | None:
    if not ctx.run_context.resume:
        if is_main_process():
            clear_checkpoints(output_dir)
        return None
    removed = remove_incomplete(output_dir) if is_main_process() else []
    if removed:
        ctx.decide("incomplete_checkpoint_removed", f"removed checkpoint(s) cut off mid-save: {', '.join(removed)}",
                   removed=removed)
    checkpoint = resumable_checkpoint(output_dir)
    # Checkpoints past the one we continue from (one taken on the last step) are rewritten by the
    # replayed steps; removing them first keeps an old one from mixing into the new ones.
    later = [p for p in checkpoint_dirs(output_dir) if checkpoint is None or p.name != checkpoint.name
             and int(p.name.split("-")[1]) > int(checkpoint.name.split("-")[1])]
    if checkpoint is not None and later and is_main_process():
        for path in later:
            shutil.rmtree(path, ignore_errors=True)
        ctx.decide("resume_replay", f"continuing from {checkpoint.name} (not {later[-1].name}, taken on the last "
                   "step): the last steps are replayed so the stage ends at max_steps", removed=[p.name for p in later])
    if checkpoint is not None:
        ctx.decide("resume", f"continuing from {checkpoint.name}", checkpoint=str(checkpoint))
    return checkpoint


def run_training_stage(ctx: StageContext, method: TrainingMethod) -> StageResult:
    """Train one stage; its metrics carry this stage's peak memory, not the process's."""
    from medllm_core.library.training.host_memory import StagePeakRss
    from medllm_core.library.training.recovery import release_memory

    release_memory()  # also resets the GPU peak counters: the previous stage's peak is not this one's
    with StagePeakRss():
        return _train_stage(ctx, method)


def _train_stage(ctx: StageContext, method: TrainingMethod) -> StageResult:
    import torch
    from transformers import PrinterCallback

    settings: TrainingSettings = ctx.settings
    if not ctx.gate.training_allowed:
        return skip(ctx, method, ctx.gate.reason)
    rows, data_facts = method.load_rows(ctx)
    resume_from = _starting_checkpoint(ctx, method.paths.output_dir)
    plan = method.plan_speed(ctx, rows) if method.plan_speed is not None else None
    if plan is not None:
        for key, message, facts in plan.decisions:
            ctx.decide(f"speed_{key}", message, **facts)
    attempt = first_attempt(ctx, plan)
    attempts: list[dict[str, Any]] = []
    oom_retries = guard_retries = 0
    started = time.monotonic()
    while True:
        attempts.append(attempt.describe())
        callback = EventCallback(ctx)
        callbacks: list[Any] = [callback] + ([LossGuardCallback()] if settings.loss_guard else [])
        trainer = None
        try:
            trainer = method.build_trainer(ctx, attempt, rows, callbacks)
            # Progress reaches the user through events; the trainer's printer would garble the display.
            trainer.remove_callback(PrinterCallback)
            train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            break
        except torch.OutOfMemoryError as exc:
            step = trainer.state.global_step if trainer is not None else 0
            memory = cuda_memory_facts()
            trainer = None
            release_memory()
            # Under DDP one rank cannot retry alone (the others wait in a collective): fail fast and let
            # the launcher stop every rank; the message says which setting to lower.
            following = (next_after_oom(attempt, min_micro_batch=method.min_micro_batch,
                                        allow_shorter_max_length=settings.allow_shorter_max_length)
                         if oom_retries < settings.oom_max_retries and world_size() == 1 else None)
            if following is None:
                reason = (f"out of memory at step {step} with micro-batch {attempt.micro_batch_size}, "
                          f"activation checkpointing {'on' if attempt.gradient_checkpointing else 'off'}, "
                          f"max length {attempt.max_length}; no smaller setting left "
                          f"(retries used {oom_retries}/{settings.oom_max_retries}). Use a bigger card, a smaller "
                          "tier, or set allow_shorter_max_length = true")
                ctx.decide("oom_give_up", reason, failed_at_step=step, memory=memory, settings=attempt.describe())
                return _fail(ctx, method, reason, attempts, steps=step)
            attempt, why = following
            oom_retries += 1
            resume_from = last_complete_checkpoint(method.paths.output_dir)
            ctx.decide("oom_retry", why, failed_at_step=step, error=str(exc)[:300], memory=memory,
                       new_settings=attempt.describe(),
                       continue_from=resume_from.name if resume_from else "restart (no checkpoint yet)")
        except LossGuardTripped as exc:
            trainer = None
            release_memory()
            following = next_after_loss_guard(attempt, settings.loss_guard_fallback,
                                              settings.loss_guard_max_retries - guard_retries)
            action = following[1] if following else "stage stopped"
            ctx.decide("loss_guard", f"{exc.reason} at step {exc.step}: {action}", step=exc.step,
                       values={k: (str(v) if v is not None else None) for k, v in exc.values.items()},
                       dtype=attempt.dtype, learning_rate=attempt.learning_rate)
            if following is None:
                return _fail(ctx, method, f"loss guard: {exc.reason} at step {exc.step}", attempts, steps=exc.step)
            attempt = following[0]
            guard_retries += 1
            clear_checkpoints(method.paths.output_dir)  # checkpoints may already hold the diverged state
            resume_from = None
    wall = time.monotonic() - started
    if callback.stopped_by_request:
        # Not finished: no final checkpoint, so nothing mistakes it for a complete stage; the
        # checkpoint the Trainer saved at the stop is where --resume continues.
        step = trainer.state.global_step
        ctx.decide("stopped_on_request", f"stopped at step {step} of {trainer.state.max_steps} on request",
                   step=step, checkpoint=str(last_complete_checkpoint(method.paths.output_dir)))
        return _stopped(ctx, method, f"stopped on request at step {step}; continue with --resume", attempts, step)
    return _finish(ctx, method, trainer, train_output, callback, attempt, attempts, rows, data_facts, wall)


def _finish(ctx: StageContext, method: TrainingMethod, trainer: Any, train_output: Any, callback: EventCallback,
            attempt: Attempt, attempts: list[dict], rows: list[dict], data_facts: dict[str, Any],
            wall: float) -> StageResult:
    paths = method.paths
    staging = paths.final.with_name(".final.staging")
    trainer.save_model(str(staging))  # the Trainer itself writes only on the main process
    summary = {"steps": trainer.state.global_step}
    if not is_main_process():
        return StageResult.trained(summary=summary)
    trainer.processing_class.save_pretrained(str(staging))
    # DPO/KTO keep a frozen copy of the SFT adapter named "ref"; PEFT saves every adapter.
    # The reference is already on disk as the SFT checkpoint: keep only the trained one.
    shutil.rmtree(staging / "ref", ignore_errors=True)
    replace_directory(staging, paths.final)

    history = trainer.state.log_history
    points = loss_curve_from_history(history)
    write_loss_curve(points, paths.curve_json, paths.curve_png, f"{method.title} loss — {ctx.profile.model_slug}")
    examples = trainer.state.global_step * attempt.effective_batch_size * world_size()
    tokens, tokens_source = trained_tokens(trainer, history, examples)
    reward = reward_metrics(history)
    _write_outcome(ctx, method, base_metrics(
        ctx, method, "trained",
        steps=trainer.state.global_step,
        final_loss=points[-1]["loss"] if points else None,
        train_loss=getattr(train_output, "training_loss", None),
        loss_curve_file=str(paths.curve_json),
        loss_curve_png=str(paths.curve_png),
        loss_curve_problems=curve_problems(points),
        stopped_by_request=callback.stopped_by_request,
        train_rows=len(rows),
        data=data_facts,
        final_settings=attempt.describe(),
        attempts=attempts,
        wall_time_s=round(wall, 2),
        train_tokens=tokens,
        train_tokens_source=tokens_source,
        tokens_per_second=round(tokens / wall, 1) if tokens and wall > 0 else None,
        examples_per_second=round(examples / wall, 3) if wall > 0 else None,
        **callback.step_timing(trainer.state.global_step, tokens),
        world_size=world_size(),
        peak_memory=peak_memory_gb(),
        **reward,
    ))
    summary["final_loss"] = float(f"{points[-1]['loss']:.4g}") if points else None  # what a summary reader needs
    if reward.get("reward_accuracy") is not None:
        summary["reward_accuracy"] = reward["reward_accuracy"]
    return StageResult.trained(metrics_path=str(paths.metrics), checkpoint_path=str(paths.final),
                               artifacts={"loss_curve_png": str(paths.curve_png)}, summary=summary)


def reward_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Reward accuracy and margin as the preference trainers log them (first and last logged values)."""
    logged = [e for e in history if any(k.startswith("rewards/") for k in e)]
    if not logged:
        return {}

    def pick(entry: dict[str, Any], key: str) -> float | None:
        value = entry.get(key)
        return float(value) if value is not None and math.isfinite(float(value)) else None

    first, last = logged[0], logged[-1]
    return {
        "reward_accuracy": pick(last, "rewards/accuracies"),
        "reward_margin": pick(last, "rewards/margins"),
        "rewards_first_step": {k: v for k, v in first.items() if k.startswith("rewards/")},
        "rewards_last_step": {k: v for k, v in last.items() if k.startswith("rewards/")},
    }


def trained_tokens(trainer: Any, history: list[dict[str, Any]], examples: int) -> tuple[int | None, str]:
    """Real (non-padding) tokens trained on: the trainer's own count when it logs one
    (SFT, DPO, KTO count attention-mask tokens), else an estimate from the tokenized
    dataset (CPO/SimPO: chosen + rejected sequences, prompt included in each)."""
    logged = max((e.get("num_tokens", 0) for e in history), default=0)
    if logged:
        return int(logged), "trainer attention-mask count"
    dataset = getattr(trainer, "train_dataset", None)
    columns = [c for c in ("chosen_input_ids", "rejected_input_ids", "input_ids")
               if dataset is not None and c in dataset.column_names]
    if not columns or len(dataset) == 0:
        return None, "unavailable"
    per_example = sum(len(ids) for c in columns for ids in dataset[c]) / len(dataset)
    return int(per_example * examples), f"estimated from tokenized dataset ({' + '.join(columns)})"
