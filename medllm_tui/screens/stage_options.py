"""Stage options: every ``[stages.<name>]`` setting as a form, generated from the stage's settings data.

A switch for true/false, a select for choices, an input for numbers and text,
each with its help line. A plugin's options appear here with no UI code of its
own. Values land in the saved profile's ``[stages.<name>]`` table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Select, Static, Switch

from medllm_tui.stage_forms import FormField, StageForm, parse_value, show_value, stage_forms
from medllm_tui.wizard_model import WizardChoices, load_base

if TYPE_CHECKING:
    from medllm_tui.app import MedllmApp


class StageOptionsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "back", "Back", id="stage_options.back")]
    DEFAULT_CSS = """
    StageOptionsScreen #step-title { padding: 0 1; background: $boost; text-style: bold; }
    StageOptionsScreen #stage-pick { margin: 0 1; }
    StageOptionsScreen #form { height: 1fr; border: round $primary; }
    StageOptionsScreen .row { height: auto; }
    StageOptionsScreen .row Static.label { width: 28; padding: 0 1; }
    StageOptionsScreen .row Input { width: 1fr; border: none; height: 1; padding: 0; }
    StageOptionsScreen .row Select { width: 1fr; }
    StageOptionsScreen .row Switch { border: none; height: 1; padding: 0; }
    StageOptionsScreen .help { padding: 0 1 0 3; color: $text-muted; height: auto; }
    """

    def __init__(self, choices: WizardChoices) -> None:
        super().__init__()
        self.choices = choices
        base = load_base(choices.profile) if choices.profile else None
        self.forms: list[StageForm] = stage_forms(base, choices.stage_options) if base else []
        self.fields: dict[str, tuple[str, FormField]] = {}  # widget id -> (stage, field)

    @property
    def medllm(self) -> MedllmApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("Stage options  (Esc returns; values go into [stages.<name>])", id="step-title")
        yield Select([(f"{f.stage} — {f.description}"[:70], f.stage) for f in self.forms], id="stage-pick",
                     allow_blank=False, value=self.forms[0].stage if self.forms else Select.BLANK)
        yield VerticalScroll(id="form")
        yield Footer()

    def on_mount(self) -> None:
        if self.forms:
            self._show(self.forms[0].stage)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "stage-pick":
            if event.value is not Select.BLANK:
                self._show(str(event.value))
        elif event.select.id in self.fields and event.value is not Select.BLANK:
            self._set(event.select.id, event.value)

    def _show(self, stage: str) -> None:
        form = next(f for f in self.forms if f.stage == stage)
        current = stage_forms(load_base(self.choices.profile), self.choices.stage_options)  # type: ignore[arg-type]
        form = next((f for f in current if f.stage == stage), form)
        box = self.query_one("#form", VerticalScroll)
        box.remove_children()
        box.border_title = f"[stages.{stage}]"
        self.fields = {}
        rows: list[Widget] = []
        for index, item in enumerate(form.fields):
            widget_id = f"field-{index}"
            self.fields[widget_id] = (stage, item)
            rows.append(Horizontal(Static(item.key, classes="label"), self._editor(widget_id, item), classes="row"))
            rows.append(Static(f"{item.setting.help} ({item.setting.type}, default "
                               f"{show_value(item.setting.default)})", classes="help", markup=False))
        box.mount(*rows)

    @staticmethod
    def _editor(widget_id: str, item: FormField) -> Widget:
        setting = item.setting
        if setting.kind == "bool":
            return Switch(bool(item.value), id=widget_id)
        if setting.kind == "choice" and setting.choices:
            return Select([(str(c), c) for c in setting.choices], value=item.value, allow_blank=False, id=widget_id)
        text = "" if item.value is None else show_value(item.value).strip('"')
        return Input(text, id=widget_id)

    def on_switch_changed(self, event: Switch.Changed) -> None:
        if event.switch.id in self.fields:
            self._set(event.switch.id, event.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id not in self.fields:
            return
        _, item = self.fields[event.input.id]
        try:
            value = parse_value(item.setting, event.value)
        except ValueError:
            event.input.styles.color = "red"
            return
        event.input.styles.color = None
        self._set(event.input.id, value)

    def _set(self, widget_id: str, value: Any) -> None:
        stage, item = self.fields[widget_id]
        if value != item.value or f"stages.{stage}.{item.key}" in self.choices.stage_options:
            self.choices.set_option(f"stages.{stage}.{item.key}", value)

    def action_back(self) -> None:
        self.app.pop_screen()
