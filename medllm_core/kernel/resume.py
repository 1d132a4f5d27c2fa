"""Continue an interrupted run (``--resume [RUN_DIR]``).

Each stage's result is stored in ``run_state.json`` with a fingerprint of its
inputs; on resume a finished stage whose inputs and artifacts are unchanged is
reused, an interrupted one continues from its last checkpoint, and anything
whose inputs changed runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel import events as ev
from medllm_core.kernel.context import Decision, PlannedStage, RunContext, RunInfo, StageContext
from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.kernel.events import EventReader
from medllm_core.kernel.fingerprint import artifact_signature, describe_changes, stage_fingerprints
from medllm_core.kernel.profile import Profile, dump_profile
from medllm_core.kernel.report_paths import EVENTS_FILE, REPORTS, RUNS, checkpoints_dir, reports_dir, runs_dir
from medllm_core.kernel.run_state import STATE_FILE, RunState
from medllm_core.kernel.stages import StageKind, StageResult, StageStatus

# Cheap stages that must reflect the current state: never reused on --resume.
ALWAYS_RERUN_KINDS = frozenset({StageKind.PREFLIGHT, StageKind.CHECK, StageKind.REPORT})


@dataclass
class PreviousRun:
    """An interrupted run folder to continue: where it is and what its last attempt recorded."""

    run: RunInfo
    state: RunState  # its run_state.json
    events_offset: int  # size of events.jsonl before this attempt appends (readers start here)

    @property
    def attempt(self) -> int:
        return self.state.attempt


def is_run_folder(path: Path) -> bool:
    return (path / EVENTS_FILE).is_file() and (path / STATE_FILE).is_file()


def _run_started(path: Path) -> ev.RunStarted | None:
    """The first ``run_started`` of a run folder's events (it is normally the first line)."""
    try:
        with open(path / EVENTS_FILE, "rb") as handle:
            first = ev.parse_event(json.loads(handle.readline()))
        if isinstance(first, ev.RunStarted):
            return first
    except (OSError, json.JSONDecodeError):
        pass
    return next((e for e in EventReader(path / EVENTS_FILE).poll_records() if isinstance(e, ev.RunStarted)), None)


def _run_profile_name(run_dir: Path) -> str | None:
    started = _run_started(run_dir)
    return started.profile if started else None


def latest_run_dir(profile: Profile) -> Path:
    """The most recently active run folder of this profile under its output root."""
    runs = runs_dir(profile.output_dir)
    candidates = [d for d in runs.iterdir() if d.is_dir() and is_run_folder(d)] if runs.is_dir() else []
    candidates = [d for d in candidates if _run_profile_name(d) == profile.name]
    if not candidates:
        raise ConfigError(f"no run of profile '{profile.name}' to resume under {runs}",
                          hint="start one without --resume, or name the run folder: --resume RUN_DIR")
    return max(candidates, key=lambda d: (d / EVENTS_FILE).stat().st_mtime_ns)


def _process_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():  # Linux: a zombie or a reused pid is not our run
        try:
            return b"medllm" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def _still_running(run_dir: Path) -> int | None:
    """The pid of an attempt that started here, has not finished and is alive on this host."""
    started: ev.RunStarted | None = None
    for event in EventReader(run_dir / EVENTS_FILE).poll_records():
        if isinstance(event, ev.RunStarted):
            started = event
        elif isinstance(event, ev.RunFinished):
            started = None
    if started is None or (started.host or socket.gethostname()) != socket.gethostname():
        return None
    pid = int(started.pid or 0)
    return pid if _process_alive(pid) else None


def _terminate_torn_line(events_path: Path) -> int:
    """A writer killed mid-line leaves no newline; end it so appended events start on their own line."""
    size = events_path.stat().st_size
    if size:
        with open(events_path, "rb") as handle:
            handle.seek(size - 1)
            last = handle.read(1)
        if last != b"\n":
            with open(events_path, "ab") as handle:
                handle.write(b"\n")
            size += 1
    return size


def checked_run_folder(run_dir: str) -> Path:
    """A run folder named on the command line, refused (exit 2) when it is missing or not a medllm run."""
    folder = Path(os.path.expanduser(run_dir)).resolve()
    if not folder.is_dir():
        raise ConfigError("run folder to resume not found", Location(file=str(folder)))
    if not is_run_folder(folder):
        raise ConfigError("not a medllm run folder (no events.jsonl / run_state.json)", Location(file=str(folder)),
                          hint="pass a folder under <output_root>/reports/runs/")
    return folder


