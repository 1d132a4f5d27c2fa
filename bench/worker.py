"""One benchmark configuration in its own process; prints one ``RESULT {json}`` line.

``--impl reference``: plain TRL + PEFT, configured only through TRL's own flags (the baselines of
../shared/STACK.md). ``--impl ours``: medllm's training path: the same speed plan, attempt,
model preparation and trainer preparation the SFT/DPO/SimPO/KTO stages use
(medllm_core.library.training.speed / fast_path / trl_common).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# as medllm-tui sets it for every run (cli.main); allocated peaks, which the bench reports, do not depend on it
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

from bench.common import (  # noqa: E402
    SHAPES,
    StepMeter,
    build_model,
    emit,
    flops_per_token,
    make_tokenizer,
    mean_context,
    peak_flops,
    percentile,
    preference_rows,
    sft_rows,
)
from medllm_core.library.memory_estimate import TrainingShape, estimate_peak  # noqa: E402
from medllm_core.library.training.speed import SIMPO_UNFUSED_BYTES_PER_LOGIT  # noqa: E402

REFERENCE_FORWARDS = {"sft": 0.0, "dpo": 1.0, "simpo": 0.0, "kto": 2.0}  # reference (+ KL) no-grad passes per token


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["reference", "ours"], required=True)
    ap.add_argument("--method", choices=["sft", "dpo", "simpo", "kto"], default="sft")
    ap.add_argument("--label", default="")
    ap.add_argument("--arch", default="qwen2.5-7b")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--bs", type=int, default=8, help="reference: per-device batch; ours: the profile's micro-batch")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--gc", type=int, default=1, help="reference: activation checkpointing")
    ap.add_argument("--attn", default="sdpa", help="reference: attn_implementation")
    ap.add_argument("--flags", default="", help="reference: '+'-joined TRL flags: liger, packing")
    ap.add_argument("--cap-gib", type=float, default=0.0, help="simulate a smaller card (per-process memory cap)")
    ap.add_argument("--parity", action="store_true", help="loss parity run: no LoRA dropout, unpacked batches")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--quant", choices=["none", "4bit"], default="none", help="ours: 4-bit QLoRA base (from disk)")
    ap.add_argument("--model-dir", default="", help="--quant 4bit: where the random model is saved (default: "
                    "bench-results/models/ARCH)")
    ap.add_argument("--no-precompute", action="store_true", help="ours: reference forward inside each step")
    ap.add_argument("--memory-profile", type=Path, help="write the allocations alive at the peak here "
                    "(bench/memory_peak.py; use few steps: the trace holds every allocation)")
    return ap.parse_args()


def versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
           "peft": peft.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version

        import liger_kernel  # noqa: F401

        out["liger_kernel"] = version("liger-kernel")
    except ImportError:
        out["liger_kernel"] = "not installed"
    return out


def lora(args: argparse.Namespace) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, lora_dropout=0.0 if args.parity else 0.05,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def common_kwargs(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    return dict(output_dir=tempfile.mkdtemp(), max_steps=args.warm + args.steps, logging_steps=1,
                save_strategy="no", report_to="none", bf16=cuda, use_cpu=not cuda, dataloader_drop_last=True,
                learning_rate=1e-4, seed=0, disable_tqdm=True)


def our_plan(args: argparse.Namespace, cuda: bool, total_gib: float, worst: Any = None) -> Any:
    import torch

    from medllm_core.library.training.speed import SpeedHardware, plan_speed

    major = torch.cuda.get_device_capability()[0] if cuda else 0
    hw = SpeedHardware("cuda" if cuda else "cpu", total_gib, major, torch.cuda.get_device_name() if cuda else "cpu")
    return plan_speed(args.method, hw, SHAPES[args.arch], max_length=args.seq, micro_batch_size=args.bs,
                      gradient_accumulation_steps=1, lora_rank=args.lora_rank,
                      lora_dropout=0.0 if args.parity else 0.05, dtype="bf16" if cuda else "fp32",
                      memory_budget_gib=args.cap_gib, worst_tokens=worst, continues_adapter=False,
                      quantization=args.quant)


def model_dir(args: argparse.Namespace) -> Path:
    return Path(args.model_dir or f"bench-results/models/{args.arch}")


def our_model(args: argparse.Namespace, shape: Any, attempt: Any, cuda: bool) -> Any:
    """The base for our path: random bf16 weights built in place, or (--quant 4bit) the saved copy loaded in NF4."""
    if args.quant != "4bit":
        return build_model(shape, attempt.attention or "sdpa", cuda)
    from bench.quantized import load_4bit

    return load_4bit(model_dir(args), attempt.attention or "sdpa", "bf16" if cuda else "fp32",
                     attempt.gradient_checkpointing)


def our_attempt(plan: Any, args: argparse.Namespace, cuda: bool) -> Any:
    from medllm_core.library.training.engine import first_attempt_from_plan

    return first_attempt_from_plan(plan, max_length=args.seq, dtype="bf16" if cuda else "fp32", learning_rate=1e-4)


def main() -> None:
    import torch

    args = parse()
    cuda = torch.cuda.is_available()
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else 0.0
    if args.quant == "4bit":
        from bench.quantized import ensure_saved

        ensure_saved(SHAPES[args.arch], model_dir(args), cuda)
    if cuda and args.cap_gib:
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib / total_gib))
    shape = SHAPES[args.arch]
    tok = make_tokenizer(shape.vocab)
    started = time.perf_counter()
    trainer, plan, attempt, meta = build(args, cuda, total_gib, tok)
    meter = StepMeter(args.warm)
    trainer.add_callback(meter.callback())
    counted = trainer.model
    if meta.get("config", {}).get("fused_simpo"):
        from medllm_core.library.training.padding_free import backbone_of

        # the fused SimPO trainer calls the decoder backbone directly (simpo_fused.py): the top model never runs
        counted = backbone_of(trainer.accelerator.unwrap_model(trainer.model))
    counted.register_forward_pre_hook(meter.count_hook(policy_only=args.method != "sft"), with_kwargs=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.perf_counter() - started
    if cuda and args.memory_profile:  # after loading: the untraced part is the model (weights, LoRA parameters)
        from bench import memory_peak

        untraced = memory_peak.start()
    trainer.train()
    if cuda and args.memory_profile:
        memory_peak.summarize(args.memory_profile, untraced)
    window = meter.t1 - meter.t0
    tps = meter.tokens / window
    precompute_s = meta.get("precompute_s", 0.0)
    # the reference pass ran over every example used, (warm + steps) steps' worth: charge the timed share
    e2e = meter.tokens / (window + precompute_s * args.steps / (args.warm + args.steps))
    context = mean_context(meter.lengths)
    fpt = flops_per_token(shape, args.lora_rank, context, REFERENCE_FORWARDS[args.method])
    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_flops(device)
    measured = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    estimate = estimate_for(args, shape, plan, attempt, meta, meter)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    emit({
        "impl": args.impl, "method": args.method, "label": args.label or f"{args.impl}-{args.method}",
        "arch": args.arch, "seq": args.seq, "steps": args.steps, "warm": args.warm, "cap_gib": args.cap_gib,
        "parity": args.parity, "device": device, "versions": versions(),
        "config": meta.get("config", {}),
        "tokens_per_s": round(tps, 1), "end_to_end_tokens_per_s": round(e2e, 1),
        "examples_per_s": round(meta.get("examples_per_step", 0) * args.steps / window, 3),
        "precompute_s": round(precompute_s, 2), "setup_s": round(setup_s, 1),
        "step_s_p50": round(percentile(meter.step_times, 50), 3),
        "step_s_p90": round(percentile(meter.step_times, 90), 3),
        "tokens_per_step": round(meter.tokens / max(1, len(meter.step_times)), 1),
        "mean_attended_keys": round(context, 1), "flops_per_token": fpt,
        "mfu": round(fpt * tps / peak, 4), "mfu_4N": round(4 * shape.total_params * tps / peak, 4),
        "peak_allocated_gib": round(measured, 2) if measured is not None else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "estimate_gib": round(estimate.total_gib, 2), "estimate_parts": estimate.as_dict()["parts_gib"],
        "estimate_error_pct": round(100 * (estimate.total_gib - measured) / measured, 1) if measured else None,
        "max_forward_tokens": meter.max_forward_tokens, "max_forward_padded": meta.get("max_padded", 0),
        "losses": [round(x, 5) for x in losses], "final_loss": losses[-1] if losses else None,
        "plan": [f"{k}: {m}" for k, m, _ in plan.decisions] if plan is not None else None,
    })


def estimate_for(args: argparse.Namespace, shape: Any, plan: Any, attempt: Any, meta: dict, meter: StepMeter) -> Any:
    return estimate_from_facts(shape, args.method, meta["config"], meter.max_forward_tokens,
                               meta.get("max_padded", 0), args.lora_rank, not args.parity)


def estimate_from_facts(shape: Any, method: str, cfg: dict, max_tokens: int, max_padded: int, lora_rank: int,
                        lora_dropout: bool) -> Any:
    """The estimator's prediction for a run as it actually ran (its largest micro-step)."""
    tokens = max_tokens if cfg.get("padding_free") else max(max_padded, max_tokens)
    layers = shape.layers
    checkpointed = (layers - cfg.get("uncheckpointed_layers", 0)) if cfg.get("gradient_checkpointing") else 0
    liger = bool(cfg.get("liger", False))
    simpo = method == "simpo"
    fused_simpo = simpo and bool(cfg.get("fused_simpo"))  # runs recorded before simpo_fused.py have no such key
    return estimate_peak(shape, TrainingShape(
        method=method, tokens_per_micro_step=tokens, checkpointed_layers=checkpointed,
        fused_loss=(liger and method == "sft") or fused_simpo or method in ("dpo", "kto"), lora_rank=lora_rank,
        lora_dropout=lora_dropout and method == "sft", liger=liger, weight_bytes=2, reference_adapter=False,
        logit_tokens=max(max_padded, max_tokens) if simpo and not fused_simpo else None,
        # one pair's logits per Liger chunk, over the padded length (bounded by max_length, as the planner does)
        fused_chunk_tokens=2 * int(cfg.get("max_length") or 0) or None if fused_simpo else None,
        unfused_bytes_per_logit=SIMPO_UNFUSED_BYTES_PER_LOGIT if simpo else 16.0,
        quantized=bool(cfg.get("quantized")), host_offload=bool(cfg.get("host_offload")),
        offload_checkpoints=bool(cfg.get("offload_checkpoints")),
        # rows recorded without the key: counted as accumulating (the estimator's conservative default)
        gradients_accumulate=int(cfg.get("gradient_accumulation_steps", 2)) > 1))


