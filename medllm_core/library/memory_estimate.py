"""Predicted peak GPU memory of one LoRA training step (no torch import: the dry run and the wizard use it).

The model is counted from its shape; activations are counted per token and per decoder layer from
what autograd keeps for the backward pass of a PEFT LoRA layer stack (see ``activation_bytes_per_token_layer``).
The per-token constants were checked against measured peaks on an H100 (``bench/``, ``docs/performance.md``);
``CALIBRATION`` names the measured runs they come from.

Peak = weights + LoRA state (fp32 params, grads, Adam moments, the frozen reference copy for DPO/KTO)
     + saved activations (un-checkpointed layers keep everything, checkpointed layers keep their input)
     + the recompute transient of one checkpointed layer
     + the loss head (fused: a tile of logits; unfused: the whole (tokens × vocab) logits in fp32)
     + a fixed workspace (CUDA/cuBLAS/allocator slack).
A checkpointed 4-bit SFT step is counted from its traced peak instead (``memory_4bit.checkpointed_transient_parts``):
recompute and loss head do not coincide, and LoRA gradients exist at the peak only when they accumulate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    name: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tie_embeddings: bool = False

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def linear_params_per_layer(self) -> int:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        return h * h + 2 * h * kv + h * h + 3 * h * i  # q, k, v, o, gate, up, down

    @property
    def linear_params(self) -> int:
        """Parameters that do matrix multiplications per token (embedding lookup is not one)."""
        return self.layers * self.linear_params_per_layer + self.vocab * self.hidden  # + LM head

    @property
    def total_params(self) -> int:
        h, kv = self.hidden, self.kv_dim
        per_layer = self.linear_params_per_layer + (h + 2 * kv) + 2 * h  # q/k/v biases, two RMSNorms
        embeddings = self.vocab * h * (1 if self.tie_embeddings else 2)
        return self.layers * per_layer + embeddings + h

    def lora_params(self, rank: int) -> int:
        """LoRA A and B for every linear layer of the decoder ("all-linear")."""
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]
        return self.layers * sum(rank * (n_in + n_out) for n_in, n_out in shapes)


QWEN2_5 = {
    "qwen2.5-0.5b": ModelShape("qwen2.5-0.5b", 151936, 896, 4864, 24, 14, 2, tie_embeddings=True),
    "qwen2.5-7b": ModelShape("qwen2.5-7b", 152064, 3584, 18944, 28, 28, 4),
    "qwen2.5-14b": ModelShape("qwen2.5-14b", 152064, 5120, 13824, 48, 40, 8),
}
TIER_SHAPES = {"7b": QWEN2_5["qwen2.5-7b"], "14b": QWEN2_5["qwen2.5-14b"]}


def shape_from_config(config: dict[str, Any], name: str = "model") -> ModelShape:
    """A ``config.json`` (transformers) as a shape."""
    return ModelShape(
        name=name,
        vocab=int(config["vocab_size"]),
        hidden=int(config["hidden_size"]),
        intermediate=int(config["intermediate_size"]),
        layers=int(config["num_hidden_layers"]),
        heads=int(config["num_attention_heads"]),
        kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def shape_for_model(name_or_path: str, tier: str | None = None, local_dir: Path | None = None) -> ModelShape | None:
    """The shape of the profile's model: its local config.json, else the known Qwen2.5 tier."""
    if local_dir is not None and (local_dir / "config.json").is_file():
        try:
            return shape_from_config(json.loads((local_dir / "config.json").read_text(encoding="utf-8")), name_or_path)
        except (KeyError, ValueError, OSError):
            pass
    lowered = name_or_path.lower()
    for key, shape in QWEN2_5.items():
        if key in lowered:
            return shape
    return TIER_SHAPES.get(tier or "")


