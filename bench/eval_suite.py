"""Evaluation throughput: the reference path (reload + merge per variant, batches of 8) next to the
stage's engine (one base load, adapters switched, length-sorted token-budget batches), same card,
same invocation, on a real MCQ file with a Qwen2.5-shape model of random weights.

    python -m bench.eval_suite --data .bench-data/apollo_test_zh.json --out bench-results/eval   # GPU
    python -m bench.eval_suite --data data/samples/eval_mcq_zh_en.jsonl --arch tiny --out /tmp/e  # CPU check

Phases: ``prepare`` (tokenizer trained on the file's text, random model and LoRA adapters saved to
``--work``), ``ref`` and ``gen`` (generate protocol, equal max_new_tokens), ``loglik`` (every item).
Each phase appends one JSON line to ``<out>/eval_results.jsonl``; ``eval_bench.md`` is rebuilt from
all lines, so phases may run in separate invocations. Random weights never emit an end token, so
every reply runs the full ``max_new_tokens``: the worst case for both paths.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 32000


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _items(data: Path, limit: int) -> list[Any]:
    from medllm_core.library.evaluation.mcq import load_mcq_file

    items, problems = load_mcq_file(str(data))
    print(f"[eval-bench] {len(items)} items loaded, {len(problems)} problems", flush=True)
    return items[:limit] if limit > 0 else items


def prepare(data: Path, work: Path, arch: str, adapters: int, cuda: bool) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    from bench.common import SHAPES, build_model
    from medllm_core.library.evaluation.mcq import load_mcq_file
    from medllm_core.library.tiny_model import _hf_tokenizer, train_tokenizer

    started = time.perf_counter()
    items = load_mcq_file(str(data))[0]
    texts = [i.question + "\n" + "\n".join(i.options.values()) for i in items]
    tokenizer = _hf_tokenizer(train_tokenizer(texts, vocab_size=VOCAB if arch != "tiny" else 1024))
    shape = replace(SHAPES[arch], vocab=len(tokenizer))
    model = build_model(shape, "sdpa", cuda)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    for index in range(adapters):
        torch.manual_seed(100 + index)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
        # Non-zero B so each adapter really changes the model (a fresh LoRA is the identity).
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=1e-3)
        peft.save_pretrained(work / f"adapter{index + 1}")
        model = peft.unload()
    return {"phase": "prepare", "vocab": len(tokenizer), "arch": arch, "adapters": adapters,
            "wall_s": round(time.perf_counter() - started, 1)}


def _variants(work: Path, adapters: int) -> list[Any]:
    from medllm_core.library.evaluation.variants import Variant

    return [Variant("base", None)] + [Variant(f"adapter{i}", str(work / f"adapter{i}")) for i in range(1, adapters + 1)]


def run_reference(items: list[Any], work: Path, variants: list[Any], max_new_tokens: int, cuda: bool
                  ) -> dict[str, Any]:
    import torch

    from bench.eval_reference import load_merged, reference_generate
    from medllm_core.library.evaluation.protocols import conversation
    from medllm_core.library.training.model_loading import load_tokenizer

    tokenizer = load_tokenizer(str(work / "model"))
    conversations = [conversation(i, []) for i in items]
    per_variant, answers = {}, {}
    for variant in variants:
        _sync()
        started = time.perf_counter()
        model = load_merged(str(work / "model"), variant.adapter, torch.bfloat16 if cuda else torch.float32, cuda)
        loaded = time.perf_counter()
        answers[variant.name] = reference_generate(model, tokenizer, conversations, max_new_tokens=max_new_tokens)
        _sync()
        per_variant[variant.name] = {"load_s": round(loaded - started, 2),
                                     "wall_s": round(time.perf_counter() - started, 2)}
        del model
        torch.cuda.empty_cache() if cuda else None
    wall = sum(v["wall_s"] for v in per_variant.values())
    return {"phase": "ref", "protocol": "generate", "items": len(items), "variants": len(variants),
            "max_new_tokens": max_new_tokens, "per_variant": per_variant, "wall_s": round(wall, 2),
            "items_per_s_per_variant": round(len(items) * len(variants) / wall, 2), "answers": answers}


def _context(work: Path, protocol: str, max_new_tokens: int, cuda: bool) -> Any:
    from medllm_core.library.evaluation.settings import EvalSettings

    decisions: list[dict[str, Any]] = []
    profile = SimpleNamespace(model=SimpleNamespace(name_or_path=str(work / "model"), trust_remote_code=False,
                                                       quantization="none"),
                              resolve_path=lambda p: Path(p))
    return SimpleNamespace(
        settings=EvalSettings(protocol=protocol, max_new_tokens_mcq=max_new_tokens),
        profile=profile, precision=SimpleNamespace(dtype="bf16" if cuda else "fp32"),
        hardware=SimpleNamespace(backend="cuda" if cuda else "cpu"),
        decide=lambda kind, summary, **facts: decisions.append({"kind": kind, "summary": summary, **facts}),
        progress=lambda *a, **k: None, log=lambda *a, **k: None, decisions=decisions,
        stage_decisions=lambda: decisions,
        stop_requested=lambda: False)  # a bench is never stopped through a STOP file


def run_engine(items: list[Any], work: Path, variants: list[Any], protocol: str, max_new_tokens: int,
               cuda: bool) -> dict[str, Any]:
    """The evaluation stage's own Evaluator (run_eval.py), on a stand-in stage context."""
    import torch

    from medllm_core.library.evaluation.protocols import conversation
    from medllm_core.library.evaluation.run_eval import Evaluator, EvalWork

    ctx = _context(work, protocol, max_new_tokens, cuda)
    work_items = EvalWork(mcq=items, open=[], safety=[], conversations=[conversation(i, []) for i in items],
                          protocols=[protocol])
    evaluator = Evaluator(ctx, work_items)  # type: ignore[arg-type]
    per_variant, answers, accuracy = {}, {}, {}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    _sync()
    started = time.perf_counter()
    for variant in variants:
        begin = time.perf_counter()
        result = evaluator.answer(variant)
        _sync()
        records = result.mcq[protocol]
        answers[variant.name] = [r["response"] for r in records]
        accuracy[variant.name] = round(sum(r["correct"] for r in records) / len(records), 4)
        per_variant[variant.name] = {"wall_s": round(time.perf_counter() - begin, 2)}
        print(f"[eval-bench] {protocol} {variant.name}: {per_variant[variant.name]['wall_s']} s "
              f"({time.perf_counter() - started:.1f} s so far)", flush=True)
    wall = time.perf_counter() - started
    evaluator.models.close()
    return {"phase": "loglik" if protocol == "loglik" else "gen", "protocol": protocol, "items": len(items),
            "variants": len(variants), "max_new_tokens": max_new_tokens if protocol == "generate" else None,
            "per_variant": per_variant, "wall_s": round(wall, 2), "accuracy": accuracy,
            "items_per_s_per_variant": round(len(items) * len(variants) / wall, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "decisions": ctx.decisions, "answers": answers}


def summarize(rows: list[dict[str, Any]]) -> str:
    by = {r["phase"]: r for r in rows}
    device = next((r.get("device") for r in rows if r.get("device")), "unknown")
    lines = [f"Card: {device}", "",
             "| configuration | protocol | items × variants | max new tokens | wall s (model loads included) "
             "| items/s per variant |", "|---|---|---|---|---|---|"]
    names = {"ref": "reference: reload + merge per variant, batch 8", "gen": "engine: one base load, adapters "
             "switched, sorted token-budget batches", "loglik": "engine, loglik protocol"}
    for phase in ("ref", "gen", "loglik"):
        if phase in by:
            r = by[phase]
            lines.append(f"| {names[phase]} | {r['protocol']} | {r['items']:,} × {r['variants']} | "
                         f"{r['max_new_tokens'] or '—'} | {r['wall_s']:,.1f} | {r['items_per_s_per_variant']:,.1f} |")
    if "ref" in by and "gen" in by:
        ratio = by["gen"]["items_per_s_per_variant"] / by["ref"]["items_per_s_per_variant"]
        lines += ["", f"Generate protocol, engine vs reference: **{ratio:.1f}×** items/s (target ≥ 5×)."]
        ref = by["ref"]["answers"].get("base", [])
        gen = by["gen"]["answers"].get("base", [])[:len(ref)]
        if ref and gen:
            same = sum(a == b for a, b in zip(ref, gen, strict=False))
            lines.append(f"Base-model replies identical between the two paths: {same}/{len(ref)} "
                         "(bf16 kernels may round differently at other batch shapes).")
    if "loglik" in by:
        r = by["loglik"]
        lines.append(f"Loglik: {r['items_per_s_per_variant']:,.1f} items/s per variant (target ≥ 100); "
                     f"{r['items']:,} items × {r['variants']} variants in {r['wall_s'] / 60:.1f} min "
                     "(target < 10 min).")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("bench-results/eval"))
    ap.add_argument("--work", type=Path, default=Path(".bench-work/eval"))
    ap.add_argument("--arch", default="qwen2.5-7b")
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--phases", default="prepare,ref,gen,loglik")
    ap.add_argument("--ref-items", type=int, default=256)
    ap.add_argument("--ref-variants", type=int, default=2, help="the reference is slow: time this many variants")
    ap.add_argument("--gen-items", type=int, default=1024)
    ap.add_argument("--loglik-items", type=int, default=0, help="0 = every item")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    a = ap.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else "cpu"
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    variants = _variants(a.work, a.adapters)
    for phase in a.phases.split(","):
        if phase == "prepare":
            row = prepare(a.data, a.work, a.arch, a.adapters, cuda)
        elif phase == "ref":
            row = run_reference(_items(a.data, a.ref_items), a.work, variants[:a.ref_variants], a.max_new_tokens,
                                cuda)
        elif phase == "gen":
            row = run_engine(_items(a.data, a.gen_items), a.work, variants, "generate", a.max_new_tokens, cuda)
        elif phase == "loglik":
            row = run_engine(_items(a.data, a.loglik_items), a.work, variants, "loglik", a.max_new_tokens, cuda)
        else:
            raise SystemExit(f"unknown phase {phase!r}")
        row["device"] = device
        print(f"[eval-bench] {phase}: " + json.dumps({k: v for k, v in row.items() if k != "answers"}), flush=True)
        with (a.out / "eval_results.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    rows = [json.loads(x) for x in (a.out / "eval_results.jsonl").read_text(encoding="utf-8").splitlines() if x]
    md = summarize(rows)
    (a.out / "eval_bench.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
