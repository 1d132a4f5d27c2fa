"""Shared pieces of the throughput benchmark: the random-weight model, the synthetic data with the
reference length distribution, the meters, and the FLOP count behind MFU.

MFU (model FLOPs utilisation) = model FLOPs per second / the card's dense bf16 peak (989 TFLOP/s on
H100/H200 SXM). Model FLOPs per trained token, for LoRA on a frozen base (recompute not counted):
  forward 2·N_lin + backward input-gradients 2·N_lin (frozen weights get no weight-gradient)
  + LoRA 6·N_lora + attention 12·L·d·c
where N_lin = parameters of all linear layers incl. the LM head (embedding lookups do no matmul),
L = layers, d = heads·head_dim, c = mean number of keys a token attends to (causal, within its own
document: Σ n(n+1)/2 / Σ n). A no-grad reference forward (DPO, KTO; KTO's KL batch too) adds
2·N_lin + 4·L·d·c per token it processes. ``mfu_4N`` (4·N_total per token) is also reported, to compare
with ../shared/bench.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from medllm_core.library.memory_estimate import QWEN2_5, ModelShape

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
TINY = ModelShape("tiny", 1024, 64, 128, 2, 4, 2)
SHAPES = {**QWEN2_5, "tiny": TINY}


def peak_flops(device_name: str) -> float:
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), float("nan"))


def build_model(shape: ModelShape, attn: str, cuda: bool, seed: int = 0) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                      num_key_value_heads=shape.kv_heads, tie_word_embeddings=shape.tie_embeddings,
                      max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)
    torch.manual_seed(seed)
    with torch.device("cuda" if cuda else "cpu"):
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16 if cuda else torch.float32,
                                                attn_implementation=attn)


def make_tokenizer(vocab: int) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t1", eos_token="t2")


def lognormal_lengths(generator: Any, n: int, median: float, lo: int, hi: int) -> list[int]:
    import torch

    return torch.exp(torch.randn(n, generator=generator) * 0.6 + math.log(median)).clamp(lo, hi).long().tolist()


def sft_rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[dict]:
    """Pre-tokenised rows, lengths lognormal with median ~600 tokens, clipped to [64, seq]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = lognormal_lengths(g, n, 600, 64, seq)
    return [{"input_ids": torch.randint(10, vocab - 10, (length,), generator=g).tolist()} for length in lengths]


def preference_rows(method: str, n: int, seq: int, vocab: int, seed: int = 0) -> list[dict]:
    """Prompt ~300 tokens, completions ~400 (lognormal), as text of word tokens ("t17 t9 ...")."""
    import torch

    g = torch.Generator().manual_seed(seed)
    half = seq // 2
    prompt = lognormal_lengths(g, n, 300, 16, half)
    chosen = lognormal_lengths(g, n, 400, 16, half - 8)
    rejected = lognormal_lengths(g, n, 400, 16, half - 8)

    def text(length: int) -> str:
        return " ".join(f"t{int(i)}" for i in torch.randint(10, vocab - 10, (length,), generator=g))

    if method == "kto":
        return [{"prompt": text(prompt[i]), "completion": text(chosen[i]), "label": bool(i % 2)} for i in range(n)]
    return [{"prompt": text(prompt[i]), "chosen": text(chosen[i]), "rejected": text(rejected[i])} for i in range(n)]


def mean_context(lengths: list[int]) -> float:
    """Mean keys attended per token under a causal mask within each document."""
    total = sum(lengths)
    return sum(n * (n + 1) / 2 for n in lengths) / total if total else 0.0


def flops_per_token(shape: ModelShape, lora_rank: int, context: float, reference_forwards: float = 0.0) -> float:
    d = shape.hidden
    attention_fwd = 4 * shape.layers * d * context
    train = 4 * shape.linear_params + 6 * shape.lora_params(lora_rank) + 3 * attention_fwd
    return train + reference_forwards * (2 * shape.linear_params + attention_fwd)


class StepMeter:
    """Step wall times (synchronised), the timed window after ``warm`` steps, tokens seen in it."""

    def __init__(self, warm: int):
        self.warm = warm
        self.step_times: list[float] = []
        self.t0: float | None = None
        self.t1: float | None = None
        self._start = 0.0
        self.tokens = 0
        self.max_forward_tokens = 0
        self.lengths: list[int] = []

    @staticmethod
    def sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    @property
    def timing(self) -> bool:
        return self.t0 is not None and self.t1 is None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                meter.sync()
                meter._start = time.perf_counter()
                if state.global_step == meter.warm and meter.t0 is None:
                    meter.t0 = meter._start

            def on_step_end(self, args, state, control, **kwargs):
                meter.sync()
                if meter.timing:
                    meter.step_times.append(time.perf_counter() - meter._start)

            def on_train_end(self, args, state, control, **kwargs):
                meter.sync()
                meter.t1 = time.perf_counter()

        return _Callback()

    def count_hook(self, policy_only: bool) -> Any:
        """Forward pre-hook on the top model: real (non-pad) tokens, and document lengths for attention FLOPs."""
        import torch

        meter = self

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None or (policy_only and not torch.is_grad_enabled()):
                return
            mask = kwargs.get("attention_mask")
            real = int(mask.sum()) if mask is not None and mask.dim() == 2 else int(ids.numel())
            meter.max_forward_tokens = max(meter.max_forward_tokens, real)
            if not meter.timing:
                return
            meter.tokens += real
            cu = kwargs.get("cu_seq_lens_q")
            if cu is not None:
                meter.lengths += (cu[1:] - cu[:-1]).tolist()
            elif mask is not None and mask.dim() == 2:
                meter.lengths += mask.sum(dim=1).tolist()
            else:
                meter.lengths += [ids.shape[-1]] * ids.shape[0]

        return hook


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def emit(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)
