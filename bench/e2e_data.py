"""Workload of the end-to-end suite: real Chinese medical text cut to the token lengths measured on
the public LLaMA-Factory demo data (SFT rows ≈ 141 tokens; preference pairs ≈ 560 policy tokens, i.e.
prompt + chosen + rejected), a tokenizer trained on that text, and a random-weight Qwen2.5-shape
model saved as a local folder the CLI loads like a downloaded one.

Text comes from ``../shared/data/public/`` (MedicalGPT SFT/DPO rows, Apollo MCQs) when present, else
from the bundled ``data/samples/`` files, so the suite also runs on a fresh clone (CPU check).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO.parent / "shared" / "data" / "public"
CARRIED = REPO / ".bench-data"  # where a device run carries the public files
SFT_MEDIAN_TOKENS = 118  # lognormal σ 0.6: mean ≈ 1.2 × median ≈ 141
PROMPT_MEDIAN_TOKENS = 100
COMPLETION_MEDIAN_TOKENS = 133  # 2 × prompt + chosen + rejected ≈ 560 policy tokens (means)
TOKENIZER_VOCAB = 32000


def _public(name: str) -> Path | None:
    for folder in (CARRIED, PUBLIC):
        if (folder / name).is_file():
            return folder / name
    return None


def source_texts() -> tuple[list[str], list[str], str]:
    """(questions, answers, where they came from): paragraphs to cut rows from."""
    questions, answers = [], []
    sft, dpo = _public("medicalgpt_sft_zh_200.jsonl"), _public("medicalgpt_dpo_zh_100.jsonl")
    if sft and dpo:
        for line in sft.read_text(encoding="utf-8").splitlines():
            turns = json.loads(line)["conversations"]
            questions += [t["value"] for t in turns if t["from"] == "human"]
            answers += [t["value"] for t in turns if t["from"] == "gpt"]
        for line in dpo.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            questions += [t["value"] for t in row["conversations"] if t["from"] == "human"]
            answers += [row["chosen"], row["rejected"]]
        return questions, answers, f"{sft.name} + {dpo.name}"
    for line in (REPO / "data" / "samples" / "sft_medical_zh_en.jsonl").read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        questions += [m["content"] for m in messages if m["role"] == "user"]
        answers += [m["content"] for m in messages if m["role"] == "assistant"]
    return questions, answers, "data/samples/sft_medical_zh_en.jsonl"


def eval_file() -> Path:
    return _public("apollo_test_zh.json") or REPO / "data" / "samples" / "eval_mcq_zh_en.jsonl"


def _lengths(rng: random.Random, n: int, median: int, lo: int, hi: int) -> list[int]:
    return [int(min(hi, max(lo, math.exp(rng.gauss(math.log(median), 0.6))))) for _ in range(n)]


class TextCutter:
    """Cuts text of a wanted token count from the pool (pool texts joined end to end, repeated)."""

    def __init__(self, tokenizer: Any, texts: list[str], seed: int):
        self.ids = [i for t in texts for i in tokenizer(t + "\n", add_special_tokens=False)["input_ids"]]
        self.tokenizer = tokenizer
        self.rng = random.Random(seed)

    def cut(self, tokens: int) -> str:
        start = self.rng.randrange(0, max(1, len(self.ids) - tokens))
        text = self.tokenizer.decode(self.ids[start:start + tokens]).replace("\ufffd", "")
        return text.strip() or "症状"


def write_workload(work: Path, tokenizer: Any, sft_rows: int, pairs: int, seed: int = 0) -> dict[str, Any]:
    """Writes sft.jsonl (messages), preference.jsonl (prompt/chosen/rejected) under ``work``."""
    questions, answers, origin = source_texts()
    ask, answer = TextCutter(tokenizer, questions, seed), TextCutter(tokenizer, answers, seed + 1)
    rng = random.Random(seed)
    template_tokens = 20  # chat-template markers around one user + one assistant turn
    sft_lengths = _lengths(rng, sft_rows, SFT_MEDIAN_TOKENS, 40, 1500)
    with (work / "sft.jsonl").open("w", encoding="utf-8") as fh:
        for total in sft_lengths:
            body = max(16, total - template_tokens)
            q = max(4, body // 3)
            fh.write(json.dumps({"messages": [{"role": "user", "content": ask.cut(q)},
                                              {"role": "assistant", "content": answer.cut(body - q)}]},
                                ensure_ascii=False) + "\n")
    prompts = _lengths(rng, pairs, PROMPT_MEDIAN_TOKENS, 8, 900)
    chosen = _lengths(rng, pairs, COMPLETION_MEDIAN_TOKENS, 8, 900)
    rejected = _lengths(rng, pairs, COMPLETION_MEDIAN_TOKENS, 8, 900)
    with (work / "preference.jsonl").open("w", encoding="utf-8") as fh:
        for p, c, r in zip(prompts, chosen, rejected, strict=True):
            fh.write(json.dumps({"prompt": ask.cut(p), "chosen": answer.cut(c), "rejected": answer.cut(r)},
                                ensure_ascii=False) + "\n")
    return {"text_source": origin, "sft_rows": sft_rows, "pairs": pairs,
            "sft_mean_tokens": round(sum(sft_lengths) / len(sft_lengths), 1),
            "policy_tokens_per_pair": round(sum(2 * p + c + r for p, c, r in zip(prompts, chosen, rejected,
                                                                                 strict=True)) / pairs, 1)}


def build_local_model(work: Path, arch: str, cuda: bool, seed: int = 0) -> dict[str, Any]:
    """Tokenizer trained on the workload's text and a random model of the ``arch`` shape, saved to work/model.
    The embedding keeps the real shape's vocabulary (152,064 for Qwen2.5): the LM head costs what it costs."""
    from bench.common import SHAPES, build_model
    from medllm_core.library.evaluation.mcq import load_mcq_file
    from medllm_core.library.tiny_model import _hf_tokenizer, train_tokenizer

    questions, answers, _ = source_texts()
    items = load_mcq_file(str(eval_file()))[0]
    texts = questions + answers + [i.question + "\n" + "\n".join(i.options.values()) for i in items]
    tokenizer = _hf_tokenizer(train_tokenizer(texts, vocab_size=TOKENIZER_VOCAB if arch != "tiny" else 2048))
    shape = SHAPES[arch]
    if shape.vocab < len(tokenizer):
        shape = replace(shape, vocab=len(tokenizer))
    model = build_model(shape, "sdpa", cuda, seed=seed)
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    del model
    return {"arch": arch, "tokenizer_tokens": len(tokenizer), "model_vocab": shape.vocab}
