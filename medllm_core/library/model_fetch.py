"""``medllm-tui model fetch``: download the profile's model before the run, check disk first, verify after.

The hub's tree API gives every file's size and hash (git blob sha1, or sha256 for LFS files); the free-space check
uses those sizes before a byte is written, and the verification recomputes the hashes of the cached files, so a
truncated or corrupted download is caught here and not at model load an hour later.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.errors import ConfigError, Location

GIB = 1024**3


@dataclass
class RemoteFile:
    path: str
    size: int
    blob_id: str  # git blob sha1 of the file (of the pointer for LFS files)
    sha256: str | None = None  # LFS files: sha256 of the content


@dataclass
class FetchResult:
    local_path: Path
    files: list[str] = field(default_factory=list)
    downloaded_bytes: int = 0
    verified: int = 0


def hf_hub_cache() -> Path:
    from medllm_core.library.model_source import hub_cache_dir

    return hub_cache_dir()


def human_size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 10 else f"{n / 1024**2:.1f} MiB"


def remote_files(repo_id: str, revision: str, endpoint: str,
                 where: Location | None = None) -> tuple[str, list[RemoteFile]]:
    """The commit and every file of the repo with its size and hashes, from the hub's API."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint)
    try:
        commit = api.repo_info(repo_id, revision=revision).sha or revision
        files = [RemoteFile(f.path, int(f.lfs.size if f.lfs else f.size), f.blob_id, f.lfs.sha256 if f.lfs else None)
                 for f in api.list_repo_tree(repo_id, revision=commit, recursive=True) if isinstance(f, RepoFile)]
    except HfHubHTTPError as exc:  # a typo in the name, a gated model without HF_TOKEN, a mirror without the repo
        status = exc.response.status_code if exc.response is not None else "?"
        raise ConfigError(f"model '{repo_id}' (revision {revision}) not available at {endpoint} (HTTP {status})",
                          where, hint="check model.name_or_path; a gated model needs HF_TOKEN") from None
    return commit, files


def missing_files(repo_id: str, commit: str, files: list[RemoteFile]) -> list[RemoteFile]:
    """Files not yet complete in the cache (a second fetch finds none: a no-op)."""
    from huggingface_hub import try_to_load_from_cache

    missing = []
    for f in files:
        cached = try_to_load_from_cache(repo_id, f.path, cache_dir=hf_hub_cache(), revision=commit)
        if not (isinstance(cached, str) and Path(cached).stat().st_size == f.size):
            missing.append(f)
    return missing


def missing_bytes(repo_id: str, missing: list[RemoteFile]) -> int:
    """Bytes still to download: a partial file left by an interrupted fetch only needs its rest."""
    from medllm_core.library.model_resume import partial_bytes

    cache = hf_hub_cache()
    return sum(f.size - (partial_bytes(cache, repo_id, f.sha256) if f.sha256 else 0) for f in missing)


