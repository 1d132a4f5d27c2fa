"""The live loss plot: one training stage at a time, cycled with a key."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from medllm_core.kernel.run_view import RunView


class LossPlot(PlotextPlot):
    """Redraws only when the chosen stage got new points (plotext redraws are not free)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.chosen: str | None = None  # None: follow the newest stage with points
        self._drawn: tuple[str | None, int] = (None, -1)

    def stage_shown(self, view: RunView) -> str | None:
        if self.chosen in view.losses:
            return self.chosen
        return next(reversed(view.losses), None)

    def cycle(self, view: RunView) -> str | None:
        stages = list(view.losses)
        if not stages:
            return None
        current = self.stage_shown(view)
        self.chosen = stages[(stages.index(current) + 1) % len(stages)] if current in stages else stages[0]
        self.show(view)
        return self.chosen

    def show(self, view: RunView) -> None:
        stage = self.stage_shown(view)
        points = view.losses.get(stage, []) if stage else []
        if (stage, len(points)) == self._drawn:
            return
        self._drawn = (stage, len(points))
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # The facts go in the border title: at 80x24 every row of the plot area counts.
        if points:
            plt.plot([s for s, _ in points], [v for _, v in points], marker="braille")
            self.border_title = f"loss: {stage} · {len(points)} steps · last {points[-1][1]:.4f}"
        else:
            self.border_title = "loss: no points yet"
        self.refresh()