def build(args: argparse.Namespace, cuda: bool, total_gib: float, tok: Any) -> tuple[Any, Any, Any, dict]:
    if args.method == "sft":
        return build_sft(args, cuda, total_gib, tok)
    return build_preference(args, cuda, total_gib, tok)


def _track_padded(model: Any, meta: dict) -> None:
    def hook(module: Any, a: tuple, kw: dict) -> None:
        ids = kw.get("input_ids", a[0] if a else None)
        if ids is not None:
            meta["max_padded"] = max(meta.get("max_padded", 0), int(ids.numel()))
    model.register_forward_pre_hook(hook, with_kwargs=True)


def build_sft(args: argparse.Namespace, cuda: bool, total_gib: float, tok: Any) -> tuple[Any, Any, Any, dict]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    shape = SHAPES[args.arch]
    meta: dict[str, Any] = {}
    if args.impl == "reference":
        flags = set(filter(None, args.flags.split("+")))
        rows = sft_rows((args.warm + args.steps) * args.bs * (4 if "packing" in flags else 1), args.seq, shape.vocab)
        model = build_model(shape, args.attn, cuda)
        from medllm_core.library.training.trl_common import checkpointing_argument

        config = SFTConfig(**common_kwargs(args, cuda), per_device_train_batch_size=args.bs, max_length=args.seq,
                           **{checkpointing_argument(): bool(args.gc)}, use_liger_kernel="liger" in flags,
                           packing="packing" in flags)
        meta["config"] = {"batch": args.bs, "gradient_checkpointing": bool(args.gc), "attention": args.attn,
                          "liger": "liger" in flags, "packing": "packing" in flags,
                          "padding_free": "packing" in flags}
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
                             peft_config=lora(args))
        _track_padded(trainer.model, meta)
        meta["examples_per_step"] = args.bs
        return trainer, None, None, meta

    from medllm_core.library.training.fast_path import prepare_model, prepare_trainer
    from medllm_core.library.training.padding_free import register_varlen_attention
    from medllm_core.library.training.trl_common import attempt_kwargs

    plan = our_plan(args, cuda, total_gib)
    attempt = our_attempt(plan, args, cuda)
    if args.parity:  # same examples per step as the reference parity run: padding-free, not packed
        from dataclasses import replace

        attempt = replace(attempt, packing=False, micro_batch_size=args.bs, gradient_accumulation_steps=1,
                          gradient_checkpointing=False, uncheckpointed_layers=0)
    register_varlen_attention()
    rows = sft_rows((args.warm + args.steps) * max(args.bs, attempt.micro_batch_size * 4), args.seq, shape.vocab)
    model = our_model(args, shape, attempt, cuda)
    prepare_model(model, attempt)
    chosen = {**attempt_kwargs(attempt), "gradient_accumulation_steps": 1}
    if not attempt.packing:
        chosen["max_length"] = None  # TRL: unpacked padding-free rows are not truncated; the data is <= seq already
    config = SFTConfig(**common_kwargs(args, cuda), **chosen, packing=attempt.packing, padding_free=True)
    trainer = prepare_trainer(SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                                         processing_class=tok, peft_config=lora(args)), attempt)
    meta["config"] = {**attempt.describe(), "padding_free": True, "quantized": args.quant == "4bit"}
    meta["examples_per_step"] = attempt.micro_batch_size
    return trainer, plan, attempt, meta


