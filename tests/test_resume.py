"""``medllm-tui --run PROFILE --resume [RUN_DIR]``: continue an interrupted run in its own folder.

Two halves: fast in-process tests of the reuse rules with stand-in stages (no
training), and end-to-end runs of the real CLI on the tiny CPU profile (reuse,
changed input, SIGKILL mid-SFT).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from medllm_core.kernel.atomic import write_json
from medllm_core.kernel.errors import ConfigError, ExitCode
from medllm_core.kernel.events import EventReader
from medllm_core.kernel.fingerprint import stage_fingerprints
from medllm_core.kernel.graph import plan_stages
from medllm_core.kernel.hardware import probe_hardware
from medllm_core.kernel.plugin_manager import StageRegistry, load_plugins
from medllm_core.kernel.profile import DataSection, Profile, load_profile
from medllm_core.kernel.resume import latest_run_dir, prepare_resume
from medllm_core.kernel.runner import execute
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec
from tests.conftest import REPO, run_cli

SLUG = "tiny_qwen2"
PROFILE = "profiles/cpu_tiny.toml"


# --- helpers ---------------------------------------------------------------------

def all_events(run_dir: Path) -> list[dict]:
    return EventReader(run_dir / "events.jsonl").poll()  # tolerant of a torn line left by a kill


def attempts(events: list[dict]) -> list[list[dict]]:
    """The events of each attempt (split at run_started)."""
    out: list[list[dict]] = []
    for event in events:
        if event["type"] == "run_started":
            out.append([])
        if out:
            out[-1].append(event)
    return out


def finished(events: list[dict], stage: str) -> dict:
    return next(e for e in events if e["type"] == "stage_finished" and e.get("stage") == stage)


def only_run_dir(out: Path) -> Path:
    runs = [d for d in (out / "reports" / "runs").iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# --- in-process: the reuse rules with stand-in stages ------------------------------

@dataclass
class FakeSettings:
    value: int = 1


@dataclass
class Recorder:
    calls: list[tuple[str, bool]]  # (stage, RunContext.resume while it ran)
    interrupt: set[str]  # stages that raise KeyboardInterrupt (a Ctrl-C mid-stage)
    fail: set[str]


def fake_registry(recorder: Recorder) -> StageRegistry:
    def make(name: str, kind: StageKind, after: tuple[str, ...] = ()) -> StageSpec:
        def run(ctx):
            recorder.calls.append((name, ctx.run_context.resume))
            if name in recorder.interrupt:
                raise KeyboardInterrupt
            if name in recorder.fail:
                return StageResult.failed("boom")
            if kind == StageKind.CHECK:
                return StageResult.done(summary={"seen": sorted(ctx.results)})
            metrics = write_json(ctx.run.reports_dir / f"{name}.json", {"value": ctx.settings.value})
            final = ctx.run.checkpoints_dir / name / "final"
            final.mkdir(parents=True, exist_ok=True)
            (final / "adapter.bin").write_bytes(b"weights")
            return StageResult.trained(metrics_path=str(metrics), checkpoint_path=str(final))

        settings = FakeSettings if kind == StageKind.TRAINING else None
        return StageSpec(name=name, run=run, kind=kind, after=after, settings=settings)

    registry = StageRegistry()
    for spec in (make("first", StageKind.TRAINING), make("second", StageKind.TRAINING, after=("first",)),
                 make("check", StageKind.CHECK)):
        registry.stages[spec.name] = spec
        registry.origin[spec.name] = "test"
    return registry


@pytest.fixture
def fake(tmp_path: Path):
    recorder = Recorder([], set(), set())
    registry = fake_registry(recorder)
    data = tmp_path / "data.jsonl"
    data.write_text('{"messages": []}\n', encoding="utf-8")
    hardware = probe_hardware("cpu")

    def profile(**stages: dict) -> Profile:
        p = Profile(name="fake", output_root=str(tmp_path / "out"))
        p.model.tier = "tiny"
        p.data = {"sft": DataSection(path=str(data))}
        p.stages = dict(stages)
        return p

    def run(p: Profile, resume: bool | str = False):
        recorder.calls.clear()
        previous = prepare_resume(p, None if resume is True else resume) if resume else None
        return execute(p, registry, hardware=hardware, resume=previous)

    return recorder, profile, run, data


def test_unchanged_stages_are_reused_and_checks_rerun(fake):
    recorder, profile, run, _ = fake
    first = run(profile())
    assert first.exit_code == ExitCode.OK
    assert [c[0] for c in recorder.calls] == ["first", "second", "check"]

    again = run(profile(), resume=True)
    assert again.exit_code == ExitCode.OK and again.run_dir == first.run_dir
    assert [c[0] for c in recorder.calls] == ["check"]  # check stages always run again
    events = attempts(all_events(first.run_dir))
    assert len(events) == 2 and events[1][0]["resumed"] is True and events[0][0]["resumed"] is False
    assert finished(events[1], "first")["reused"] is True and finished(events[1], "second")["reused"] is True
    assert "reused" not in finished(events[1], "check")
    assert again.results["check"].summary["seen"] == ["first", "second"]
    state = json.loads((first.run_dir / "run_state.json").read_text())
    assert state["attempt"] == 2 and set(state["fingerprints"]) == {"first", "second", "check"}
    assert state["running"] == {}


def test_changed_upstream_invalidates_downstream(fake):
    recorder, profile, run, _ = fake
    run(profile())
    outcome = run(profile(first={"value": 2}), resume=True)
    assert outcome.exit_code == ExitCode.OK
    assert [c for c in recorder.calls] == [("first", False), ("second", False), ("check", False)]
    events = attempts(all_events(outcome.run_dir))[-1]
    logs = [e["message"] for e in events if e["type"] == "log" and e.get("stage") == "first"]
    assert any(m.startswith("inputs changed: rerunning") and "settings.value: 1 -> 2" in m for m in logs)
    second = [e["message"] for e in events if e["type"] == "log" and e.get("stage") == "second"]
    assert any("inputs changed: rerunning" in m and "upstream stage 'first' changed" in m for m in second)


def test_changed_data_bytes_rerun_every_training_stage(fake):
    recorder, profile, run, data = fake
    run(profile())
    data.write_text('{"messages": [1]}\n', encoding="utf-8")
    run(profile(), resume=True)
    assert [c[0] for c in recorder.calls] == ["first", "second", "check"]


def test_missing_artifact_reruns_the_stage_and_what_builds_on_it(fake):
    recorder, profile, run, _ = fake
    first = run(profile())
    (first.run_dir.parent.parent / "first.json").unlink()
    run(profile(), resume=True)
    assert [c[0] for c in recorder.calls] == ["first", "second", "check"]
    logs = [e["message"] for e in attempts(all_events(first.run_dir))[-1] if e["type"] == "log"]
    assert any(m.startswith("artifact missing:") for m in logs)
    assert any("upstream stage(s) first ran again" in m for m in logs)


def test_artifact_overwritten_by_another_run_is_not_reused(fake):
    recorder, profile, run, _ = fake
    first = run(profile())
    time.sleep(0.01)
    write_json(first.run_dir.parent.parent / "second.json", {"value": "someone else's"})
    run(profile(), resume=True)
    assert [c[0] for c in recorder.calls] == ["second", "check"]


def test_interrupted_stage_continues_with_resume_on(fake):
    recorder, profile, run, _ = fake
    recorder.interrupt.add("second")
    killed = run(profile())
    assert killed.exit_code == ExitCode.INTERRUPTED
    state = json.loads((killed.run_dir / "run_state.json").read_text())
    # Ctrl-C is a stop request: the stage is recorded "stopped" (issue 15 item 1), not left "running".
    assert not state["running"] and state["results"]["second"]["status"] == "stopped"
    assert state["results"]["first"]["status"] == "trained"
    recorder.interrupt.clear()
    resumed = run(profile(), resume=True)
    assert resumed.exit_code == ExitCode.OK
    assert recorder.calls == [("second", True), ("check", False)]  # resume on only for the interrupted stage


def test_interrupted_stage_with_changed_inputs_starts_clean(fake):
    recorder, profile, run, _ = fake
    recorder.interrupt.add("second")
    run(profile())
    recorder.interrupt.clear()
    run(profile(second={"value": 5}), resume=True)
    assert recorder.calls == [("second", False), ("check", False)]


def test_failed_stage_is_rerun(fake):
    recorder, profile, run, _ = fake
    recorder.fail.add("second")
    assert run(profile()).exit_code == ExitCode.STAGE_FAILED
    recorder.fail.clear()
    assert run(profile(), resume=True).exit_code == ExitCode.OK
    assert [c[0] for c in recorder.calls] == ["second", "check"]


def test_resume_of_a_resume_that_was_interrupted_keeps_earlier_results(fake):
    recorder, profile, run, _ = fake
    recorder.interrupt.add("second")
    run(profile())
    run(profile(), resume=True)  # interrupted again in "second"
    recorder.interrupt.clear()
    run(profile(), resume=True)
    assert recorder.calls == [("second", True), ("check", False)]


def test_leftovers_and_torn_event_line_are_cleaned_up(fake, tmp_path):
    recorder, profile, run, _ = fake
    first = run(profile())
    out = tmp_path / "out"
    (out / "reports" / ".first.json.abc123.tmp").write_text("{half", encoding="utf-8")
    (out / "checkpoints" / "first" / ".final.staging").mkdir()
    with open(first.run_dir / "events.jsonl", "ab") as handle:
        handle.write(b'{"ts": 1, "type": "lo')  # a writer killed mid-line
    run(profile(), resume=True)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.staging"))
    lines = (first.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    torn = [i for i, line in enumerate(lines) if line == '{"ts": 1, "type": "lo']
    assert torn and json.loads(lines[torn[0] + 1])["type"] == "run_started"


def test_latest_run_of_the_profile_is_picked(fake, tmp_path):
    _, profile, run, _ = fake
    older = run(profile()).run_dir
    time.sleep(1.1)  # run ids have second resolution
    newer = run(profile()).run_dir
    assert older != newer
    assert latest_run_dir(profile()) == newer
    later = (newer / "events.jsonl").stat().st_mtime + 10
    os.utime(older / "events.jsonl", (later, later))  # most recent activity wins, not the name
    assert latest_run_dir(profile()) == older
    other = profile()
    other.name = "another"
    with pytest.raises(ConfigError, match="no run of profile 'another'"):
        latest_run_dir(other)


def test_refuses_a_folder_of_another_profile(fake):
    _, profile, run, _ = fake
    folder = run(profile()).run_dir
    other = profile()
    other.name = "another"
    with pytest.raises(ConfigError, match="run of profile 'fake'"):
        prepare_resume(other, folder)


def test_refuses_a_run_that_is_still_in_progress(tmp_path):
    folder = tmp_path / "out" / "reports" / "runs" / "r1"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "medllm"])
    try:
        event = {"type": "run_started", "pid": sleeper.pid, "profile": "p", "host": socket.gethostname(),
                 "output_dir": str(tmp_path / "out")}
        (folder / "events.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8")
        write_json(folder / "run_state.json", {"results": {}})
        profile = Profile(name="p", output_root=str(tmp_path / "out"))
        with pytest.raises(ConfigError, match=f"still in progress \\(pid {sleeper.pid}\\)"):
            prepare_resume(profile, folder)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert prepare_resume(profile, folder).run.run_dir == folder


def test_explicit_run_dir_brings_its_output_root(fake, tmp_path):
    _, profile, run, _ = fake
    folder = run(profile()).run_dir
    elsewhere = Profile(name="fake", output_root=".")
    previous = prepare_resume(elsewhere, folder)
    assert previous.run.output_dir == tmp_path / "out" and elsewhere.output_dir == tmp_path / "out"
    assert elsewhere.sources["output_root"] == "resume"
    explicit = Profile(name="fake", output_root=str(tmp_path / "other"))
    explicit.sources = {"output_root": "cli"}
    with pytest.raises(ConfigError, match="--output-root"):
        prepare_resume(explicit, folder)


def test_fingerprints_of_the_real_plan_chain_through_sft(tmp_path):
    """A changed SFT invalidates exactly what depends on it in the stage graph (DPO, SimPO, KTO, eval, ...)."""
    registry = load_plugins(environ={})
    schemas = registry.settings_schemas()
    base = load_profile(REPO / PROFILE, environ={}, stage_schemas=schemas)
    changed = load_profile(REPO / PROFILE, environ={}, cli_overrides={"stages.sft.learning_rate": 0.5},
                           stage_schemas=schemas)
    plan = plan_stages(base, registry)
    before, _ = stage_fingerprints(base, plan, "fp32")
    after, _ = stage_fingerprints(changed, plan_stages(changed, registry), "fp32")
    assert before["sft"] != after["sft"]
    dependants: set[str] = set()
    for planned in plan:  # run order: a stage's upstream is settled before it
        if "sft" in planned.upstream or dependants & set(planned.upstream):
            dependants.add(planned.spec.name)
    assert {"dpo", "simpo", "kto", "eval", "llm_judge", "risk_judge", "completion_check"} <= dependants
    for name in dependants:
        assert before[name] != after[name], name
    independent = [p.spec.name for p in plan if p.spec.name != "sft" and p.spec.name not in dependants]
    assert "preflight" in independent
    for name in independent:
        assert before[name] == after[name], name
    precision, _ = stage_fingerprints(base, plan_stages(base, registry), "bf16")
    assert precision["sft"] != before["sft"]


# --- the real CLI: errors ------------------------------------------------------------

def test_resume_without_a_previous_run_is_a_config_error(tmp_path):
    result = run_cli(["--run", PROFILE, "--output-root", str(tmp_path), "--resume"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no run of profile 'cpu_tiny' to resume" in result.stderr


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli(["--run", PROFILE, "--output-root", str(tmp_path), "--resume", str(tmp_path)])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not a medllm run folder" in result.stderr


def test_resume_needs_a_profile_and_no_dry_run(tmp_path):
    assert run_cli(["--resume", "--output-root", str(tmp_path)]).returncode == 2  # no run there to resume
    dry = run_cli(["--run", PROFILE, "--output-root", str(tmp_path), "--resume", "--dry-run"])
    assert dry.returncode == 2 and "dry run" in dry.stderr


# --- the real CLI: end to end on the tiny CPU profile ---------------------------------

def cli_env() -> dict[str, str]:
    """The environment ``run_cli`` gives the CLI (for a Popen we can kill)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_SKIP_TRAINING", "ALLOW_SKIP_TRAINING", "DRY_RUN", "MODEL_NAME", "MODEL_TIER",
                        "OPENAI_API_KEY", "OPENAI_BASE_URL", "MEDLLM_BLOCK_PLUGINS", "MEDLLM_ALLOW_PLUGINS")}
    env["MEDLLM_ENV_FILE"] = str(REPO / ".env.test-absent")
    return env


