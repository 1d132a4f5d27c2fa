"""Issue 15 item 5: a model path that cannot be found fails before any stage, with the reason on screen."""

from __future__ import annotations

from tests.conftest import REPO, run_cli

PROFILE = "profiles/cpu_tiny.toml"


def test_a_nonexistent_model_path_is_a_config_error_before_any_stage(tmp_path):
    result = run_cli(["--run", PROFILE, "--output-root", str(tmp_path), "--model", "/nonexistent/model"])
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {REPO / PROFILE}, key 'model.name_or_path': model folder not found: "
                      "/nonexistent/model (point model.name_or_path (or --model) at a folder with config.json "
                      "and weights)"], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "▶ sft" not in result.stdout and "sft trained" not in result.stdout
    assert not (tmp_path / "checkpoints").exists()  # no stage ran, nothing trained


def test_a_folder_without_config_json_is_refused_in_the_dry_run_too(tmp_path):
    folder = tmp_path / "empty_model"
    folder.mkdir()
    result = run_cli(["--run", PROFILE, "--output-root", str(tmp_path), "--model", str(folder), "--dry-run"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"model folder has no config.json: {folder}" in result.stderr