def prepare_resume(profile: Profile, run_dir: str | os.PathLike[str] | None = None) -> PreviousRun:
    """Find (``run_dir`` None: the latest run of ``profile``) and check the run folder to continue.

    Raises ``ConfigError`` (exit 2) for a folder that is not a medllm run, a run of
    another profile, an output root that contradicts the folder, or a run that is
    still in progress.
    """
    if run_dir is None or str(run_dir) == "":
        folder = latest_run_dir(profile)
    else:
        folder = checked_run_folder(str(run_dir))
        recorded = _run_profile_name(folder)
        if recorded is not None and recorded != profile.name:
            raise ConfigError(f"run folder is a run of profile '{recorded}', not '{profile.name}'",
                              Location(file=str(folder)), hint=f"resume it with its own profile ('{recorded}')")
    try:
        state = RunState.load(folder / STATE_FILE)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not a run state
        raise ConfigError(f"unreadable {STATE_FILE}: {exc}", Location(file=str(folder / STATE_FILE))) from None
    output_dir = _run_output_dir(folder, profile)
    pid = _still_running(folder)
    if pid is not None:
        raise ConfigError(f"this run is still in progress (pid {pid})", Location(file=str(folder)),
                          hint=f"wait for it, or stop it (Ctrl-C, or kill {pid}) and resume again")
    offset = _terminate_torn_line(folder / EVENTS_FILE)
    return PreviousRun(RunInfo(run_id=folder.name, output_dir=output_dir, run_dir=folder), state, offset)


def _run_output_dir(folder: Path, profile: Profile) -> Path:
    """The run's own output root; the profile is pointed at it unless the user set another one explicitly."""
    started = _run_started(folder)
    if folder.parent.name == RUNS and folder.parent.parent.name == REPORTS:
        output_dir = folder.parent.parent.parent  # <output_root>/reports/runs/<run-id>
    elif started is not None and started.output_dir:
        output_dir = Path(started.output_dir)
    else:
        output_dir = profile.output_dir
    if output_dir.resolve() == profile.output_dir:
        return profile.output_dir
    origin = profile.sources.get("output_root", "file")
    if origin == "cli" or origin.startswith("env:"):
        via = "--output-root" if origin == "cli" else f"environment variable {origin[4:]}"
        raise ConfigError(f"{via} is {profile.output_dir}, but the run folder belongs to output root {output_dir}",
                          Location(file=str(folder)), hint="drop the override or resume a run of that output root")
    profile.output_root = str(output_dir)
    profile.sources["output_root"] = "resume"
    return profile.output_dir


def archive_changed_profile(run: RunInfo, profile: Profile, previous: PreviousRun) -> Path | None:
    """Keep the previous attempt's effective profile when this attempt's differs (evidence of what changed)."""
    current = run.run_dir / "effective_profile.toml"
    try:
        before = current.read_text(encoding="utf-8")
    except OSError:
        return None
    if before == dump_profile(profile):
        return None
    number = previous.attempt
    archive = run.run_dir / f"effective_profile.attempt{number}.toml"
    while archive.exists():
        number += 1
        archive = run.run_dir / f"effective_profile.attempt{number}.toml"
    os.replace(current, archive)
    return archive


def sweep_leftovers(context: RunContext) -> None:
    """Remove what a killed attempt left half-done: atomic-write temp files and staging folders.

    A folder that ``replace_directory`` had moved aside (``.name.old``) is moved
    back when the new one never arrived. Only ever done on resume, once the
    previous attempt is known to be dead.
    """
    out = context.run.output_dir
    cleaned: list[str] = []
    for root in (reports_dir(out), checkpoints_dir(out)):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob(".*"), key=lambda p: len(p.parts), reverse=True):
            name = path.name
            try:
                if path.is_file() and name.endswith(".tmp"):
                    path.unlink()
                elif path.is_dir() and name.endswith(".staging"):
                    shutil.rmtree(path)
                elif path.is_dir() and name.endswith(".old"):
                    original = path.with_name(name[1:-len(".old")])
                    if original.exists():
                        shutil.rmtree(path)
                    else:
                        os.replace(path, original)
                        cleaned.append(f"{path} (restored as {original.name})")
                        continue
                else:
                    continue
            except OSError as exc:
                context.events.write(ev.Log(level="warning", message=f"could not clean up {path}: {exc}"))
                continue
            cleaned.append(str(path))
    if cleaned:
        context.events.write(ev.Log(level="info",
                                    message=f"removed leftovers of the interrupted attempt: {', '.join(cleaned)}"))


@dataclass
class Verdict:
    """What to do with one stage on resume."""

    reuse: StageResult | None = None  # the previous result to keep, or None: run the stage
    continue_stage: bool = False  # run it with RunContext.resume=True (continue from its checkpoint)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message)


