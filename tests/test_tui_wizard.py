"""Pilot tests: the wizard from the start screen to a saved profile and a started run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from medllm_core.kernel.profile import load_profile
from medllm_tui.app import MedllmApp
from medllm_tui.screens.dashboard import DashboardScreen
from medllm_tui.screens.wizard import ConfirmStep, OptionsStep, ProfileStep, TierStep
from medllm_tui.wizard_model import WizardChoices, build_profile, list_profiles, recommend_profile
from tests.tui_support import CPU, RTX4090, RecordingLauncher, fake_deps

REPO = Path(__file__).resolve().parents[1]
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Textual runs on asyncio


async def _walk_to_options(pilot, app: MedllmApp) -> None:
    await pilot.pause()
    await pilot.press("enter")  # start screen: "New run…"
    await pilot.pause()
    assert isinstance(app.screen, ProfileStep)


@pytest.mark.anyio
async def test_keyboard_only_wizard_saves_profile_and_starts_detached_run(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    app = MedllmApp(fake_deps(tmp_path, launcher=launcher))
    async with app.run_test(size=(80, 24)) as pilot:
        await _walk_to_options(pilot, app)
        # The probe says CPU, so the cursor sits on the recommended cpu_tiny profile.
        assert "recommended profile: cpu_tiny" in str(app.screen.query_one("#hardware").render())
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TierStep)
        assert app.choices.profile is not None and app.choices.profile.name == "cpu_tiny"
        await pilot.press("enter")  # keep tier tiny
        await pilot.pause()
        assert isinstance(app.screen, OptionsStep)
        assert "API key: not set" in str(app.screen.query_one("#endpoint").render())
        await pilot.press("space")  # LLM judge on (first checkbox has focus)
        await pilot.press("tab", "tab", "space")  # extraction fallback on
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmStep)
        await app.workers.wait_for_complete()
        await pilot.pause()
        plan = str(app.screen.query_one("#plan").render())
        order = plan.splitlines()[0].removeprefix("stages: ").split(" → ")
        core = ["preflight", "sft", "dpo", "simpo", "kto", "completion_check"]
        assert [name for name in order if name in core] == core  # the runner's own order
        assert "VRAM gate: pass" in plan
        name_input = app.screen.query_one("#save-name")
        name_input.value = "thesis run 1"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)

    saved = tmp_path / "profiles" / "user" / "thesis_run_1.toml"
    assert saved.is_file()
    assert launcher.calls == [(saved, tmp_path, False)]
    data = tomllib.loads(saved.read_text(encoding="utf-8"))
    assert data["name"] == "thesis_run_1"
    # The judge toggles set the judge stages' own settings.
    stages = data["stages"]
    assert (stages["llm_judge"]["use_llm"], stages["risk_judge"]["use_llm"], stages["eval"]["llm_fallback"]) == (
        True, False, True)
    assert "judges" not in data and "gates" not in data
    assert data["model"]["tier"] == "tiny" and data["model"]["name_or_path"] == "medllm/tiny-qwen2"
    assert data["stages"]["sft"]["max_steps"] == 400
    # Data paths are made absolute: the copy lives in another folder than the shipped profile.
    assert Path(data["data"]["sft"]["path"]) == REPO / "data" / "samples" / "sft_medical_drills_zh_en.jsonl"
    reloaded = load_profile(saved, environ={})  # it is a valid profile the CLI can run
    assert reloaded.stages["llm_judge"]["use_llm"] and reloaded.data["sft"].path == data["data"]["sft"]["path"]


@pytest.mark.anyio
async def test_tier_step_offers_14b_on_a_24gb_card_through_qlora(tmp_path: Path) -> None:
    app = MedllmApp(fake_deps(tmp_path, hardware=RTX4090))
    async with app.run_test(size=(120, 40)) as pilot:
        await _walk_to_options(pilot, app)
        assert "recommended profile: rtx4090_24g" in str(app.screen.query_one("#hardware").render())
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TierStep)
        assert app.screen.query_one("#tiers").highlighted == 1  # the profile's own tier, 7b, fits on 24 GB …
        assert str(app.screen.query_one("#verdict").render()) == ""
        await pilot.press("down")  # … and 14b fits too, but only with a 4-bit QLoRA base (model.quantization auto)
        await pilot.pause()
        assert str(app.screen.query_one("#verdict").render()) == ""
        labels = [str(app.screen.query_one("#tiers").get_option_at_index(i).prompt) for i in range(4)]
        assert "fits" in labels[1] and "4-bit" not in labels[1]
        assert "— fits, est. peak" in labels[2] and labels[2].endswith("with 4-bit QLoRA"), labels[2]
        assert "WILL NOT FIT" not in labels[2]


@pytest.mark.anyio
async def test_custom_model_dry_run_and_save_only(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    app = MedllmApp(fake_deps(tmp_path, launcher=launcher, key_configured=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await _walk_to_options(pilot, app)
        await pilot.press("enter")  # cpu_tiny
        await pilot.pause()
        await pilot.press("down", "down", "down", "enter")  # custom: focuses the path input
        await pilot.pause()
        assert isinstance(app.screen, TierStep)
        await pilot.press(*"/models/my-qwen", "enter")
        await pilot.pause()
        assert isinstance(app.screen, OptionsStep)
        assert "API key: configured" in str(app.screen.query_one("#endpoint").render())
        for _ in range(5):
            await pilot.press("tab")
        await pilot.press("space", "ctrl+n")  # dry run on
        await pilot.pause()
        assert isinstance(app.screen, ConfirmStep)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert launcher.calls == []  # saving does not start anything
        await pilot.press("escape")  # back to the options, choices kept
        await pilot.pause()
        assert isinstance(app.screen, OptionsStep) and app.choices.dry_run
        await pilot.press("ctrl+n", "ctrl+r")
        await pilot.pause()
    saved = tmp_path / "profiles" / "user" / "cpu_tiny.toml"  # the chosen name, kept
    data = tomllib.loads(saved.read_text(encoding="utf-8"))
    assert data["model"]["name_or_path"] == "/models/my-qwen"
    assert launcher.calls == [(saved, tmp_path, True)]


def test_recommendations_follow_the_seed() -> None:
    from medllm_core.kernel.hardware import GpuInfo, HardwareInfo

    def cuda(*cards: tuple[str, float, tuple[int, int]]) -> HardwareInfo:
        return HardwareInfo("cuda", [GpuInfo(i, n, m, c) for i, (n, m, c) in enumerate(cards)])

    assert recommend_profile(None)[0] == "cpu_tiny"
    assert recommend_profile(CPU)[0] == "cpu_tiny"
    assert recommend_profile(RTX4090)[0] == "rtx4090_24g"
    assert recommend_profile(cuda(("NVIDIA A100-SXM4-40GB", 39.4, (8, 0))))[0] == "a100_40g"
    assert recommend_profile(cuda(("NVIDIA L40S", 44.5, (8, 9))))[0] == "a100_40g"
    assert recommend_profile(cuda(("NVIDIA H100 80GB HBM3", 79.1, (9, 0))))[0] == "h100_80g_14b"
    assert recommend_profile(cuda(("Tesla V100-SXM2-32GB", 31.7, (7, 0)),
                                  ("Tesla V100-SXM2-32GB", 31.7, (7, 0))))[0] == "v100_dual"
    names = {p.name for p in list_profiles()}
    assert {"cpu_tiny", "rtx4090_24g", "a100_40g", "h100_80g_14b", "v100_dual"} <= names


def test_user_profiles_are_listed_after_the_shipped_ones(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.toml").write_text('name = "mine"\ndescription = "my own"\n', encoding="utf-8")
    options = list_profiles(user_dirs=(user,))
    assert options[-1].name == "mine" and options[-1].origin == "yours" and options[-1].description == "my own"
    choices = WizardChoices(profile=options[-1], tier="14b")
    profile = build_profile(choices)
    assert profile.model.tier == "14b" and profile.model.name_or_path == "Qwen/Qwen2.5-14B-Instruct"


@pytest.mark.anyio
async def test_stage_options_form_is_generated_from_the_settings(tmp_path: Path) -> None:
    from textual.widgets import Input, Select, Switch

    from medllm_tui.screens.stage_options import StageOptionsScreen

    launcher = RecordingLauncher()
    app = MedllmApp(fake_deps(tmp_path, launcher=launcher))
    async with app.run_test(size=(80, 24)) as pilot:
        await _walk_to_options(pilot, app)
        await pilot.press("enter", "enter")  # cpu_tiny, tier tiny
        await pilot.pause()
        assert isinstance(app.screen, OptionsStep)
        await pilot.press("ctrl+o")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StageOptionsScreen)
        picker = screen.query_one("#stage-pick", Select)
        stages = [form.stage for form in screen.forms]
        assert {"preflight", "sft", "dpo", "eval", "llm_judge"} <= set(stages)
        picker.value = "dpo"
        await pilot.pause()
        widgets = {item.key: wid for wid, (_, item) in screen.fields.items()}
        assert isinstance(screen.query_one(f"#{widgets['loss_type']}"), Select)
        assert isinstance(screen.query_one(f"#{widgets['gradient_checkpointing']}"), Switch)
        beta = screen.query_one(f"#{widgets['beta']}", Input)
        beta.value = "0.2"
        await pilot.pause()
        picker.value = "llm_judge"
        await pilot.pause()
        widgets = {item.key: wid for wid, (_, item) in screen.fields.items()}
        screen.query_one(f"#{widgets['use_llm']}", Switch).value = True
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OptionsStep)
        assert app.choices.llm_judge is True  # the checkbox follows the stage setting
        assert app.screen.query_one("#llm_judge").value is True
    assert app.choices.stage_options["stages.dpo.beta"] == 0.2
    profile = build_profile(app.choices)
    assert profile.stages["dpo"]["beta"] == 0.2 and profile.stages["llm_judge"]["use_llm"] is True
