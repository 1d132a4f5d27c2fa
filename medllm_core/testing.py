"""Test kit for plugin authors: run stages through the real runner in a temporary folder.

Use it from a plugin's tests with ``pytest_plugins = ["medllm_core.testing"]`` in the
``conftest.py`` at the plugin's root, then::

    def test_my_stage(medllm_run):
        run = medllm_run(only=["my_stage"])
        assert run.stage_result("my_stage").status == "done"
        assert run.events("check", stage="my_stage")

``run_pipeline`` does the same without pytest (e.g. inside a module-scoped fixture, so
several tests share one training run). Runs are in-process and use the real runner,
plugin loading, profile validation and event log: what passes here passes in
``medllm-tui --run``. Nothing here imports Textual, torch or TRL; only the stages that
run do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medllm_core.kernel.plugin_manager import PluginRecord, StageRegistry, load_plugins
from medllm_core.kernel.report_paths import COMPLETION_CHECK_JSON, under_output_root
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec

TEST_PLUGIN = "test"  # plugin name the stages passed as ``stages=`` are attributed to
# Few SFT steps keep a tiny-model run at seconds while still giving a loss curve that moves.
QUICK_SFT_STEPS = 6


@dataclass
class PipelineRun:
    """What one run left behind, with helpers for assertions."""

    exit_code: int
    message: str
    output_root: Path
    run_dir: Path
    results: dict[str, StageResult] = field(default_factory=dict)

    def events(self, type: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
        """The run's events (``events.jsonl``), optionally only one type and/or one stage."""
        lines = (self.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [e for e in found
                if (type is None or e.get("type") == type) and (stage is None or e.get("stage") == stage)]

    def finished_order(self) -> list[str]:
        """Stage names in the order they finished (skipped ones included)."""
        return [e["stage"] for e in self.events("stage_finished")]

    def stage_result(self, name: str) -> StageResult:
        if name not in self.results:
            raise AssertionError(f"stage '{name}' did not run; stages that ran: {', '.join(self.results) or 'none'}"
                                 f" (exit {self.exit_code}: {self.message})")
        return self.results[name]

    def artifact(self, relative: str | Path) -> Path:
        """A file or folder under the output root; fails the test if it is not there."""
        path = self.output_root / relative
        if not path.exists():
            raise AssertionError(f"{relative} was not written under {self.output_root}")
        return path

    def read_json(self, relative: str | Path) -> Any:
        return json.loads(self.artifact(relative).read_text(encoding="utf-8"))

    def metrics(self, stage: str) -> dict[str, Any]:
        """The JSON file the stage reported as ``metrics_path``."""
        result = self.stage_result(stage)
        if not result.metrics_path:
            raise AssertionError(f"stage '{stage}' reported no metrics_path ({result.status}: {result.reason})")
        return json.loads(Path(result.metrics_path).read_text(encoding="utf-8"))

    def strict_check(self) -> dict[str, Any]:
        return self.read_json(under_output_root(COMPLETION_CHECK_JSON))


def restrict(registry: StageRegistry, only: Iterable[str]) -> StageRegistry:
    """The registry reduced to ``only``, the stages they ``require`` (transitively) and preflight.

    Stages left out are not in the plan at all (rather than disabled), so the exit code
    reflects only what was asked for: a run without ``completion_check`` is not failed
    for lacking one.
    """
    wanted = list(only)
    unknown = [name for name in wanted if name not in registry.stages]
    if unknown:
        raise AssertionError(f"unknown stage(s) {', '.join(unknown)}; registered: {', '.join(registry.stages)}")
    keep = {name for name, spec in registry.stages.items() if StageKind(spec.kind) == StageKind.PREFLIGHT}
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name not in keep:
            keep.add(name)
            pending.extend(registry.stages[name].requires)
    return StageRegistry(
        stages={n: s for n, s in registry.stages.items() if n in keep},
        origin={n: o for n, o in registry.origin.items() if n in keep},
        plugins=registry.plugins,
        warnings=registry.warnings,
    )


def build_registry(stages: Sequence[StageSpec] = (), environ: Mapping[str, str] | None = None) -> StageRegistry:
    """Installed plugins (honouring the allow/block variables in ``environ``) plus ``stages``.

    ``stages`` lets a test run a stage before its package is even installed.
    """
    registry = load_plugins({} if environ is None else environ)
    if stages:
        record = PluginRecord(TEST_PLUGIN, "medllm_core.testing (stages passed to the test)", "loaded")
        for spec in stages:
            if spec.name in registry.stages:
                registry.warnings.append(f"stage '{spec.name}' from plugin '{TEST_PLUGIN}' replaces the one from "
                                         f"'{registry.origin[spec.name]}'")
            registry.stages[spec.name] = spec
            registry.origin[spec.name] = TEST_PLUGIN
            record.stages.append(spec.name)
        registry.plugins.append(record)
    return registry


def run_pipeline(
    output_root: Path,
    *,
    profile: str | Path = "cpu_tiny",
    stages: Sequence[StageSpec] = (),
    only: Iterable[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    sft_steps: int | None = QUICK_SFT_STEPS,
) -> PipelineRun:
    """Run ``profile`` (default: the tiny CPU profile) with its output under ``output_root``.

    - ``stages``: extra ``StageSpec`` objects, registered as if a plugin named ``test`` did.
    - ``only``: run just these stages, what they require, and preflight (None: every stage).
    - ``overrides``: ``--set``-style dotted keys, e.g. ``{"stages.my_stage.threshold": 3}``.
    - ``environ``: the environment the profile and plugin loader see; empty by default so a
      developer's ``FORCE_SKIP_TRAINING`` or ``MEDLLM_BLOCK_PLUGINS`` cannot change a test.
    - ``sft_steps``: SFT ``max_steps`` (and ``save_steps``) for a short run; None keeps the profile's.
    """
    from medllm_core.kernel.profile import load_profile
    from medllm_core.kernel.runner import execute, new_run_info

    env = {} if environ is None else dict(environ)
    registry = build_registry(stages, env)
    cli: dict[str, Any] = {"output_root": str(Path(output_root).resolve())}
    if sft_steps is not None and "sft" in registry.stages:
        cli.update({"stages.sft.max_steps": sft_steps, "stages.sft.save_steps": sft_steps})
    cli.update(overrides or {})
    # Validate against every registered stage (the profile may configure ones `only` leaves out).
    loaded = load_profile(profile, environ=env, cli_overrides=cli, stages=registry.catalogue())
    planned = restrict(registry, only) if only is not None else registry
    run = new_run_info(loaded)
    outcome = execute(loaded, planned, run=run)
    return PipelineRun(int(outcome.exit_code), outcome.message, loaded.output_dir, outcome.run_dir,
                       dict(outcome.results))


@pytest.fixture
def medllm_run(tmp_path: Path) -> Callable[..., PipelineRun]:
    """``medllm_run(**kwargs)`` runs ``run_pipeline`` in a fresh folder under ``tmp_path``."""
    counter = iter(range(1_000_000))

    def run(**kwargs: Any) -> PipelineRun:
        return run_pipeline(tmp_path / f"run{next(counter)}", **kwargs)

    return run
