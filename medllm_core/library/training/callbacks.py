"""A TrainerCallback that turns trainer logs into run events.

Loss points use ``state.global_step`` so curves stay continuous across
resumes; a STOP file in the run folder ends training gracefully at the next
step boundary with a checkpoint saved.
"""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback

from medllm_core.kernel.context import StageContext

GIB = 1024**3


def memory_sample() -> tuple[str, float | None, float | None]:
    """(device, used GB, total GB) for the current process; CPU reports RSS."""
    try:
        import torch

        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            used = torch.cuda.memory_allocated(index) / GIB
            total = torch.cuda.get_device_properties(index).total_memory / GIB
            return f"cuda:{index}", round(used, 3), round(total, 2)
    except Exception:
        pass
    try:
        import resource

        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return "cpu", round(rss_kb / 1024**2, 3), None
    except Exception:
        return "cpu", None, None


def peak_memory_gb() -> dict[str, Any]:
    """This stage's peaks: GPU counters are reset when a training stage starts, host RSS is sampled during it."""
    from medllm_core.library.training.host_memory import active_stage_peak_gb, process_peak_rss_gb

    host = active_stage_peak_gb()
    try:
        import torch

        if torch.cuda.is_available():
            return {"device": "cuda", "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / GIB, 3),
                    "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / GIB, 3),
                    "peak_host_rss_gb": host, "scope": "stage"}
    except Exception:
        pass
    return {"device": "cpu", "peak_rss_gb": host if host is not None else process_peak_rss_gb(),
            "process_peak_rss_gb": process_peak_rss_gb(), "scope": "stage" if host is not None else "process"}


class EventCallback(TrainerCallback):
    def __init__(self, ctx: StageContext, memory_every_s: float = 5.0):
        self.ctx = ctx
        self.memory_every_s = memory_every_s
        self._last_memory = 0.0
        self._started = time.monotonic()
        self._start_step = 0
        self.loss_points: list[tuple[int, float]] = []
        self.stopped_by_request = False
        self.first_step_end: float | None = None  # monotonic time the invocation's first optimizer step ended
        self.last_step_end: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.monotonic()
        self._start_step = state.global_step
        self.ctx.progress(state.global_step, state.max_steps)

    def step_timing(self, global_step: int, tokens: int | None) -> dict[str, float | None]:
        """How long the first optimizer step took, and tokens/s over the steps after it (this invocation)."""
        if self.first_step_end is None:
            return {"first_step_s": None, "tokens_per_second_after_first_step": None}
        first = round(self.first_step_end - self._started, 2)
        ran = global_step - self._start_step
        span = (self.last_step_end or self.first_step_end) - self.first_step_end
        after = None
        # the stage's token count covers every step only when this invocation ran them all: after a resume the
        # trainer's counters restart, so no rate is claimed then
        if tokens and self._start_step == 0 and ran > 1 and span > 0:
            after = round(tokens / global_step * (ran - 1) / span, 1)
        return {"first_step_s": first, "tokens_per_second_after_first_step": after}

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self._start_step
        self.last_step_end = time.monotonic()
        if self.first_step_end is None:
            self.first_step_end = self.last_step_end
        elapsed = time.monotonic() - self._started
        eta = (state.max_steps - state.global_step) * elapsed / done if done > 0 else None
        self.ctx.progress(state.global_step, state.max_steps, round(eta, 1) if eta is not None else None)
        now = time.monotonic()
        if now - self._last_memory >= self.memory_every_s:
            self._last_memory = now
            self.ctx.memory(*memory_sample())
        # A stop on (or past) the last step changes nothing: the Trainer ends here anyway and the
        # stage must finish like a clean run (final checkpoint, "trained"), not as an interrupted one.
        if self._stop_agreed() and state.global_step < state.max_steps:
            self.stopped_by_request = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def _stop_agreed(self) -> bool:
        """Every rank must stop at the same step, or the others hang in the next collective."""
        requested = self.ctx.stop_requested()
        try:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
                flag = torch.tensor([int(requested)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                return bool(flag.item())
        except ImportError:
            pass
        return requested

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        value = float(logs["loss"])
        self.loss_points.append((state.global_step, value))
        self.ctx.loss(state.global_step, value if math.isfinite(value) else float("nan"))
