"""Greedy, batched generation with the model's own chat template (the same for every variant).

Prompts are tokenized once, sorted by length and batched under a token budget;
generation stops when every reply in a batch has reached an end token. Replies
come back in the caller's order. Left padding with explicit attention masks
keeps each reply independent of its batch neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medllm_core.library.evaluation.batching import length_sorted_batches


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends a reply: the tokenizer's EOS and the generation config's (Qwen lists two)."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, int) and token not in ids:
                ids.append(token)
    return ids


def chat_prompt_ids(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[list[int]]:
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def left_padded(rows: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """(input_ids, attention_mask) with every row ending at the right edge."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def generate(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, max_new_tokens: int,
             batch_size: int, max_batch_tokens: int = 0, on_batch: Callable[[int], None] | None = None) -> list[str]:
    import torch

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    prompts = chat_prompt_ids(tokenizer, conversations)
    replies: list[str | None] = [None] * len(prompts)
    eos = end_token_ids(model, tokenizer)
    model.eval()
    done = 0
    for batch in length_sorted_batches([len(p) for p in prompts], max_items=batch_size,
                                       max_tokens=max_batch_tokens, extra_tokens=max_new_tokens):
        input_ids, attention_mask = left_padded([prompts[i] for i in batch], tokenizer.pad_token_id, device)
        with torch.inference_mode():
            # Greedy: sampling knobs a checkpoint's generation_config may carry are switched off explicitly.
            output = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                    max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                    top_k=None, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(output[:, input_ids.shape[1]:], skip_special_tokens=True)
        for index, text in zip(batch, texts, strict=True):
            replies[index] = text
        done += len(batch)
        if on_batch is not None:
            on_batch(done)
    return [r or "" for r in replies]