def sft_only() -> list[str]:
    """Keep the end-to-end runs to SFT: the other training stages of cpu_tiny are switched off.

    SFT itself is pinned to 30 steps of micro-batch 4 with a checkpoint every 10 (not cpu_tiny's
    400 steps of 1, every 100), so a kill at step 12 lands mid-stage and leaves checkpoint-10.
    """
    flags: list[str] = []
    for key, value in (("max_steps", 30), ("save_steps", 10), ("micro_batch_size", 4), ("max_length", 256)):
        flags += ["--set", f"stages.sft.{key}={value}"]
    for name, spec in load_plugins(environ={}).stages.items():
        if StageKind(spec.kind) == StageKind.TRAINING and name != "sft":
            flags += ["--set", f"stages.{name}.enabled=false"]
    return flags


def tree(out: Path) -> dict[str, set[str]]:
    """Files under reports/ (run folders aside) and checkpoints/ (checkpoint-N names folded)."""
    reports = {p.relative_to(out / "reports").as_posix() for p in (out / "reports").rglob("*")
               if p.is_file() and p.relative_to(out / "reports").parts[0] != "runs"}
    checkpoints = {re.sub(r"checkpoint-\d+", "checkpoint-N", p.relative_to(out / "checkpoints").as_posix())
                   for p in (out / "checkpoints").rglob("*") if p.is_file()}
    return {"reports": reports, "checkpoints": checkpoints}


