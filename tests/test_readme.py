"""The README's profile reference and commands stay true."""

from __future__ import annotations

import re

from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import ENV_OVERRIDES, load_profile
from tests.conftest import REPO


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_profile_reference_block_is_a_valid_profile(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", _readme(), flags=re.S)
    reference = next(b for b in blocks if "[stages.sft]" in b)
    path = tmp_path / "reference.toml"
    path.write_text(reference, encoding="utf-8")
    profile = load_profile(path, environ={}, stages=load_plugins(environ={}).catalogue())
    assert profile.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct"
    assert profile.stages["sft"]["max_steps"] == -1


def test_every_environment_override_is_documented():
    text = _readme()
    for name in {*ENV_OVERRIDES, *load_plugins(environ={}).catalogue().env}:
        assert f"`{name}`" in text, name


def test_readme_commands_match_ci():
    text = _readme()
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh all,dev && .venv/bin/python -m pytest" in text
    assert "bash scripts/setup.sh all,dev" in ci and ".venv/bin/python -m pytest" in ci
    assert "bash scripts/setup.sh && .venv/bin/medllm-tui --run profiles/cpu_tiny.toml" in text
