"""Padding-free forward passes with per-document attention, through transformers' supported hooks.

Two pieces:

* ``VARLEN_ATTENTION``: an attention function registered with transformers' ``AttentionInterface``
  (and a mask function with ``AttentionMaskInterface``) that runs PyTorch's own variable-length
  flash kernel (``torch.nn.attention.varlen.varlen_attn``) over sequences packed into one row,
  using the ``cu_seq_lens_q`` boundaries that TRL's padding-free collator already sends. Each
  document attends only to itself: the kernel never sees a cross-document pair.
* ``PaddingFreeBackbone``: forward hooks on the decoder backbone that turn a padded batch
  (what TRL's DPO, CPO/SimPO and KTO trainers build) into one packed row of real tokens with
  restarting position ids, and scatter the hidden states back to the padded layout for the
  trainer's own loss code. Pad tokens then cost no compute in any decoder layer.

Without CUDA (or without varlen), the same packed rows go through SDPA/eager, where transformers
builds a block-diagonal mask from the restarting position ids: slower, but still exact.
"""

from __future__ import annotations

import inspect
from typing import Any

VARLEN_ATTENTION = "medllm_varlen"


def varlen_kernel() -> Any | None:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def varlen_usable() -> tuple[bool, str]:
    """Whether the varlen flash kernel can run here, and why not."""
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device"
    if varlen_kernel() is None:
        return False, f"torch {torch.__version__} has no torch.nn.attention.varlen"
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"compute capability {major}.x < 8.0 (flash kernels need Ampere or newer)"
    return True, "torch.nn.attention.varlen flash kernel"


def _kernel_kwargs(kernel: Any) -> dict[str, Any]:
    params = inspect.signature(kernel).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    return causal


def varlen_attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                             dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention signature: q/k/v (batch, heads, seq, head_dim) in, (batch, seq, heads, head_dim) out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_seq_lens = kwargs.get("cu_seq_lens_q")
    if cu_seq_lens is None or query.shape[0] != 1:
        # Not a packed row (generation, evaluation of an unpacked batch): plain SDPA is exact there.
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    kernel = varlen_kernel()
    if kernel is None or not query.is_cuda:
        # Exact but slow: a dense block-diagonal causal mask (CPU, tests).
        mask = document_causal_mask(cu_seq_lens.to(query.device), query.shape[2])
        rest = {k: v for k, v in kwargs.items() if k != "is_causal"}
        return sdpa_attention_forward(module, query, key, value, mask[None, None], dropout=dropout,
                                      scaling=scaling, is_causal=False, **rest)
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, head_dim)
    if k.shape[1] != q.shape[1]:
        # grouped-query attention: the kernel of torch 2.11 takes equal head counts
        repeat = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(repeat, dim=1)
        v = v.repeat_interleave(repeat, dim=1)
    max_len = kwargs.get("max_length_q")
    if max_len is None:
        max_len = int((cu_seq_lens[1:] - cu_seq_lens[:-1]).max())
    cu = cu_seq_lens.to(device=q.device, dtype=_int32())
    out = kernel(q, k, v, cu, cu, int(max_len), int(max_len), scale=scaling, **_kernel_kwargs(kernel))
    if isinstance(out, tuple):
        out = out[0]
    return out.unsqueeze(0), None


def document_causal_mask(cu_seq_lens: Any, tokens: int) -> Any:
    """(tokens, tokens) boolean mask: causal, and only within the same document."""
    import torch

    doc = torch.zeros(tokens, dtype=torch.long, device=cu_seq_lens.device)
    doc[cu_seq_lens[1:-1].long()] = 1
    doc = doc.cumsum(0)
    index = torch.arange(tokens, device=cu_seq_lens.device)
    return (doc[:, None] == doc[None, :]) & (index[:, None] >= index[None, :])


def _int32() -> Any:
    import torch

    return torch.int32


def register_varlen_attention() -> str:
    """Register the attention and mask functions under ``VARLEN_ATTENTION`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    # Like flash attention: no dense mask; packed boundaries travel as cu_seq_lens.
    AttentionMaskInterface.register(VARLEN_ATTENTION, flash_attention_mask)
    return VARLEN_ATTENTION


def backbone_of(model: Any) -> Any:
    """The decoder stack (e.g. Qwen2Model) inside a causal-LM or a PEFT model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix)


class PaddingFreeBackbone:
    """Forward hooks on the backbone: a padded batch in, one packed row through the layers, padded hidden states out."""

    def __init__(self, model: Any):
        self.backbone = backbone_of(model)
        self._pending: list[tuple[Any, int, int] | None] = []
        self.packed_calls = 0
        self.real_tokens = 0
        self.padded_tokens = 0
        self._handles = [
            self.backbone.register_forward_pre_hook(self._before, with_kwargs=True),
            self.backbone.register_forward_hook(self._after, with_kwargs=True),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _before(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
        import torch

        input_ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if (input_ids is None or mask is None or mask.dim() != 2 or kwargs.get("past_key_values") is not None
                or kwargs.get("inputs_embeds") is not None):
            self._pending.append(None)
            return None
        batch, length = input_ids.shape
        lengths = mask.sum(dim=1, dtype=torch.int32)
        keep = mask.reshape(-1).nonzero(as_tuple=True)[0]
        positions = (mask.long().cumsum(dim=1) - 1).reshape(-1)[keep].unsqueeze(0)
        cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
        max_len = int(lengths.max())  # one host sync per forward, not per layer
        new_kwargs = {k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask", "position_ids")}
        new_kwargs.update(input_ids=input_ids.reshape(-1)[keep].unsqueeze(0), attention_mask=None,
                          position_ids=positions, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                          max_length_q=max_len, max_length_k=max_len)
        self._pending.append((keep, batch, length))
        self.packed_calls += 1
        self.real_tokens += int(keep.numel())
        self.padded_tokens += batch * length
        return (), new_kwargs

    def _after(self, module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        pending = self._pending.pop() if self._pending else None
        if pending is None:
            return None
        keep, batch, length = pending
        hidden = output.last_hidden_state[0]
        full = hidden.new_zeros(batch * length, hidden.shape[-1]).index_copy(0, keep, hidden)
        output.last_hidden_state = full.view(batch, length, hidden.shape[-1])
        return output


def disable_lora_input_upcast(model: Any) -> int:
    """Stop PEFT from copying every LoRA input to fp32; under bf16/fp16 autocast the LoRA matmuls run in
    the autocast dtype anyway, so the copy only costs memory and bandwidth. Returns the modules changed."""
    changed = 0
    for module in model.modules():
        if getattr(module, "cast_input_dtype_enabled", False):
            module.cast_input_dtype_enabled = False
            changed += 1
    return changed
