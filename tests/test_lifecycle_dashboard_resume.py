"""Issue 15 item 3: the dashboard model after a resume reads like a clean run's.

events.jsonl keeps every attempt; the model must let the newest attempt win (replayed loss steps
plotted once, the latest attempt's checks only) and show a reused stage with its original duration.
"""

from __future__ import annotations

from medllm_core.kernel import event_records as ev
from medllm_core.kernel.run_view import RunView
from medllm_tui.widgets.panels import stages_text


def attempt(view: RunView, number: int) -> None:
    view.apply(ev.RunStarted(run_id="r1", profile="cpu_tiny", run_dir="/o/reports/runs/r1", output_dir="/o",
                             attempt=number, resumed=number > 1).to_dict())
    view.apply(ev.Check(stage="preflight", name="data_files", passed=True, detail="found").to_dict())


def killed_then_resumed() -> RunView:
    view = RunView()
    attempt(view, 1)
    view.apply(ev.StageStarted(stage="sft").to_dict())
    for step in range(1, 15):  # killed at step 14; checkpoint-10 is where the resume continues
        view.apply(ev.Loss(stage="sft", step=step, loss=1.0).to_dict())
    view.apply(ev.Check(stage="preflight", name="tokenizer", passed=False, detail="slow").to_dict())
    attempt(view, 2)
    view.apply(ev.StageStarted(stage="sft").to_dict())
    for step in range(11, 31):
        view.apply(ev.Loss(stage="sft", step=step, loss=0.5).to_dict())
    view.apply(ev.StageFinished(stage="sft", status="trained", duration_s=40.0).to_dict())
    return view


def test_replayed_steps_are_plotted_once_and_the_newest_attempt_wins():
    points = killed_then_resumed().losses["sft"]
    assert [s for s, _ in points] == list(range(1, 31))  # 30 steps, as in a clean 30-step run
    assert dict(points)[12] == 0.5 and dict(points)[10] == 1.0


def test_checks_are_the_latest_attempts_only():
    view = killed_then_resumed()
    assert [(c.name, c.passed) for c in view.checks] == [("data_files", True)]


def test_a_reused_stage_keeps_its_original_duration_and_says_reused():
    view = killed_then_resumed()
    attempt(view, 3)
    view.apply(ev.StageFinished(stage="sft", status="trained", duration_s=0.0, reused=True).to_dict())
    sft = view.stages["sft"]
    assert sft.reused and sft.duration_s == 40.0
    assert "reused" in stages_text(view, now=0.0) and "00:40" in stages_text(view, now=0.0)


def test_a_reused_stage_read_from_scratch_by_attach_keeps_the_duration_too():
    view = RunView()
    view.apply(ev.StageStarted(stage="eval").to_dict())
    view.apply(ev.StageFinished(stage="eval", status="done", duration_s=12.5).to_dict())
    attempt(view, 2)
    view.apply(ev.StageStarted(stage="eval").to_dict())
    view.apply(ev.StageFinished(stage="eval", status="done", duration_s=0.0, reused=True).to_dict())
    assert view.stages["eval"].duration_s == 12.5
