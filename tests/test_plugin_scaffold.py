"""``medllm-tui plugin new NAME`` writes a package that installs (pip install -e) and passes its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from medllm_core.kernel.errors import ConfigError
from medllm_tui.plugin_scaffold import create_plugin, plugin_names
from tests.conftest import REPO, run_cli


def test_names_derived_from_the_stage_name() -> None:
    names = plugin_names("icd-coverage")
    assert (names.stage, names.package, names.dist, names.title) == (
        "icd_coverage", "medllm_icd_coverage", "medllm-icd-coverage", "IcdCoverage")
    assert plugin_names("medllm-icd-coverage") == names
    for bad in ("9lives", "Upper", "x", "with space", "class"):
        with pytest.raises(ConfigError):
            plugin_names(bad)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    root = create_plugin("icd_coverage", tmp_path)
    (root / "pyproject.toml").write_text("mine", encoding="utf-8")
    result = run_cli(["plugin", "new", "icd_coverage", "--dir", str(tmp_path)])
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (root / "pyproject.toml").read_text(encoding="utf-8") == "mine"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The scaffold created through the CLI, then ``pip install -e``'d into a throwaway venv.

    The venv sees this environment's packages (medllm, pytest, torch) through a .pth
    file, so nothing is downloaded; the plugin itself is a real editable install.
    """
    work = tmp_path_factory.mktemp("scaffold")
    created = run_cli(["plugin", "new", "icd_coverage", "--dir", str(work)])
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout and "-m pip install -e" in created.stdout
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    host = sysconfig.get_paths()["purelib"]
    Path(purelib, "medllm_host.pth").write_text(f"import site; site.addsitedir({host!r})\n", encoding="utf-8")
    root = work / "medllm-icd-coverage"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-build-isolation", "-e", str(root)], check=True, capture_output=True, text=True)
    return root, python


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MEDLLM_", "PYTEST_"))}


def test_scaffold_passes_its_own_tests_after_pip_install_e(installed: tuple[Path, Path]) -> None:
    root, python = installed
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_installed_scaffold_is_listed_and_planned_in_cpu_tiny(installed: tuple[Path, Path]) -> None:
    root, python = installed
    listed = subprocess.run([str(python), "-m", "medllm_tui", "plugins"], cwd=REPO, capture_output=True, text=True,
                            env={**_env(), "COLUMNS": "250"}, timeout=120)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "medllm-icd-coverage" in line)
    assert "loaded" in row and "icd_coverage" in row
    planned = subprocess.run([str(python), "-m", "medllm_tui", "--run", "profiles/cpu_tiny.toml", "--dry-run",
                              "--output-root", str(root / "out"),
                              "--set", "stages.icd_coverage.max_chars=600"],
                             cwd=REPO, capture_output=True, text=True, env={**_env(), "COLUMNS": "250"}, timeout=120)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert any(line.count("icd_coverage") >= 2 for line in planned.stdout.splitlines())  # stage + plugin columns

