"""One rank of a distributed training stage (started by ``accelerate launch``).

Rebuilds the run context from the runner's hand-off file, runs the stage,
and on rank 0 writes the result back for the runner.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from pathlib import Path

from medllm_core.kernel.atomic import write_bytes
from medllm_core.kernel.context import RunContext, StageContext
from medllm_core.kernel.distributed import is_main_process, rank, world_size
from medllm_core.kernel.events import EventLog
from medllm_core.kernel.graph import plan_stages
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.stages import StageResult


def main(handoff: str) -> int:
    state = pickle.loads(Path(handoff).read_bytes())
    registry = load_plugins()
    plan = plan_stages(state["profile"], registry)
    planned = next(p for p in plan if p.spec.name == state["stage"])
    events = EventLog(state["run"].events_path, secrets=state["secrets"], enabled=is_main_process())
    context = RunContext(profile=state["profile"], run=state["run"], events=events, hardware=state["hardware"],
                         precision=state["precision"], gate=state["gate"], plan=plan,
                         results=state["results"], resume=state["resume"],
                         fingerprints=state.get("fingerprints", {}))
    try:
        result = planned.spec.run(StageContext(context, planned))
    except Exception as exc:
        detail = events.mask(f"rank {rank()}: {type(exc).__name__}: {exc}")
        print(events.mask(traceback.format_exc()), file=sys.stderr)
        result = StageResult.failed(detail)
    # Per-rank evidence in the worker log that every rank really trained.
    print(f"[medllm] rank {rank()}/{world_size()} on {_device()}: stage {state['stage']} {result.status}, "
          f"steps={result.summary.get('steps')}", flush=True)
    if is_main_process():
        write_bytes(state["result_path"], pickle.dumps({"result": result, "decisions": context.decisions}))
    events.close()
    return 0 if result.ok else 1


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    except Exception:
        pass
    return "cpu"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
