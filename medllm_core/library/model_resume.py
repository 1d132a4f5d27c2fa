"""Resumable download of a model's big (LFS) files into the HF hub cache, across processes.

huggingface_hub 2.x retries a dropped connection with a Range request inside one process, but each download
writes a process-unique ``<etag>.<random>.incomplete`` file that it deletes on failure, so a fetch that is killed
(Ctrl-C, an SSH drop, a preempted box) starts every unfinished file from byte 0 the next time. For a 15 GB model
on a slow mirror that is hours. Here the weights go to a stable partial file next to the cache's blobs, continued
with ``Range: bytes=N-`` by the next fetch, checked against the hub's sha256 and renamed to the blob the hub's
own cache layout expects (``blobs/<sha256>``); ``snapshot_download`` then only links it into the snapshot.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from medllm_core.kernel.errors import MedllmError

PARTIAL_SUFFIX = ".medllm-partial"
ATTEMPTS = 5  # consecutive attempts that received nothing new before giving up
TIMEOUT_S = 30.0


class DownloadInterrupted(MedllmError):
    """The network dropped for good; the bytes received so far are kept for the next fetch."""


def repo_cache(cache: Path, repo_id: str) -> Path:
    return cache / f"models--{repo_id.replace('/', '--')}"


def partial_path(cache: Path, repo_id: str, sha256: str) -> Path:
    return repo_cache(cache, repo_id) / "blobs" / f"{sha256}{PARTIAL_SUFFIX}"


def partial_bytes(cache: Path, repo_id: str, sha256: str) -> int:
    """Bytes an earlier, interrupted fetch already has of this file (they are not downloaded again)."""
    part = partial_path(cache, repo_id, sha256)
    return part.stat().st_size if part.is_file() else 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def transport_errors() -> tuple[type[BaseException], ...]:
    """The network errors of the HTTP client huggingface_hub's session is built on (httpx2 in 2.x), by lookup,
    so a change of client in a later huggingface_hub does not break the import here."""
    import importlib

    from huggingface_hub.utils import get_session

    client = importlib.import_module(type(get_session()).__module__.split(".")[0])
    return (getattr(client, "TransportError", OSError), OSError)


def _stream_once(url: str, part: Path, on_bytes: Callable[[int], None]) -> None:
    """One GET from where ``part`` ends; appends as bytes arrive so a kill keeps what came."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    start = part.stat().st_size if part.exists() else 0
    headers = build_hf_headers()  # HF_TOKEN for gated repos, like the hub's own downloads
    if start:
        headers["Range"] = f"bytes={start}-"
    with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=TIMEOUT_S) as response:
        if response.status_code == 416:  # nothing left to send: the partial file is already whole
            return
        hf_raise_for_status(response)
        mode = "ab" if start and response.status_code == 206 else "wb"  # 200: the server ignored Range
        with part.open(mode) as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
                handle.flush()
                on_bytes(len(chunk))


def download_blob(repo_id: str, commit: str, path: str, sha256: str, size: int, endpoint: str, cache: Path,
                  on_bytes: Callable[[int], None]) -> Path:
    """Get one LFS file into ``blobs/<sha256>``, continuing a partial file; returns the blob."""
    from filelock import FileLock
    from huggingface_hub.errors import HfHubHTTPError

    repo_dir = repo_cache(cache, repo_id)
    blob = repo_dir / "blobs" / sha256
    if blob.is_file():
        return blob
    blob.parent.mkdir(parents=True, exist_ok=True)
    lock = repo_dir.parent / ".locks" / repo_dir.name / f"{sha256}.lock"  # the lock the hub itself takes
    lock.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(cache, repo_id, sha256)
    url = f"{endpoint}/{repo_id}/resolve/{commit}/{quote(path)}"
    transient = transport_errors()
    with FileLock(str(lock)):
        failures, last_error = 0, ""
        while not (part.exists() and part.stat().st_size >= size):
            before = part.stat().st_size if part.exists() else 0
            try:
                _stream_once(url, part, on_bytes)
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status < 500:  # 401/403/404: retrying will not help
                    raise DownloadInterrupted(f"download of {path} from {endpoint} refused (HTTP {status})",
                                              hint="check the model name, or HF_TOKEN for a gated model") from None
                last_error = f"HTTP {status}"
            except transient as exc:
                last_error = str(exc)[:160]
            grew = (part.stat().st_size if part.exists() else 0) > before
            failures = 0 if grew else failures + 1
            if failures >= ATTEMPTS:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadInterrupted(f"download of {path} from {endpoint} keeps failing ({last_error}); "
                                          f"{kept} of {size} bytes kept",
                                          hint="run 'medllm-tui model fetch' again to continue from there")
            if not grew:
                time.sleep(failures)  # a blip on a flaky mirror: back off a little before asking again
        if part.stat().st_size != size or _sha256(part) != sha256:
            part.unlink()  # a corrupt partial file must not be resumed again
            raise DownloadInterrupted(f"{path} from {endpoint} does not match the hub's sha256 or size",
                                      hint="run 'medllm-tui model fetch' again (the bad copy was deleted)")
        os.replace(part, blob)
    return blob
