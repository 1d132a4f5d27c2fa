"""The log-likelihood protocol: which answer is most probable right after the prompt.

Like lm-evaluation-harness's multiple-choice tasks and OpenCompass's PPL mode:
no text is generated, so nothing needs extracting. The prompt is the same chat
prompt the generate protocol sends (with the assistant turn opened); each
candidate answer is scored by the summed log-probability of its tokens.

- Single-answer items: the candidates are the option letters; when each letter is
  one token (true for Qwen's and the tiny model's tokenizers) one forward pass over
  the prompt scores them all.
- Multi-answer items (CMB 多项选择题): the candidates are every non-empty set of
  letters, written in letter order and followed by the end-of-turn token, so "A"
  and "AC" compete on equal terms (the model must also say where the answer stops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from medllm_core.library.evaluation.batching import length_sorted_batches
from medllm_core.library.evaluation.generation import left_padded

MAX_SET_OPTIONS = 8  # 2^8 - 1 = 255 candidate sets; more options than that are not an exam item


@dataclass(frozen=True)
class LoglikQuery:
    prompt_ids: list[int]
    letters: list[str]
    multiple: bool


def letter_sets(letters: list[str]) -> list[str]:
    return ["".join(c) for size in range(1, len(letters) + 1) for c in combinations(letters, size)]


def _single_token_ids(tokenizer: Any, letters: list[str]) -> list[int] | None:
    ids = [tokenizer(letter, add_special_tokens=False)["input_ids"] for letter in letters]
    return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None


def _position_ids(attention_mask: Any) -> Any:
    # Left padding shifts every row; positions must count real tokens only, or a row's scores would
    # depend on how long its batch neighbours are.
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def _last_logprobs(model: Any, rows: list[list[int]], keep: int, pad_id: int) -> Any:
    """log-softmax over the vocabulary at each row's last ``keep`` positions: [rows, keep, vocab], fp32."""
    import torch

    device = next(model.parameters()).device
    input_ids, attention_mask = left_padded(rows, pad_id, device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=_position_ids(attention_mask), logits_to_keep=keep, use_cache=False).logits
    return torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)


def score_queries(model: Any, tokenizer: Any, queries: list[LoglikQuery], *, end_id: int, batch_size: int,
                  max_batch_tokens: int = 0, on_batch: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """For each query: {candidate answer: summed log-probability}, in the caller's order."""
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    scores: list[dict[str, float] | None] = [None] * len(queries)
    # (query index, candidate, token ids of prompt + candidate)
    sequences: list[tuple[int, str, list[int], int]] = []
    direct: list[int] = []
    letter_ids: dict[int, list[int]] = {}
    canonical: dict[int, list[str]] = {}
    for index, query in enumerate(queries):
        ids = _single_token_ids(tokenizer, query.letters) if not query.multiple else None
        if ids is not None:
            direct.append(index)
            letter_ids[index] = ids
            continue
        candidates = letter_sets(query.letters[:MAX_SET_OPTIONS]) if query.multiple else query.letters
        canonical[index] = candidates
        for candidate in candidates:
            tail = tokenizer(candidate, add_special_tokens=False)["input_ids"] + ([end_id] if query.multiple else [])
            sequences.append((index, candidate, query.prompt_ids + tail, len(tail)))
    done = 0
    for batch in length_sorted_batches([len(queries[i].prompt_ids) for i in direct], max_items=batch_size,
                                       max_tokens=max_batch_tokens):
        rows = [direct[b] for b in batch]
        logprobs = _last_logprobs(model, [queries[i].prompt_ids for i in rows], 1, pad_id)[:, 0, :]
        for row, index in enumerate(rows):
            values = logprobs[row, letter_ids[index]].tolist()
            scores[index] = dict(zip(queries[index].letters, values, strict=True))
        done += len(rows)
        if on_batch is not None:
            on_batch(done)
    pending: dict[int, dict[str, float]] = {}
    for batch in length_sorted_batches([len(s[2]) for s in sequences], max_items=batch_size,
                                       max_tokens=max_batch_tokens):
        chosen = [sequences[b] for b in batch]
        keep = max(s[3] for s in chosen) + 1
        logprobs = _last_logprobs(model, [s[2] for s in chosen], keep, pad_id)
        for row, (index, candidate, ids, tail) in enumerate(chosen):
            # The logits at position t predict token t+1: the tail's tokens are read one step earlier.
            positions = range(keep - 1 - tail, keep - 1)
            targets = ids[-tail:]
            total = sum(float(logprobs[row, p, t]) for p, t in zip(positions, targets, strict=True))
            pending.setdefault(index, {})[candidate] = total
            if len(pending[index]) == len(canonical[index]):
                # Candidate order fixed (batches run longest first), so ties break the same way at any batch size.
                found = pending.pop(index)
                scores[index] = {c: found[c] for c in canonical[index]}
                done += 1
                if on_batch is not None:
                    on_batch(done)
    return [s or {} for s in scores]


def best_candidate(scores: dict[str, float]) -> str:
    """The highest-scoring answer; ties go to the earlier candidate (stable, so reruns agree)."""
    return max(scores, key=lambda c: (scores[c], -list(scores).index(c)))
