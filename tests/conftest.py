"""Shared helpers: run the real CLI in a subprocess, install fixture plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_PLUGINS = REPO / "tests" / "fixtures" / "plugins"
PUBLIC_DATA = REPO.parent / "shared" / "data" / "public"

# Nothing here compiles with torch.compile (medllm compiles on CUDA only), but bitsandbytes (installed for the
# QLoRA tests) wraps its CPU kernels in torch.compile at import, which imports TorchDynamo: ~2 s in every test
# process and CLI subprocess that imports peft. Disabling Dynamo for the test session (inherited by the
# subprocesses) skips that import; compiled code paths are not exercised on CPU either way.
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
# The suite runs one xdist worker per core and most tests start CLI subprocesses: with torch's default of one
# OpenMP thread per core in each of them, the cores are oversubscribed and OpenMP's spin-waiting makes every
# process several times slower (the tiny models gain nothing from a second thread: same time alone).
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests (marked ``slow``: they train end to end) go first in a one-process run (``-n 0``).
    Under pytest-xdist (pyproject addopts) its own file ordering applies: keeping this order there
    (--no-loadscope-reorder) was measured slower on 2 cores (pytest 16:49 against 13:46), the heavy training
    files then running side by side."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order inside a file is kept


@pytest.fixture(autouse=True, scope="session")
def shared_built_models(tmp_path_factory: pytest.TempPathFactory):
    """One folder of locally built tiny models for the whole session (MEDLLM_MODEL_CACHE), in-process and in
    the CLI subprocesses: every run otherwise rebuilds the same model (tokenizer training, ~2-4 s) in its
    fresh output root. Builds are keyed by the fingerprint of their corpus and seed, so sharing is exact."""
    if not os.environ.get("MEDLLM_MODEL_CACHE"):
        os.environ["MEDLLM_MODEL_CACHE"] = str(tmp_path_factory.mktemp("built_models"))
    yield


def run_cli(args: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO,
            timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run ``medllm-tui`` exactly as a user would, in a clean environment for its overrides."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("FORCE_SKIP_TRAINING", "ALLOW_SKIP_TRAINING", "DRY_RUN", "MODEL_NAME", "MODEL_TIER",
                             "OPENAI_API_KEY", "OPENAI_BASE_URL", "MEDLLM_BLOCK_PLUGINS", "MEDLLM_ALLOW_PLUGINS")}
    full_env["MEDLLM_ENV_FILE"] = str(cwd / ".env.test-absent")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "medllm_tui", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def read_events(run_output: Path) -> list[dict]:
    runs = sorted((run_output / "reports" / "runs").iterdir())
    assert runs, "no run folder written"
    lines = (runs[-1] / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture plugin packages pip-installed into a folder used as PYTHONPATH.

    A real install (dist-info with entry points), kept out of the test venv so
    other tests never see these plugins.
    """
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(FIXTURE_PLUGINS / "medllm_sample_plugin"), str(FIXTURE_PLUGINS / "medllm_broken_plugin")],
        check=True, capture_output=True, text=True,
    )
    return target
