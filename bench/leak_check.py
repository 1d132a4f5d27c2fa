"""Cross-document leakage check for the attention medllm trains with.

Packs documents into one row (as TRL's padding-free collator and medllm's PaddingFreeBackbone do) and
compares each document's logits with the document run alone. A control run packs the same row with
plain causal attention (no document boundaries): it must differ, proving the check can see a leak.

    python -m bench.leak_check            # CUDA: the varlen kernel; CPU: the dense block-diagonal fallback
"""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from medllm_core.library.training.padding_free import VARLEN_ATTENTION, PaddingFreeBackbone, register_varlen_attention


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def main() -> dict:
    register_varlen_attention()
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    cfg = Qwen2Config(vocab_size=4096, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=VARLEN_ATTENTION).eval()
    lengths = [300, 500, 137]
    docs = [torch.randint(0, 4096, (1, n), device=device) for n in lengths]
    packed = torch.cat(docs, 1)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0).to(device)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    out: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": str(dtype),
                 "attention": VARLEN_ATTENTION}
    with torch.no_grad():
        alone = [model(input_ids=d).logits[0] for d in docs]
        # 1. SFT: a packed row with the boundaries TRL's collator sends
        row = model(input_ids=packed, position_ids=positions, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                    max_length_q=max(lengths), max_length_k=max(lengths)).logits[0]
        out["packed_row_vs_alone"] = max(relative(p, a) for p, a in zip(row.split(lengths), alone, strict=False))
        # 2. Preference: a padded batch through the padding-free backbone hook
        batch = torch.full((3, max(lengths)), 1, device=device)
        mask = torch.zeros_like(batch)
        for i, d in enumerate(docs):
            batch[i, : d.shape[1]] = d[0]
            mask[i, : d.shape[1]] = 1
        hook = PaddingFreeBackbone(model)
        padded = model(input_ids=batch, attention_mask=mask).logits
        hook.remove()
        out["padding_free_batch_vs_alone"] = max(relative(padded[i, : n], a)
                                                 for i, (n, a) in enumerate(zip(lengths, alone, strict=False)))
        # control: the same packed row without boundaries attends across documents
        control = model(input_ids=packed, position_ids=positions).logits[0]
        pieces = control.split(lengths)
        out["control_no_boundaries_vs_alone"] = max(relative(p, a) for p, a in zip(pieces, alone, strict=True))
    tolerance = 1e-2 if cuda else 1e-5
    out["tolerance"] = tolerance
    out["separate"] = out["packed_row_vs_alone"] < tolerance and out["padding_free_batch_vs_alone"] < tolerance
    out["control_detects_leak"] = out["control_no_boundaries_vs_alone"] > 10 * tolerance
    print("LEAK " + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