# Bytes kept for backward, per token, by one un-checkpointed decoder layer, as coefficients of
# (hidden, intermediate, kv_dim). Derived from what autograd saves (frozen base linears save no input;
# LoRA-A saves its input, which is the dropout output when lora_dropout > 0, plus a 1-byte mask);
# the fp32 factor applies when PEFT upcasts LoRA inputs to the fp32 adapter dtype.
@dataclass(frozen=True)
class ActivationModel:
    residual_and_attention: float = 2 * 4  # layer input, attention output, MLP input, q (bf16): 4 × hidden
    kv: float = 2 * 2  # k and v after RoPE
    mlp_liger: float = 2 * 2  # SwiGLU keeps gate and up (Liger); + silu(gate) without Liger
    # Without Liger, the eager SwiGLU/RMSNorm/RoPE keep more in principle, but the measured peaks of the
    # plain-TRL runs (H100/H200) match the Liger count within a few percent: their extras are freed early.
    mlp_plain_extra: float = 0.0
    norm_plain_extra: float = 0.0
    rope_plain_extra: float = 0.0
    measured_scale: float = 1.04  # measured / counted, packed no-checkpointing runs (allocator rounding, RoPE caches)
    recompute_share: float = 0.6  # a checkpointed layer's backward frees as it goes: ~60% of its activations at once


ACTIVATIONS = ActivationModel()
WORKSPACE_GIB = 1.0  # CUDA context is outside torch's count; this is cuBLAS/allocator slack inside it


def fused_loss_tile_tokens(tokens: int, shape: ModelShape) -> int:
    """Tokens whose logits a fused LM head (Liger FLCE) holds at once. Liger bounds the tile to about the size of
    the hidden states: ceil(tokens / ceil(vocab / hidden)), rounded up to a power of two, at most ``tokens``
    (liger_kernel/ops/fused_linear_cross_entropy.py). A fixed 512 overcounted a 2,048-token step by 0.4 GiB
    (14B QLoRA under 12 GiB, H200: +14.2% with it, +10.4% with this)."""
    per_tile = math.ceil(tokens / math.ceil(shape.vocab / shape.hidden))
    return min(tokens, 1 << max(0, per_tile - 1).bit_length())


# Liger's chunked preference losses (fused SimPO) take one pair per chunk: the chunk's logits cover chosen + rejected
# over the padded length. Per logit: the bf16 logits, their fp32 log-softmax and the bf16 gradient (read from the
# kernel's code; the H200 bench run of ours-simpo died allocating that chunk's 1.16 GiB bf16 logits at length 2,048
# with ~1.8 GiB of the chunk already held, so at least ~5 bytes per logit; not yet measured to the peak).
FUSED_CHUNK_BYTES_PER_LOGIT = 8.0
CALIBRATION = "H100 80GB, Qwen2.5-7B architecture, bench/ runs of 2026-11-28 (docs/performance.md)"


def activation_bytes_per_token_layer(shape: ModelShape, *, lora_dropout: bool, lora_input_fp32: bool,
                                     liger: bool, lora_rank: int = 16) -> float:
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    a = ACTIVATIONS
    total = a.residual_and_attention * h + a.kv * kv + a.mlp_liger * i
    if not liger:
        total += a.mlp_plain_extra * i + a.norm_plain_extra * h + a.rope_plain_extra * (h + kv)
    # LoRA-A inputs: six hidden-sized (q, k, v, o, gate, up) and one intermediate-sized (down).
    elem = 4 if lora_input_fp32 else 2
    if lora_dropout:
        total += (6 * h + i) * (elem + 1)  # a dropout output per module + its mask
    else:
        # no dropout: LoRA-A keeps the module input itself; q/k/v share theirs, gate/up share theirs
        total += (2 * h + i) * elem if lora_input_fp32 else (2 * h + i) * 2
    total += 7 * lora_rank * 4  # LoRA-A outputs (tiny)
    return float(total) * a.measured_scale


