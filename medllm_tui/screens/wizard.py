"""The wizard: profile → model tier → judges and training toggles → confirm.

Each step is a small screen pushed on the last; Escape goes back one step with
the choices kept. Everything is reachable from the keyboard: arrows and Enter
in lists, Space on checkboxes, Tab between widgets, Ctrl+N for the next step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from medllm_core.kernel.errors import MedllmError
from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.profile import Profile, dump_profile
from medllm_tui.widgets.plain_checkbox import PlainCheckbox
from medllm_tui.wizard_model import (
    CUSTOM_TIER,
    TIER_CHOICES,
    PlanPreview,
    WizardChoices,
    build_profile,
    default_save_name,
    list_profiles,
    load_base,
    preview_plan,
    recommend_profile,
    safe_profile_name,
    save_choices,
    tier_label,
    tier_source_line,
    tier_verdict,
)

if TYPE_CHECKING:
    from medllm_tui.app import MedllmApp

WIZARD_CSS = """
WizardStep #step-title { padding: 0 1; background: $boost; text-style: bold; }
WizardStep .hint { padding: 0 1; height: auto; color: $text-muted; }
WizardStep .note { padding: 0 1; height: auto; }
WizardStep .warn { padding: 0 1; height: auto; color: $warning; }
WizardStep OptionList { height: 1fr; border: round $primary; }
WizardStep #toggles { height: 1fr; }
WizardStep Checkbox { border: none; height: 1; padding: 0 1; }
WizardStep Checkbox:focus { border: none; background: $boost; text-style: bold; }
WizardStep #nav { height: auto; min-height: 3; padding: 0 1; }
WizardStep #nav Button { margin-right: 2; min-width: 12; }
"""


class WizardStep(Screen[None]):
    """Shared frame of a step: title, Back/Next buttons, Escape and Ctrl+N."""

    STEP_TITLE = ""
    BINDINGS = [
        # One-word footer labels: the app's keys share the row, and it must fit 80 columns.
        Binding("ctrl+n", "next_step", "Next", tooltip="Go to the next step", id="wizard.next"),
        Binding("escape", "back", "Back", tooltip="Back one step; the choices are kept", id="wizard.back"),
    ]
    DEFAULT_CSS = WIZARD_CSS

    @property
    def medllm(self) -> MedllmApp:
        return self.app  # type: ignore[return-value]

    @property
    def choices(self) -> WizardChoices:
        if self.medllm.choices is None:  # a step opened without action_new_run (e.g. a test)
            self.medllm.choices = WizardChoices()
        return self.medllm.choices

    def compose(self) -> ComposeResult:
        yield Static(self.STEP_TITLE, id="step-title")
        yield from self.compose_body()
        with Horizontal(id="nav"):
            yield Button("Back (Esc)", id="back")
            yield Button("Next (Ctrl+N)", id="next", variant="primary")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        elif event.button.id == "next":
            self.action_next_step()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next_step(self) -> None:
        raise NotImplementedError  # every concrete step says where it leads

    def hardware_changed(self) -> None:
        """Called by the app when the background hardware probe finishes."""


class ProfileStep(WizardStep):
    STEP_TITLE = "1/4  Profile"

    def compose_body(self) -> ComposeResult:
        yield Static(self.medllm.hardware_line(), id="hardware", classes="note")
        yield OptionList(id="profiles")
        yield Static("", id="profile-description", classes="hint")

    def on_mount(self) -> None:
        deps = self.medllm.deps
        self.options = list_profiles(deps.shipped_dir, deps.user_dirs)
        recommended = recommend_profile(self.medllm.hardware)[0] if self.medllm.hardware else None
        menu = self.query_one(OptionList)
        menu.border_title = "choose a profile (Enter)"
        menu.add_options([Option(self._label(o.name, o.origin, recommended), id=str(i))
                          for i, o in enumerate(self.options)])
        self._highlight(self.choices.profile.name if self.choices.profile else recommended)
        menu.focus()

    @staticmethod
    def _label(name: str, origin: str, recommended: str | None) -> str:
        tag = "  ★ recommended" if name == recommended else ""
        return f"{name:<16} {origin}{tag}"

    def _highlight(self, name: str | None) -> None:
        index = next((i for i, o in enumerate(self.options) if o.name == name), 0)
        self.query_one(OptionList).highlighted = index

    def hardware_changed(self) -> None:
        self.query_one("#hardware", Static).update(self.medllm.hardware_line())
        recommended = recommend_profile(self.medllm.hardware)[0]
        menu = self.query_one(OptionList)
        for i, option in enumerate(self.options):
            menu.replace_option_prompt_at_index(i, self._label(option.name, option.origin, recommended))
        if self.choices.profile is None:
            self._highlight(recommended)  # the user has not chosen yet: put the cursor on the advice

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        option = self.options[int(event.option.id or 0)]
        self.query_one("#profile-description", Static).update(f"{option.path}\n{option.description}")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(int(event.option.id or 0))

    def action_next_step(self) -> None:
        self._choose(self.query_one(OptionList).highlighted or 0)

    def _choose(self, index: int) -> None:
        option = self.options[index]
        try:
            base = load_base(option)
        except MedllmError as exc:
            self.notify(exc.render(), severity="error", timeout=10)
            return
        if self.choices.profile != option:
            self.choices.profile = option
            self.choices.load_defaults_from(base)
        self.app.push_screen(TierStep(base))


class TierStep(WizardStep):
    STEP_TITLE = "2/4  Model tier"

    def __init__(self, base: Profile) -> None:
        super().__init__()
        self.base = base

    def compose_body(self) -> ComposeResult:
        yield Static(self.medllm.hardware_line(), id="hardware", classes="note")
        yield OptionList(id="tiers")
        yield Input(self.choices.custom_model, placeholder="custom model: hub name or local folder", id="custom")
        yield Static("", id="verdict", classes="warn")
        yield Static("", id="source", classes="hint")

    def on_mount(self) -> None:
        menu = self.query_one(OptionList)
        menu.border_title = f"model tier (profile '{self.base.name}' uses {self.base.model.tier})"
        self._fill()
        menu.highlighted = TIER_CHOICES.index(self.choices.tier)
        menu.focus()

    def _fill(self) -> None:
        menu = self.query_one(OptionList)
        highlighted = menu.highlighted
        menu.clear_options()
        menu.add_options([Option(tier_label(self.base, self.medllm.hardware, t), id=t) for t in TIER_CHOICES])
        menu.highlighted = highlighted

    def hardware_changed(self) -> None:
        self.query_one("#hardware", Static).update(self.medllm.hardware_line())
        self._fill()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_verdict(str(event.option.id))

    def _show_verdict(self, tier: str) -> None:
        verdict = tier_verdict(self.base, self.medllm.hardware, tier)
        text = ""
        if verdict is None and self.medllm.hardware is None:
            text = "hardware probe still running: fit not known yet"
        elif verdict is not None and verdict.verdict != "pass":
            text = f"will not fit: {verdict.reason}"
        self.query_one("#verdict", Static).update(text)
        self.query_one("#source", Static).update(tier_source_line(self.base, tier, self.choices.custom_model))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(str(event.option.id))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._choose(CUSTOM_TIER)

    def action_next_step(self) -> None:
        focused_input = self.focused is self.query_one("#custom", Input)
        menu = self.query_one(OptionList)
        self._choose(CUSTOM_TIER if focused_input else TIER_CHOICES[menu.highlighted or 0])

    def _choose(self, tier: str) -> None:
        custom = self.query_one("#custom", Input)
        if tier == CUSTOM_TIER and not custom.value.strip():
            custom.focus()
            self.notify("type a model name or path, then Enter")
            return
        self.choices.tier = tier
        self.choices.custom_model = custom.value.strip()
        self.app.push_screen(OptionsStep())


TOGGLES = (
    ("llm_judge", "LLM judge"),
    ("risk_judge", "medical-risk judge"),
    ("v2_llm_fallback", "extraction fallback (v2 LLM)"),
    ("allow_skip_training", "allow skipping training below the VRAM gate"),
    ("force_skip_training", "force skip training"),
    ("dry_run", "dry run (plan only, train nothing)"),
)


class OptionsStep(WizardStep):
    STEP_TITLE = "3/4  Judges and training"
    BINDINGS = [Binding("ctrl+o", "stage_options", "Options", tooltip="Every stage's settings as a form",
                        id="wizard.stage_options")]

    def compose_body(self) -> ComposeResult:
        yield Static(self._endpoint_line(), id="endpoint", classes="note")
        with VerticalScroll(id="toggles"):
            for key, label in TOGGLES:
                yield PlainCheckbox(label, getattr(self.choices, key), id=key)
        yield Static("Space toggles · Tab moves · Ctrl+O every stage's options · Ctrl+N continues", classes="hint")

    def _endpoint_line(self) -> str:
        status = self.medllm.deps.env_status()
        key = status.api_key_configured or "OPENAI_API_KEY" in status.keys
        url = status.base_url_configured or "OPENAI_BASE_URL" in status.keys
        line = (f"Judge API endpoint: {'configured' if url else 'not configured'} · "
                f"API key: {'configured' if key else 'not set'} (the key itself is never shown)")
        if not key:
            line += "\nWithout a key the judges are recorded as skipped with the reason."
        warning = status.warning()
        return f"{line}\n{warning}" if warning else line

    def on_mount(self) -> None:
        self.query_one(Checkbox).focus()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.choices.set_toggle(str(event.checkbox.id), event.value)

    def action_stage_options(self) -> None:
        from medllm_tui.screens.stage_options import StageOptionsScreen

        self.app.push_screen(StageOptionsScreen(self.choices))

    def on_screen_resume(self) -> None:
        """Back from the stage options: a toggle's stage setting may have changed there."""
        for key, _label in TOGGLES:
            box = self.query_one(f"#{key}", Checkbox)
            with box.prevent(Checkbox.Changed):
                box.value = getattr(self.choices, key)

    def action_next_step(self) -> None:
        self.app.push_screen(ConfirmStep())


