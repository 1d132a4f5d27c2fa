"""Run the planned stages in graph order, writing every step to events.jsonl.

The runner knows nothing about training or any stage by name: it plans (the
artifact graph, toggles), probes the hardware, takes the precision decision,
asks the gate stage for the gate, calls stages and turns their results (and
the check stages' verdicts) into an exit code.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from medllm_core.kernel import events as ev
from medllm_core.kernel.atomic import write_json, write_text
from medllm_core.kernel.context import STOP_FILE, PlannedStage, RunContext, RunInfo, StageContext
from medllm_core.kernel.errors import ExitCode, MedllmError, PreflightBlocked
from medllm_core.kernel.events import EventLog
from medllm_core.kernel.gate import GateVerdict
from medllm_core.kernel.graph import plan_stages
from medllm_core.kernel.hardware import HardwareInfo, choose_precision, probe_hardware
from medllm_core.kernel.plugin_manager import StageRegistry
from medllm_core.kernel.profile import Profile, dump_profile, profile_location
from medllm_core.kernel.report_paths import runs_dir
from medllm_core.kernel.resume import PreviousRun, RunLedger, archive_changed_profile, sweep_leftovers
from medllm_core.kernel.resume_command import resume_command
from medllm_core.kernel.run_state import STATE_FILE, RunState
from medllm_core.kernel.stages import StageKind, StageResult, StageStatus
from medllm_core.kernel.user_files import check_output_root


@dataclass
class RunOutcome:
    exit_code: ExitCode
    run_dir: Path
    results: dict[str, StageResult]
    message: str = ""


def new_run_info(profile: Profile, run_dir: Path | None = None) -> RunInfo:
    output_dir = profile.output_dir
    # Before any folder is made: a file here would fail later as NotADirectoryError.
    check_output_root(output_dir, profile_location(profile, "output_root"),
                      profile.sources.get("output_root", "file"))
    if run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{profile.name}-{os.getpid()}"
        run_dir = runs_dir(output_dir) / run_id
    return RunInfo(run_id=run_dir.name, output_dir=output_dir, run_dir=run_dir)


def start_run(
    profile: Profile,
    registry: StageRegistry,
    run: RunInfo,
    *,
    hardware: HardwareInfo | None = None,
    secrets: tuple[str, ...] = (),
    previous: PreviousRun | None = None,
) -> RunContext:
    """Create the run folder, save the effective profile and take the run-wide decisions.

    With ``previous`` (``--resume``) the run folder is reused: events are appended
    and ``RunContext.resume`` is set.
    """
    run.run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_stages(profile, registry)
    archived = archive_changed_profile(run, profile, previous) if previous is not None else None
    write_text(run.run_dir / "effective_profile.toml", dump_profile(profile))
    write_json(run.run_dir / "profile_sources.json", profile.sources)
    events = EventLog(run.events_path, secrets=secrets)
    hardware = hardware or probe_hardware(profile.hardware.device)
    context = RunContext(
        profile=profile,
        run=run,
        events=events,
        hardware=hardware,
        precision=choose_precision(hardware, profile.hardware.precision),
        gate=GateVerdict.open(),
        plan=plan,
        resume=previous is not None,
    )
    context.gate = evaluate_gate(context)
    events.write(ev.RunStarted(
        run_id=run.run_id,
        profile=profile.name,
        profile_path=str(profile.source_path),
        output_dir=str(run.output_dir),
        run_dir=str(run.run_dir),
        argv=sys.argv,
        hardware=hardware.to_dict(),
        host=socket.gethostname(),
        resumed=previous is not None,
        attempt=previous.attempt + 1 if previous is not None else 1,
    ))
    if archived is not None:
        events.write(ev.Log(level="info", message=f"the profile differs from the previous attempt's; "
                                                  f"that one is kept as {archived.name}"))
    for record in registry.plugins:
        events.write(ev.PluginLoaded(name=record.name, source=record.source, status=record.status,
                                     reason=record.reason, stages=list(record.stages)))
    for warning in registry.warnings:
        events.write(ev.Log(level="warning", message=warning))
    events.write(describe_plan(context))
    return context


def evaluate_gate(context: RunContext) -> GateVerdict:
    """The gate of the first enabled stage that declares one (the built-in preflight); open otherwise."""
    for planned in context.plan:
        if planned.enabled and planned.spec.gate is not None:
            return planned.spec.gate(StageContext(context, planned))
    return GateVerdict.open()


def describe_plan(context: RunContext) -> ev.Plan:
    stages = []
    for planned in context.plan:
        line = ""
        if planned.enabled and planned.spec.describe_plan is not None:
            try:
                line = planned.spec.describe_plan(StageContext(context, planned))
            except Exception as exc:  # a plan line must never stop a dry run
                line = f"(plan unavailable: {exc})"
        stages.append(ev.PlanStage(
            name=planned.spec.name,
            kind=str(planned.spec.kind),
            enabled=planned.enabled,
            required=planned.required,
            requires=list(planned.spec.requires),
            upstream=list(planned.upstream),
            consumes=[ref.key() for ref in planned.inputs],
            produces=list(planned.spec.produces),
            plugin=planned.source_plugin,
            detail=line,
        ))
    return ev.Plan(
        stages=tuple(stages),
        precision={"dtype": context.precision.dtype, "reason": context.precision.reason},
        gate={"verdict": context.gate.verdict, "reason": context.gate.reason, "facts": context.gate.facts},
        hardware=context.hardware.describe(),
    )


def _dependency_problem(context: RunContext, planned: PlannedStage) -> str | None:
    for dep in planned.spec.requires:
        result = context.results.get(dep)
        dep_plan = context.planned(dep)
        if dep_plan is not None and not dep_plan.enabled:
            return f"requires stage '{dep}', which is disabled"
        if result is None:
            return f"requires stage '{dep}', which did not run"
        if not result.ok:
            because = f": {result.reason}" if result.reason else ""
            return f"requires stage '{dep}', which was {result.status}{because}"
    return None


def run_stages(context: RunContext, ledger: RunLedger | None = None) -> RunOutcome:
    events = context.events
    ledger = ledger or RunLedger.for_context(context)
    context.fingerprints = dict(ledger.fingerprints)
    exit_code = ExitCode.OK
    message = ""
    stop_reason: str | None = None
    for planned in context.plan:
        name = planned.spec.name
        if not planned.enabled:
            continue
        if stop_reason is not None:
            result = StageResult.skipped(stop_reason)
            context.results[name] = result
            events.write(ev.StageFinished(stage=name, **result.to_dict(), duration_s=0.0))
            continue
        events.write(ev.StageStarted(stage=name, kind=str(planned.spec.kind), required=planned.required,
                                     fingerprint=ledger.fingerprints.get(name)))
        started = time.monotonic()
        problem = _dependency_problem(context, planned)
        continue_stage = False
        if problem is None and ledger.resuming:
            verdict = ledger.assess(context, planned)
            for level, line in verdict.logs:
                events.write(ev.Log(stage=name, level=level, message=line))
            if verdict.reuse is not None:
                ledger.restore(context, planned, verdict.reuse)
                events.write(ev.StageFinished(stage=name, **verdict.reuse.to_dict(),
                                              duration_s=round(time.monotonic() - started, 3), reused=True))
                _save_state(context, ledger)
                continue
            continue_stage = verdict.continue_stage
        if problem is not None:
            result = StageResult.skipped(problem)
        else:
            ledger.running[name] = ledger.fingerprints.get(name, "")
            _save_state(context, ledger)
            # RunContext.resume is what a stage reads: while it runs, True only when this
            # stage continues its own interrupted work (same inputs, same upstream results).
            context.resume = continue_stage
            try:
                result = _call_stage(context, planned)
            except KeyboardInterrupt:
                # Ctrl-C is a stop request too: the stage is "stopped" (not failed) and --resume continues it.
                _record_stopped(context, ledger, name, started, "interrupted (SIGINT); continue with --resume")
                raise
            finally:
                context.resume = ledger.resuming
        if isinstance(result, PreflightBlocked):
            exit_code, message = ExitCode.PREFLIGHT_BLOCKED, result.render()
            stop_reason = "run stopped by the preflight gate"
            result = StageResult.failed(result.render())
        context.results[name] = result
        ledger.finished(name, result)
        events.write(ev.StageFinished(stage=name, **result.to_dict(),
                                      duration_s=round(time.monotonic() - started, 3)))
        _save_state(context, ledger)
        if stop_reason is None and (context.run.run_dir / STOP_FILE).exists():
            # The TUI's stop action (or `touch RUN_DIR/STOP`): training stopped at a step boundary with a
            # checkpoint; nothing else starts. `--resume` continues from there.
            command = resume_command(context.run.run_dir, context.profile.source_path, sys.argv)
            exit_code, message = ExitCode.INTERRUPTED, f"stopped on request; continue with: {command}"
            stop_reason = "run stopped on request (STOP file)"
    if exit_code == ExitCode.OK:
        exit_code, message = _exit_from_results(context)
    return RunOutcome(exit_code, context.run.run_dir, dict(context.results), message)


def _record_stopped(context: RunContext, ledger: RunLedger, name: str, started: float, reason: str) -> None:
    result = StageResult.stopped(reason)
    context.results[name] = result
    ledger.finished(name, result)
    context.events.write(ev.StageFinished(stage=name, **result.to_dict(),
                                          duration_s=round(time.monotonic() - started, 3)))
    _save_state(context, ledger)


def _exit_from_results(context: RunContext) -> tuple[ExitCode, str]:
    stopped = [n for n, r in context.results.items() if r.status == StageStatus.STOPPED]
    if stopped:
        from medllm_core.kernel.resume_command import resume_command

        command = resume_command(context.run.run_dir, context.profile.source_path, sys.argv)
        return ExitCode.INTERRUPTED, f"stopped on request: {', '.join(stopped)}; continue with: {command}"
    failed = [n for n, r in context.results.items() if r.status == StageStatus.FAILED]
    if failed:
        return ExitCode.STAGE_FAILED, f"stage(s) failed: {', '.join(failed)}"
    for planned in context.plan:
        if not planned.enabled or StageKind(planned.spec.kind) != StageKind.CHECK:
            continue
        result = context.results.get(planned.spec.name)
        if result is None or not result.ok:
            return ExitCode.STRICT_CHECK_FAILED, f"check '{planned.spec.name}' did not run"
        if result.verdict is False:
            because = result.reason or "verdict false"
            return ExitCode.STRICT_CHECK_FAILED, f"check '{planned.spec.name}' failed: {because}"
    return ExitCode.OK, ""


def check_inputs(context: RunContext) -> None:
    """Let every enabled stage reject bad input before any GPU time is spent."""
    for planned in context.plan:
        if planned.enabled and planned.spec.check_inputs is not None:
            planned.spec.check_inputs(StageContext(context, planned))


def dry_run(context: RunContext) -> RunOutcome:
    """Validate inputs and report the plan; trains nothing and writes no contract files."""
    check_inputs(context)
    code, message = ExitCode.OK, "dry run: nothing trained"
    if context.gate.verdict == "block":
        # Exit like the real run would on this machine, so a script that dry-runs first learns it.
        code = ExitCode.PREFLIGHT_BLOCKED
        message = f"dry run: nothing trained; the real run would stop at the preflight gate ({context.gate.reason})"
    context.events.write(ev.RunFinished(exit_code=int(code), status="dry_run", message=message))
    context.events.close()
    return RunOutcome(code, context.run.run_dir, {}, message)


def _call_stage(context: RunContext, planned: PlannedStage) -> StageResult | PreflightBlocked:
    from medllm_core.kernel.distributed import processes_for, run_stage_distributed

    stage_context = StageContext(context, planned)
    processes = processes_for(context, planned)
    try:
        if processes > 1:
            result = run_stage_distributed(context, planned, processes)
        else:
            result = planned.spec.run(stage_context)
    except PreflightBlocked as exc:
        return exc
    except MedllmError as exc:
        return StageResult.failed(exc.render())
    except Exception as exc:
        log_path = context.run.run_dir / f"{planned.spec.name}_traceback.txt"
        write_text(log_path, context.events.mask(traceback.format_exc()))
        return StageResult.failed(f"{type(exc).__name__}: {context.events.mask(str(exc))} (traceback: {log_path})")
    if not isinstance(result, StageResult):
        return StageResult.failed(f"stage returned {type(result).__name__}, expected StageResult")
    return result


def _save_state(context: RunContext, ledger: RunLedger) -> None:
    """``run_state.json``: each stage's result with the fingerprint it was produced under.

    Stages this attempt has not reached yet keep what the previous attempt
    recorded, so a resume that is itself interrupted loses nothing.
    """
    current = RunState(
        run_id=context.run.run_id,
        attempt=ledger.attempt,
        results=dict(context.results),
        fingerprints={n: ledger.fingerprints.get(n) for n in context.results},
        artifacts={n: ledger.signatures[n] for n in context.results if n in ledger.signatures},
        inputs={n: ledger.inputs.get(n) for n in context.results},
        running=dict(ledger.running),
        decisions=list(context.decisions),
    )
    ledger.previous.carry_into(current).save(context.run.run_dir / STATE_FILE)


def finish_run(context: RunContext, outcome: RunOutcome) -> None:
    from medllm_core.kernel.day1_summary import write_day1_summary
    from medllm_core.kernel.kept_reports import record_success

    summary_path = write_day1_summary(context, outcome)
    record_success(context, int(outcome.exit_code))
    context.events.write(ev.RunFinished(
        exit_code=int(outcome.exit_code),
        status=outcome.exit_code.name.lower(),
        message=outcome.message,
        summary=str(summary_path),
    ))
    context.events.close()


def execute(profile: Profile, registry: StageRegistry, *, run: RunInfo | None = None,
            hardware: HardwareInfo | None = None, secrets: tuple[str, ...] = (),
            resume: PreviousRun | None = None) -> RunOutcome:
    """Plan, run every enabled stage, write the day-1 summary; never raises for stage errors.

    ``resume`` (from ``prepare_resume``) continues an interrupted run in its own folder.
    """
    if resume is not None:
        run = resume.run
    run = run or new_run_info(profile)
    context = start_run(profile, registry, run, hardware=hardware, secrets=secrets, previous=resume)
    try:
        from medllm_core.kernel.kept_reports import keep_last_success

        keep_last_success(context)
        if resume is not None:
            sweep_leftovers(context)
            (run.run_dir / STOP_FILE).unlink(missing_ok=True)  # the stop request was for the previous attempt
        ledger = RunLedger.for_context(context, resume)
        _save_state(context, ledger)
        check_inputs(context)
        outcome = run_stages(context, ledger)
    except MedllmError as exc:
        outcome = RunOutcome(exc.exit_code, run.run_dir, dict(context.results), exc.render())
    except KeyboardInterrupt:
        from medllm_core.kernel.resume_command import resume_command

        command = resume_command(run.run_dir, profile.source_path, sys.argv)
        outcome = RunOutcome(ExitCode.INTERRUPTED, run.run_dir, dict(context.results),
                             f"interrupted (Ctrl-C); continue with: {command}")
    finish_run(context, outcome)
    return outcome


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    return tuple(v for k, v in env.items() if k in ("OPENAI_API_KEY", "HF_TOKEN") and v)