def build_preference(args: argparse.Namespace, cuda: bool, total_gib: float, tok: Any) -> tuple[Any, Any, Any, dict]:
    from datasets import Dataset

    shape = SHAPES[args.arch]
    rows = preference_rows(args.method, (args.warm + args.steps) * args.bs, args.seq, shape.vocab)
    meta: dict[str, Any] = {"examples_per_step": args.bs}
    trainer_cls, config_cls, extra = trl_classes(args.method)
    if args.impl == "reference":
        model = build_model(shape, "sdpa", cuda)
        config = config_cls(**common_kwargs(args, cuda), per_device_train_batch_size=args.bs, max_length=args.seq,
                            **extra)
        meta["config"] = {"batch": args.bs, "gradient_checkpointing": config.gradient_checkpointing,
                          "attention": "sdpa", "liger": False, "padding_free": False}
        trainer = trainer_cls(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
                              peft_config=lora(args))
        _track_padded(trainer.model, meta)
        return trainer, None, None, meta

    from medllm_core.library.training.fast_path import prepare_model, prepare_trainer
    from medllm_core.library.training.padding_free import register_varlen_attention
    from medllm_core.library.training.preference import reference_kwargs
    from medllm_core.library.training.trl_common import attempt_kwargs

    lengths = sorted((pair_tokens(tok, r, args.method) for r in rows), reverse=True)
    plan = our_plan(args, cuda, total_gib, worst=lambda mb: sum(lengths[:mb]))
    attempt = our_attempt(plan, args, cuda)
    if args.no_precompute:
        from dataclasses import replace

        attempt = replace(attempt, precompute_ref=False)
    meta["examples_per_step"] = attempt.micro_batch_size * attempt.gradient_accumulation_steps
    register_varlen_attention()
    model = our_model(args, shape, attempt, cuda)
    prepare_model(model, attempt)
    config = config_cls(**common_kwargs(args, cuda), **attempt_kwargs(attempt), **reference_kwargs(attempt), **extra)
    if args.method == "simpo" and attempt.liger:  # as preference.build_simpo: the fused SimPO trainer
        from medllm_core.library.training.simpo_fused import fused_simpo_trainer_class

        trainer_cls = fused_simpo_trainer_class()
    timed = time_precompute(trainer_cls, meta)
    try:
        trainer = trainer_cls(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
                              peft_config=lora(args))
    finally:
        timed()
    prepare_trainer(trainer, attempt)
    meta["config"] = attempt.describe() | {"padding_free": attempt.padding_free, "quantized": args.quant == "4bit",
                                           "fused_simpo": args.method == "simpo" and attempt.liger}
    return trainer, plan, attempt, meta


