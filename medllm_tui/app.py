"""The Textual app: start screen, wizard, dashboard, and the actions they share.

Started lazily by ``medllm_tui.cli`` so the headless path never imports
Textual. The first frame comes before any slow work: the hardware probe
(torch) and NVML readings run in thread workers and report back to the
screens through ``call_from_thread``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from medllm_tui.deps import TuiDeps
from medllm_tui.gpu import GpuReading
from medllm_tui.launch import LaunchedRun
from medllm_tui.runs import latest_run
from medllm_tui.screens.start import StartScreen

if TYPE_CHECKING:
    from medllm_core.kernel.hardware import HardwareInfo
    from medllm_tui.screens.dashboard import DashboardScreen
    from medllm_tui.wizard_model import WizardChoices

# The wizard and dashboard modules (plotext, profile schema, gates) are imported
# when first opened, not at start-up: the first frame is what has to be fast.


class MedllmApp(App[str]):
    TITLE = "medllm"
    BINDINGS = [
        # Footer labels stay one short word: at 80 columns every screen's keys must fit on one row.
        Binding("f1,question_mark", "toggle_help", "Keys", tooltip="List every key of this screen", id="app.help"),
        Binding("ctrl+t", "toggle_theme", "Theme", tooltip="Switch between the light and dark theme",
                id="app.theme"),
        Binding("ctrl+q", "detach", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, deps: TuiDeps | None = None, attach: Path | None = None) -> None:
        super().__init__()
        self.deps = deps or TuiDeps()
        self.attach_to = attach
        self.hardware: HardwareInfo | None = None
        self.hardware_error = ""
        self.gpu_reading: GpuReading | None = None
        self.choices: WizardChoices | None = None
        self.attached_run: Path | None = None  # what to tell the user on exit

    # -- start-up --------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(StartScreen())
        if self.attach_to is not None:
            self.open_dashboard(self.attach_to)
        # After the first frame: slow probes never delay it.
        self.call_after_refresh(self.probe_hardware)
        self.call_after_refresh(self.read_gpus)
        self.set_interval(self.deps.gpu_poll_s, self.read_gpus)

    def on_unmount(self) -> None:
        cancel = getattr(self.deps.probe, "cancel", None)
        if cancel is not None:
            cancel()  # do not keep a quitting TUI waiting for a torch import

    @work(thread=True, exclusive=True, group="probe")
    def probe_hardware(self) -> None:
        try:
            hardware = self.deps.probe()
            error = ""
        except Exception as exc:  # a broken driver must leave a usable wizard, showing why
            from medllm_core.kernel.hardware import HardwareInfo

            hardware, error = HardwareInfo(backend="cpu"), f"hardware probe failed: {exc}"
        self._deliver(self._hardware_ready, hardware, error)

    def _deliver(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            pass  # the app closed while the worker ran (quit during the probe): nobody to tell

    def _hardware_ready(self, hardware: HardwareInfo, error: str) -> None:
        self.hardware, self.hardware_error = hardware, error
        for screen in self.screen_stack:
            callback = getattr(screen, "hardware_changed", None)
            if callback is not None:
                callback()

    @work(thread=True, exclusive=True, group="gpu")
    def read_gpus(self) -> None:
        reading = self.deps.gpu_reader()
        self._deliver(self._gpus_ready, reading)

    def _gpus_ready(self, reading: GpuReading) -> None:
        self.gpu_reading = reading  # one cached reading shared by every panel
        for screen in self.screen_stack:
            callback = getattr(screen, "gpu_reading_changed", None)
            if callback is not None:
                callback(reading)

    def hardware_line(self) -> str:
        if self.hardware is None:
            return "Detected: probing hardware…"
        from medllm_tui.wizard_model import recommend_profile

        name, why = recommend_profile(self.hardware)
        line = f"Detected: {self.hardware.describe()} · recommended profile: {name} ({why})"
        return f"{line}\n{self.hardware_error}" if self.hardware_error else line

    # -- navigation ------------------------------------------------------------
    def action_new_run(self) -> None:
        from medllm_tui.screens.wizard import ProfileStep
        from medllm_tui.wizard_model import WizardChoices

        self.choices = WizardChoices()
        self.push_screen(ProfileStep())

    def action_attach_latest(self) -> None:
        found = latest_run(self.deps.output_root)
        if found is None:
            self.notify(f"no runs under {self.deps.output_root / 'reports' / 'runs'}", severity="warning")
            return
        self.open_dashboard(found)

    def open_dashboard(self, run_dir: Path | None = None, launched: LaunchedRun | None = None) -> None:
        from medllm_tui.screens.dashboard import DashboardScreen

        while len(self.screen_stack) > 2:  # drop the wizard steps; the start screen stays underneath
            self.pop_screen()
        self.attached_run = run_dir
        self.push_screen(DashboardScreen(run_dir=run_dir, launched=launched))

    def start_run(self, profile_path: Path, *, dry_run: bool) -> None:
        try:
            launched = self.deps.launcher(profile_path, self.deps.output_root, dry_run=dry_run)
        except OSError as exc:
            self.notify(f"could not start the run: {exc}", severity="error", timeout=10)
            return
        self.notify(f"started run process {launched.pid} with {profile_path}")
        self.open_dashboard(launched=launched)

    def _dashboard(self, screen: Screen | None = None) -> DashboardScreen | None:
        from medllm_tui.screens.dashboard import DashboardScreen

        screen = screen or self.screen
        return screen if isinstance(screen, DashboardScreen) else None

    def action_detach(self) -> None:
        dashboard = self._dashboard()
        run_dir = dashboard.run_dir if dashboard is not None else self.attached_run
        self.exit(str(run_dir) if run_dir else "")

    def action_toggle_help(self) -> None:
        from medllm_tui.screens.keys_help import KeysScreen, key_rows

        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(KeysScreen(key_rows(self.screen)))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_stop_run(self) -> None:
        dashboard = self._dashboard()
        if dashboard is not None:
            dashboard.action_stop_run()
        else:
            self.notify("open a run's dashboard first", severity="warning")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("New run", "Open the profile wizard", self.action_new_run)
        yield SystemCommand("Attach to latest run", "Open the dashboard of the most recent run",
                            self.action_attach_latest)
        if self._dashboard(screen) is not None:
            yield SystemCommand("Stop run", "Stop at the next training step, checkpoint saved",
                                self.action_stop_run)
        yield SystemCommand("Keys", "Show every key binding and what it does", self.action_toggle_help)
        yield SystemCommand("Light/dark theme", "Switch between the light and dark theme", self.action_toggle_theme)
        yield SystemCommand("Quit", "Leave the TUI; a running run keeps going", self.action_detach)


def run_app(attach: Path | None = None, output_root: Path | None = None) -> int:
    deps = TuiDeps(output_root=output_root or Path.cwd())
    result = MedllmApp(deps, attach=attach).run()
    if result:
        print(f"Runs go on without the TUI. Re-attach: medllm-tui attach {result}")
    return 0
