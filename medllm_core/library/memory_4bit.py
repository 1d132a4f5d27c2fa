"""Weight memory of a 4-bit (NF4, double-quant) base model, for the estimator (no torch import).

bitsandbytes quantizes every decoder ``nn.Linear`` in blocks of 64 weights: 4 bits per weight, one 8-bit absmax
per block, and (double quant) one fp32 constant per 256 blocks plus a small codebook. The embedding, the LM head,
norms and biases stay unquantized in the compute dtype (transformers skips ``lm_head``; embeddings are not
Linear). During forward/backward bitsandbytes dequantizes one weight at a time into the compute dtype.
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
        "dequant_transient": 2 * widest * compute_bytes / GIB,
    }
