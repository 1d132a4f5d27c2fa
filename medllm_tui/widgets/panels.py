"""Text for the dashboard panels, rendered from a RunView.

Pure functions returning Textual content markup, so the replay tests can
check each panel's text without a terminal. Colours are theme variables
($success, $error …), which Textual maps to readable colours on both the dark
and the light theme.
"""

from __future__ import annotations

from textual.markup import escape

from medllm_core.kernel.run_view import RunView
from medllm_tui.gpu import GpuReading, format_memory

STATE_MARK = {
    "pending": ("·", "$text-muted"),
    "running": ("▶", "$accent"),
    "trained": ("✓", "$success"),
    "done": ("✓", "$success"),
    "skipped": ("–", "$warning"),
    "failed": ("✗", "$error"),
    "stopped": ("■", "$warning"),
    "off": ("○", "$text-muted"),
}


def format_elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def stages_text(view: RunView, now: float) -> str:
    if not view.stages:
        return "[$text-muted]waiting for the plan…[/]"
    lines = []
    for stage in view.stages.values():
        mark, colour = STATE_MARK.get(stage.state, ("?", "$text"))
        state = "off" if stage.state == "off" else stage.state
        if stage.state == "running" and stage.total:
            state = f"{stage.step}/{stage.total}"
        elif stage.reused:
            state = "reused"  # taken from an earlier attempt; the time shown is that attempt's
        name = escape(stage.name[:17])
        lines.append(f"[{colour}]{mark}[/] {name:<17} {state:<8}{format_elapsed(stage.elapsed(now)):>5}")
    return "\n".join(lines)


def memory_text(reading: GpuReading | None, view: RunView) -> str:
    lines = []
    if reading is None:
        lines.append("GPU: [$text-muted]reading…[/]")
    elif not reading.available:
        lines.append(f"GPU: N/A [$text-muted]({escape(reading.note)})[/]")
    for gpu in reading.gpus if reading else ():
        name = gpu.name.removeprefix("NVIDIA ").removeprefix("Tesla ")[:14]  # the panel is 34 columns wide
        lines.append(f"GPU{gpu.index} {escape(name)} {format_memory(gpu.used_gb, gpu.total_gb)}")
    for device, (used, total) in view.memory.items():
        lines.append(f"run {escape(device)}: {format_memory(used, total)}")
    return "\n".join(lines)


def checks_text(view: RunView) -> str:
    if not view.checks:
        return "[$text-muted]no checks yet[/]"
    lines = []
    # The verdict, then what failed, then the rest: at 80x24 the box shows ~5 lines before it scrolls.
    for check in sorted(view.checks, key=lambda c: (c.name != "strict_pass", c.passed)):
        mark = "[$success]✓[/]" if check.passed else "[$error]✗[/]"
        name = f"[b]{escape(check.name)}[/b]" if check.name == "strict_pass" else escape(check.name)
        lines.append(f"{mark} {name}")
    return "\n".join(lines)


def checks_title(view: RunView) -> str:
    """The box title counts what failed: at 80x24 the list scrolls, the title is always in view."""
    failed = sum(not check.passed for check in view.checks)
    if not view.checks:
        return "strict-pass checks"
    return f"strict-pass checks · {failed} failed" if failed else f"strict-pass checks · {len(view.checks)} ok"


def decisions_text(view: RunView) -> str:
    if not view.decisions:
        return "[$text-muted]no automatic decisions yet[/]"
    return "\n".join(f"[$warning]{escape(d.kind)}[/] {escape(d.stage)}: {escape(d.summary)}" for d in view.decisions)


def status_text(view: RunView, now: float, alive: bool, stop_requested: bool) -> str:
    if not view.run_id:
        return "[$text-muted]waiting for the run to start…[/]"
    head = f"[b]{escape(view.run_id)}[/b] · {escape(view.profile)} · {escape(view.hardware)}"
    if view.finished is not None:
        code = view.finished.exit_code
        colour = "$success" if code == 0 else "$error"
        state = f"[{colour}]finished: exit {code} ({escape(str(view.finished.status))})[/]"
    elif alive:
        elapsed = format_elapsed(now - view.started_ts) if view.started_ts else ""
        state = "[$warning]stopping at the next step…[/]" if stop_requested else f"[$accent]running[/] {elapsed}"
    else:
        state = "[$error]not running (process gone without run_finished)[/]"
        if view.resume_command():
            state += f"\ncontinue with: {escape(view.resume_command())}"
    strict = {True: " · strict_pass [$success]✓[/]", False: " · strict_pass [$error]✗[/]", None: ""}[view.strict_pass]
    return f"{head}\n{state}{strict}"


def summary_text(view: RunView) -> str:
    if view.finished is None:
        return ""
    paths = view.report_paths()
    lines = [f"{label}: {escape(paths[label])}" for label in ("day-1 summary", "strict check") if label in paths]
    if view.finished.message:
        lines.insert(0, f"[$error]{escape(str(view.finished.message))}[/]")
    # A run that did not finish cleanly can be continued: say exactly how (once, if the message lacks it).
    if view.finished.exit_code != 0 and "--resume" not in str(view.finished.message) and view.resume_command():
        lines.insert(1, f"continue with: {escape(view.resume_command())}")
    return "\n".join(lines)