def pair_tokens(tok: Any, row: dict, method: str) -> int:
    """Tokens of a row's sequences, as the trainer tokenizes them. Counted with the tokenizer, not by words: its
    pad/eos tokens ("t1", "t2") also match inside words ("t17" is "t1" + "7"), so a row has ~1.4× more tokens
    than words. Counting words let the planner see 2,541 tokens for a SimPO pair of 3,616 (H200, 2026-12-04)."""
    def count(text: str) -> int:
        return len(tok(text)["input_ids"])

    prompt = count(row["prompt"])
    if method == "kto":
        return prompt + count(row["completion"])
    return 2 * prompt + count(row["chosen"]) + count(row["rejected"])


def trl_classes(method: str) -> tuple[Any, Any, dict]:
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig, {}
    if method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig, {}
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    return CPOTrainer, CPOConfig, {"loss_type": "simpo", "cpo_alpha": 0.0, "remove_unused_columns": False}


def time_precompute(trainer_cls: Any, meta: dict) -> Any:
    """Time TRL's reference-log-prob pass (it runs inside the trainer's constructor): it is charged to
    the end-to-end throughput."""
    original = getattr(trainer_cls, "_precompute_ref_logps", None)
    if original is None:
        return lambda: None

    def timed(self: Any, *a: Any, **kw: Any) -> Any:
        StepMeter.sync()
        start = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            StepMeter.sync()
            meta["precompute_s"] = meta.get("precompute_s", 0.0) + time.perf_counter() - start

    trainer_cls._precompute_ref_logps = timed
    return lambda: setattr(trainer_cls, "_precompute_ref_logps", original)


if __name__ == "__main__":
    main()