@dataclass(frozen=True)
class TrainingShape:
    method: str  # sft | dpo | simpo | kto
    tokens_per_micro_step: int  # tokens in one forward (real tokens when padding-free; padded otherwise)
    checkpointed_layers: int  # decoder layers under activation checkpointing (0 = none)
    fused_loss: bool  # logits never materialised whole (Liger FLCE, TRL's fused LM head)
    lora_rank: int = 16
    lora_dropout: bool = True
    lora_input_fp32: bool = False  # fp32 copies of LoRA inputs; measured peaks show none under bf16 autocast
    liger: bool = False
    weight_bytes: int = 2  # bf16/fp16 base weights; 4 on fp32
    reference_adapter: bool = False  # DPO/KTO continuing an adapter keep a frozen "ref" copy of it
    logit_tokens: int | None = None  # tokens whose logits are materialised when unfused (padded batch); None: all
    fused_chunk_tokens: int | None = None  # fused loss chunked per pair (Liger SimPO): 2 × the padded length
    unfused_bytes_per_logit: float = 16.0  # SFT/CE: bf16 logits, fp32 copy, log-softmax, grads; CPO/SimPO: ~8
    quantized: bool = False  # 4-bit QLoRA base (memory_4bit.py): weight_bytes is then the compute dtype's
    shards: int = 1  # FSDP across this many GPUs (memory_sharded.py): the estimate is then per GPU
    host_offload: bool = False  # 4-bit only: the input embedding table in host memory
    offload_checkpoints: bool = False  # checkpointed layer inputs in host memory (transformers' offload=True)
    # LoRA gradients outlive a micro-step (accumulation > 1). Counted always, except for a checkpointed 4-bit SFT
    # step, whose traced peak (start of backward) holds none when each micro-step is an optimizer step.
    gradients_accumulate: bool = True


@dataclass
class MemoryEstimate:
    total_gib: float
    parts: dict[str, float] = field(default_factory=dict)
    shape: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.parts.items())
        return f"~{self.total_gib:.1f} GiB ({parts})"

    def as_dict(self) -> dict[str, Any]:
        return {"total_gib": round(self.total_gib, 2), "parts_gib": {k: round(v, 2) for k, v in self.parts.items()},
                "model_shape": self.shape, "inputs": self.inputs, "calibration": CALIBRATION}


def estimate_peak(shape: ModelShape, train: TrainingShape) -> MemoryEstimate:
    tokens = max(1, train.tokens_per_micro_step)
    lora = shape.lora_params(train.lora_rank)
    per_layer = activation_bytes_per_token_layer(shape, lora_dropout=train.lora_dropout,
                                                 lora_input_fp32=train.lora_input_fp32, liger=train.liger,
                                                 lora_rank=train.lora_rank)
    checkpointed = min(max(train.checkpointed_layers, 0), shape.layers)
    # a checkpointed layer keeps only its bf16 input; offloaded, those wait in host memory and at most two are
    # on the GPU at once (the one being recomputed and the one just copied back)
    resident_inputs = min(checkpointed, 2) if train.offload_checkpoints else checkpointed
    kept = (shape.layers - checkpointed) * per_layer * tokens + resident_inputs * 2 * shape.hidden * tokens
    recompute = ACTIVATIONS.recompute_share * per_layer * tokens if checkpointed else 0.0
    if train.fused_loss and train.fused_chunk_tokens:
        loss = train.fused_chunk_tokens * shape.vocab * FUSED_CHUNK_BYTES_PER_LOGIT
    elif train.fused_loss:
        loss = fused_loss_tile_tokens(tokens, shape) * shape.vocab * 4 * 2  # a tile of fp32 logits and its grad
    else:
        loss = (train.logit_tokens or tokens) * shape.vocab * train.unfused_bytes_per_logit
    if train.quantized:
        from medllm_core.library.memory_4bit import four_bit_weight_parts

        weights = four_bit_weight_parts(shape, train.weight_bytes, host_embedding=train.host_offload)
    elif train.shards > 1:
        from medllm_core.library.memory_sharded import sharded_weight_parts

        weights = sharded_weight_parts(shape, train.weight_bytes, train.shards)
    else:
        weights = {"weights": shape.total_params * train.weight_bytes / GIB}
    # traced on 4-bit SFT only; the preference trainers (reference and policy forwards) keep the calibrated count
    traced_4bit = train.quantized and checkpointed > 0 and train.method == "sft"
    if traced_4bit:
        from medllm_core.library.memory_4bit import checkpointed_transient_parts

        transient = checkpointed_transient_parts(shape, per_layer, tokens, loss, train.weight_bytes)
    else:
        transient = {"recompute": recompute / GIB, "loss_head": loss / GIB, "workspace": WORKSPACE_GIB}
    grads = 0 if traced_4bit and not train.gradients_accumulate else 4
    parts = {
        **weights,
        "lora_state": lora * (4 + grads + 8 + (4 if train.reference_adapter else 0)) / GIB / max(1, train.shards),
        "activations": kept / GIB,
        **transient,
    }
    return MemoryEstimate(total_gib=sum(parts.values()), parts=parts, shape=shape.name, inputs=asdict(train))

