"""SimPO with a fused LM head: TRL's CPOTrainer materialises the whole padded logits (batch × length × vocab)
and their log-softmax; here the model runs only its decoder backbone and Liger's chunked SimPO loss
(``LigerFusedLinearSimPOLoss``) multiplies hidden states by ``lm_head.weight`` one chunk of rows at a time,
computing the gradients in the same pass, so the full logits never exist.

Wired through CPOTrainer's extension points (``concatenated_forward`` and ``get_batch_loss_metrics``); the
loss, rewards, accuracies, margins and log-probs are TRL's definitions (SimPO: per-token averaged log-probs,
margin gamma, label smoothing), so the metrics our callbacks read keep their meaning. The padding-free
hooks sit on the backbone, so they still pack the rows here.
"""

from __future__ import annotations

import warnings
from typing import Any

SIMPO_LOSS_DECISION = "fused LM head + SimPO loss (Liger chunked)"


def fused_simpo_unusable(model: Any) -> str | None:
    """Why the fused loss cannot reproduce the model's own logits (None when it can)."""
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        return "the model has no output embedding (lm_head) weight"
    if hasattr(head, "base_layer") or hasattr(head, "lora_A"):
        return "LoRA adapts the lm_head itself (the fused loss takes a plain weight)"
    config = getattr(model, "config", None)
    for key in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, key, None):
            return f"the model's config sets {key} (its logits are not hidden @ lm_head.weight)"
    return None


def fused_simpo_trainer_class() -> type:
    """CPOTrainer subclass (built on first use: TRL and torch load only when a stage trains)."""
    import torch
    from liger_kernel.chunked_loss import LigerFusedLinearSimPOLoss
    from trl.experimental.cpo import CPOTrainer

    from medllm_core.library.training.padding_free import backbone_of

    class FusedSimPOTrainer(CPOTrainer):
        _unfused_reason: str | None = None
        _checked = False

        def _fused(self, model: Any) -> bool:
            if not self._checked:
                self._checked = True
                self._unfused_reason = fused_simpo_unusable(self.accelerator.unwrap_model(model))
                if self._unfused_reason:
                    warnings.warn(f"SimPO runs TRL's unfused loss: {self._unfused_reason}", stacklevel=2)
            return self._unfused_reason is None

        def _fused_loss(self) -> Any:
            # torch.compile of the chunk step pays off on CUDA only; on CPU it would only add compile time
            return LigerFusedLinearSimPOLoss(beta=self.beta, gamma=self.simpo_gamma,
                                             label_smoothing=self.label_smoothing, compute_nll_loss=False,
                                             compiled=self.accelerator.device.type == "cuda")

        def concatenated_forward(self, model: Any, batch: dict[str, Any]) -> tuple:
            if not self._fused(model):
                return super().concatenated_forward(model, batch)
            concatenated = self.concatenated_inputs(batch, is_encoder_decoder=self.is_encoder_decoder,
                                                    padding_value=self.pad_token_id, device=self.accelerator.device)
            len_chosen = batch["chosen_labels"].shape[0]
            unwrapped = self.accelerator.unwrap_model(model)
            # accelerate applies mixed-precision autocast by wrapping the prepared model's forward; calling the
            # backbone directly bypasses that wrapper, so it is entered here. Without it the fp32 LoRA weights
            # meet bf16 activations (PEFT's input upcast is off on the fast path) and the LoRA matmul fails with
            # "expected mat1 and mat2 to have the same dtype, BFloat16 != float" (measured on an H200).
            with self.accelerator.autocast():
                hidden = backbone_of(unwrapped)(input_ids=concatenated["concatenated_input_ids"],
                                                attention_mask=concatenated["concatenated_attention_mask"],
                                                use_cache=False).last_hidden_state
            head = unwrapped.get_output_embeddings()
            # tokens < n predict n, as in TRL's get_batch_logps
            labels = concatenated["concatenated_labels"][:, 1:]
            # Liger's chunked matmul runs outside autocast: the hidden states must be in the head's dtype
            hidden = hidden[:, :-1].to(head.weight.dtype).contiguous()
            loss, aux = self._fused_loss()(head.weight, hidden, labels, head.bias)
            chosen_logps, rejected_logps, chosen_logits_mean, rejected_logits_mean, _nll = aux[:5]
            return loss, chosen_logps, rejected_logps, chosen_logits_mean, rejected_logits_mean, len_chosen

        def get_batch_loss_metrics(self, model: Any, batch: dict[str, Any], train_eval: str = "train") -> tuple:
            if not self._fused(model):
                return super().get_batch_loss_metrics(model, batch, train_eval)
            loss, chosen_logps, rejected_logps, chosen_logits, rejected_logits, _ = self.concatenated_forward(
                model, batch)
            chosen_rewards = self.beta * chosen_logps.detach()
            rejected_rewards = self.beta * rejected_logps.detach()
            accuracies = (chosen_rewards > rejected_rewards).float()
            gather = self.accelerator.gather_for_metrics
            prefix = "eval_" if train_eval == "eval" else ""
            metrics = {
                f"{prefix}rewards/chosen": gather(chosen_rewards).mean().item(),
                f"{prefix}rewards/rejected": gather(rejected_rewards).mean().item(),
                f"{prefix}rewards/accuracies": gather(accuracies).mean().item(),
                f"{prefix}rewards/margins": gather(chosen_rewards - rejected_rewards).mean().item(),
                f"{prefix}logps/rejected": gather(rejected_logps.detach()).mean().item(),
                f"{prefix}logps/chosen": gather(chosen_logps.detach()).mean().item(),
                # Liger's mean over the shifted (scored) positions; TRL's includes the last position too
                f"{prefix}logits/rejected": gather(torch.as_tensor(rejected_logits).detach().mean()).mean().item(),
                f"{prefix}logits/chosen": gather(torch.as_tensor(chosen_logits).detach().mean()).mean().item(),
                f"{prefix}nll_loss": 0.0,  # cpo_alpha = 0: SimPO has no NLL term
            }
            return loss, metrics

    return FusedSimPOTrainer
