"""SVG snapshots at 80x24 and 120x40 (update with: pytest tests/test_tui_snapshots.py --snapshot-update).

Deterministic by construction: fixed clock, fixed hardware, fake NVML, a
recorded events file, and a relative output root so no host path shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from medllm_tui.app import MedllmApp
from tests.tui_support import (
    FIXTURE_RESUMED,
    H100_PAIR,
    RESUMED_RUN_ID,
    RTX4090,
    event_time,
    fake_deps,
    recorded_run,
)

SIZES = [(80, 24), (120, 40)]
RUNNING_LINES = 75  # FIXTURE_RESUMED up to attempt 1, SFT step 24/40
RESUMED_LINES = 295  # up to attempt 2, eval 248/620 ("evaluating dpo")


async def _settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    # The tier step says where the model comes from and whether it is cached: pin both (no host cache shows).
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("MODELSCOPE_CACHE", raising=False)
    return Path(".")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_finished_run(snap_compare, root: Path, size: tuple[int, int]) -> None:
    run_dir = recorded_run(root)
    app = MedllmApp(fake_deps(root, gpus=H100_PAIR), attach=run_dir)
    assert snap_compare(app, terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_mid_run(snap_compare, root: Path, size: tuple[int, int]) -> None:
    run_dir = recorded_run(root, lines=40)
    deps = fake_deps(root)
    deps.alive = lambda pid: True
    assert snap_compare(MedllmApp(deps, attach=run_dir), terminal_size=size, run_before=_settle)


def test_start_screen_with_recent_run(snap_compare, root: Path) -> None:
    recorded_run(root)
    assert snap_compare(MedllmApp(fake_deps(root)), terminal_size=(80, 24), run_before=_settle)


def test_tier_step_on_a_24gb_card(snap_compare, root: Path) -> None:
    async def to_tier_step(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter", "enter")
        await _settle(pilot)

    app = MedllmApp(fake_deps(root, hardware=RTX4090))
    assert snap_compare(app, terminal_size=(80, 24), run_before=to_tier_step)


def test_options_step_and_help(snap_compare, root: Path) -> None:
    async def to_options_with_help(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter", "enter", "enter")
        await _settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(MedllmApp(fake_deps(root)), terminal_size=(120, 40), run_before=to_options_with_help)


# -- issue 15 item 6: the layout at 80x24 (and that 120x40 still reads well) ---------------------

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_wizard_confirm_step(snap_compare, root: Path, size: tuple[int, int]) -> None:
    async def to_confirm_step(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter", "enter", "enter", "ctrl+n")
        await _settle(pilot)

    assert snap_compare(MedllmApp(fake_deps(root)), terminal_size=size, run_before=to_confirm_step)


def _replayed(root: Path, lines: int) -> MedllmApp:
    """The full cpu_tiny run replayed up to ``lines``, its process alive, the clock at that line."""
    run_dir = recorded_run(root, RESUMED_RUN_ID, lines=lines, fixture=FIXTURE_RESUMED)
    deps = fake_deps(root)
    deps.alive = lambda pid: True
    deps.clock = lambda: event_time(FIXTURE_RESUMED, lines) + 5.0
    return MedllmApp(deps, attach=run_dir)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_running_every_stage(snap_compare, root: Path, size: tuple[int, int]) -> None:
    # First attempt, DPO training: eleven more stages listed, the later ones by scrolling.
    assert snap_compare(_replayed(root, RUNNING_LINES), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_resumed_run(snap_compare, root: Path, size: tuple[int, int]) -> None:
    # Second attempt during eval: SFT reused, DPO continued from its checkpoint, checks of this attempt only.
    assert snap_compare(_replayed(root, RESUMED_LINES), terminal_size=size, run_before=_settle)


def test_dashboard_keys_modal(snap_compare, root: Path) -> None:
    async def press_f1(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(_replayed(root, RESUMED_LINES), terminal_size=(80, 24), run_before=press_f1)
