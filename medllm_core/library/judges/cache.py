"""On-disk cache of judge answers, so a rerun of an evaluation costs nothing.

One JSON file per answer, named by the sha256 of everything that decides the
answer (endpoint, model, prompt version, the full messages, temperature,
max_tokens), and written atomically so an interrupted run never leaves a
half-written entry. Only answers that parsed and passed their schema check are
stored: failures are not cached, so a rerun or ``--resume`` asks again for
exactly the items that have no good answer yet. The endpoint is in the key
(format 2): two servers calling different models by the same name must not
share answers. Entries hold the model's reply, never the request headers, so
the API key cannot reach them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json

log = logging.getLogger("medllm.judges")

# Bump when the key recipe or entry layout changes: old entries then simply miss.
CACHE_FORMAT = 2  # 2: the endpoint is part of the key


def cache_key(model: str, prompt_version: str, messages: list[dict[str, Any]], temperature: float,
              max_tokens: int | None = None, endpoint: str = "") -> str:
    """sha256 of a canonical JSON form of what the judge is asked, and of whom (key order never matters).

    The endpoint is part of the key: two servers that call their model by the same name share nothing.
    """
    payload: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "endpoint": endpoint,
        "model": model,
        "prompt_version": prompt_version,
        "temperature": float(temperature),
        "messages": messages,
    }
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class CacheEntry:
    key: str
    model: str
    prompt_id: str
    prompt_version: str
    raw: str
    parsed: dict[str, Any]
    usage: dict[str, int] | None = None
    attempts: int = 1  # what the original answer took, kept as evidence
    latency_s: float = 0.0
    created: float = field(default_factory=lambda: round(time.time(), 3))
    format: int = CACHE_FORMAT


class ResponseCache:
    """``root/<first two hex digits>/<key>.json``; the fan-out keeps folders small."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The stored entry, or None when missing, unreadable or from another format (a miss, never an error)."""
        path = self.path_for(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable judge cache entry %s: %s", path, exc)
            return None
        try:
            entry = CacheEntry(**data)
        except TypeError:
            return None
        if entry.format != CACHE_FORMAT or entry.key != key or not isinstance(entry.parsed, dict):
            return None
        return entry

    def put(self, entry: CacheEntry) -> bool:
        """Store ``entry``; a cache that cannot be written costs a rerun, not this answer."""
        try:
            write_json(self.path_for(entry.key), asdict(entry))
        except OSError as exc:
            log.warning("could not write judge cache entry %s: %s", self.path_for(entry.key), exc)
            return False
        return True
