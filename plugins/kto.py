"""Built-in KTO stage (TRL KTOTrainer), starting from the SFT model."""

from __future__ import annotations

from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.library.training.preference_data import check_kto_inputs
from medllm_core.library.training.settings import KTOSettings
from plugins._preference_stage import preference_stage_spec


@hookimpl
def register_stages(register) -> None:
    register(preference_stage_spec(
        "kto", KTOSettings,
        "KTO from the SFT model (reference = SFT model; rows derived from preference pairs unless [data.kto] is given)",
        check_kto_inputs, data=("preference", "kto"),
    ))
