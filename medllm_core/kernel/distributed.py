"""Multi-GPU training stages through ``accelerate launch`` (DDP, or FSDP2 when the weights must be sharded).

The runner stays one process. A training stage of a profile that asks for
more than one GPU (and has them) is handed to ``accelerate launch``, which
starts one worker per GPU (``medllm_core.kernel.worker``). Every rank
trains; only rank 0 writes events, reports and the final checkpoint, and it
hands the stage result back through a file in the run folder. A stage's
``launch_plan`` says how to start the ranks: the built-in training stages
(library/training/launch.py) resolve ``hardware.sharding`` and, for FSDP, write
the accelerate config into the run folder next to the worker log, passed with
``--config_file``.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medllm_core.kernel.event_records import DecisionEvent
from medllm_core.kernel.report_paths import WORKERS
from medllm_core.kernel.stages import LaunchPlan, StageKind, StageResult

if TYPE_CHECKING:
    from medllm_core.kernel.context import PlannedStage, RunContext

WORKER_ENV = "MEDLLM_DISTRIBUTED_WORKER"
SHARDS_ENV = "MEDLLM_FSDP_SHARDS"  # set for the workers of a sharded stage: the planner estimates per GPU
MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def processes_for(context: RunContext, planned: PlannedStage) -> int:
    """How many processes to launch for this stage (1 = run in-process)."""
    if os.environ.get(WORKER_ENV) or StageKind(planned.spec.kind) != StageKind.TRAINING:
        return 1
    if context.hardware.backend != "cuda":
        return 1
    return max(1, min(context.profile.hardware.gpu_count, context.hardware.gpu_count))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def handoff_paths(context: RunContext, stage: str) -> tuple[Path, Path, Path]:
    folder = context.run.run_dir / WORKERS
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stage}.handoff.pkl", folder / f"{stage}.result.pkl", folder / f"{stage}.log"


def fsdp_shards() -> int:
    """In a worker: how many GPUs share the weights (1 unless the stage runs under FSDP)."""
    return max(1, int(os.environ.get(SHARDS_ENV, "1") or 1))


def launch_command(processes: int, mixed_precision: str, handoff: Path, config_file: Path | None = None,
                   cpu: bool = False) -> list[str]:
    config = ["--config_file", str(config_file)] if config_file is not None else []
    # cpu: ranks on CPU over gloo, how CI runs this path on a box without GPUs. accelerate's --cpu would start a
    # single process; --multi_gpu starts them through torchrun, and TrainingArguments(use_cpu=True) in every rank
    # makes accelerate pick MULTI_CPU with gloo.
    return [
        sys.executable, "-m", "accelerate.commands.launch", *config, *(["--multi_gpu"] if cpu else []),
        "--num_processes", str(processes),
        "--num_machines", "1",
        "--mixed_precision", mixed_precision,
        "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "medllm_core.kernel.worker", str(handoff),
    ]


def run_stage_distributed(context: RunContext, planned: PlannedStage, processes: int) -> StageResult:
    from medllm_core.kernel.atomic import write_bytes

    name = planned.spec.name
    handoff, result_path, log_path = handoff_paths(context, name)
    result_path.unlink(missing_ok=True)
    state: dict[str, Any] = {
        "profile": context.profile,
        "run": context.run,
        "hardware": context.hardware,
        "precision": context.precision,
        "gate": context.gate,
        "results": context.results,
        "fingerprints": context.fingerprints,
        "resume": context.resume,
        "stage": name,
        "secrets": context.events.secrets,
        "result_path": str(result_path),
    }
    write_bytes(handoff, pickle.dumps(state))
    from medllm_core.kernel.context import StageContext

    spec = planned.spec
    launch = spec.launch_plan(StageContext(context, planned), processes) if spec.launch_plan else LaunchPlan()
    if launch.refuse:
        return StageResult.failed(launch.refuse)
    config_file = Path(launch.config_file) if launch.config_file else None
    command = launch_command(processes, MIXED_PRECISION[context.precision.dtype], handoff, config_file,
                             cpu=context.hardware.backend != "cuda")
    if launch.summary:
        context.events.write(DecisionEvent(stage=name, kind="sharding", summary=launch.summary,
                                           facts={**launch.facts, "mode": launch.mode,
                                                  "accelerate_config": launch.config_file}))
    how = "FSDP2, weights sharded" if launch.mode == "fsdp" else launch.mode.upper()
    context.events.write(DecisionEvent(stage=name, kind="distributed_launch",
                                       summary=f"accelerate launch: {processes} processes ({how}), mixed precision "
                                               f"{MIXED_PRECISION[context.precision.dtype]}",
                                       facts={"command": command, "log": str(log_path)}))
    env = {**os.environ, WORKER_ENV: "1", SHARDS_ENV: str(launch.shards)}
    with open(log_path, "ab") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if not result_path.exists():
        return StageResult.failed(f"distributed training exited with code {completed.returncode} before "
                                  f"reporting a result; see {log_path}")
    payload = pickle.loads(result_path.read_bytes())
    context.decisions.extend(payload["decisions"])
    return payload["result"]
