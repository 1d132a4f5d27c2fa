"""Live GPU memory through NVML, read lazily and defensively (the nvitop way).

NVML may be missing (no driver, CPU box, pynvml not installed) or fail at any
call; every failure becomes a note and the panel shows "N/A" instead of the
dashboard crashing. One reading is cached and shared by every panel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    used_gb: float | None
    total_gb: float | None


@dataclass(frozen=True)
class GpuReading:
    gpus: tuple[GpuMemory, ...] = ()
    note: str = ""  # why there is nothing to show ("NVML unavailable: ...")

    @property
    def available(self) -> bool:
        return bool(self.gpus)


@dataclass
class NvmlSampler:
    """Holds the NVML handle between readings; ``read()`` never raises."""

    loader: Callable[[], Any] | None = None  # returns the pynvml module; injectable for tests
    _nvml: Any = field(default=None, init=False)
    _failed: str = field(default="", init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _module(self) -> Any:
        if self._nvml is None and not self._failed:
            try:
                nvml = (self.loader or _import_pynvml)()
                nvml.nvmlInit()
                self._nvml = nvml
            except ModuleNotFoundError:
                self._failed = "no NVML: pynvml not installed"
            except Exception as exc:  # no driver, no permission: all the same to the user
                self._failed = f"NVML unavailable: {exc}"
        return self._nvml

    def read(self) -> GpuReading:
        with self._lock:
            nvml = self._module()
            if nvml is None:
                return GpuReading(note=self._failed)
            gpus = []
            try:
                count = int(nvml.nvmlDeviceGetCount())
            except Exception as exc:
                return GpuReading(note=f"NVML device count failed: {exc}")
            for index in range(count):
                gpus.append(_read_device(nvml, index))
            return GpuReading(tuple(gpus), "" if gpus else "NVML sees no GPU")


def _import_pynvml() -> Any:
    import pynvml  # provided by nvidia-ml-py; optional

    return pynvml


def _read_device(nvml: Any, index: int) -> GpuMemory:
    name = f"GPU {index}"
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return GpuMemory(index, name, None, None)
    try:
        raw = nvml.nvmlDeviceGetName(handle)
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:
        pass
    try:
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuMemory(index, name, round(info.used / GIB, 2), round(info.total / GIB, 2))
    except Exception:
        return GpuMemory(index, name, None, None)


def format_memory(used: float | None, total: float | None) -> str:
    used_text = "N/A" if used is None else f"{used:.1f}"
    total_text = "N/A" if total is None else f"{total:.1f}"
    return f"{used_text} / {total_text} GB"
