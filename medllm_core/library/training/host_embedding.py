"""Host-memory offload for a 4-bit base that does not fit the card otherwise (14B QLoRA under 12 GiB).

Two pieces, both frozen-weight or recomputable data, so the numbers a run produces do not change:

* ``HostEmbedding``: the input embedding table (152,064 × 5,120 bf16 = 1.45 GiB on Qwen2.5-14B) stays in host
  memory; each forward looks its ids up there and copies only the step's rows (tokens × hidden) to the GPU. The
  table is frozen under LoRA, so it needs no gradient. It is held as a plain attribute, neither a parameter nor a
  buffer, so nothing (the Trainer, accelerate, PEFT) moves it back to the GPU, and the model's ``device`` is still
  its first parameter's, a GPU one. Only for an untied embedding (a tied one is also the LM head).
* Offloaded activation checkpointing: transformers 5.x's ``activation_checkpointing_enable(offload=True)`` keeps
  each checkpointed layer's saved input in pinned host memory until its backward (TrainingArguments
  ``activation_checkpointing_kwargs={"offload": True}``), freeing layers × tokens × hidden × 2 bytes.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

HOST_EMBEDDING_NOTE = "input embedding table in host memory (its rows copied to the GPU each step)"


class HostEmbedding(torch.nn.Module):
    """A frozen ``nn.Embedding`` whose table lives in host memory; outputs land on ``device``."""

    def __init__(self, embedding: torch.nn.Embedding, device: torch.device):
        super().__init__()
        # a plain attribute: .to()/.cuda() on the model and accelerate's device placement never see it
        object.__setattr__(self, "_table", embedding.weight.detach().to("cpu"))
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = self._table.shape
        self.output_device = device

    @property
    def weight(self) -> torch.Tensor:
        """The table, for code that reads its shape or dtype (it is never trained)."""
        return self._table

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(input_ids.to("cpu"), self._table, self.padding_idx)
        return rows.to(self.output_device)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, in host memory"


def install_host_embedding(model: Any) -> bool:
    """Swap the model's input embedding for a ``HostEmbedding`` (False when the embedding is tied to the LM
    head or already swapped). Frees the table's GPU memory."""
    embedding = model.get_input_embeddings()
    if isinstance(embedding, HostEmbedding) or not isinstance(embedding, torch.nn.Embedding):
        return False
    head = model.get_output_embeddings()
    if head is not None and getattr(head, "weight", None) is embedding.weight:
        return False
    device = embedding.weight.device
    model.set_input_embeddings(HostEmbedding(embedding, device))
    del embedding
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return True


def checkpoint_offload_supported() -> bool:
    """transformers offloads checkpointed activations itself from 5.x on (``offload`` keyword)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    enable = getattr(PreTrainedModel, "activation_checkpointing_enable", None)
    return enable is not None and "offload" in inspect.signature(enable).parameters
