"""The run dashboard: a pure reader of one run's events.jsonl.

The same screen serves a run started a second ago, one re-attached after an
SSH drop, and a finished run replayed from disk: it polls the file with a timer
and feeds every new event to a RunView. A run that has not written its folder
yet (just launched) is found by its pid.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from medllm_core.kernel.context import STOP_FILE
from medllm_core.kernel.events import EventReader
from medllm_core.kernel.report_paths import EVENTS_FILE
from medllm_core.kernel.run_view import RunView
from medllm_tui.gpu import GpuReading
from medllm_tui.launch import LaunchedRun, find_run_dir
from medllm_tui.screens.confirm import ConfirmScreen
from medllm_tui.widgets.loss_plot import LossPlot
from medllm_tui.widgets.panels import (
    checks_text,
    checks_title,
    decisions_text,
    memory_text,
    stages_text,
    status_text,
    summary_text,
)

if TYPE_CHECKING:
    from medllm_tui.app import MedllmApp

# Rows; below it the stages box shows 8 stages (it scrolls) and a clean finish's summary lines
# (also in the log) make way for the boxes.
COMPACT_HEIGHT = 30


class DashboardScreen(Screen[None]):
    BINDINGS = [
        # One-word footer labels: with the app's keys they must fit one 80-column row uncut.
        Binding("x", "stop_run", "Stop", tooltip="Stop the run at the next step; a checkpoint is saved",
                id="dashboard.stop"),
        Binding("l", "cycle_loss", "Loss", tooltip="Show the next training stage's loss curve",
                id="dashboard.cycle_loss"),
        Binding("escape", "leave", "Back", tooltip="Back to the start screen; the run keeps going",
                id="dashboard.back"),
        Binding("q", "app.detach", "Detach", tooltip="Quit the TUI; the run keeps going", id="dashboard.quit"),
    ]
    # Sized for 80x24 first (21 rows between the status lines and the footer), and still
    # roomy at 120x40: every box scrolls, so nothing is ever cut off for good.
    DEFAULT_CSS = """
    DashboardScreen #status { height: auto; padding: 0 1; background: $boost; }
    DashboardScreen #summary { height: auto; max-height: 3; padding: 0 1; display: none; }
    DashboardScreen #summary.shown { display: block; }
    DashboardScreen.compact #summary.succeeded { display: none; }
    DashboardScreen #left { width: 37; }
    DashboardScreen VerticalScroll { scrollbar-size-vertical: 1; }
    DashboardScreen #stages-box { height: auto; max-height: 16; border: round $primary; }
    DashboardScreen.compact #stages-box { max-height: 10; }
    DashboardScreen #memory-box { height: auto; max-height: 5; border: round $primary; }
    DashboardScreen #checks-box { height: 1fr; min-height: 4; border: round $primary; }
    DashboardScreen #loss { height: 1fr; min-height: 8; border: round $primary; }
    DashboardScreen #decisions-box { height: auto; min-height: 3; max-height: 5; border: round $primary; }
    DashboardScreen #log { height: 1fr; min-height: 4; border: round $primary; }
    /* Arrows / PgUp / End scroll the focused box (Tab moves): show which one that is. */
    DashboardScreen #stages-box:focus, DashboardScreen #memory-box:focus, DashboardScreen #checks-box:focus,
    DashboardScreen #decisions-box:focus, DashboardScreen #log:focus { border: round $accent; }
    """

    def __init__(self, run_dir: Path | None = None, launched: LaunchedRun | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.launched = launched
        self.view = RunView()
        self.reader: EventReader | None = EventReader(run_dir / EVENTS_FILE) if run_dir else None
        self.stop_requested = False
        self.launch_failed = False
        self.log_written = 0
        self.followed_stage: int | None = None  # index of the running stage last scrolled to

    @property
    def medllm(self) -> MedllmApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="summary")
        with Horizontal():
            with Vertical(id="left"):
                with VerticalScroll(id="stages-box"):
                    yield Static(id="stages")
                with VerticalScroll(id="memory-box"):
                    yield Static(id="memory")
                with VerticalScroll(id="checks-box"):
                    yield Static(id="checks")
            with Vertical(id="right"):
                yield LossPlot(id="loss")
                with VerticalScroll(id="decisions-box"):
                    yield Static(id="decisions")
                # min_width=1: RichLog renders at least 78 columns by default, which clips instead of wrapping
                # in the ~41 columns the log gets at 80x24.
                yield RichLog(id="log", max_lines=500, wrap=True, markup=False, min_width=1)
        yield Footer()

    def on_mount(self) -> None:
        for box, title in (("#stages-box", "stages"), ("#memory-box", "memory"), ("#checks-box", "strict-pass checks"),
                           ("#decisions-box", "decisions"), ("#log", "log")):
            self.query_one(box).border_title = title
        if self.launched is not None:
            log = self.query_one("#log", RichLog)
            log.write(f"started run process {self.launched.pid}; its console output: {self.launched.log_path}")
        self.poll_events()
        self.set_interval(self.medllm.deps.poll_s, self.poll_events)

    # -- reading ---------------------------------------------------------------
    def _locate_run(self) -> None:
        if self.reader is not None or self.launched is None:
            return
        found = find_run_dir(self.launched.output_root, self.launched.pid)
        if found is not None:
            self.run_dir = found
            self.reader = EventReader(found / EVENTS_FILE)
        elif not self.medllm.deps.alive(self.launched.pid) and not self.launch_failed:
            self.launch_failed = True  # it exited before writing a run folder: a config error, say why
            tail = self.launched.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            self.query_one("#log", RichLog).write(f"the run exited before starting:\n{tail}")

    def poll_events(self) -> None:
        self._locate_run()
        new = self.reader.poll_records() if self.reader is not None else []
        self.view.apply_all(new)
        log = self.query_one("#log", RichLog)
        for line in self.view.log_since(self.log_written):
            log.write(line)
        self.log_written = self.view.log_total
        self.render_panels()

    def render_panels(self) -> None:
        now = self.medllm.deps.clock()
        alive = self.view.finished is None and self.medllm.deps.alive(self.view.pid)
        self.query_one("#status", Static).update(status_text(self.view, now, alive, self.stop_requested))
        self.query_one("#stages", Static).update(stages_text(self.view, now))
        self.query_one("#memory", Static).update(memory_text(self.medllm.gpu_reading, self.view))
        self.query_one("#checks", Static).update(checks_text(self.view))
        self.query_one("#checks-box").border_title = checks_title(self.view)
        self.query_one("#decisions", Static).update(decisions_text(self.view))
        summary = summary_text(self.view)
        box = self.query_one("#summary", Static)
        box.update(summary)
        box.set_class(bool(summary), "shown")
        # A clean finish repeats its report paths in the log: on a short screen those rows go to the boxes.
        box.set_class(self.view.finished is not None and self.view.finished.exit_code == 0, "succeeded")
        self.query_one(LossPlot).show(self.view)
        self._follow_running_stage()

    def _follow_running_stage(self) -> None:
        """Scroll the stages box to the stage that just started, once; the user's own scrolling is kept after."""
        running = next((i for i, s in enumerate(self.view.stages.values()) if s.state == "running"), None)
        if running is None or running == self.followed_stage:
            return
        self.followed_stage = running
        box = self.query_one("#stages-box", VerticalScroll)
        self.call_after_refresh(box.scroll_to_region, Region(0, running, 1, 1), animate=False)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.height < COMPACT_HEIGHT, "compact")

    def gpu_reading_changed(self, _reading: GpuReading) -> None:
        self.query_one("#memory", Static).update(memory_text(self.medllm.gpu_reading, self.view))

    # -- actions ---------------------------------------------------------------
    def action_cycle_loss(self) -> None:
        shown = self.query_one(LossPlot).cycle(self.view)
        if shown is None:
            self.notify("no loss points yet")

    def action_leave(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.medllm.action_detach()

    def action_stop_run(self) -> None:
        if self.run_dir is None or self.view.finished is not None:
            self.notify("nothing to stop: the run is not running", severity="warning")
            return
        question = ("Stop this run at the next training step?\n"
                    "A checkpoint is saved; continue later with:\n" + (self.view.resume_command() or "--resume"))
        self.app.push_screen(ConfirmScreen(question), self._stop_confirmed)

    def _stop_confirmed(self, answer: bool | None) -> None:
        if answer and self.run_dir is not None:
            self.request_stop(self.run_dir)

    def request_stop(self, run_dir: Path) -> None:
        (run_dir / STOP_FILE).touch()  # the training callback polls for this file every step
        self.stop_requested = True
        self.query_one("#log", RichLog).write(f"stop requested: created {run_dir / STOP_FILE}")
        self.render_panels()
