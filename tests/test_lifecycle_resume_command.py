"""Issue 15 item 2: every "continue with --resume" names the exact command (profile, overrides, folder)."""

from __future__ import annotations

from pathlib import Path

from medllm_core.kernel import event_records as ev
from medllm_core.kernel.resume_command import resume_command
from medllm_core.kernel.run_view import RunView
from medllm_tui.widgets.panels import status_text, summary_text

RUN = Path("/data/out/reports/runs/20261202-cpu_tiny-1")


def test_a_cli_run_repeats_its_arguments_and_names_the_folder():
    argv = ["/x/medllm_tui/__main__.py", "--run", "profiles/cpu_tiny.toml", "--set", "stages.sft.max_steps=12",
            "--output-root", "/data/out"]
    assert resume_command(RUN, "/repo/profiles/cpu_tiny.toml", argv) == (
        "medllm-tui --run profiles/cpu_tiny.toml --set stages.sft.max_steps=12 --output-root /data/out "
        f"--resume {RUN}")


def test_an_earlier_resume_flag_is_replaced_not_repeated():
    argv = ["m", "--run", "p.toml", "--resume", "/old/run", "--set", "a=1"]
    assert resume_command(RUN, None, argv) == f"medllm-tui --run p.toml --set a=1 --resume {RUN}"
    bare = ["m", "--run", "p.toml", "--resume", "--set", "a=1"]
    assert resume_command(RUN, None, bare) == f"medllm-tui --run p.toml --set a=1 --resume {RUN}"


def test_a_tui_run_names_the_profile_file_it_ran_quoted_for_a_shell():
    argv = ["/x/medllm_core/kernel/worker.py", "/tmp/job.json"]
    command = resume_command(RUN, "/home/me/my profiles/cpu_tiny.toml", argv)
    assert command == f"medllm-tui --run '/home/me/my profiles/cpu_tiny.toml' --resume {RUN}"


def started_view() -> RunView:
    view = RunView()
    view.apply(ev.RunStarted(run_id="r1", profile="cpu_tiny", profile_path="/repo/profiles/cpu_tiny.toml",
                             run_dir=str(RUN), output_dir="/data/out", argv=["w.py", "/tmp/job.json"]).to_dict())
    return view


def test_the_dashboard_of_a_killed_run_prints_the_command():
    view = started_view()
    text = status_text(view, now=0.0, alive=False, stop_requested=False)
    assert f"continue with: medllm-tui --run /repo/profiles/cpu_tiny.toml --resume {RUN}" in text


def test_the_dashboard_of_a_failed_run_prints_the_command_once():
    view = started_view()
    view.apply(ev.RunFinished(exit_code=4, status="failed", message="stage(s) failed: sft").to_dict())
    assert summary_text(view).count("--resume") == 1
    view = started_view()
    view.apply(ev.RunFinished(exit_code=130, status="interrupted",
                              message=f"stopped on request; continue with: {view.resume_command()}").to_dict())
    assert summary_text(view).count("--resume") == 1