class ConfirmStep(WizardStep):
    STEP_TITLE = "4/4  Confirm"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="Save the profile without starting", id="wizard.save"),
        Binding("ctrl+r", "start", "Start", tooltip="Save the profile and start the run", id="wizard.start"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="plan", classes="note")
        with VerticalScroll(id="toml-box"):
            yield Static("", id="toml", markup=False)  # TOML's [tables] are not markup
        with Horizontal(id="save-row"):
            yield Static("save as ", classes="hint")
            yield Input(self.choices.save_name or default_save_name(self.choices), id="save-name")

    def compose(self) -> ComposeResult:
        yield Static(self.STEP_TITLE, id="step-title")
        yield from self.compose_body()
        with Horizontal(id="nav"):
            yield Button("Back (Esc)", id="back")
            yield Button("Save profile (Ctrl+S)", id="save")
            label = "Start dry run (Ctrl+R)" if self.choices.dry_run else "Start run (Ctrl+R)"
            yield Button(label, id="start", variant="success")
        yield Footer()

    DEFAULT_CSS = WIZARD_CSS + """
    ConfirmStep #toml-box { height: 1fr; border: round $primary; }
    ConfirmStep #save-row { height: 1; padding: 0 1; }
    ConfirmStep #save-row Static { width: auto; }
    ConfirmStep #save-row Input { border: none; height: 1; width: 1fr; padding: 0; }
    """

    def on_mount(self) -> None:
        self.query_one("#toml-box").border_title = "effective profile"
        self.profile: Profile | None = None
        self.refresh_preview()
        self.query_one("#start", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"back": self.action_back, "save": self.action_save, "start": self.action_start}
        actions[str(event.button.id)]()

    def _save_name(self) -> str:
        return safe_profile_name(self.query_one("#save-name", Input).value)

    def refresh_preview(self) -> None:
        self.choices.save_name = self._save_name()
        try:
            self.profile = build_profile(self.choices)
        except MedllmError as exc:
            self.profile = None
            self.query_one("#plan", Static).update(f"[$error]cannot build the profile: {exc.render()}[/]")
            return
        self.query_one("#toml", Static).update(dump_profile(self.profile))
        self.query_one("#plan", Static).update("plan: computing…")
        self.compute_plan(self.profile, self.medllm.hardware)

    def on_input_changed(self, _event: Input.Changed) -> None:
        if self.is_mounted and getattr(self, "profile", None) is not None:
            self.choices.save_name = self._save_name()
            self.profile.name = self.choices.save_name

    @work(thread=True, exclusive=True, group="plan")
    def compute_plan(self, profile: Profile, hardware: HardwareInfo | None) -> None:
        # Loading the plugins takes a moment; keep the screen responsive meanwhile.
        preview = preview_plan(profile, hardware or HardwareInfo(backend="cpu"))
        self.app.call_from_thread(self._show_plan, preview, hardware is None)

    def _show_plan(self, preview: PlanPreview, unprobed: bool) -> None:
        if not self.is_mounted or not self.query("#plan"):
            return  # the plan worker finished after the user left this step: nothing to show it on
        if preview.error:
            self.query_one("#plan", Static).update(f"[$error]{preview.error}[/]")
            return
        stages = " → ".join(line.stage + ("" if line.enabled else " (off)") for line in preview.stages)
        gate = preview.gate
        gate_text = f"{gate.verdict} — {gate.reason}" if gate else "?"
        colour = "$success" if gate and gate.verdict == "pass" else "$warning"
        mode = "dry run: nothing is trained" if self.choices.dry_run else "real run"
        probe = " (hardware probe still running: CPU assumed)" if unprobed else ""
        self.query_one("#plan", Static).update(
            f"stages: {stages}\nprecision: {preview.precision}{probe}\n"
            f"VRAM gate: [{colour}]{gate_text}[/]\n{mode}; the run keeps going if you quit or lose SSH")

    def hardware_changed(self) -> None:
        if self.profile is not None:
            self.compute_plan(self.profile, self.medllm.hardware)

    def action_next_step(self) -> None:
        self.action_start()

    def _save(self) -> Path | None:
        self.refresh_preview()
        if self.profile is None:
            return None
        try:
            return save_choices(self.profile, self._save_name(), self.medllm.deps.save_dir)
        except OSError as exc:
            self.notify(f"could not save: {exc}", severity="error", timeout=10)
            return None

    def action_save(self) -> None:
        path = self._save()
        if path is not None:
            self.notify(f"saved {path}")

    def action_start(self) -> None:
        path = self._save()
        if path is None:
            return
        self.medllm.start_run(path, dry_run=self.choices.dry_run)