def sft_metrics(out: Path) -> dict:
    return json.loads((out / f"reports/training/layer_b_{SLUG}_sft_metrics.json").read_text())


def curve_steps(out: Path) -> list[int]:
    return [p["step"] for p in json.loads(Path(sft_metrics(out)["loss_curve_file"]).read_text())["points"]]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted run; what later tests compare against is captured before they touch it."""
    out = tmp_path_factory.mktemp("clean")
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *sft_only()])
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = {"tree": tree(out), "steps": sft_metrics(out)["steps"], "curve": curve_steps(out),
                "dashboard": dashboard_model(all_events(only_run_dir(out)))}
    return out, snapshot


def dashboard_model(events: list[dict]) -> dict:
    """What the dashboard shows (issue 15: stages, steps, curves, checks), from the TUI's own reader."""
    from medllm_core.kernel.run_view import RunView

    view = RunView()
    view.apply_all(events)
    return {"stages": {n: (v.state, v.step, v.total) for n, v in view.stages.items()},
            "curves": {n: [step for step, _ in points] for n, points in view.losses.items()},
            "checks": sorted((c.name, c.passed) for c in view.checks),
            "exit": view.finished.exit_code if view.finished else None}


@pytest.fixture(scope="module")
def resumed_unchanged(clean_run):
    out, _ = clean_run
    final = out / f"checkpoints/layer_b/{SLUG}_sft/final/adapter_model.safetensors"
    before = final.stat().st_mtime_ns
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *sft_only(), "--resume"])
    return out, result, before


