"""Length-sorted batches under a token budget.

Why: padding is wasted compute. Sorting prompts by length puts similar lengths
together, and a token budget (rather than a fixed count) lets short prompts go in
large batches while long ones stay within memory. Results are returned in the
caller's order, so sorting never changes which answer belongs to which item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def length_sorted_batches(lengths: Sequence[int], *, max_items: int, max_tokens: int,
                          extra_tokens: int = 0) -> Iterator[list[int]]:
    """Indices into ``lengths``, longest first, grouped so each batch's padded size fits ``max_tokens``.

    A batch costs ``count × (longest prompt + extra_tokens)`` tokens (left padding to the longest).
    ``max_tokens <= 0`` means no token budget (only ``max_items``). A single prompt longer than the
    budget still gets its own batch: the budget guides batching, it never drops an item.
    """
    # Longest first: the first batch is the largest in memory, so an out-of-memory shows at once.
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batch: list[int] = []
    for index in order:
        width = (lengths[batch[0]] if batch else lengths[index]) + extra_tokens
        if batch and (len(batch) >= max_items or (max_tokens > 0 and (len(batch) + 1) * width > max_tokens)):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def kv_bytes_per_token(config: object, dtype_bytes: int) -> int:
    """Key/value cache bytes one token costs across all layers (grouped-query attention aware)."""
    layers = int(getattr(config, "num_hidden_layers", 1))
    heads = int(getattr(config, "num_attention_heads", 1))
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or getattr(config, "hidden_size", 64) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def token_budget(config: object, dtype_bytes: int, free_bytes: int, *, share: float = 0.6) -> int:
    """Tokens a batch may hold given ``free_bytes`` of accelerator memory.

    Per token: its key/value cache plus the activations and logits of the widest step (hidden and
    vocabulary vectors in fp32 for the last position are small next to the KV cache for long prompts,
    but the prefill of a whole batch materialises hidden states for every token, so both count).
    """
    hidden = int(getattr(config, "hidden_size", 64))
    intermediate = int(getattr(config, "intermediate_size", 4 * hidden))
    per_token = kv_bytes_per_token(config, dtype_bytes) + (4 * hidden + 2 * intermediate) * dtype_bytes
    return max(256, int(free_bytes * share) // max(per_token, 1))
