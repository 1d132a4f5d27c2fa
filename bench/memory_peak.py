"""Where the peak goes: the allocations alive at the moment of peak allocated memory, grouped by the code that made
them. The estimator (medllm_core/library/memory_estimate.py) is checked against the peak's total; this shows its
parts, so a miss can be traced to the term that causes it instead of tuned away.

    python -m bench.worker ... --memory-profile OUT.json

Uses torch's allocator history (``torch.cuda.memory._record_memory_history``, Python stacks only) from after the
model loads (what was allocated before, the model's weights and LoRA parameters, is reported as one untraced sum),
then replays the alloc/free trace: pass one finds the peak, pass two stops there and groups what is alive by its
allocation site.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

GIB = 1024**3
MAX_ENTRIES = 3_000_000
# frames that only say "through torch/transformers plumbing": skipped when naming an allocation site
PLUMBING = ("torch/nn/modules/module.py", "torch/utils/_contextlib.py", "torch/autograd/function.py",
            "torch/_compile.py", "torch/_dynamo/", "accelerate/utils/operations.py", "transformers/utils/generic.py",
            "torch/amp/autocast_mode.py", "torch/_tensor.py", "torch/utils/hooks.py", "<frozen", "functools.py")


def start() -> int:
    """Begin recording; returns the bytes already allocated (they have no trace and are reported as such)."""
    import torch

    base = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES, stacks="python")
    return base


def site(frames: list[dict[str, Any]], depth: int = 2) -> str:
    """The innermost ``depth`` frames outside the plumbing, as ``package/file.py:line func``."""
    named = []
    for frame in frames:
        name = frame.get("filename", "")
        if any(p in name for p in PLUMBING):
            continue
        short = "/".join(name.split("/")[-2:])
        named.append(f"{short}:{frame.get('line')} {frame.get('name')}")
        if len(named) == depth:
            break
    return " < ".join(named) or "(no Python frame: autograd engine)"


def replay(events: list[dict[str, Any]], base: int) -> tuple[int, int, dict[int, dict[str, Any]]]:
    """(peak bytes, index of the event that reached it, blocks alive there)."""
    current, peak, peak_at = base, base, -1
    for i, event in enumerate(events):
        if event["action"] == "alloc":
            current += event["size"]
            if current > peak:
                peak, peak_at = current, i
        elif event["action"] == "free_completed":
            current -= event["size"]
    alive: dict[int, dict[str, Any]] = {}
    for event in events[: peak_at + 1]:
        if event["action"] == "alloc":
            alive[event["addr"]] = event
        elif event["action"] == "free_completed":
            alive.pop(event["addr"], None)
    return peak, peak_at, alive


def summarize(out: Path, base: int, top: int = 30) -> dict[str, Any]:
    import torch

    snapshot = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    events = snapshot["device_traces"][0] if snapshot.get("device_traces") else []
    peak, peak_at, alive = replay(events, base)
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event in alive.values():
        group = groups[site(event.get("frames", []))]
        group[0] += event["size"]
        group[1] += 1
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])
    summary = {
        "peak_gib": round(peak / GIB, 3),
        "torch_max_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
        "untraced_before_recording_gib": round(base / GIB, 3),
        "events": len(events), "trace_truncated": len(events) >= MAX_ENTRIES,
        "peak_reached_by": site(events[peak_at].get("frames", []), depth=4) if peak_at >= 0 else "",
        "groups": [{"site": name, "gib": round(size / GIB, 3), "blocks": count}
                   for name, (size, count) in ranked[:top]],
        "rest_gib": round(sum(size for _, (size, _) in ranked[top:]) / GIB, 3),
    }
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    tmp.replace(out)
    return summary