@pytest.mark.slow
def test_resume_of_a_finished_run_reuses_sft_and_rechecks(resumed_unchanged):
    out, result, final_mtime = resumed_unchanged
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(out)
    first, second = attempts(all_events(run_dir))
    assert second[0]["resumed"] is True and second[0]["run_id"] == first[0]["run_id"]
    sft = finished(second, "sft")
    assert sft["reused"] is True and sft["status"] == "trained" and sft["summary"]["steps"] == 30
    assert any(e["type"] == "log" and e.get("stage") == "sft" and "reusing" in e["message"] for e in second)
    assert not [e for e in second if e["type"] in ("loss", "progress")]
    check = finished(second, "completion_check")
    assert "reused" not in check and check["summary"]["strict_pass"] is True
    assert json.loads((out / "reports/migration/gpu_completion_check.json").read_text())["strict_pass"] is True
    assert second[-1]["type"] == "run_finished" and second[-1]["exit_code"] == 0
    final = out / f"checkpoints/layer_b/{SLUG}_sft/final/adapter_model.safetensors"
    assert final.stat().st_mtime_ns == final_mtime  # the checkpoint was not rewritten
    assert "`strict_pass`: **true**" in (out / "reports/migration/day1_run_summary.md").read_text()


@pytest.mark.slow
def test_resume_with_a_changed_input_reruns_sft(resumed_unchanged):
    out, _, _ = resumed_unchanged
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *sft_only(), "--resume",
                      "--set", "stages.sft.max_steps=12"])
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(out)
    last = attempts(all_events(run_dir))[-1]
    assert "reused" not in finished(last, "sft") and finished(last, "sft")["summary"]["steps"] == 12
    assert any(e["type"] == "log" and e.get("stage") == "sft" and e["message"].startswith("inputs changed: rerunning")
               and "max_steps" in e["message"] for e in last)
    # changed inputs start clean: no continuing from the old run's checkpoints
    assert [e["step"] for e in last if e["type"] == "loss"] == list(range(1, 13))
    assert sft_metrics(out)["steps"] == 12 and curve_steps(out) == list(range(1, 13))
    assert (run_dir / "effective_profile.toml").read_text() != next(run_dir.glob("effective_profile.attempt*.toml")
                                                                    ).read_text()


