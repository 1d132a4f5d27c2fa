"""Issue 15 item 6: at 80x24 every stage is reachable, footer labels are whole, log lines wrap.

Checked on the rendered terminal rows (what the user reads), not on widget state: a stage
that is in the Static but outside the box's scroll range would pass a state check and still
be invisible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Footer

from medllm_core.kernel import event_records as ev
from medllm_tui.app import MedllmApp
from medllm_tui.screens.dashboard import DashboardScreen
from medllm_tui.screens.keys_help import KeysScreen
from tests.tui_support import (
    FIXTURE_RESUMED,
    RESUMED_RUN_ID,
    event_time,
    fake_deps,
    recorded_run,
    region_lines,
    screen_lines,
)

SIZE = (80, 24)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _footer_labels(app: MedllmApp) -> list[str]:
    """"key description" for every binding the footer of the current screen shows."""
    labels: dict[tuple[int, str], str] = {}
    for active in app.screen.active_bindings.values():
        binding = active.binding
        if binding.show and binding.description:  # "f1,question_mark": the footer shows the first key
            labels.setdefault((id(active.node), binding.description),
                              f"{app.get_key_display(binding)} {binding.description}")
    return list(labels.values())


def _assert_footer_whole(app: MedllmApp) -> None:
    footer = app.screen.query_one(Footer)
    row = screen_lines(app)[footer.region.y]
    labels = _footer_labels(app)
    assert labels, "no footer bindings found"
    for label in labels:
        assert label in row, f"footer label {label!r} cut or missing in {row!r}"


@pytest.mark.anyio
async def test_every_stage_is_reachable_by_scrolling_the_stages_box(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, fixture=FIXTURE_RESUMED)
    app = MedllmApp(fake_deps(tmp_path), attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        names = list(screen.view.stages)
        assert len(names) == 12, names  # every stage of cpu_tiny, more than the box shows at once
        box = screen.query_one("#stages-box", VerticalScroll)
        assert box.max_scroll_y > 0, "the fixture should need scrolling at 80x24"
        seen: set[str] = set()
        box.scroll_home(animate=False)
        await pilot.pause()
        for _ in range(len(names)):
            for line in region_lines(app, box.content_region):
                seen.update(name for name in names if f" {name} " in f" {line} ")
            box.scroll_down(animate=False)
            await pilot.pause()
        assert seen == set(names), f"never visible: {set(names) - seen}"


@pytest.mark.anyio
async def test_the_running_stage_is_scrolled_into_view(tmp_path: Path) -> None:
    lines = 350  # attempt 2, completion_check running: the 9th stage, below the 8 rows the box shows
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, lines=lines, fixture=FIXTURE_RESUMED)
    deps = fake_deps(tmp_path)
    deps.alive = lambda pid: True
    deps.clock = lambda: event_time(FIXTURE_RESUMED, lines)
    app = MedllmApp(deps, attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert screen.view.stages["completion_check"].state == "running"
        box = screen.query_one("#stages-box", VerticalScroll)
        visible = region_lines(app, box.content_region)
        assert len(visible) < len(screen.view.stages)  # the box really scrolls at this size
        assert any("▶ completion_check" in line for line in visible), visible


@pytest.mark.anyio
async def test_dashboard_footer_labels_are_not_cut(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, fixture=FIXTURE_RESUMED)
    app = MedllmApp(fake_deps(tmp_path), attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        _assert_footer_whole(app)
        assert any(label.endswith(" Stop") for label in _footer_labels(app))


@pytest.mark.anyio
async def test_start_and_wizard_footer_labels_are_not_cut(tmp_path: Path) -> None:
    recorded_run(tmp_path)
    app = MedllmApp(fake_deps(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        _assert_footer_whole(app)  # start screen
        for step in ("1/4", "2/4", "3/4", "4/4"):
            await pilot.press("enter" if step != "4/4" else "ctrl+n")
            await _settle(pilot)
            assert screen_lines(app)[0].strip().startswith(step), screen_lines(app)[0]
            _assert_footer_whole(app)
            if step == "3/4":  # the stage options form opens from here
                await pilot.press("ctrl+o")
                await _settle(pilot)
                assert screen_lines(app)[0].strip().startswith("Stage options")
                _assert_footer_whole(app)
                await pilot.press("escape")
                await _settle(pilot)


@pytest.mark.anyio
async def test_wizard_buttons_keep_their_bottom_border(tmp_path: Path) -> None:
    app = MedllmApp(fake_deps(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.press("enter", "enter", "enter", "ctrl+n")  # the confirm step: three buttons
        await _settle(pilot)
        rows = screen_lines(app)
        label_row = next(i for i, row in enumerate(rows) if "Start run (Ctrl+R)" in row)
        assert "▁▁▁" in rows[label_row + 1] and "▔▔▔" in rows[label_row - 1], rows[label_row - 1:label_row + 2]


@pytest.mark.anyio
async def test_a_long_log_line_wraps_onto_several_rows(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, fixture=FIXTURE_RESUMED)
    words = " ".join(f"word{i:02d}" for i in range(30))  # 209 characters; the log box is ~41 wide
    line = json.dumps(ev.Log(stage="eval", message=words, ts=event_time(FIXTURE_RESUMED, 1)).to_dict())
    with (run_dir / "events.jsonl").open("a", encoding="utf-8") as events:
        events.write(line + "\n")
    app = MedllmApp(fake_deps(tmp_path), attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        log = app.screen.query_one("#log")
        visible = region_lines(app, log.content_region)
        rows = [row for row in visible if "word" in row]
        assert len(rows) > 1, visible
        assert "word29" in rows[-1]  # the end of the line is on screen, not clipped off the right
        assert all(len(row.rstrip()) <= log.content_region.width for row in rows)


@pytest.mark.anyio
async def test_f1_lists_the_keys_without_squeezing_the_dashboard(tmp_path: Path) -> None:
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, fixture=FIXTURE_RESUMED)
    app = MedllmApp(fake_deps(tmp_path), attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        dashboard = app.screen
        right_width = dashboard.query_one("#right").region.width
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        text = "\n".join(screen_lines(app))
        for label in ("x ", "Stop", "Detach", "Theme"):
            assert label in text
        assert dashboard.query_one("#right").region.width == right_width  # no side panel took columns
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen is dashboard


@pytest.mark.anyio
async def test_the_checks_that_matter_are_in_view_first(tmp_path: Path) -> None:
    # The finished resumed run: strict_pass passed, three readiness checks failed among 30 checks.
    run_dir = recorded_run(tmp_path, RESUMED_RUN_ID, fixture=FIXTURE_RESUMED)
    app = MedllmApp(fake_deps(tmp_path), attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        failed = [c.name for c in screen.view.checks if not c.passed]
        assert len(failed) == 3 and len(screen.view.checks) > 10
        box = screen.query_one("#checks-box", VerticalScroll)
        assert box.border_title == "strict-pass checks · 3 failed"
        visible = [line.strip() for line in region_lines(app, box.content_region)]
        assert visible[0] == "✓ strict_pass"
        assert [line[2:] for line in visible[1:4]] == failed and all(line[0] == "✗" for line in visible[1:4])
