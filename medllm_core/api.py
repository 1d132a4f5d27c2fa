"""The public API for medllm stage plugins: import from here, nothing else.

Everything a plugin needs to register a stage (the contract, artifacts, hooks,
errors, settings helpers) and to build a training method on the host's
training engine. Training helpers import torch and TRL, so they load lazily:
``from medllm_core.api import run_training_stage`` inside a function that runs
the stage keeps ``medllm-tui plugins`` and profile validation fast on a box
without the GPU stack.

A plugin's stage joins the graph through the artifacts it declares: a
``StageKind.TRAINING`` stage that ``consumes(ArtifactKind.ADAPTER, stage="sft")``
and ``produces`` an adapter is a training method, so the evaluation, the method
comparison, the completion check and the reports pick it up with no change to
any built-in module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medllm_core.kernel.artifacts import ArtifactKind, ArtifactRef, Consumes, consumes
from medllm_core.kernel.atomic import write_json, write_text
from medllm_core.kernel.context import PlannedStage, RunInfo, StageContext
from medllm_core.kernel.errors import ConfigError, DataError, Location, MedllmError
from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.graph import method_baseline, producers, training_methods
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.schema import SchemaError
from medllm_core.kernel.stages import LaunchPlan, StageKind, StageResult, StageSpec, StageStatus
from medllm_core.library.report_paths import ReportPaths
from medllm_core.library.training.settings import TrainingSettings, describe_training_plan

if TYPE_CHECKING:  # for type checkers and editors; at run time these load on first use (below)
    from medllm_core.library.training.engine import TrainingMethod, TrainingPaths, run_training_stage, skip, stage_seed
    from medllm_core.library.training.preference_data import check_preference_inputs, preference_train_rows
    from medllm_core.library.training.recovery import Attempt
    from medllm_core.library.training.settings_check import check_training_settings
    from medllm_core.library.training.trl_common import config_kwargs, load_base, load_sft_policy, lora_config

# name -> module: imported on first use (they pull torch / transformers / TRL).
_LAZY = {
    "TrainingMethod": "medllm_core.library.training.engine",
    "TrainingPaths": "medllm_core.library.training.engine",
    "run_training_stage": "medllm_core.library.training.engine",
    "skip": "medllm_core.library.training.engine",
    "stage_seed": "medllm_core.library.training.engine",
    "Attempt": "medllm_core.library.training.recovery",
    "config_kwargs": "medllm_core.library.training.trl_common",
    "load_sft_policy": "medllm_core.library.training.trl_common",
    "load_base": "medllm_core.library.training.trl_common",
    "lora_config": "medllm_core.library.training.trl_common",
    "preference_train_rows": "medllm_core.library.training.preference_data",
    "check_preference_inputs": "medllm_core.library.training.preference_data",
    "check_training_settings": "medllm_core.library.training.settings_check",
}

__all__ = [
    "ArtifactKind", "ArtifactRef", "Attempt", "ConfigError", "Consumes", "DataError", "GateVerdict", "Location",
    "LaunchPlan", "MedllmError", "PlannedStage", "ReportPaths", "RunInfo", "SchemaError", "StageContext", "StageKind",
    "StageResult",
    "StageSpec", "StageStatus", "TrainingMethod", "TrainingPaths", "TrainingSettings", "check_preference_inputs",
    "check_training_settings", "config_kwargs", "consumes", "describe_training_plan", "hookimpl", "load_base",
    "load_sft_policy", "lora_config", "method_baseline", "preference_train_rows", "producers", "run_training_stage",
    "skip", "stage_seed", "training_methods", "write_json", "write_text",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medllm_core.api' has no attribute '{name}'")
