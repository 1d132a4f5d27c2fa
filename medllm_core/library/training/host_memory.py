"""Peak host memory (RSS) of one stage.

``ru_maxrss`` is the process-lifetime peak: every stage after the largest would report
the same number. A daemon thread samples the resident set size instead, from the moment
a stage starts until it ends.
"""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType

GIB = 1024**3
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int | None:
    """Resident set size now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def process_peak_rss_gb() -> float:
    """The process-lifetime peak (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)


_active: StagePeakRss | None = None


def active_stage_peak_gb() -> float | None:
    """The running stage's peak RSS so far (None outside a metered stage)."""
    return _active.peak_gb if _active is not None else None


class StagePeakRss:
    """``with StagePeakRss() as meter: ...`` then ``meter.peak_gb`` (None where RSS cannot be read)."""

    def __init__(self, every_s: float = 0.25):
        self.every_s = every_s
        self.peak_bytes: int | None = current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="medllm-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self._update()

    def _update(self) -> None:
        now = current_rss_bytes()
        if now is not None and (self.peak_bytes is None or now > self.peak_bytes):
            self.peak_bytes = now

    @property
    def peak_gb(self) -> float | None:
        self._update()
        return round(self.peak_bytes / GIB, 3) if self.peak_bytes is not None else None

    def __enter__(self) -> StagePeakRss:
        global _active
        self._thread.start()
        _active = self
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        global _active
        self._stop.set()
        self._thread.join(timeout=1.0)
        _active = None
