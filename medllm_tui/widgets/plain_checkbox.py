"""A checkbox whose state reads without colour: ``[x]`` ticked, ``[ ]`` not.

Textual's own box draws the same ``▐X▌`` either way and shows the state only by colour, which
a monochrome terminal, a screen reader or a copied tmux pane loses.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class PlainCheckbox(Checkbox):
    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble(("[", style), ("x" if self.value else " ", style), ("]", style))
