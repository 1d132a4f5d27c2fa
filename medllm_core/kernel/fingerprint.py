"""Stage fingerprints: a digest of everything a stage's result depends on.

``medllm-tui --run PROFILE --resume`` reuses a stage's result from the
interrupted attempt only when the stage's fingerprint is unchanged. A
fingerprint covers the stage name, its effective ``[stages.<name>]`` settings
(defaults filled in, plus ``enabled``/``required``), the model section with
LoRA, ``run.seed``, the chosen precision, the bytes (sha256) of every data file
the profile names, and the fingerprints of its upstream in the stage graph (the
producers of the artifacts it consumes, then ``requires``/``after``) — so a
retrained DPO invalidates the evaluation, judges and reports that read its
adapter, and nothing else. The inputs are kept beside the digest so a resume
can say *what* changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medllm_core.kernel.context import PlannedStage
from medllm_core.kernel.profile import Profile

FINGERPRINT_VERSION = 2  # bump when the composition below changes: old runs then rerun instead of reusing
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes; None when it cannot be read (the stage's own input check reports why)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _dataset_info_file(profile: Profile, value: str) -> Path:
    path = profile.resolve_path(value)
    return path / "dataset_info.json" if path.is_dir() else path


def data_inputs(profile: Profile) -> dict[str, dict[str, Any]]:
    """Per ``[data.<key>]``: the options that change what is read, and the sha256 of the files read.

    Paths themselves are left out on purpose: moving the project keeps its fingerprints.
    """
    inputs: dict[str, dict[str, Any]] = {}
    for key in sorted(profile.data):
        section = profile.data[key]
        entry: dict[str, Any] = {
            "format": section.format,
            "dataset_name": section.dataset_name,
            "eval_fraction": section.eval_fraction,
            "sha256": file_sha256(profile.resolve_path(section.path)) if section.path else None,
        }
        if section.dataset_info:
            info_file = _dataset_info_file(profile, section.dataset_info)
            entry["dataset_info_sha256"] = file_sha256(info_file)
            entry["dataset_file_sha256"] = _dataset_entry_sha256(info_file, section.dataset_name)
        inputs[key] = entry
    return inputs


def _dataset_entry_sha256(info_file: Path, name: str) -> str | None:
    """The data file a LLaMA-Factory ``dataset_info.json`` entry names (``file_name``), hashed.

    Only locates the file; validating the entry is the data stage's input check.
    """
    if not name:
        return None
    try:
        entry = json.loads(info_file.read_text(encoding="utf-8")).get(name) or {}
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return file_sha256(info_file.parent / file_name) if isinstance(file_name, str) and file_name else None


def stage_inputs(planned: PlannedStage, profile: Profile, precision_dtype: str,
                 data: Mapping[str, Any], upstream: Mapping[str, str]) -> dict[str, Any]:
    """Everything one stage's fingerprint covers, as a JSON-able dict."""
    spec = planned.spec
    settings = dataclasses.asdict(planned.settings) if dataclasses.is_dataclass(planned.settings) else {}
    inputs: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "stage": spec.name,
        "settings": {**settings, "enabled": planned.enabled, "required": planned.required},
        "model": dataclasses.asdict(profile.model),
        "seed": profile.run.seed,
        "precision": precision_dtype,
        "data": dict(data),
        "upstream": {dep: upstream[dep] for dep in planned.upstream if dep in upstream},
    }
    return inputs


def digest(inputs: Mapping[str, Any]) -> str:
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stage_fingerprints(profile: Profile, plan: Iterable[PlannedStage],
                       precision_dtype: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Fingerprint and inputs of every planned stage; ``plan`` must be in run order (dependencies first)."""
    data = data_inputs(profile)
    fingerprints: dict[str, str] = {}
    inputs: dict[str, dict[str, Any]] = {}
    for planned in plan:
        name = planned.spec.name
        inputs[name] = stage_inputs(planned, profile, precision_dtype, data, fingerprints)
        fingerprints[name] = digest(inputs[name])
    return fingerprints, inputs


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, child in value.items():
            flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def describe_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any], limit: int = 6) -> list[str]:
    """Human lines for what differs between two ``stage_inputs`` (e.g. 'settings.max_steps: 30 -> 31')."""
    if not old:
        return ["no record of the previous inputs"]
    def plain(value: Mapping[str, Any]) -> Any:  # compare as stored in run_state.json (tuples -> lists, ...)
        return json.loads(json.dumps(value, default=str))

    before, after = _flatten(plain(old)), _flatten(plain(new))
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if key.startswith("upstream."):
            lines.append(f"upstream stage '{key.split('.', 1)[1]}' changed")
        elif key.endswith("sha256"):
            lines.append(f"{key.rsplit('.', 1)[0]}: file content changed")
        else:
            lines.append(f"{key}: {before.get(key, '(unset)')!r} -> {after.get(key, '(unset)')!r}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def artifact_signature(path: str | os.PathLike[str]) -> str | None:
    """Cheap identity of an output (file or folder): names, sizes and modification times.

    None when it does not exist. A result is only reused while its artifacts keep
    the signature they had when the stage finished (another run in the same
    output root overwriting them makes the stage run again).
    """
    target = Path(path)
    try:
        if target.is_file():
            stat = target.stat()
            parts = [f".|{stat.st_size}|{stat.st_mtime_ns}"]
        elif target.is_dir():
            parts = []
            for root, dirs, files in os.walk(target):
                dirs.sort()
                for name in sorted(files):
                    file_path = Path(root) / name
                    stat = file_path.stat()
                    parts.append(f"{file_path.relative_to(target).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}")
        else:
            return None
    except OSError:
        return None
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