def wait_for_loss(out: Path, proc: subprocess.Popen, min_step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events_path in (out / "reports" / "runs").glob("*/events.jsonl"):
            if any(e["type"] == "loss" and e.get("stage") == "sft" and e["step"] >= min_step
                   for e in EventReader(events_path).poll()):
                return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before SFT reached step {min_step}")
        time.sleep(0.05)
    pytest.fail(f"SFT did not reach step {min_step} within {timeout}s")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("killed")
    with open(out.parent / f"{out.name}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "medllm_tui", "--run", PROFILE, "--output-root", str(out),
                                 *sft_only()], cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_loss(out, proc, min_step=12)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    killed = all_events(only_run_dir(out))
    result = run_cli(["--run", PROFILE, "--output-root", str(out), *sft_only(), "--resume"])
    return out, killed, result


@pytest.mark.slow
def test_sigkill_mid_sft_then_resume_matches_an_uninterrupted_run(killed_and_resumed, clean_run):
    out, killed, result = killed_and_resumed
    _, reference = clean_run
    assert not [e for e in killed if e["type"] in ("run_finished",) or
                (e["type"] == "stage_finished" and e.get("stage") == "sft")]
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(out)
    assert len(attempts(all_events(run_dir))) == 2
    assert tree(out) == reference["tree"]
    assert sft_metrics(out)["steps"] == reference["steps"] == 30
    assert curve_steps(out) == list(range(1, 31))
    assert json.loads((out / "reports/migration/gpu_completion_check.json").read_text())["strict_pass"] is True
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".old")) or ".staging" in p.name]
    assert leftovers == []
    for path in out.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))  # every JSON file is complete


