"""Built-in SimPO stage (TRL CPOTrainer, loss_type="simpo"), starting from the SFT model."""

from __future__ import annotations

from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.library.training.preference_data import check_preference_inputs
from medllm_core.library.training.settings import SimPOSettings
from plugins._preference_stage import preference_stage_spec


@hookimpl
def register_stages(register) -> None:
    register(preference_stage_spec("simpo", SimPOSettings, "SimPO from the SFT model (reference-free)",
                                   check_preference_inputs))
