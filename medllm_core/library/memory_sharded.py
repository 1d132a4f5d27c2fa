"""Per-GPU weight memory of a model sharded with FSDP2 across several GPUs, for the estimator (no torch import).

FSDP2 (``fully_shard``) wraps every decoder layer as one unit and the model itself as the root unit:
- every parameter, frozen or LoRA, is stored as a 1/N shard on each GPU;
- a decoder layer is all-gathered whole in the compute dtype just before it runs and freed after it (its
  forward, its backward and its recompute); with forward/backward prefetch two layers are whole at once;
- the root unit (embeddings, final norm, LM head) stays gathered from the start of the forward to the end of
  the backward (FSDP2 does not reshard the root after forward), so it costs its full size on every GPU;
- LoRA gradients are reduce-scattered: each GPU keeps the fp32 gradient and Adam moments of its shard only.
NCCL's communication buffers and the gathered copies' allocator slack are counted in ``comm_workspace``.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3
PREFETCHED_LAYERS = 2  # the layer running and the next one, gathered ahead by FSDP2's implicit prefetch
COMM_WORKSPACE_GIB = 0.5  # NCCL buffers + reduce-scatter staging (LoRA grads are small)


def root_params(shape: Any) -> int:
    """Parameters of the root unit: embeddings, LM head (unless tied) and the final norm."""
    return shape.vocab * shape.hidden * (1 if shape.tie_embeddings else 2) + shape.hidden


def sharded_weight_parts(shape: Any, weight_bytes: int, shards: int) -> dict[str, float]:
    """GiB per GPU: the resident shard of every weight, the gathered root unit and the gathered layers."""
    shards = max(1, shards)
    layer_params = (shape.total_params - root_params(shape)) / shape.layers
    return {
        "weights_shard": shape.total_params * weight_bytes / shards / GIB,
        # the gathered root minus the shard of it already counted above
        "root_gathered": root_params(shape) * weight_bytes * (1 - 1 / shards) / GIB,
        "layers_gathered": PREFETCHED_LAYERS * layer_params * weight_bytes / GIB,
        "comm_workspace": COMM_WORKSPACE_GIB,
    }
