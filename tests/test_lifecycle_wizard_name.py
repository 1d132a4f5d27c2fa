"""Issue 15 item 2: the wizard keeps the chosen profile's name and saves into a git-ignored folder."""

from __future__ import annotations

import subprocess

from medllm_tui.wizard_model import CUSTOM_TIER, ProfileOption, WizardChoices, default_save_name
from tests.conftest import REPO


def test_the_default_save_name_is_the_profiles_own_name():
    # It was "cpu_tiny_tiny": `--run profiles/cpu_tiny.toml --resume` then found no run of 'cpu_tiny'.
    profile = ProfileOption("cpu_tiny", REPO / "profiles/cpu_tiny.toml", "CPU smoke run", "shipped")
    assert default_save_name(WizardChoices(profile=profile, tier="tiny")) == "cpu_tiny"
    assert default_save_name(WizardChoices(profile=profile, tier=CUSTOM_TIER)) == "cpu_tiny"


def test_the_user_profile_folder_is_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", "profiles/user/cpu_tiny.toml"], cwd=REPO)
    assert result.returncode == 0
