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
from medllm_core.kernel.run_view import RunView

STATUS_MARK = {"trained": "[green]✓[/]", "done": "[green]✓[/]", "skipped": "[yellow]–[/]", "failed": "[red]✗[/]",
               "stopped": "[yellow]■[/]"}


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
        self.finished: ev.RunFinished | None = None
        self.view = RunView()  # the same reducer the dashboard uses: attempts, reused stages, durations

    def prime(self) -> None:
        """Read what the file already holds into the view without printing it (a resume shows only its own
        attempt, but a reused stage's original duration comes from the earlier ones)."""
        for record in self.reader.poll_records():
            self.view.apply(record)

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
        for record in self.reader.poll_records():
            self.handle(record)

    # -- rendering ------------------------------------------------------------
    def print(self, text: str) -> None:
        """``text`` is rich markup; dynamic parts must go through ``escape`` first."""
        (self.progress.console if self.live else self.console).print(text)

    def handle(self, event: ev.Event | dict[str, Any]) -> None:
        record = ev.parse_event(event)
        if record is not None:
            self.view.apply(record)
        stage = (record.stage if record is not None else None) or ""
        if isinstance(record, ev.RunStarted):
            self.print(f"[bold]medllm[/] run [cyan]{record.run_id}[/] — profile {record.profile}")
            self.print(f"  device: {record.hardware.get('description')}")
            self.print(f"  events: {Path(record.run_dir or '.') / 'events.jsonl'}")
        elif isinstance(record, ev.PluginLoaded) and record.status == "failed":
            self.print(f"[yellow]plugin '{record.name}' failed to load:[/] {escape(str(record.reason))}")
        elif isinstance(record, ev.Plan):
            self.print_plan(record)
        elif isinstance(record, ev.StageStarted):
            self.print(f"[bold]▶ {stage}[/]")
        elif isinstance(record, ev.Progress):
            self.on_progress(stage, record)
        elif isinstance(record, ev.Loss):
            if stage in self.tasks and self.live and isinstance(record.loss, (int, float)):
                self.progress.update(self.tasks[stage], loss=f"{record.loss:.4f}")
        elif isinstance(record, ev.DecisionEvent):
            self.print(f"  [magenta]decision[/] {record.kind}: {escape(str(record.summary))}")
        elif isinstance(record, ev.Check) and not record.passed:
            self.print(f"  [yellow]check {record.name} failed:[/] {escape(str(record.detail))}")
        elif isinstance(record, ev.Log) and record.level in ("warning", "error"):
            self.print(f"  [yellow]{record.level}:[/] {escape(str(record.message))}")
        elif isinstance(record, ev.StageFinished):
            self.on_stage_finished(stage, record)
        elif isinstance(record, ev.RunFinished):
            self.finished = record

    def print_plan(self, plan: ev.Plan) -> None:
        table = Table(title="plan", show_lines=False, expand=False)
        for column in ("stage", "plugin", "on", "required", "detail"):
            table.add_column(column, overflow="fold")
        for stage in plan.stages:
            table.add_row(stage.name, stage.plugin, "yes" if stage.enabled else "no",
                          "yes" if stage.required else "no", escape(stage.detail or ""))
        self.print(f"  precision: {plan.precision.get('dtype')} — {escape(str(plan.precision.get('reason')))}")
        self.print(f"  VRAM gate: {plan.gate.get('verdict')} — {escape(str(plan.gate.get('reason')))}")
        (self.progress.console if self.live else self.console).print(table)

    def on_progress(self, stage: str, event: ev.Progress) -> None:
        step, total = event.step or 0, event.total
        if self.live:
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(stage, total=total, loss="-")
            self.progress.update(self.tasks[stage], completed=step, total=total)
            return
        now = time.monotonic()
        if now - self._last_plain.get(stage, 0.0) >= 5.0 or (total and step >= total):
            self._last_plain[stage] = now
            eta = event.eta_s
            self.print(f"  {stage}: step {step}/{total or '?'}" + (f", ETA {eta:.0f}s" if eta is not None else ""))

    def on_stage_finished(self, stage: str, event: ev.StageFinished) -> None:
        status = event.status or "?"
        facts = ", ".join(f"{k}={v}" for k, v in (event.summary or {}).items() if k != "failures")
        detail = event.reason or facts
        shown = self.view.stages.get(stage)
        reused = bool(shown and shown.reused)
        duration = (shown.duration_s if shown is not None and shown.duration_s is not None else event.duration_s) or 0
        self.print(f"{STATUS_MARK.get(status, '?')} {stage} {status}{' (reused)' if reused else ''} ({duration:.1f}s)"
                   + (f" — {escape(str(detail))}" if detail else ""))
