"""The fast training path: chosen from the hardware and the memory estimate, every choice with its reason.

What it can choose (all through TRL/PEFT/transformers' own switches and hooks):
- attention: PyTorch's varlen flash kernel over packed rows (``padding_free.VARLEN_ATTENTION``);
- SFT: BFD packing into padding-free rows of ``max_length`` (TRL ``packing=True``), rows per micro-step
  sized from the estimate, gradient accumulation set to keep the tokens per optimizer step the profile asked for;
- DPO/SimPO/KTO: the padded pairs go through the decoder as one packed row (``PaddingFreeBackbone``);
  DPO/KTO reference log-probs are computed once before training (TRL ``precompute_ref_log_probs``);
- Liger kernels when ``liger-kernel`` is installed (a GPU-only extra);
- activation checkpointing only when the estimate says the step does not fit, and then on as few
  decoder layers as fit (selective), instead of all of them.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medllm_core.library.memory_estimate import MemoryEstimate, ModelShape, TrainingShape, estimate_peak
from medllm_core.library.training.simpo_fused import SIMPO_LOSS_DECISION

BUDGET_FRACTION = 0.90  # of the card (or the profile's memory_budget_gib): allocator slack and fragmentation
MAX_PACKED_ROWS = 16
# TRL's unfused CPO/SimPO, per logit of the padded batch (bf16): the logits, the per-row log-softmax kept for
# backward, the gradient of the shifted logits and the slice's full-size gradient. 8 matches the measured H100
# peak of plain TRL's SimPO (tests/test_fast_path.py: ref-simpo-trl-default); 12 (read from the code) overshot it
# by 31%. The fast path with Liger does not materialise the logits at all (simpo_fused.py), so this number only
# sizes the plain path and the fast path without Liger.
SIMPO_UNFUSED_BYTES_PER_LOGIT = 8.0
# Larger preference micro-batches gain little once the card is busy and lengthen the packed row past what was benched.
MAX_PREFERENCE_MICRO_BATCH = 16
# a plan further down the candidate list replaces the best so far only when its throughput proxy is this much higher
CLEARLY_FASTER = 0.02
MIN_EFFICIENT_TOKENS = 768  # throughput proxy: a micro-step of T tokens runs at T / (T + 768) of full speed


@dataclass(frozen=True)
class SpeedHardware:
    backend: str  # cuda | cpu | mps
    total_gib: float  # memory of the smallest GPU
    capability_major: int = 0
    name: str = ""


@dataclass
class SpeedPlan:
    enabled: bool
    attention: str | None = None  # attn_implementation for loading the model; None: the library default
    packing: bool = False  # SFT: padding-free BFD packing
    padding_free: bool = False  # preference: padded pairs run as one packed row
    liger: bool = False
    lora_upcast_off: bool = False
    gradient_checkpointing: bool = True
    uncheckpointed_layers: int = 0  # selective checkpointing: these first layers keep their activations
    micro_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    precompute_ref: bool = False
    packed_length: int | None = None  # SFT: packed rows shorter than max_length (None: rows of max_length)
    host_offload: bool = False  # 4-bit: embedding table in host memory (and checkpointed inputs, below)
    offload_checkpoints: bool = False
    estimate: MemoryEstimate | None = None
    budget_gib: float | None = None
    decisions: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def decide(self, key: str, message: str, **facts: Any) -> None:
        self.decisions.append((key, message, facts))

    @property
    def checkpointed_layers_label(self) -> str:
        if not self.gradient_checkpointing:
            return "off"
        if self.uncheckpointed_layers == 0:
            return "all layers"
        return f"selective ({self.uncheckpointed_layers} layers kept)"


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def throughput_proxy(tokens: int, checkpointed_fraction: float) -> float:
    """Relative tokens/s: recompute costs one more forward (2 of the 6 units) per checkpointed layer."""
    efficiency = tokens / (tokens + MIN_EFFICIENT_TOKENS)
    return efficiency * 4.0 / (4.0 + 2.0 * checkpointed_fraction)


def _shape(method: str, tokens: int, checkpointed: int, *, liger: bool, lora_rank: int, lora_dropout: bool,
           weight_bytes: int, fused_loss: bool, reference_adapter: bool,
           logit_tokens: int | None = None, quantized: bool = False, shards: int = 1,
           fused_chunk_tokens: int | None = None, host_offload: bool = False,
           offload_checkpoints: bool = False, gradients_accumulate: bool = True) -> TrainingShape:
    return TrainingShape(method=method, tokens_per_micro_step=tokens, checkpointed_layers=checkpointed,
                         fused_loss=fused_loss, lora_rank=lora_rank, lora_dropout=lora_dropout, liger=liger,
                         weight_bytes=weight_bytes, reference_adapter=reference_adapter, logit_tokens=logit_tokens,
                         fused_chunk_tokens=fused_chunk_tokens,
                         unfused_bytes_per_logit=SIMPO_UNFUSED_BYTES_PER_LOGIT if method == "simpo" else 16.0,
                         quantized=quantized, shards=shards, host_offload=host_offload,
                         offload_checkpoints=offload_checkpoints, gradients_accumulate=gradients_accumulate)


def plan_speed(method: str, hw: SpeedHardware, shape: ModelShape, *, max_length: int, micro_batch_size: int,
               gradient_accumulation_steps: int, lora_rank: int, lora_dropout: float, dtype: str,
               optimize: str = "auto", memory_budget_gib: float = 0.0,
               worst_tokens: Callable[[int], int] | None = None,
               mean_tokens_per_example: float | None = None,
               longest_example_tokens: int | None = None,
               continues_adapter: bool = True, probe: bool = True,
               assume_liger: bool | None = None, quantization: str = "none", shards: int = 1) -> SpeedPlan:
    """Choose the fast path for one training stage. ``worst_tokens(mb)``: the most real tokens a
    micro-batch of ``mb`` examples can hold (preference: both sequences of each pair).
    ``longest_example_tokens``: the longest single sequence over all rows, capped at max_length (SFT: lets packed
    rows be shorter than max_length without truncating any example, so the packed step can match the profile's
    tokens per step; fused SimPO: bounds the padded length of a chunk). ``shards`` > 1: the
    weights are sharded with FSDP across that many GPUs and every estimate is per GPU."""
    plan = SpeedPlan(enabled=False, micro_batch_size=micro_batch_size,
                     gradient_accumulation_steps=gradient_accumulation_steps)
    if optimize == "off":
        plan.decide("path", "plain TRL path: optimize = \"off\" in the profile")
        return plan
    if hw.backend != "cuda":
        plan.decide("path", f"plain TRL path: no CUDA GPU ({hw.backend}); the fast path needs one")
        return plan
    plan.enabled = True
    # probe=False (dry run, wizard on another machine): judge from the card, import no torch
    from medllm_core.library.training.padding_free import VARLEN_ATTENTION, varlen_usable

    usable, why = varlen_usable() if probe else (hw.capability_major >= 8, "assumed from the card's generation")
    if usable:
        plan.attention = VARLEN_ATTENTION
        plan.decide("attention", f"varlen attention over packed rows ({why}); each document attends only to itself")
    else:
        plan.attention = "sdpa"
        plan.decide("attention", f"SDPA with a block-diagonal mask over packed rows: varlen unavailable ({why})")
    plan.liger = liger_installed() if assume_liger is None else assume_liger
    plan.decide("liger", "Liger kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy)" if plan.liger
                else "Liger kernels not installed (pip install 'medllm[gpu]'): plain kernels")
    plan.lora_upcast_off = dtype in ("bf16", "fp16")
    if plan.lora_upcast_off:
        plan.decide("lora_input_dtype", f"LoRA inputs stay {dtype} under autocast (PEFT's fp32 copy only costs memory)")
    weight_bytes = 4 if dtype == "fp32" else 2
    reference_adapter = continues_adapter and method in ("dpo", "kto")
    budget = (memory_budget_gib if memory_budget_gib > 0 else hw.total_gib) * BUDGET_FRACTION
    plan.budget_gib = budget
    # TRL's DPO/CPO/KTO configs turn dropout off (disable_dropout=True): no dropout copies are kept there
    common = {"liger": plan.liger, "lora_rank": lora_rank, "lora_dropout": lora_dropout > 0 and method == "sft",
              # TRL's DPO/KTO score through a fused LM head; CPO (SimPO) materialises the whole logits unless
              # Liger is there for our fused SimPO trainer (simpo_fused.py)
              "weight_bytes": weight_bytes,
              "fused_loss": (plan.liger and method in ("sft", "simpo")) or method in ("dpo", "kto"),
              "reference_adapter": reference_adapter, "quantized": quantization == "4bit", "shards": shards}

    if method == "simpo":
        plan.decide("simpo_loss", SIMPO_LOSS_DECISION if plan.liger else
                    "TRL's CPO loss over the whole padded logits: Liger not installed (pip install 'medllm[gpu]')")
    if method == "sft":
        plan.packing = True
        candidates = _packed_candidates(max_length, micro_batch_size, gradient_accumulation_steps,
                                        mean_tokens_per_example, longest_example_tokens)
    else:
        plan.padding_free = True
        plan.decide("padding_free", "pairs/examples run through the decoder as one packed row: no compute on padding")
        if method in ("dpo", "kto"):
            # Measured (H100, bench/): precomputing was slower end-to-end for DPO (7,232 vs 7,722 tokens/s)
            # and makes step-1 rewards differ from 0 by bf16 batch-shape rounding, so the reference forward
            # stays in the step, through the same packed row.
            plan.decide("reference_logps", "reference forward inside each step, padding-free like the policy "
                        "(precomputing them was measured slower end-to-end on an H100)")
        seqs = 2 if method in ("dpo", "simpo") else 1
        # Every split of the profile's examples per optimizer step: micro-batches that divide it, larger ones
        # first (fewer, fuller micro-steps use a big card), smaller ones when the budget needs them. The
        # effective batch stays exactly what the profile asked for.
        smallest = 2 if method == "kto" else 1
        effective = micro_batch_size * gradient_accumulation_steps
        sizes = sorted((mb for mb in range(smallest, min(effective, MAX_PREFERENCE_MICRO_BATCH) + 1)
                        if effective % mb == 0), reverse=True) or [micro_batch_size]
        candidates = [(mb, worst_tokens(mb) if worst_tokens else mb * seqs * max_length, max_length)
                      for mb in sizes]

    best: tuple[float, int, int, int, int, MemoryEstimate] | None = None
    layers = shape.layers
    # SFT splits of a known step come closest-to-the-profile first: a later one must be clearly faster to win
    margin = CLEARLY_FASTER if method == "sft" and mean_tokens_per_example else 0.0
    # fused SimPO (Liger) computes one pair's logits at a time over the padded length: the micro-batch pads to its
    # longest sequence, no longer than the data's longest (measured over all rows) nor than max_length
    longest_sequence = min(max_length, longest_example_tokens or max_length)
    chunk = 2 * longest_sequence if method == "simpo" and plan.liger else None

    def accumulates(rows: int, row_length: int) -> bool:  # LoRA gradients outlive the micro-step
        return (_accumulation_for_tokens(rows, row_length, micro_batch_size, gradient_accumulation_steps,
                                         mean_tokens_per_example) if method == "sft" else effective // rows) > 1

    for rows, tokens, row_length in candidates:
        # the whole padded logits exist only for SimPO (CPO); bound them by micro-batch × sequences × max_length
        logits = rows * 2 * max_length if method == "simpo" else None
        for checkpointed in range(0, layers + 1):
            estimate = estimate_peak(shape, _shape(method, tokens, checkpointed, logit_tokens=logits,
                                                   fused_chunk_tokens=chunk,
                                                   gradients_accumulate=accumulates(rows, row_length), **common))
            if estimate.total_gib > budget:
                continue
            score = throughput_proxy(tokens, checkpointed / layers)
            if best is None or score > best[0] * (1 + margin) + 1e-9:
                best = (score, rows, tokens, row_length, checkpointed, estimate)
            break  # fewer checkpointed layers never fit worse: the first that fits is the best for this size
    if best is None:
        rows, tokens, row_length = min(candidates, key=lambda candidate: candidate[1])  # the smallest micro-step
        estimate = estimate_peak(shape, _shape(method, tokens, layers, fused_chunk_tokens=chunk,
                                               gradients_accumulate=accumulates(rows, row_length), **common))
        if common["quantized"] and not shape.tie_embeddings:
            # 4-bit and still too big (14B under 12 GiB): the embedding table and the checkpointed layer inputs
            # move to host memory; the largest micro-step that then fits, else the smallest one, offloaded
            # the table needs an untied embedding; the inputs a transformers that offloads them (dry run: assumed)
            inputs_too = not probe or importlib.import_module(
                "medllm_core.library.training.host_embedding").checkpoint_offload_supported()
            offloaded = [(t, r, length, estimate_peak(shape, _shape(method, t, layers, fused_chunk_tokens=chunk,
                                                                     host_offload=True, offload_checkpoints=inputs_too,
                                                                     gradients_accumulate=accumulates(r, length),
                                                                     **common)))
                         for r, t, length in candidates]
            fitting = [c for c in offloaded if c[3].total_gib <= budget]
            tokens, rows, row_length, estimate = max(fitting, key=lambda c: c[0]) if fitting else min(
                offloaded, key=lambda c: c[0])
            plan.host_offload, plan.offload_checkpoints = True, inputs_too
            what = "input embedding table and checkpointed layer inputs" if inputs_too else (
                "input embedding table (this transformers cannot offload checkpointed inputs)")
            plan.decide("host_offload", f"{what} in host memory: the 4-bit step does not fit the budget with "
                        "them on the GPU", estimate=estimate.as_dict())
            if fitting:
                best = (0.0, rows, tokens, row_length, layers, estimate)
    if best is None:
        plan.gradient_checkpointing, plan.uncheckpointed_layers = True, 0
        plan.micro_batch_size = rows
        if method != "sft":
            plan.gradient_accumulation_steps = gradient_accumulation_steps * micro_batch_size // rows
        else:
            _apply_packing(plan, rows, row_length, max_length, micro_batch_size, gradient_accumulation_steps,
                           mean_tokens_per_example)
        plan.estimate = estimate
        plan.decide("memory_plan", f"even with every layer checkpointed the estimate {estimate.describe()} exceeds "
                    f"the {budget:.1f} GiB budget; starting there and relying on the OOM retries",
                    estimate=estimate.as_dict(), budget_gib=round(budget, 2))
        return plan
    _, rows, tokens, row_length, checkpointed, estimate = best
    plan.estimate = estimate
    plan.gradient_checkpointing = checkpointed > 0
    plan.uncheckpointed_layers = layers - checkpointed if checkpointed else 0
    plan.micro_batch_size = rows
    if method != "sft" and rows != micro_batch_size:
        plan.gradient_accumulation_steps = gradient_accumulation_steps * micro_batch_size // rows
        why = "grown to use the card" if rows > micro_batch_size else "does not fit the budget"
        plan.decide("micro_batch", f"micro-batch {rows} × accumulation {plan.gradient_accumulation_steps} "
                    f"(the profile's {micro_batch_size} × {gradient_accumulation_steps} {why}; the same "
                    f"{micro_batch_size * gradient_accumulation_steps} examples per optimizer step)",
                    asked=[micro_batch_size, gradient_accumulation_steps],
                    chosen=[rows, plan.gradient_accumulation_steps])
    if method == "sft":
        _apply_packing(plan, rows, row_length, max_length, micro_batch_size, gradient_accumulation_steps,
                       mean_tokens_per_example)
    plan.decide("activation_checkpointing",
                "off: the step fits without it" if not checkpointed else
                f"on for {checkpointed} of {layers} layers (the rest keep their activations): needed to fit",
                checkpointed_layers=checkpointed, layers=layers)
    plan.decide("memory_plan", f"estimated peak {estimate.describe()} within the {budget:.1f} GiB budget",
                estimate=estimate.as_dict(), budget_gib=round(budget, 2))
    return plan


PACKED_LENGTH_MULTIPLE = 64  # shorter packed rows are a multiple of this (kernel-friendly, fewer distinct shapes)
STEP_TOLERANCE = 0.10  # packed SFT: tokens per optimizer step within 10% of the profile's


def _packed_candidates(max_length: int, micro_batch: int, accumulation: int, mean_tokens: float | None,
                       longest: int | None) -> list[tuple[int, int, int]]:
    """(rows, tokens per micro-step, row length) splits of the profile's SFT step into packed rows.

    Rows of ``max_length`` first; where the data's longest example is shorter, rows down to that length too, so a
    step of e.g. 16 examples x 187 tokens (~3,000) can be 2 rows x 1,536 instead of 1 or 2 rows x 2,048. Only splits
    whose tokens per optimizer step land within 10% of the profile's are kept (all full-length ones when none can):
    a method comparison needs the optimizer step the profile asked for."""
    if not mean_tokens:
        return [(rows, rows * max_length, max_length) for rows in range(1, MAX_PACKED_ROWS + 1)]
    target = micro_batch * accumulation * mean_tokens
    floor = min(max_length, max(longest or max_length, PACKED_LENGTH_MULTIPLE))
    found: dict[tuple[int, int], tuple[int, int, int]] = {}
    errors: dict[tuple[int, int], float] = {}
    for rows in range(1, MAX_PACKED_ROWS + 1):
        # max_length, the shortest row that holds the longest example, and rows sized to the profile's step
        lengths = {max_length, min(max_length, math.ceil(floor / PACKED_LENGTH_MULTIPLE) * PACKED_LENGTH_MULTIPLE)}
        for steps in range(1, accumulation * micro_batch + 1):  # accumulation the shorter row would need
            length = math.ceil(target / (rows * steps) / PACKED_LENGTH_MULTIPLE) * PACKED_LENGTH_MULTIPLE
            if floor <= length <= max_length:
                lengths.add(length)
        for length in lengths:
            if length < floor:
                continue
            errors[(rows, length)] = _step_error(rows, length, micro_batch, accumulation, mean_tokens)
            if errors[(rows, length)] <= STEP_TOLERANCE:
                found[(rows, length)] = (rows, rows * length, length)
    if not found:
        # no split within 10%: the closest ones there are (a shorter row may come much closer than max_length)
        closest = min(errors.values())
        return [(rows, rows * length, length) for (rows, length), error in sorted(errors.items())
                if error <= closest + 0.01]
    # closest to the profile's step first; among equals, the longest rows (fewer row boundaries)
    return sorted(found.values(), key=lambda c: (round(_step_error(c[0], c[2], micro_batch, accumulation,
                                                                   mean_tokens), 3), -c[2]))


def _apply_packing(plan: SpeedPlan, rows: int, row_length: int, max_length: int, micro_batch: int,
                   accumulation: int, mean_tokens: float | None) -> None:
    plan.gradient_accumulation_steps = _accumulation_for_tokens(rows, row_length, micro_batch, accumulation,
                                                                mean_tokens)
    plan.packed_length = row_length if row_length < max_length else None
    asked = round(micro_batch * accumulation * (mean_tokens or 0)) or None
    chosen = rows * row_length * plan.gradient_accumulation_steps
    shorter = (f" (shorter than max length {max_length}: the longest example fits, and the step matches the "
               "profile's)" if plan.packed_length else "")
    plan.decide("packing", f"BFD packing into rows of {row_length} tokens{shorter}: {rows} row(s) per micro-step "
                f"({rows * row_length} tokens), accumulation {plan.gradient_accumulation_steps}"
                + (f": ~{chosen:,} tokens per optimizer step for the profile's ~{asked:,} "
                   f"({micro_batch} × {accumulation} examples)" if asked else ""),
                rows=rows, row_length=row_length, tokens_per_micro_step=rows * row_length,
                asked_tokens_per_step=asked, chosen_tokens_per_step=chosen,
                asked=[micro_batch, accumulation], chosen=[rows, plan.gradient_accumulation_steps])


def _step_error(rows: int, row_length: int, micro_batch: int, accumulation: int, mean_tokens: float) -> float:
    """Relative distance of a packed step's tokens from the profile's tokens per optimizer step."""
    target = micro_batch * accumulation * mean_tokens
    chosen = rows * row_length * _accumulation_for_tokens(rows, row_length, micro_batch, accumulation, mean_tokens)
    return abs(chosen - target) / target


def _accumulation_for_tokens(rows: int, row_length: int, micro_batch: int, accumulation: int,
                             mean_tokens: float | None) -> int:
    """Gradient accumulation that keeps the profile's tokens per optimizer step (packed rows are ~full)."""
    if not mean_tokens:
        return accumulation
    target = micro_batch * accumulation * mean_tokens
    return max(1, round(target / (rows * row_length)))
