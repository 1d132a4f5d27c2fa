"""The headless path never imports Textual (it must start on a bare GPU box without the TUI extra).

A fresh interpreter imports every module of medllm_core and plugins plus
medllm_tui.cli, lists the plugins and dry-runs cpu_tiny, then reports which
textual modules (if any) were imported.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import ENV_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "profiles" / "cpu_tiny.toml"
TUI_ROOTS = {"textual", "textual_plotext"}

SCRIPT = r"""
import importlib, json, pkgutil, sys, traceback

out = sys.argv[1]
tui_roots = {"textual", "textual_plotext"}


def tui_modules():
    return sorted(m for m in sys.modules if m.split(".")[0] in tui_roots)


report = {"imported": [], "import_errors": {}, "textual_after": {}}
import medllm_core, plugins

for package in (medllm_core, plugins):
    report["imported"].append(package.__name__)
    def onerror(name):
        report["import_errors"][name] = traceback.format_exc()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".", onerror=onerror):
        try:
            importlib.import_module(info.name)
            report["imported"].append(info.name)
        except Exception:
            report["import_errors"][info.name] = traceback.format_exc()
report["textual_after"]["imports"] = tui_modules()

from medllm_tui import cli

report["textual_after"]["cli import"] = tui_modules()
report["rc_plugins"] = cli.main(["plugins"])
report["textual_after"]["plugins"] = tui_modules()
report["rc_dry_run"] = cli.main(["--run", sys.argv[2], "--dry-run", "--output-root", out])
report["textual_after"]["dry run"] = tui_modules()
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def headless(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("headless")
    out = work / "out"
    seed_variables = {*ENV_OVERRIDES, *load_plugins(environ={}).catalogue().env}
    env = {k: v for k, v in os.environ.items() if k not in seed_variables and not k.startswith("MEDLLM_")}
    env.update(COLUMNS="250", HF_HUB_OFFLINE="1", MEDLLM_ENV_FILE=str(work / "absent.env"), PYTHONIOENCODING="utf-8")
    # Run from a scratch folder: only the installed packages are importable, like on a rented box.
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(TINY)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and lines, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    report = json.loads(lines[-1][len("REPORT "):])
    report.update(stdout=result.stdout, stderr=result.stderr, out=out)
    return report


def test_every_core_and_plugin_module_imports(headless: dict) -> None:
    assert not headless["import_errors"], "\n".join(f"{k}:\n{v}" for k, v in headless["import_errors"].items())
    imported = set(headless["imported"])
    for name in ("medllm_core.kernel.profile", "medllm_core.kernel.runner", "medllm_core.library.data.loader",
                 "medllm_core.library.training.sft", "plugins.sft", "plugins.preflight", "plugins.completion_check"):
        assert name in imported


def test_headless_path_never_imports_textual(headless: dict) -> None:
    offending = {step: mods for step, mods in headless["textual_after"].items() if mods}
    assert not offending, f"textual imported on the headless path: {offending}"


def test_plugins_command_lists_builtin_stages(headless: dict) -> None:
    assert headless["rc_plugins"] == 0
    for name in ("preflight", "sft", "completion_check"):
        assert name in headless["stdout"]
    assert "loaded" in headless["stdout"]
    assert "failed" not in headless["stdout"]


def test_dry_run_prints_the_plan_and_trains_nothing(headless: dict) -> None:
    stdout: str = headless["stdout"]
    assert headless["rc_dry_run"] == 0, stdout + headless["stderr"]
    assert "Traceback" not in stdout + headless["stderr"]
    for name in ("preflight", "sft", "completion_check"):
        assert name in stdout
    assert "precision: fp32" in stdout
    assert "VRAM gate: pass" in stdout
    assert "dry run: nothing trained" in stdout
    out: Path = headless["out"]
    assert not [p for p in out.rglob("checkpoints")], "a dry run created checkpoints/"
    assert not (out / "reports" / "training").exists(), "a dry run created reports/training/"
    assert not (out / "reports" / "migration" / "gpu_completion_check.json").exists()
    runs = list((out / "reports" / "runs").iterdir())
    assert len(runs) == 1
    effective = (runs[0] / "effective_profile.toml").read_text(encoding="utf-8")
    assert "dry_run = true" in effective
    events = [json.loads(line) for line in (runs[0] / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "stage_started" not in {e["type"] for e in events}
    plan = next(e for e in events if e["type"] == "plan")
    order = [s["name"] for s in plan["stages"]]
    assert order.index("preflight") < order.index("sft") < order.index("completion_check")
    assert plan["precision"]["dtype"] == "fp32"
    assert plan["gate"]["verdict"] == "pass"
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "dry_run"


def _textual_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] in TUI_ROOTS for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in TUI_ROOTS:
                lines.append(node.lineno)
    return sorted(lines)


def test_no_textual_import_in_core_or_plugins() -> None:
    files = sorted([*(REPO / "medllm_core").rglob("*.py"), *(REPO / "plugins").rglob("*.py")])
    assert len(files) > 10
    found = {f"{path.relative_to(REPO)}:{line}" for path in files for line in _textual_imports(path)}
    assert not found, f"textual imported in headless code: {sorted(found)}"


def test_textual_import_detector_works(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nif True:\n    from textual.app import App\nimport textual_plotext as t\n",
                      encoding="utf-8")
    assert _textual_imports(sample) == [3, 4]