def free_bytes(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk(need: int, folder: Path, where: Location) -> None:
    free = free_bytes(folder)
    if need > free:
        raise ConfigError(f"not enough disk for the model: needs {human_size(need)}, {human_size(free)} free "
                          f"at {folder}", where, hint="free space, or point HF_HOME at a bigger disk "
                          "(on AutoDL: export HF_HOME=/root/autodl-tmp/hf)")


def _file_hash(path: Path, remote: RemoteFile) -> tuple[str, str]:
    """(computed, expected): sha256 for LFS files, git's blob sha1 for the small ones."""
    if remote.sha256:
        digest = hashlib.sha256()
        expected = remote.sha256
    else:
        digest = hashlib.sha1()  # noqa: S324  (git's object id, not a security hash)
        digest.update(f"blob {path.stat().st_size}\0".encode())
        expected = remote.blob_id
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest(), expected


def verify(folder: Path, files: list[RemoteFile]) -> int:
    """Recompute every file's hash against the hub's metadata; a mismatch is a one-line error naming the file."""
    for remote in files:
        local = folder / remote.path
        if not local.is_file():
            raise ConfigError(f"model file missing after download: {local}", hint="run 'medllm-tui model fetch' again")
        got, want = _file_hash(local, remote)
        if got != want:
            raise ConfigError(f"model file {remote.path} does not match the hub ({got[:12]} != {want[:12]})",
                              hint=f"delete {local.resolve()} and run 'medllm-tui model fetch' again")
    return len(files)


def _download_weights(repo_id: str, commit: str, endpoint: str, missing: list[RemoteFile], progress: bool) -> None:
    """The big files first, resumably (model_resume.py); the hub's snapshot_download then only links them."""
    from huggingface_hub.utils import tqdm

    from medllm_core.library.model_resume import download_blob, partial_bytes

    big = [f for f in missing if f.sha256]
    if not big:
        return
    cache = hf_hub_cache()
    done = sum(partial_bytes(cache, repo_id, f.sha256 or "") for f in big)
    with tqdm(total=sum(f.size for f in big), initial=done, unit="B", unit_scale=True, unit_divisor=1024,
              desc="model weights", disable=not progress) as bar:
        for f in big:
            download_blob(repo_id, commit, f.path, f.sha256 or "", f.size, endpoint, cache, bar.update)


def fetch_hf(repo_id: str, where: Location, revision: str = "main", progress: bool = True) -> FetchResult:
    """Check the disk, download (resuming what an interrupted fetch left), then verify every file's hash."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from medllm_core.library.model_resume import DownloadInterrupted, transport_errors
    from medllm_core.library.model_source import hf_endpoint

    endpoint = hf_endpoint()
    try:
        commit, files = remote_files(repo_id, revision, endpoint, where)
        missing = missing_files(repo_id, commit, files)
        need = missing_bytes(repo_id, missing)
        check_disk(need, hf_hub_cache(), where)
        _download_weights(repo_id, commit, endpoint, missing, progress)
        (enable_progress_bars if progress else disable_progress_bars)()
        # By the branch name, not the commit: the hub then records refs/<revision> in the cache, which is how the
        # run (and the wizard) later find this copy offline from the repo id alone.
        folder = Path(snapshot_download(repo_id, revision=revision, endpoint=endpoint, cache_dir=hf_hub_cache()))
        if folder.name != commit:  # the branch moved between listing and download: verify what was downloaded
            commit, files = remote_files(repo_id, folder.name, endpoint, where)
    except (*transport_errors(), LocalEntryNotFoundError) as exc:  # the network went away mid-fetch
        raise DownloadInterrupted(f"fetching '{repo_id}' from {endpoint} failed: {str(exc)[:160]}",
                                  hint="run 'medllm-tui model fetch' again: finished files and partial weights "
                                       "are kept") from None
    verified = verify(folder, files)
    return FetchResult(folder, [f.path for f in files], need, verified)


def fetch_for_profile(profile: Any, progress: bool = True) -> tuple[str, FetchResult | None]:
    """Fetch the profile's model from its source; returns (how, result) where result is None if nothing to fetch."""
    from medllm_core.library.model_source import decide_source, modelscope_download, unreachable_message
    from medllm_core.library.tiny_model import is_tiny_model

    model = profile.model
    where = Location(file=str(profile.source_path), key="model.name_or_path")
    if is_tiny_model(model.name_or_path):
        return "the tiny model is built locally by the run; nothing to fetch", None
    decision = decide_source(model.name_or_path, model.source)
    if decision.source == "local":
        if decision.local_path is None:
            raise ConfigError(f"model folder has no config.json or not found: {model.name_or_path}", where)
        return f"local folder {decision.local_path}; nothing to fetch", None
    if decision.source == "none":
        raise ConfigError(unreachable_message(model.name_or_path, decision), where)
    if decision.source == "modelscope":
        folder = modelscope_download(model.name_or_path)
        return f"from ModelScope into {folder}", FetchResult(folder)
    result = fetch_hf(model.name_or_path, where, progress=progress)
    return f"from {decision.endpoint}", result
