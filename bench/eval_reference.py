"""The evaluation path before the one-base-load engine (commit 26ba3be), kept as the eval bench's
reference configuration: each variant reloads the base weights from disk and merges its adapter,
then generates in fixed batches of 8 in file order, stopping only at the tokenizer's EOS."""

from __future__ import annotations

from typing import Any


def load_merged(model_dir: str, adapter: str | None, dtype: Any, cuda: bool) -> Any:
    from medllm_core.library.training.model_loading import load_model

    model = load_model(model_dir, dtype)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.to("cuda") if cuda else model


def reference_generate(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *,
                       max_new_tokens: int, batch_size: int = 8) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    replies: list[str] = []
    model.eval()
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start:start + batch_size]
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        replies.extend(tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return replies
