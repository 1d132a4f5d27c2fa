"""Perplexity on the answers of held-out conversations, for the base model and each adapter.

Only assistant tokens are scored (the prompt is context, as in SFT with
assistant-only loss), so the number says how well a model predicts answers.
All adapters are loaded onto one copy of the base model and switched in turn.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from medllm_core.api import StageContext, StageResult, StageStatus, write_json, write_text
from medllm_perplexity.plugin import heldout_file

IGNORE = -100  # label value the loss skips
BASE = "base"


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (prompt tokens masked) of one conversation."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    labels = [IGNORE] * min(len(prompt_ids), len(ids)) + ids[len(prompt_ids):]
    return ids, labels


def score(model: Any, encoded: list[tuple[list[int], list[int]]], device: str) -> dict[str, float]:
    import torch

    total_nll, total_tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ids, labels in encoded:
            counted = sum(1 for label in labels[1:] if label != IGNORE)  # the loss shifts labels by one
            if counted == 0:
                continue
            out = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device))
            total_nll += float(out.loss) * counted
            total_tokens += counted
    mean = total_nll / total_tokens if total_tokens else math.nan
    return {"mean_nll": round(mean, 5), "perplexity": round(math.exp(mean), 3) if math.isfinite(mean) else None,
            "tokens": total_tokens}


def adapters(ctx: StageContext) -> list[tuple[str, str]]:
    """(stage, final checkpoint) of every stage that trained in this run, in run order."""
    return [(name, r.checkpoint_path) for name, r in ctx.results.items()
            if r.status == StageStatus.TRAINED and r.checkpoint_path]


def run_perplexity(ctx: StageContext, conversations: list[list[dict[str, str]]]) -> StageResult:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trained = adapters(ctx)
    first = Path(trained[0][1])  # SFT is required, so at least its adapter is here
    base_path = json.loads((first / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(ctx.precision.dtype, torch.float32)
    device = "cuda" if ctx.hardware.backend == "cuda" else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(str(first))
    encoded = [encode(tokenizer, messages, ctx.settings.max_length) for messages in conversations]
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype).to(device)
    model = PeftModel.from_pretrained(model, str(first), adapter_name=trained[0][0])
    for name, path in trained[1:]:
        model.load_adapter(path, adapter_name=name)

    rows: list[dict[str, Any]] = []
    for index, (name, path) in enumerate([(BASE, base_path), *trained]):
        ctx.progress(index, len(trained) + 1)
        if name == BASE:
            with model.disable_adapter():
                result = score(model, encoded, device)
        else:
            model.set_adapter(name)
            result = score(model, encoded, device)
        rows.append({"model": name, "checkpoint": path, **result})
        ctx.log(f"{name}: perplexity {result['perplexity']} over {result['tokens']} answer tokens")
    ctx.progress(len(rows), len(rows))

    finite = all(r["perplexity"] is not None for r in rows)
    ctx.check("perplexity_finite", finite, ", ".join(f"{r['model']}={r['perplexity']}" for r in rows))
    held = heldout_file(ctx)
    report = {
        "stage": ctx.name,
        "heldout": {"path": str(held), "rows": len(conversations), "bundled": not ctx.settings.heldout_path,
                    "sha256": hashlib.sha256(held.read_bytes()).hexdigest()[:16]},
        "scored": "assistant answer tokens only (prompt masked)",
        "models": rows,
        "device": ctx.hardware.describe(),
        "precision": ctx.precision.dtype,
    }
    folder = ctx.run.reports_dir / "evaluation"
    json_path = write_json(folder / "perplexity.json", report)
    md_path = write_text(folder / "perplexity.md", render_markdown(report))
    if not finite:
        return StageResult.failed("perplexity is not finite for: "
                                  + ", ".join(r["model"] for r in rows if r["perplexity"] is None),
                                  metrics_path=str(json_path))
    return StageResult.done(metrics_path=str(json_path), artifacts={"perplexity_md": str(md_path)},
                            summary={f"ppl_{r['model']}": r["perplexity"] for r in rows})


def render_markdown(report: dict[str, Any]) -> str:
    held = report["heldout"]
    lines = [
        "# Held-out perplexity",
        "",
        f"- Held-out set: `{held['path']}` ({held['rows']} conversations, sha256 {held['sha256']})",
        f"- Scored: {report['scored']}; device {report['device']}, {report['precision']}",
        "",
        "| model | perplexity | mean NLL | tokens | checkpoint |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['perplexity']} | {r['mean_nll']} | {r['tokens']} | `{r['checkpoint']}` |"
              for r in report["models"]]
    return "\n".join(lines) + "\n"
