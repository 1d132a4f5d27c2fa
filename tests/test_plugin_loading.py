"""Plugin loading: allow/block lists, failing registrations, duplicate stage names, and how they are reported."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from medllm_core.kernel.plugin_manager import ALLOW_ENV, BLOCK_ENV, load_plugins
from tests.conftest import run_cli

_unique = itertools.count()

STAGE_PLUGIN = '''
from medllm_core.kernel.hookspecs import hookimpl
from medllm_core.kernel.stages import StageResult, StageSpec


@hookimpl
def register_stages(register):
    for name in {stages!r}:
        register(StageSpec(name=name, run=lambda ctx: StageResult.done(), description="from {plugin}"))
'''

FAILING_PLUGIN = '''
from medllm_core.kernel.hookspecs import hookimpl


@hookimpl
def register_stages(register):
    raise RuntimeError("cannot find my model files")
'''

WRONG_TYPE_PLUGIN = '''
from medllm_core.kernel.hookspecs import hookimpl


@hookimpl
def register_stages(register):
    register({"name": "not_a_spec"})
'''


def install_fake(site: Path, plugin: str, source: str) -> None:
    """A minimal installed distribution: a module and a dist-info folder with the entry point."""
    module = f"fake_plugin_{next(_unique)}"  # unique: imported modules stay cached for the session
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[medllm.plugins]\n{plugin} = {module}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))  # importlib.metadata reads entry points from sys.path
    return folder


def records(registry) -> dict[str, tuple[str, str]]:
    return {p.name: (p.status, p.reason) for p in registry.plugins}


def test_allow_list_loads_only_the_named_third_party_plugins(site: Path) -> None:
    install_fake(site, "alpha", STAGE_PLUGIN.format(stages=["alpha_stage"], plugin="alpha"))
    install_fake(site, "beta", STAGE_PLUGIN.format(stages=["beta_stage"], plugin="beta"))
    everything = load_plugins({})
    assert {"alpha_stage", "beta_stage"} <= set(everything.stages)

    registry = load_plugins({ALLOW_ENV: "alpha, other"})
    assert records(registry)["alpha"] == ("loaded", "")
    assert records(registry)["beta"] == ("blocked", f"not in {ALLOW_ENV}")
    assert "alpha_stage" in registry.stages and "beta_stage" not in registry.stages
    assert records(registry)["sft"][0] == "loaded"  # built-in stages are not subject to the allow-list


def test_block_list_wins_over_the_allow_list_and_covers_builtins(site: Path) -> None:
    install_fake(site, "alpha", STAGE_PLUGIN.format(stages=["alpha_stage"], plugin="alpha"))
    registry = load_plugins({ALLOW_ENV: "alpha", BLOCK_ENV: "alpha,kto"})
    assert records(registry)["alpha"] == ("blocked", f"listed in {BLOCK_ENV}")
    assert records(registry)["kto"] == ("blocked", f"listed in {BLOCK_ENV}")
    assert "kto" not in registry.stages and "dpo" in registry.stages


def test_failing_register_stages_is_contained_and_explained(site: Path) -> None:
    install_fake(site, "crashes", FAILING_PLUGIN)
    install_fake(site, "wrong_type", WRONG_TYPE_PLUGIN)
    install_fake(site, "fine", STAGE_PLUGIN.format(stages=["fine_stage"], plugin="fine"))
    registry = load_plugins({})
    status, reason = records(registry)["crashes"]
    assert status == "failed"
    assert reason.startswith("register_stages: RuntimeError: cannot find my model files (at ")
    assert "fake_plugin_" in reason  # names the file and line that raised
    status, reason = records(registry)["wrong_type"]
    assert status == "failed" and "register() expects a StageSpec, got dict" in reason
    assert "not_a_spec" not in registry.stages
    assert {p.name for p in registry.failed_plugins} == {"crashes", "wrong_type"}
    assert "fine_stage" in registry.stages and "sft" in registry.stages  # the others are unaffected


def test_duplicate_stage_name_warns_and_the_later_plugin_wins(site: Path) -> None:
    install_fake(site, "first", STAGE_PLUGIN.format(stages=["shared"], plugin="first"))
    install_fake(site, "second", STAGE_PLUGIN.format(stages=["shared", "sft"], plugin="second"))
    registry = load_plugins({})
    assert "stage 'shared' from plugin 'second' replaces the one from 'first'" in registry.warnings
    assert "stage 'sft' from plugin 'second' replaces the one from 'sft'" in registry.warnings
    assert registry.origin["shared"] == "second" and registry.origin["sft"] == "second"
    assert registry.stages["shared"].description == "from second"


def test_plugins_command_reports_failures_and_duplicates(site: Path) -> None:
    install_fake(site, "crashes", FAILING_PLUGIN)
    install_fake(site, "first", STAGE_PLUGIN.format(stages=["shared"], plugin="first"))
    install_fake(site, "second", STAGE_PLUGIN.format(stages=["shared"], plugin="second"))
    result = run_cli(["plugins"], env={"PYTHONPATH": str(site), "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    crashed = next(line for line in result.stdout.splitlines() if "crashes" in line)
    assert "failed" in crashed and "register_stages: RuntimeError: cannot find my model files" in crashed
    assert "warning: stage 'shared' from plugin 'second' replaces the one from 'first'" in result.stdout
