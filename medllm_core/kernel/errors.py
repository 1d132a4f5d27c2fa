"""User-facing errors and the process exit codes they map to.

Every error a user can cause by bad input is a ``MedllmError`` carrying where the
problem is (file, line, key) so the CLI can print one clear line instead of a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of ``medllm-tui`` (README "Exit codes")."""

    OK = 0
    INTERNAL_ERROR = 1
    CONFIG_ERROR = 2  # bad profile, bad flag, bad or missing data file
    PREFLIGHT_BLOCKED = 3  # below the VRAM gate and skipping is not allowed
    STAGE_FAILED = 4  # a stage raised or reported failure
    STRICT_CHECK_FAILED = 5  # pipeline ran, but strict_pass is false
    INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """Where a problem is: any of file, line and key may be unknown."""

    file: str | None = None
    line: int | None = None
    key: str | None = None

    def render(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.key:
            parts.append(f"key '{self.key}'")
        return ", ".join(parts)


class MedllmError(Exception):
    """Base of all errors shown to the user as one message (no traceback)."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        self.message = message
        self.location = location or Location()
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = self.location.render()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(MedllmError):
    """A profile, environment variable or command-line flag is wrong."""

    exit_code = ExitCode.CONFIG_ERROR


class DataError(MedllmError):
    """A data file is missing, unreadable, malformed, empty or of unknown format."""

    exit_code = ExitCode.CONFIG_ERROR


class PreflightBlocked(MedllmError):
    """Hardware is below the gate and the profile does not allow skipping training."""

    exit_code = ExitCode.PREFLIGHT_BLOCKED
