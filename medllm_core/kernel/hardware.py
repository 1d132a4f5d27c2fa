"""Hardware probe and precision policy.

Read through torch first (it is what training uses), then NVML for live free
memory. Every probe failure becomes a note, never a crash: a box with a broken
driver must still get a day-1 summary that says so.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

GIB = 1024**3


def cpu_model() -> str:
    """The CPU's model name: platform.processor() is empty on most Linux boxes, /proc/cpuinfo has it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@dataclass
class GpuInfo:
    index: int
    name: str
    total_gb: float
    capability: tuple[int, int]
    free_gb: float | None = None


@dataclass
class HardwareInfo:
    backend: str  # "cuda" | "cpu"
    gpus: list[GpuInfo] = field(default_factory=list)
    torch_version: str | None = None
    cuda_version: str | None = None
    source: str = "none"  # what the GPU facts came from
    cpu: str = field(default_factory=lambda: cpu_model())
    cpu_count: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def min_gpu_memory_gb(self) -> float:
        return min((g.total_gb for g in self.gpus), default=0.0)

    def describe(self) -> str:
        if not self.gpus:
            return f"CPU ({self.cpu_count or '?'} cores)"
        names = ", ".join(f"{g.name} {g.total_gb:.0f} GB (sm_{g.capability[0]}{g.capability[1]})" for g in self.gpus)
        return f"{self.gpu_count}× GPU: {names}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["description"] = self.describe()
        return data


def probe_hardware(device: str = "auto") -> HardwareInfo:
    import os

    info = HardwareInfo(backend="cpu", cpu_count=os.cpu_count())
    try:
        import torch
    except Exception as exc:  # torch missing or broken: report, don't crash
        info.notes.append(f"torch unavailable: {exc}")
        return info
    info.torch_version = torch.__version__
    info.cuda_version = getattr(torch.version, "cuda", None)
    if device == "cpu":
        info.notes.append("profile forces device=cpu")
        return info
    try:
        available = torch.cuda.is_available()
    except Exception as exc:
        info.notes.append(f"torch.cuda.is_available() failed: {exc}")
        available = False
    if not available:
        if device == "cuda":
            info.notes.append("profile asks for device=cuda but CUDA is not available")
        return info
    try:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info.gpus.append(
                GpuInfo(index, props.name, round(props.total_memory / GIB, 2), (props.major, props.minor))
            )
        info.backend, info.source = "cuda", "torch"
    except Exception as exc:
        info.notes.append(f"reading CUDA device properties failed: {exc}")
        return info
    _add_free_memory(info)
    return info


def _add_free_memory(info: HardwareInfo) -> None:
    try:
        import torch

        for gpu in info.gpus:
            free, _total = torch.cuda.mem_get_info(gpu.index)
            gpu.free_gb = round(free / GIB, 2)
        info.source = "torch (free memory from cudaMemGetInfo)"
    except Exception as exc:
        info.notes.append(f"free memory unavailable: {exc}")


@dataclass(frozen=True)
class PrecisionDecision:
    dtype: str  # "bf16" | "fp16" | "fp32"
    reason: str
    facts: dict[str, Any]


def choose_precision(hardware: HardwareInfo, requested: str = "auto") -> PrecisionDecision:
    """bf16 on compute capability >= 8.0, fp16 on pre-Ampere GPUs (e.g. V100), fp32 on CPU.

    ``requested`` (``hardware.precision``): "auto", or a dtype the profile forces, e.g. fp16 on an H200 to
    reproduce a V100 run; a dtype the hardware cannot train in is a ConfigError before any model loads."""
    if requested != "auto":
        return _forced_precision(hardware, requested)
    if hardware.backend != "cuda" or not hardware.gpus:
        return PrecisionDecision("fp32", "no CUDA GPU: CPU training runs in fp32", {"backend": hardware.backend})
    lowest = min(g.capability for g in hardware.gpus)
    facts = {"compute_capability": f"{lowest[0]}.{lowest[1]}", "gpus": [g.name for g in hardware.gpus]}
    if lowest >= (8, 0):
        return PrecisionDecision("bf16", f"compute capability {lowest[0]}.{lowest[1]} >= 8.0 supports bf16", facts)
    return PrecisionDecision(
        "fp16",
        f"pre-Ampere GPU (compute capability {lowest[0]}.{lowest[1]} < 8.0) has no fast bf16: "
        "fp16 with loss scaling",
        facts,
    )


PRECISION_CHOICES = ("auto", "bf16", "fp16", "fp32")
PRECISION_HELP = ("training dtype: 'auto' (bf16 on compute capability >= 8.0, fp16 below, fp32 on CPU), or force "
                  "'bf16' | 'fp16' | 'fp32' (e.g. fp16 on an Ampere card to reproduce a V100 run)")


def _forced_precision(hardware: HardwareInfo, requested: str) -> PrecisionDecision:
    from medllm_core.kernel.errors import ConfigError, Location

    on_gpu = hardware.backend == "cuda" and bool(hardware.gpus)
    lowest = min((g.capability for g in hardware.gpus), default=(0, 0))
    where = Location(key="hardware.precision")
    if requested in ("bf16", "fp16") and not on_gpu:
        raise ConfigError(f"hardware.precision = '{requested}' needs a CUDA GPU; this machine trains on CPU in fp32",
                          where, hint="set hardware.precision = 'auto' (or 'fp32') on this machine")
    if requested == "bf16" and lowest < (8, 0):
        raise ConfigError(f"hardware.precision = 'bf16' needs compute capability >= 8.0; this GPU has "
                          f"{lowest[0]}.{lowest[1]}", where, hint="use 'fp16' (with loss scaling) or 'auto'")
    facts = {"forced": requested, "backend": hardware.backend,
             "compute_capability": f"{lowest[0]}.{lowest[1]}" if on_gpu else None}
    scaling = " with loss scaling" if requested == "fp16" else ""
    return PrecisionDecision(requested, f"hardware.precision = '{requested}' (forced){scaling}", facts)
