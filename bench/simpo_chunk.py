"""Measure what one chunk of Liger's fused SimPO loss holds on the GPU, per logit, to calibrate the estimator's
``FUSED_CHUNK_BYTES_PER_LOGIT`` (memory_estimate.py).

The chunk is one pair (chosen + rejected) padded to a common length T: its logits are 2 × T × vocab. The
script runs the loss forward and backward (compiled, as simpo_fused.py runs it on CUDA) on random hidden states
of the Qwen2.5 shape and reports the peak allocated above what the inputs and the head weight already hold.
One process, several lengths, each measured twice (the first run of a length also compiles).

    python -m bench.simpo_chunk --out bench-results/simpo-chunk.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GIB = 2**30


def measure(length: int, hidden: int, vocab: int) -> dict[str, float]:
    import torch
    from liger_kernel.chunked_loss import LigerFusedLinearSimPOLoss

    torch.manual_seed(0)
    weight = torch.randn(vocab, hidden, device="cuda", dtype=torch.bfloat16) * 0.02
    x = (torch.randn(2, length, hidden, device="cuda", dtype=torch.bfloat16)).requires_grad_(True)
    labels = torch.randint(0, vocab, (2, length), device="cuda")
    labels[:, : length // 4] = -100  # the prompt part is masked, as in a real pair
    loss_fn = LigerFusedLinearSimPOLoss(beta=2.0, gamma=0.5, compute_nll_loss=False, compiled=True)
    runs = []
    for _ in range(2):
        x.grad = None
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        loss, _aux = loss_fn(weight, x, labels, None)
        loss.backward()
        torch.cuda.synchronize()
        runs.append(torch.cuda.max_memory_allocated() - base)
    logits = 2 * length * vocab
    held = min(runs)
    return {"length": length, "peak_above_inputs_gib": round(held / GIB, 3),
            "bytes_per_logit": round(held / logits, 2), "logits": logits}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="512,1024,2048")
    ap.add_argument("--hidden", type=int, default=3584)  # Qwen2.5-7B
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    rows = [measure(int(t), args.hidden, args.vocab) for t in args.lengths.split(",")]
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.rename(out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
