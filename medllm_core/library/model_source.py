"""Where the profile's model comes from: a local folder, the HF hub (or its mirror / cache), or ModelScope.

Users on rented boxes in mainland China reach the hub through a mirror (``HF_ENDPOINT``) or an academic proxy
(``http_proxy``/``https_proxy``), or use ModelScope instead. The decision is made before any stage so that a box
that can reach none of them fails in seconds with the ways out, not after set-up at model load.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 4.0
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_MODELSCOPE = "https://www.modelscope.cn"
ENV_KEYS = ("HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "MODELSCOPE_CACHE", "MODELSCOPE_DOMAIN",
            "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")

WAYS_OUT = ("set HF_ENDPOINT=https://hf-mirror.com (a mirror of the hub), or model.source = \"modelscope\" "
            "(pip install '.[modelscope]'), or a local folder (--model /path/to/model)")


def strip_credentials(value: str) -> str:
    """``http://user:pass@proxy:3128`` -> ``http://proxy:3128``: proxy passwords never reach a report."""
    return _CREDENTIALS.sub("", value)


def source_environment() -> dict[str, str]:
    """The variables that decide where downloads go and through what (for preflight.json and the dry run)."""
    return {key: strip_credentials(os.environ[key]) for key in ENV_KEYS if os.environ.get(key)}


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def is_path_like(name: str) -> bool:
    return name.startswith((".", "/", "~"))


def hub_cache_dir() -> Path:
    """The HF hub cache, read from the environment now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def hf_cached_snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot folder of a hub repo (with its config.json), or None: path checks only, no network,
    cheap enough for the wizard to call at every keypress."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir(), revision=revision)
    except ValueError:  # not a valid repo id (e.g. a typo with spaces): not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def modelscope_cache() -> Path:
    return Path(os.environ.get("MODELSCOPE_CACHE", "~/.cache/modelscope")).expanduser()


def modelscope_installed() -> bool:
    return importlib.util.find_spec("modelscope") is not None


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether an HTTP server answers at ``url`` (any status counts: a 404 still proves the network works)."""
    import urllib.error
    import urllib.request

    # urllib honours http_proxy/https_proxy (AutoDL's academic acceleration) like the hub's client does.
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return True, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, strip_credentials(str(reason))[:160]


@dataclass
class SourceDecision:
    """Where the model will come from, whether it is already on disk, and why."""

    source: str  # local | hf | modelscope | tiny | none
    reason: str
    local_path: Path | None = None  # set when the files are already on this machine
    endpoint: str = ""

    @property
    def cached(self) -> bool:
        return self.local_path is not None

    def label(self) -> str:
        """One line for the wizard and the dry run."""
        where = {"hf": f"HF hub {self.endpoint}", "modelscope": "ModelScope", "local": "local folder",
                 "tiny": "built locally", "none": "no source reachable"}[self.source]
        state = f"cached at {self.local_path}" if self.local_path else "not cached yet"
        return f"model from {where}; {state}" if self.source not in ("tiny", "none") else f"model {where}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "cached": self.cached,
                "local_path": str(self.local_path) if self.local_path else None, "endpoint": self.endpoint,
                "environment": source_environment()}


def _modelscope_decision(name: str, cached_only: bool) -> SourceDecision | None:
    folder = modelscope_cache() / "models" / name
    if (folder / "config.json").is_file():
        return SourceDecision("modelscope", "found in the ModelScope cache", folder, DEFAULT_MODELSCOPE)
    if cached_only or not modelscope_installed():
        return None
    domain = os.environ.get("MODELSCOPE_DOMAIN", DEFAULT_MODELSCOPE)
    url = domain if "://" in domain else f"https://{domain}"
    ok, how = reachable(url)
    return SourceDecision("modelscope", f"ModelScope reachable ({how})", None, url) if ok else None


def decide_source(name: str, source: str = "auto", *, probe: bool = True) -> SourceDecision:
    """Pick the source for ``name``; ``probe=False`` only looks at the disk (the wizard must not wait on a network)."""
    from medllm_core.library.tiny_model import is_tiny_model

    if is_tiny_model(name):
        return SourceDecision("tiny", "the embedded tiny model is built from the profile's data")
    if source == "local" or (source == "auto" and is_path_like(name)):
        folder = Path(name).expanduser()
        return SourceDecision("local", "a local folder", folder if (folder / "config.json").is_file() else None)
    endpoint = hf_endpoint()
    if source in ("auto", "hf"):
        cached = hf_cached_snapshot(name)
        if cached is not None:
            return SourceDecision("hf", "found in the HF cache", cached, endpoint)
        if probe and not hf_offline():
            ok, how = reachable(f"{endpoint}/api/models/{name}/revision/main")
            if ok:
                return SourceDecision("hf", f"{endpoint} reachable ({how})", None, endpoint)
            hf_why = f"{endpoint} unreachable ({how})"
        else:
            hf_why = "HF_HUB_OFFLINE is set and the model is not cached" if hf_offline() else "not cached"
        if source == "hf":
            return SourceDecision("none", hf_why, None, endpoint)
    else:
        hf_why = "model.source = modelscope"
    found = _modelscope_decision(name, cached_only=not probe)
    if found is not None:
        return found
    ms_why = "not installed" if not modelscope_installed() else "unreachable or not cached"
    return SourceDecision("none", f"{hf_why}; ModelScope {ms_why}", None, endpoint)


def source_line(name: str, source: str = "auto") -> str:
    """The wizard's one line: where the model will come from and whether it is cached. Disk only (no HTTP): the
    wizard calls it at every keypress; when nothing is on disk it names the source the run tries first."""
    decision = decide_source(name, source, probe=False)
    if decision.source == "tiny":
        return "model built locally from the profile's data (no download)"
    if decision.source == "local":
        return "model from a local folder" + ("" if decision.cached else " (no config.json there)")
    where = "ModelScope" if decision.source == "modelscope" or source == "modelscope" else f"HF hub {hf_endpoint()}"
    return f"model from {where}, " + ("cached on this machine" if decision.cached else "not cached yet")


def unreachable_message(name: str, decision: SourceDecision) -> str:
    return f"cannot get model '{name}' from any source ({decision.reason}); ways out: {WAYS_OUT}"


def local_copy(name: str, source: str = "auto") -> Path | None:
    """The model's files on this machine (HF cache, or ModelScope's, downloading there if ModelScope is chosen)."""
    if source in ("auto", "hf"):
        cached = hf_cached_snapshot(name)
        if cached is not None or source == "hf":
            return cached
    folder = modelscope_cache() / "models" / name
    if (folder / "config.json").is_file():
        return folder
    if source == "modelscope":
        return modelscope_download(name)
    return None


def modelscope_download(name: str) -> Path:
    """Download through the ``modelscope`` package into MODELSCOPE_CACHE (an optional extra)."""
    from medllm_core.kernel.errors import ConfigError

    if not modelscope_installed():
        raise ConfigError("model.source = \"modelscope\" needs the modelscope package",
                          hint="pip install '.[modelscope]' (or pip install modelscope)")
    from modelscope import snapshot_download  # type: ignore[import-not-found]

    return Path(snapshot_download(name, cache_dir=str(modelscope_cache())))
