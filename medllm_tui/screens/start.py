"""Start screen: begin a new run with the wizard, or re-attach to a recent one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from medllm_tui.runs import RunSummary, recent_runs

if TYPE_CHECKING:
    from medllm_tui.app import MedllmApp

NEW_RUN = "new"


class StartScreen(Screen[None]):
    BINDINGS = [
        # Short footer labels (they must fit 80 columns); the tooltips say the rest in the F1 list.
        Binding("n", "app.new_run", "New run", tooltip="Open the profile wizard", id="start.new_run"),
        Binding("a", "app.attach_latest", "Attach", tooltip="Open the dashboard of the latest run",
                id="start.attach_latest"),
        Binding("r", "refresh_runs", "Refresh", tooltip="Read the list of recent runs again", id="start.refresh"),
        Binding("q", "app.quit", "Quit", show=False, id="start.quit"),  # the footer already has ^q Quit
    ]
    DEFAULT_CSS = """
    StartScreen #title { padding: 0 1; background: $boost; text-style: bold; }
    StartScreen #hardware { padding: 0 1; height: auto; }
    StartScreen OptionList { height: 1fr; border: round $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunSummary] = []

    @property
    def medllm(self) -> MedllmApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("medllm — LoRA SFT → DPO / SimPO / KTO for medical LLMs", id="title")
        yield Static(self.medllm.hardware_line(), id="hardware")
        yield OptionList(id="choices")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#choices").border_title = f"start (recent runs in {self.medllm.deps.output_root})"
        self.action_refresh_runs()
        self.query_one(OptionList).focus()

    def action_refresh_runs(self) -> None:
        self.runs = recent_runs(self.medllm.deps.output_root)
        options = [Option("New run… (profile wizard)", id=NEW_RUN)]
        options += [Option(f"Attach: {run.label}", id=str(index)) for index, run in enumerate(self.runs)]
        menu = self.query_one(OptionList)
        menu.clear_options()
        menu.add_options(options)
        menu.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == NEW_RUN:
            self.medllm.action_new_run()
        else:
            self.medllm.open_dashboard(self.runs[int(event.option.id or 0)].run_dir)

    def hardware_changed(self) -> None:
        self.query_one("#hardware", Static).update(self.medllm.hardware_line())
