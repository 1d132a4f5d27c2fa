"""Issue 15 item 6 (part): a wizard checkbox's state reads without colour, ``[x]`` / ``[ ]``."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from medllm_tui.widgets.plain_checkbox import PlainCheckbox


class Boxes(App):
    def compose(self) -> ComposeResult:
        yield PlainCheckbox("train DPO", True, id="on")
        yield PlainCheckbox("train KTO", False, id="off")


def test_ticked_and_unticked_boxes_differ_in_plain_text():
    async def scenario() -> None:
        app = Boxes()
        async with app.run_test(size=(40, 6)) as pilot:
            on, off = app.query_one("#on", PlainCheckbox), app.query_one("#off", PlainCheckbox)
            assert on.render().plain.startswith("[x]") and off.render().plain.startswith("[ ]")
            off.focus()
            await pilot.press("space")  # still a real checkbox: toggles and re-renders
            assert off.value is True and off.render().plain.startswith("[x]")

    asyncio.run(scenario())
