"""Everything the TUI reads from the outside world, in one injectable bundle.

Tests and snapshots swap in fakes (fixed clock, fixed hardware, no NVML) so the
screens are deterministic; the real defaults are lazy so the first frame never
waits for torch or NVML.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medllm_tui.gpu import GpuReading, NvmlSampler
from medllm_tui.launch import LaunchedRun, process_alive, start_detached

USER_PROFILE_DIR = Path("profiles") / "user"

if TYPE_CHECKING:
    from medllm_core.kernel.hardware import HardwareInfo
    from medllm_core.library.env_file import EnvFileStatus


PROBE_SCRIPT = (
    "import json; from medllm_core.kernel.hardware import probe_hardware; "
    "print(json.dumps(probe_hardware('auto').to_dict()))"
)


class SubprocessProbe:
    """probe_hardware in a child process.

    Importing torch takes seconds and, in a thread, holds the GIL long enough to
    stall the UI on a 2-core box; a child process costs the UI nothing, and
    quitting the TUI does not have to wait for the import to finish.
    """

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[str] | None = None

    def __call__(self) -> HardwareInfo:
        from medllm_core.kernel.hardware import GpuInfo, HardwareInfo

        self._process = subprocess.Popen([sys.executable, "-c", PROBE_SCRIPT], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        out, err = self._process.communicate(timeout=self.timeout_s)
        if self._process.returncode != 0:
            raise RuntimeError((err.strip().splitlines() or ["probe exited with an error"])[-1])
        data = json.loads(out.strip().splitlines()[-1])
        gpus = [GpuInfo(g["index"], g["name"], g["total_gb"], tuple(g["capability"]), g.get("free_gb"))
                for g in data.get("gpus", [])]
        return HardwareInfo(backend=data["backend"], gpus=gpus, torch_version=data.get("torch_version"),
                            cuda_version=data.get("cuda_version"), source=data.get("source", ""),
                            cpu=data.get("cpu", ""), cpu_count=data.get("cpu_count"), notes=data.get("notes", []))

    def cancel(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()


def _env_status() -> EnvFileStatus:
    from medllm_core.library.env_file import inspect_env_file

    return inspect_env_file()


@dataclass
class TuiDeps:
    output_root: Path = field(default_factory=Path.cwd)
    shipped_dir: Path | None = None  # None: medllm_core.kernel.profile.shipped_profiles_dir()
    user_dirs: tuple[Path, ...] = (USER_PROFILE_DIR,)
    save_dir: Path = USER_PROFILE_DIR
    probe: Callable[[], HardwareInfo] = field(default_factory=SubprocessProbe)
    gpu_reader: Callable[[], GpuReading] = field(default_factory=lambda: NvmlSampler().read)
    env_status: Callable[[], EnvFileStatus] = _env_status
    launcher: Callable[..., LaunchedRun] = start_detached
    alive: Callable[[int | None], bool] = process_alive
    clock: Callable[[], float] = time.time
    poll_s: float = 0.5
    gpu_poll_s: float = 2.0