@dataclass
class RunLedger:
    """Fingerprints of this attempt, what the previous attempt recorded, and what was reused."""

    fingerprints: dict[str, str]
    inputs: dict[str, dict[str, Any]]
    previous: RunState = field(default_factory=RunState)  # the interrupted attempt's run_state.json
    resuming: bool = False
    attempt: int = 1
    running: dict[str, str] = field(default_factory=dict)  # stage -> fingerprint, while it runs
    reused: set[str] = field(default_factory=set)
    signatures: dict[str, dict[str, str | None]] = field(default_factory=dict)  # stage -> artifact -> signature

    @classmethod
    def for_context(cls, context: RunContext, previous: PreviousRun | None = None) -> RunLedger:
        fingerprints, inputs = stage_fingerprints(context.profile, context.plan, context.precision.dtype)
        if previous is None:
            return cls(fingerprints, inputs)
        return cls(fingerprints, inputs, previous=previous.state, resuming=True, attempt=previous.attempt + 1)

    def finished(self, name: str, result: StageResult) -> None:
        self.running.pop(name, None)
        if result.ok:
            self.signatures[name] = {path: artifact_signature(path) for path in _artifact_paths(result)}

    def restore(self, context: RunContext, planned: PlannedStage, result: StageResult) -> None:
        """Take a previous result over as this attempt's, with the decisions it recorded."""
        name = planned.spec.name
        context.results[name] = result
        self.reused.add(name)
        self.signatures[name] = dict(self.previous.artifacts.get(name) or {})
        for item in self.previous.decisions:
            if item.stage == name and item.kind != "reused_result":
                context.decisions.append(Decision(item.kind, item.summary, item.facts, name, item.ts))
        StageContext(context, planned).decide(
            "reused_result", "inputs unchanged since the previous attempt: result reused, stage not rerun",
            fingerprint=self.fingerprints.get(name), previous_attempt=self.attempt - 1,
        )

    def assess(self, context: RunContext, planned: PlannedStage) -> Verdict:
        name = planned.spec.name
        kind = StageKind(planned.spec.kind)
        if kind in ALWAYS_RERUN_KINDS:
            return Verdict(logs=[("info", f"{kind} stages always run again on resume")])
        fingerprint = self.fingerprints.get(name)
        results = self.previous.results
        rerun_upstream = [
            dep for dep in planned.upstream
            if (dep_plan := context.planned(dep)) is not None and dep_plan.enabled
            and StageKind(dep_plan.spec.kind) not in ALWAYS_RERUN_KINDS and dep not in self.reused
        ]
        upstream_note = f"upstream stage(s) {', '.join(rerun_upstream)} ran again in this attempt: rerunning"
        if name in results:
            previous_fp = self.previous.fingerprints.get(name)
            if previous_fp is None:
                return Verdict(logs=[("warning", "the previous attempt recorded no fingerprint for this stage: "
                                                 "rerunning")])
            if previous_fp != fingerprint:
                return self._inputs_changed(context, planned, previous_fp)
            if rerun_upstream:
                return Verdict(logs=[("info", upstream_note)])
            previous = results[name]
            if previous.ok and not previous.reusable:
                return Verdict(logs=[("info", "the previous attempt's result is incomplete "
                                              f"({previous.reason or 'not reusable'}): rerunning")])
            if not previous.ok:
                # A stopped stage is unfinished work like a failed one: continue from its checkpoint.
                failed = previous.status in (StageStatus.FAILED, StageStatus.STOPPED)
                return Verdict(continue_stage=failed, logs=[(
                    "info", f"previous attempt ended '{previous.status}': rerunning"
                    + (" with resume on (training continues from its last checkpoint)" if failed else ""))])
            problem = self._artifact_problem(name, previous)
            if problem is not None:
                return Verdict(logs=[("warning", f"{problem}: rerunning")])
            return Verdict(reuse=previous, logs=[(
                "info", f"inputs unchanged (fingerprint {str(fingerprint)[:12]}) and artifacts present: "
                        "reusing the previous attempt's result")])
        running = self.previous.running
        if name in running:
            if running[name] != fingerprint:
                return self._inputs_changed(context, planned, running[name])
            if rerun_upstream:
                return Verdict(logs=[("info", upstream_note)])
            return Verdict(continue_stage=True, logs=[(
                "info", "interrupted in the previous attempt: running it with resume on "
                        "(training continues from its last checkpoint)")])
        return Verdict(logs=[("info", "not run in the previous attempt: running")])

    def _inputs_changed(self, context: RunContext, planned: PlannedStage, previous_fp: str | None) -> Verdict:
        name = planned.spec.name
        changes = describe_changes(self.previous.inputs.get(name), self.inputs.get(name, {}))
        StageContext(context, planned).decide(
            "rerun_inputs_changed", "inputs changed since the previous attempt: stage reruns from the start",
            previous_fingerprint=previous_fp, fingerprint=self.fingerprints.get(name), changes=changes,
        )
        return Verdict(logs=[("warning", f"inputs changed: rerunning ({'; '.join(changes)})")])

    def _artifact_problem(self, name: str, previous: StageResult) -> str | None:
        recorded = self.previous.artifacts.get(name) or {}
        for path in _artifact_paths(previous):
            current = artifact_signature(path)
            if current is None:
                return f"artifact missing: {path}"
            if path in recorded and recorded[path] != current:
                return f"artifact changed since the previous attempt wrote it: {path}"
        return None


def _artifact_paths(result: StageResult) -> list[str]:
    return [p for p in (result.metrics_path, result.checkpoint_path) if p]
