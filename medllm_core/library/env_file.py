"""The ``.env`` file holding OPENAI_BASE_URL / OPENAI_API_KEY.

Values are loaded into the environment without overriding variables already
set (the shell wins). Nothing here ever returns or prints a secret value: the
status reports only which keys are present and whether the file is private.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

ENV_FILE_VAR = "MEDLLM_ENV_FILE"
SECRET_KEYS = ("OPENAI_API_KEY",)


@dataclass
class EnvFileStatus:
    path: str
    exists: bool
    mode: str | None = None
    readable_by_others: bool = False
    keys: list[str] = field(default_factory=list)  # names only, never values
    api_key_configured: bool = False
    base_url_configured: bool = False

    def warning(self) -> str | None:
        if self.exists and self.readable_by_others:
            return f"{self.path} is readable by other users (mode {self.mode}); run: chmod 600 {self.path}"
        return None


def env_file_path() -> Path:
    return Path(os.environ.get(ENV_FILE_VAR, ".env")).expanduser()


def load_env_file(path: Path | None = None) -> EnvFileStatus:
    path = path or env_file_path()
    if path.is_file():
        for key, value in dotenv_values(path).items():
            if value is not None and key not in os.environ:
                os.environ[key] = value
    return inspect_env_file(path)


def inspect_env_file(path: Path | None = None) -> EnvFileStatus:
    path = path or env_file_path()
    status = EnvFileStatus(path=str(path), exists=path.is_file())
    if status.exists:
        mode = path.stat().st_mode
        status.mode = oct(stat.S_IMODE(mode))
        status.readable_by_others = bool(mode & (stat.S_IRGRP | stat.S_IROTH))
        status.keys = sorted(k for k in dotenv_values(path))
    status.api_key_configured = bool(os.environ.get("OPENAI_API_KEY"))
    status.base_url_configured = bool(os.environ.get("OPENAI_BASE_URL"))
    return status
