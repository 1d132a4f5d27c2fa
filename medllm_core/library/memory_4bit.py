"""Weight memory of a 4-bit (NF4, double-quant) base model, for the estimator (no torch import).

bitsandbytes quantizes every decoder ``nn.Linear`` in blocks of 64 weights: 4 bits per weight, one 8-bit absmax
per block, and (double quant) one fp32 constant per 256 blocks plus a small codebook. The embedding, the LM head,
norms and biases stay unquantized in the compute dtype (transformers skips ``lm_head``; embeddings are not
Linear). During forward/backward bitsandbytes dequantizes one weight at a time into the compute dtype.

The transient of a checkpointed 4-bit step is modelled from what was alive at the peak, traced on the H200
(``bench/memory_peak.py``; ``bench/results/2026-12-05-h200-memory-profile``): see ``checkpointed_transient_parts``.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3
NF4_BLOCK = 64
DOUBLE_QUANT_BLOCK = 256
# bytes per quantized weight: 4-bit payload + 8-bit absmax per 64 + fp32 second-level scale per 64*256
NF4_BYTES_PER_PARAM = 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * DOUBLE_QUANT_BLOCK)


def quantized_params(shape: Any) -> int:
    """Decoder linear weights: the only parameters bitsandbytes stores in 4 bits."""
    return int(shape.layers * shape.linear_params_per_layer)


def four_bit_weight_parts(shape: Any, compute_bytes: int, host_embedding: bool = False) -> dict[str, float]:
    """GiB of the 4-bit weights, the unquantized rest (embeddings, LM head, norms, biases) and the largest
    dequantized weight alive at once (the transient copy of the widest MLP projection). ``host_embedding``: the
    (untied) input embedding table lives in host memory (training/host_embedding.py)."""
    quantized = quantized_params(shape)
    rest = shape.total_params - quantized
    if host_embedding and not shape.tie_embeddings:
        rest -= shape.vocab * shape.hidden
    widest = shape.hidden * shape.intermediate
    return {
        "weights_4bit": quantized * NF4_BYTES_PER_PARAM / GIB,
        "weights_unquantized": rest * compute_bytes / GIB,
        # two widest weights: the allowance where the step was not traced (see DEQUANT_WIDEST_SHARE)
        "dequant_transient": 2 * widest * compute_bytes / GIB,
    }


# Traced at the 14B peak under 12 GiB: the widest projection dequantized (0.132 GiB) plus the fallback's smaller
# buffers (0.029 GiB): 1.22 widest weights alive at once (the estimate said 2 before the trace).
DEQUANT_WIDEST_SHARE = 1.25
# Beyond the saved activations of the layer being recomputed, the traced peaks (start of backward, inside the first
# recompute) held its unsaved transients: the SwiGLU output (intermediate), the norm output, attention outputs and
# the gradient arriving from the layer above: 2 bytes x intermediate + ~9 bytes x hidden per token (fitted: 9.0 on
# the 7B at 10,118 tokens, 8.6 on the 14B at 12,096; the 14B's 2,015-token peak fell mid-recompute, 3.8).
RECOMPUTE_EXTRA_HIDDEN_BYTES = 9.0
RECOMPUTE_EXTRA_INTERMEDIATE_BYTES = 2.0
# Inside torch's count nothing else was alive at the traced peaks (the untraced part equalled the 4-bit weights
# plus the LoRA parameters to 0.001 GiB); this is margin for allocator rounding, not a measured part.
CHECKPOINTED_WORKSPACE_GIB = 0.25


def checkpointed_transient_parts(shape: Any, saved_bytes_per_token_layer: float, tokens: int, loss_bytes: float,
                                 compute_bytes: int) -> dict[str, float]:
    """GiB of what comes and goes in a 4-bit SFT step with checkpointed layers (the traced case). The recompute of
    one layer holds its saved activations again plus its unsaved transients; the loss head's tile is freed before
    the first recompute, so the two never add: the loss counts only where it is the larger (a huge vocabulary over
    few tokens)."""
    extra = RECOMPUTE_EXTRA_HIDDEN_BYTES * shape.hidden + RECOMPUTE_EXTRA_INTERMEDIATE_BYTES * shape.intermediate
    recompute = (saved_bytes_per_token_layer + extra) * tokens
    return {"dequant_transient": DEQUANT_WIDEST_SHARE * shape.hidden * shape.intermediate * compute_bytes / GIB,
            "recompute": recompute / GIB, "loss_head": max(0.0, loss_bytes - recompute) / GIB,
            "workspace": CHECKPOINTED_WORKSPACE_GIB}
