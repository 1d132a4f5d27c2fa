"""Greedy, batched generation with the model's own chat template (the same for every variant)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def generate(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, max_new_tokens: int,
             batch_size: int, on_batch: Callable[[int], None] | None = None) -> list[str]:
    import torch

    # Decoder-only models must be left-padded for batched generation.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    replies: list[str] = []
    model.eval()
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start:start + batch_size]
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        replies.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        if on_batch is not None:
            on_batch(len(replies))
    return replies
