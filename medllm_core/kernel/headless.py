"""Headless progress: render a run's events.jsonl on the terminal with rich.

It is only a reader of the event file (like the TUI), so it shows exactly what
was recorded. On a terminal it draws live progress bars (stage, step/total,
loss, ETA); otherwise (nohup, CI, a pipe) it prints plain lines.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from medllm_core.kernel import events as ev
from medllm_core.kernel.events import EventReader

STATUS_MARK = {"trained": "[green]✓[/]", "done": "[green]✓[/]", "skipped": "[yellow]–[/]", "failed": "[red]✗[/]"}


class HeadlessPrinter:
    def __init__(self, events_path: Path, console: Console | None = None, poll_s: float = 0.25):
        self.reader = EventReader(Path(events_path))
        self.console = console or Console(highlight=False)
        self.poll_s = poll_s
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self._last_plain: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished: dict[str, Any] | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> HeadlessPrinter:
        if self.live:
            self.progress.start()
        self._thread = threading.Thread(target=self._loop, name="headless-printer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.drain()
        if self.live:
            self.progress.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.drain()
            time.sleep(self.poll_s)

    def drain(self) -> None:
        for event in self.reader.poll():
            self.handle(event)

    # -- rendering ------------------------------------------------------------
    def print(self, text: str) -> None:
        """``text`` is rich markup; dynamic parts must go through ``escape`` first."""
        (self.progress.console if self.live else self.console).print(text)

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        stage = event.get("stage", "")
        if kind == ev.RUN_STARTED:
            self.print(f"[bold]medllm[/] run [cyan]{event.get('run_id')}[/] — profile {event.get('profile')}")
            self.print(f"  device: {event.get('hardware', {}).get('description')}")
            self.print(f"  events: {Path(event.get('run_dir', '.')) / 'events.jsonl'}")
        elif kind == ev.PLUGIN and event.get("status") == "failed":
            self.print(f"[yellow]plugin '{event.get('name')}' failed to load:[/] {escape(str(event.get('reason')))}")
        elif kind == ev.PLAN:
            self.print_plan(event)
        elif kind == ev.STAGE_STARTED:
            self.print(f"[bold]▶ {stage}[/]")
        elif kind == ev.PROGRESS:
            self.on_progress(stage, event)
        elif kind == ev.LOSS:
            if stage in self.tasks and self.live:
                self.progress.update(self.tasks[stage], loss=f"{event.get('loss'):.4f}")
        elif kind == ev.DECISION:
            self.print(f"  [magenta]decision[/] {event.get('kind')}: {escape(str(event.get('summary')))}")
        elif kind == ev.CHECK and not event.get("passed"):
            self.print(f"  [yellow]check {event.get('name')} failed:[/] {escape(str(event.get('detail')))}")
        elif kind == ev.LOG and event.get("level") in ("warning", "error"):
            self.print(f"  [yellow]{event.get('level')}:[/] {escape(str(event.get('message')))}")
        elif kind == ev.STAGE_FINISHED:
            self.on_stage_finished(stage, event)
        elif kind == ev.RUN_FINISHED:
            self.finished = event

    def print_plan(self, event: dict[str, Any]) -> None:
        table = Table(title="plan", show_lines=False, expand=False)
        for column in ("stage", "plugin", "on", "required", "detail"):
            table.add_column(column, overflow="fold")
        for stage in event.get("stages", []):
            table.add_row(stage["name"], stage["plugin"], "yes" if stage["enabled"] else "no",
                          "yes" if stage["required"] else "no", escape(stage.get("detail", "")))
        self.print(f"  precision: {event['precision']['dtype']} — {escape(event['precision']['reason'])}")
        self.print(f"  VRAM gate: {event['gate']['verdict']} — {escape(event['gate']['reason'])}")
        (self.progress.console if self.live else self.console).print(table)

    def on_progress(self, stage: str, event: dict[str, Any]) -> None:
        step, total = event.get("step", 0), event.get("total")
        if self.live:
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(stage, total=total, loss="-")
            self.progress.update(self.tasks[stage], completed=step, total=total)
            return
        now = time.monotonic()
        if now - self._last_plain.get(stage, 0.0) >= 5.0 or (total and step >= total):
            self._last_plain[stage] = now
            eta = event.get("eta_s")
            self.print(f"  {stage}: step {step}/{total or '?'}" + (f", ETA {eta:.0f}s" if eta is not None else ""))

    def on_stage_finished(self, stage: str, event: dict[str, Any]) -> None:
        status = event.get("status", "?")
        facts = ", ".join(f"{k}={v}" for k, v in event.get("summary", {}).items() if k != "failures")
        detail = event.get("reason") or facts
        self.print(f"{STATUS_MARK.get(status, '?')} {stage} {status} ({event.get('duration_s', 0):.1f}s)"
                   + (f" — {escape(str(detail))}" if detail else ""))
