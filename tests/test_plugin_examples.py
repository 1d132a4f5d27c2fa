"""The example plugins under examples/ install like any third-party plugin and pass their own tests.

Their tests (examples/*/tests) use the public test kit and train the tiny model for
real; here they run in a subprocess against a real install (pip, entry points, package
data) kept out of this test environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("example_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(EXAMPLES / "medllm_orpo"), str(EXAMPLES / "medllm_perplexity")],
                   check=True, capture_output=True, text=True)
    return target


def test_examples_are_listed_with_their_stages(example_site: Path) -> None:
    result = run_cli(["plugins"], env={"PYTHONPATH": str(example_site), "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "entry point" in line}
    assert "loaded" in rows["orpo"] and "medllm-orpo 0.1.0" in rows["orpo"]
    assert "loaded" in rows["perplexity"] and "medllm-perplexity 0.1.0" in rows["perplexity"]
    # the held-out set ships as package data, so a non-editable install can score it
    assert (example_site / "medllm_perplexity" / "heldout_medical.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("example", ["medllm_orpo", "medllm_perplexity"])
def test_example_passes_its_own_tests(example_site: Path, example: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDLLM_", "PYTEST_"))}
    env["PYTHONPATH"] = str(example_site)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLES / example,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout and "failed" not in result.stdout
