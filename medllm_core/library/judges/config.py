"""Judge endpoint settings, whether a judge can run, and secret redaction.

The API key comes from the environment (``OPENAI_API_KEY``, which
``medllm_core.library.env_file.load_env_file`` fills from ``.env``) and never from a
profile, so a profile can be shared or written into a run folder safely. The key
is excluded from ``repr`` and from ``describe()``; everything that turns an error
into text goes through ``redact`` first.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from medllm_core.kernel.errors import ConfigError
from medllm_core.library.judges.settings import ENDPOINT_FIELDS

if TYPE_CHECKING:
    from medllm_core.library.judges.settings import JudgeEndpoint

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MASK = "***"  # the same mask EventLog uses

# Token shapes that must not reach a file even when they are not *our* key (a
# provider echoing a partial key, a proxy echoing the Authorization header).
_TOKEN_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+"), r"\1" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}"), "sk-" + MASK),
)


def _key_from_env() -> str | None:
    return os.environ.get(API_KEY_ENV, "").strip() or None


@dataclass(frozen=True)
class JudgeConfig:
    """How to reach one judge model. Build it with ``from_settings`` in a run."""

    model: str = "gpt-4o-mini"
    base_url: str = ""  # empty: $OPENAI_BASE_URL, else the OpenAI API
    # From the environment only; kept out of repr/eq so it cannot leak through them.
    api_key: str | None = field(default_factory=_key_from_env, repr=False, compare=False)
    timeout_s: float = 60.0  # per HTTP attempt
    max_retries: int = 3  # extra attempts after 429 / 5xx / timeout / connection error
    max_parse_retries: int = 2  # extra attempts after a reply that is not acceptable JSON
    max_concurrency: int = 4  # HTTP requests in flight at once, per client
    cache_dir: Path | None = None  # None: no response cache
    max_tokens: int | None = None  # None: the endpoint's default
    backoff_base_s: float = 1.0  # first retry waits about this long, doubling after
    backoff_cap_s: float = 30.0  # longest wait between attempts, Retry-After included
    # Transport errors in a row (across all items) after which the client stops asking: 0 never.
    # Off by default for a bare client; the judge stages pass their setting (5).
    circuit_breaker: int = 0
    max_total_retries: int | None = None  # retries over the client's whole life; None: only per item

    def __post_init__(self) -> None:
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        checks = {
            "timeout_s": self.timeout_s > 0,
            "max_retries": self.max_retries >= 0,
            "max_parse_retries": self.max_parse_retries >= 0,
            "max_concurrency": self.max_concurrency >= 1,
            "backoff_base_s": self.backoff_base_s >= 0,
            "backoff_cap_s": self.backoff_cap_s >= 0,
            "circuit_breaker": self.circuit_breaker >= 0,
            "max_total_retries": self.max_total_retries is None or self.max_total_retries >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"judge setting {name}={getattr(self, name)!r} is out of range")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"judge setting max_tokens={self.max_tokens!r} is out of range")

    @classmethod
    def from_settings(cls, endpoint: JudgeEndpoint, cache_dir: Path | str | None = None,
                      **overrides: Any) -> JudgeConfig:
        """A stage's endpoint settings (``JudgeEndpoint``); the key from the environment."""
        if "api_key" in overrides:
            raise ConfigError("the judge API key is read from OPENAI_API_KEY only", hint="set it in .env")
        # Only the fields it has: a plugin's own endpoint dataclass may predate the newer ones.
        settings: dict[str, Any] = {name: getattr(endpoint, name) for name in ENDPOINT_FIELDS
                                    if hasattr(endpoint, name)}
        settings.update(cache_dir=cache_dir, **overrides)
        return cls(**settings)

    from_profile = from_settings  # the older name

    @property
    def resolved_base_url(self) -> str:
        return (self.base_url or os.environ.get(BASE_URL_ENV, "") or DEFAULT_BASE_URL).strip()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()

    def describe(self) -> dict[str, Any]:
        """Settings safe to write into evidence: the key appears only as configured yes/no."""
        return {
            "model": self.model,
            "base_url": safe_url(self.resolved_base_url),
            "api_key_configured": bool(self.api_key),
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "max_parse_retries": self.max_parse_retries,
            "max_concurrency": self.max_concurrency,
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "max_tokens": self.max_tokens,
            "circuit_breaker": self.circuit_breaker,
            "max_total_retries": self.max_total_retries,
            "temperature": 0.0,
        }


def judge_availability(config: JudgeConfig) -> tuple[bool, str]:
    """Can a judge run with ``config``? The reason is evidence for a skip (or a failure if required)."""
    problems: list[str] = []
    if importlib.util.find_spec("openai") is None:
        problems.append("the openai package is not installed (pip install 'medllm[judge]')")
    if not config.api_key:
        problems.append(f"{API_KEY_ENV} not set")
    url = config.resolved_base_url
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        problems.append(f"judge base_url {safe_url(url)!r} is not an http(s) URL")
    if not config.model.strip():
        problems.append("the judge model setting is empty")
    if problems:
        return False, redact("; ".join(problems), config.secrets)
    return True, f"judge model {config.model} at {safe_url(url)}"


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment (a key can hide in any of them)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme:
        return redact(url, ())
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def redact(text: str, secrets: tuple[str, ...] | list[str] = (), *, token_patterns: bool = True) -> str:
    """``text`` with every secret replaced by ``***``, and (``token_patterns``) bearer tokens and ``sk-`` keys.

    Model replies are redacted with ``token_patterns=False``: a judge writing "the
    bearer of ..." must not have its answer rewritten; only the real key is masked.
    """
    for secret in secrets:
        # Short values would mask ordinary words; EventLog uses the same threshold.
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    if token_patterns:
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
    return text
