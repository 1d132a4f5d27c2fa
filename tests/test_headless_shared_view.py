"""Issue 15 item 3: the headless printer reads events.jsonl through the dashboard's reducer (kernel/run_view.py),
so a resumed run's reused stage shows its original duration and a "reused" mark there too."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from medllm_core.kernel.headless import HeadlessPrinter

FIXTURE = Path(__file__).parent / "fixtures/events/cpu_tiny_stopped_then_resumed.jsonl"


def _printer(path: Path) -> tuple[HeadlessPrinter, io.StringIO]:
    out = io.StringIO()
    return HeadlessPrinter(path, console=Console(file=out, width=200, color_system=None)), out


def test_a_resumed_attempt_prints_the_reused_stage_with_its_original_duration(tmp_path):
    lines = FIXTURE.read_text(encoding="utf-8").splitlines(keepends=True)
    second = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "run_started" and i > 0)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(lines[:second]), encoding="utf-8")
    printer, out = _printer(events)
    printer.prime()  # what `--resume` does before this attempt appends: earlier attempts are not printed
    assert out.getvalue() == ""
    with events.open("a", encoding="utf-8") as handle:
        handle.writelines(lines[second:])
    printer.drain()
    sft = [line for line in out.getvalue().splitlines() if line.startswith(("✓ sft", "– sft", "✗ sft", "■ sft"))]
    assert len(sft) == 1, sft
    assert "sft trained (reused) (20.4s)" in sft[0]  # attempt 1's 20.352 s, not the reuse's 0.001 s
    # the printer's view and the dashboard's are one and the same reducer
    assert printer.view.stages["sft"].reused and printer.view.stages["dpo"].state == "trained"
    assert [s for s, _ in printer.view.losses["dpo"]] == sorted({s for s, _ in printer.view.losses["dpo"]})
