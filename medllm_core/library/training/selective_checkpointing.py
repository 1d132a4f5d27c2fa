"""Selective activation checkpointing: the first N decoder layers keep their activations, the rest are
checkpointed (the planner's choice, ``SpeedPlan.uncheckpointed_layers``), and the selection survives every later
switch of checkpointing on the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def selective_checkpointing_callback(uncheckpointed_layers: int) -> Any:
    """A TrainerCallback that turns checkpointing off again for the first N decoder layers once the
    Trainer has turned it on for all of them (transformers' per-layer ``gradient_checkpointing`` flag).

    TRL's DPO and KTO trainers run their reference forward inside ``disable_gradient_checkpointing``, which turns
    checkpointing off and back on for every layer: without more, the selection held for the first step only
    (measured on the CPU: layer 0 checkpointed again from step 2). So every later enable call on the model is
    followed by turning the first N layers off again."""
    from transformers import TrainerCallback

    from medllm_core.library.training.padding_free import backbone_of

    class SelectiveCheckpointing(TrainerCallback):
        def __init__(self) -> None:
            self.applied = False

        def _apply(self, model: Any) -> None:
            if self.applied or model is None:
                return
            unwrapped = _unwrap(model)
            kept = list(backbone_of(unwrapped).layers)[:uncheckpointed_layers]

            def keep_unchecked() -> None:
                for layer in kept:
                    layer.gradient_checkpointing = False

            for owner in _checkpointing_owners(unwrapped):
                _after_each_set(owner, keep_unchecked)
            keep_unchecked()
            self.applied = True

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._apply(model)

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            self._apply(model)

    return SelectiveCheckpointing()


def _checkpointing_owners(model: Any) -> list[Any]:
    """The transformers models inside (a PEFT wrapper holds one): each sets its layers' flags itself."""
    return [m for m in model.modules() if callable(getattr(m, "_set_gradient_checkpointing", None))]


def _after_each_set(owner: Any, then: Callable[[], None]) -> None:
    original = owner._set_gradient_checkpointing

    def set_then_keep_selection(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        then()
        return result

    owner._set_gradient_checkpointing = set_then_keep_selection  # an instance attribute: this model only


def _unwrap(model: Any) -> Any:
    while hasattr(model, "module") and not hasattr(model, "get_base_model"):
        model = model.module
    return model
