"""F1: every key binding of the screen underneath, in a modal that closes with F1 / Escape.

Textual's own help panel docks at the right and takes ~30 columns, which at 80x24
left the dashboard's right column ~11 characters wide. A modal covers the screen
for as long as it is read and gives the layout back untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


@dataclass(frozen=True)
class KeyRow:
    keys: str  # every key of the binding, as the footer shows them ("f1 ?")
    description: str
    tooltip: str


def key_rows(screen: Screen) -> list[KeyRow]:
    """The bindings active on ``screen``: medllm's first, then Textual's; screen, app, focused widget.

    Keys doing the same thing on the same node (Enter and Space on a checkbox, Ctrl+C and Super+C)
    share one row.
    """
    app = screen.app
    rows: dict[tuple[int, str], tuple[int, list[str], Binding]] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description:
            continue  # an internal binding with no text says nothing to a reader
        # medllm's own bindings all carry an id (Textual's built-in ones do not): those come first.
        rank = (0 if binding.id else 1) * 3 + (0 if active.node is screen else 1 if active.node is app else 2)
        _, keys, _ = rows.setdefault((id(active.node), binding.description), (rank, [], binding))
        display = app.get_key_display(binding)
        if display not in keys:
            keys.append(display)
    ordered = sorted(rows.values(), key=lambda row: row[0])  # stable: each node keeps its own order
    return [KeyRow(" ".join(keys), binding.description, binding.tooltip) for _, keys, binding in ordered]


def keys_text(rows: list[KeyRow]) -> str:
    width = max((len(row.keys) for row in rows), default=0)
    lines = []
    for row in rows:
        tip = f" [$text-muted]— {escape(row.tooltip)}[/]" if row.tooltip else ""
        lines.append(f"[b]{escape(row.keys.ljust(width))}[/b]  {escape(row.description)}{tip}")
    return "\n".join(lines) or "[$text-muted]no key bindings here[/]"


class KeysScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("f1,escape,question_mark,q", "close", "Close", id="keys.close"),
    ]
    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > VerticalScroll {
        width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: round $primary; padding: 0 1; background: $panel;
    }
    """

    def __init__(self, rows: list[KeyRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "keys"
            box.border_subtitle = "F1 / Esc closes"  # in the border: seen even when the list scrolls
            yield Static(keys_text(self.rows), id="keys")

    def action_close(self) -> None:
        self.dismiss(None)