@pytest.mark.slow
def test_the_dashboard_of_a_killed_and_resumed_run_equals_a_clean_runs(killed_and_resumed, clean_run):
    out, _, result = killed_and_resumed
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = dashboard_model(all_events(only_run_dir(out)))
    clean = clean_run[1]["dashboard"]
    # sft is "trained" in both (continued from checkpoint-10 here); steps 1..30 once each, not replayed twice
    assert resumed["stages"] == clean["stages"]
    assert resumed["curves"] == clean["curves"] and resumed["curves"]["sft"] == list(range(1, 31))
    assert resumed["checks"] == clean["checks"]  # the latest attempt's checks only, none repeated
    assert resumed["exit"] == clean["exit"] == 0


@pytest.mark.slow
def test_sigkill_mid_sft_resume_continues_from_the_checkpoint(killed_and_resumed):
    out, _, result = killed_and_resumed
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = attempts(all_events(only_run_dir(out)))[-1]
    losses = [e["step"] for e in resumed if e["type"] == "loss" and e.get("stage") == "sft"]
    assert losses and losses[0] > 1, losses  # continued (from checkpoint-10), not restarted
    assert losses == list(range(losses[0], 31))
    assert any(e["type"] == "decision" and e["kind"] == "resume" and e.get("stage") == "sft" for e in resumed)
