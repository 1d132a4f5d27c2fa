"""The two MCQ scoring protocols, and the prompts they share.

Both protocols send the same chat prompt (k solved examples as earlier turns,
then the item); they differ only in how the answer is read: ``generate``
decodes a greedy reply and extracts letters from it, ``loglik`` compares the
probability of each candidate answer as the assistant's first tokens.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from medllm_core.library.evaluation.mcq import McqItem, extract_by_option_text, extract_choice, format_prompt

# Bump when format_prompt or the shot layout changes: reports name it next to every number.
PROMPT_TEMPLATE_VERSION = "mcq-v1"

DESCRIPTIONS = {
    "generate": "greedy generation with each model's chat template, then the extraction rule cascade "
                "(CMB's protocol)",
    "loglik": "log-likelihood of each option letter (multi-answer: each letter set) as the assistant's first "
              "tokens after the prompt (lm-evaluation-harness / OpenCompass PPL style); no extraction failures",
}


def shot_pool(dev_items: list[McqItem], k: int) -> dict[str, list[McqItem]]:
    """Dev items by subject ('' = all), in file order: the source of k-shot examples."""
    pool: dict[str, list[McqItem]] = defaultdict(list)
    for item in dev_items:
        pool[item.subject].append(item)
        pool[""].append(item)
    return pool


def shots_for(item: McqItem, pool: dict[str, list[McqItem]], k: int) -> list[McqItem]:
    """k examples: the item's own subject first (as MMLU-style harnesses do), then any subject."""
    if k <= 0:
        return []
    chosen = [s for s in pool.get(item.subject, []) if s.id != item.id][:k]
    for extra in pool.get("", []):
        if len(chosen) >= k:
            break
        if extra not in chosen and extra.id != item.id:
            chosen.append(extra)
    return chosen


def conversation(item: McqItem, shots: list[McqItem]) -> list[dict[str, str]]:
    turns: list[dict[str, str]] = []
    for shot in shots:
        turns += [{"role": "user", "content": format_prompt(shot)},
                  {"role": "assistant", "content": "".join(sorted(shot.answer))}]
    return turns + [{"role": "user", "content": format_prompt(item)}]


def chance_accuracy(items: list[McqItem]) -> float:
    """Expected accuracy of uniform guessing: 1/k per single-answer item, 1/(2^k - 1) per multi-answer item."""
    if not items:
        return 0.0
    return sum(1 / (2 ** len(i.options) - 1) if i.multiple else 1 / len(i.options) for i in items) / len(items)


def _record(item: McqItem, response: str, chosen: frozenset[str] | None, rule: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "source": item.source,
        "subject": item.subject,
        "answer": "".join(sorted(item.answer)),
        "response": response,
        "extracted": "".join(sorted(chosen)) if chosen else None,
        "rule": rule,
        "correct": bool(chosen) and chosen == item.answer,
    }


def score_generated(item: McqItem, reply: str) -> dict[str, Any]:
    chosen, rule = extract_choice(reply, set(item.options))
    if chosen is None and (by_text := extract_by_option_text(reply, item.options)) is not None:
        chosen, rule = by_text, "option_text"
    return _record(item, reply, chosen, rule)


def score_loglik(item: McqItem, scores: dict[str, float], best: str) -> dict[str, Any]:
    record = _record(item, best, frozenset(best), "loglik")
    # The top few candidates with their log-probabilities: enough to audit a decision, small enough to store.
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
    record["logprobs"] = {c: round(v, 4) for c, v in top}
    return record
