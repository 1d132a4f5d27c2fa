"""Files of a new plugin package (``medllm-tui plugin new NAME``), as ``string.Template`` texts.

Kept as Python strings rather than data files so a non-editable install of medllm
carries them without package-data configuration. Placeholders: ``$stage`` (stage and
entry-point name), ``$package`` (import name), ``$dist`` (distribution name),
``$title`` (human name).
"""

from __future__ import annotations

from string import Template

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "medllm plugin: the '$stage' stage"
requires-python = ">=3.11"
# medllm is the host application, installed already; it is not fetched as a dependency.
dependencies = []

[project.optional-dependencies]
test = ["pytest>=8"]

# How medllm finds the plugin: the entry point name is the plugin name shown by
# `medllm-tui plugins`; the value is the module holding the @hookimpl functions.
[project.entry-points."medllm.plugins"]
$stage = "$package.plugin"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

README = Template('''\
# $dist

A medllm stage plugin: `$stage` audits the data files the
profile names (rows per file, rows longer than `max_chars`). Replace it with your own stage.

```bash
.venv/bin/pip install -e ./$dist          # from the medllm checkout, into medllm's venv
.venv/bin/medllm-tui plugins               # '$stage' is listed, loaded
.venv/bin/medllm-tui --run profiles/cpu_tiny.toml --set stages.$stage.max_chars=600
cd $dist && ../.venv/bin/python -m pytest  # the plugin's own tests
```

Options (`[stages.$stage]` in a profile): see `${title}Settings` in `$package/plugin.py`.
''')

CONFTEST = Template('''\
# The medllm test kit: the `medllm_run` fixture (runs stages in a temporary folder).
pytest_plugins = ["medllm_core.testing"]
''')

INIT = Template('''\
"""medllm plugin package for the '$stage' stage (registration in plugin.py)."""
''')

PLUGIN = Template('''\
"""The '$stage' stage: how many rows each data file of the profile has, and which are too long.

Everything here comes from ``medllm_core.api``, the public plugin API: the
``register_stages`` hook, ``StageSpec`` / ``StageResult``, the artifacts a stage
declares and the ``StageContext`` the runner passes to ``run``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.api import SchemaError, StageContext, StageKind, StageResult, StageSpec, hookimpl

STAGE = "$stage"


@dataclass
class ${title}Settings:
    """The keys of ``[stages.$stage]`` in a profile (with their defaults)."""

    # The help texts are shown by the wizard and by `medllm-tui options`.
    max_chars: int = field(default=4000, metadata={"help": "a row whose text is longer than this is reported"})
    fail_on_long_rows: bool = field(default=False, metadata={"help": "true: the stage fails when a row is too long"})

    def validate(self, prefix: str) -> None:
        # Runs when the profile is loaded, so a bad value stops the run before anything starts.
        if self.max_chars <= 0:
            raise SchemaError(f"{prefix}.max_chars", "must be > 0")


def read_rows(path: Path) -> list[Any]:
    """A JSON list or JSON Lines file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run(ctx: StageContext) -> StageResult:
    settings: ${title}Settings = ctx.settings
    files = {key: ctx.profile.resolve_path(section.path) for key, section in ctx.profile.data.items() if section.path}
    if not files:
        return StageResult.skipped("the profile names no data file")  # the reason is shown in the summary
    report: dict[str, Any] = {"max_chars": settings.max_chars, "files": {}}
    long_total = rows_total = 0
    for key, path in files.items():
        lengths = [len(json.dumps(row, ensure_ascii=False)) for row in read_rows(path)]
        long_rows = [number for number, length in enumerate(lengths, start=1) if length > settings.max_chars]
        report["files"][key] = {"path": str(path), "rows": len(lengths), "longest": max(lengths, default=0),
                                "long_rows": long_rows}
        ctx.check(f"{key}_rows_fit", not long_rows,
                  f"{len(long_rows)} of {len(lengths)} rows longer than {settings.max_chars} characters")
        long_total += len(long_rows)
        rows_total += len(lengths)
    out = ctx.run.reports_dir / STAGE / f"{STAGE}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    summary = {"rows": rows_total, "long_rows": long_total}
    if long_total and settings.fail_on_long_rows:
        return StageResult.failed(f"{long_total} row(s) longer than {settings.max_chars} characters",
                                  metrics_path=str(out), summary=summary)
    return StageResult.done(metrics_path=str(out), summary=summary)


@hookimpl
def register_stages(register: Callable[[StageSpec], None]) -> None:
    register(StageSpec(
        name=STAGE,
        run=run,
        kind=StageKind.CUSTOM,
        produces=(STAGE,),  # an artifact kind of its own: a stage that consumes it runs after this one
        settings=${title}Settings,
        description="Rows per data file and rows that are too long",
    ))
''')

TEST = Template('''\
"""Runs '$stage' through the real medllm runner, with the tiny CPU profile, in a temporary folder."""

from __future__ import annotations

from medllm_core.testing import build_registry

from $package.plugin import STAGE


def test_installed_and_loaded_through_the_entry_point() -> None:
    registry = build_registry()
    problems = [f"{p.name}: {p.status} {p.reason}" for p in registry.plugins if p.status != "loaded"]
    assert registry.origin.get(STAGE) == "$stage", (
        f"stage '{STAGE}' is not registered: is this package installed (pip install -e .) in the environment "
        f"medllm runs in? plugins not loaded: {problems}")


def test_stage_reports_every_data_file(medllm_run) -> None:
    run = medllm_run(only=[STAGE])  # this stage (plus preflight) on profiles/cpu_tiny.toml
    assert run.exit_code == 0, run.message
    assert run.stage_result(STAGE).status == "done"
    report = run.metrics(STAGE)
    assert report["files"]["sft"]["rows"] > 0
    assert {e["name"] for e in run.events("check", stage=STAGE)} == {f"{key}_rows_fit" for key in report["files"]}


def test_profile_option_makes_it_fail(medllm_run) -> None:
    run = medllm_run(only=[STAGE], overrides={f"stages.{STAGE}.max_chars": 10,
                                              f"stages.{STAGE}.fail_on_long_rows": True})
    assert run.exit_code == 4  # a stage failed
    result = run.stage_result(STAGE)
    assert result.status == "failed" and "longer than 10 characters" in result.reason
''')

GITIGNORE = Template('''\
__pycache__/
*.egg-info/
build/
.pytest_cache/
''')


def files(package: str) -> dict[str, Template]:
    """Relative path -> template of every file a new plugin package gets."""
    return {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        "conftest.py": CONFTEST,
        f"{package}/__init__.py": INIT,
        f"{package}/plugin.py": PLUGIN,
        "tests/test_plugin.py": TEST,
    }
