"""Settings are data owned by their stage: choices, help, older keys and variables, listings.

Every shipped profile and the README's reference block load against the real
plugin registry; the older ``[gates]`` / ``[judges]`` keys and the seed's
environment variables land in the stages' own settings with the same
precedence (file < env < --set), and errors name the key the user wrote.
"""

from __future__ import annotations

import enum
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.plugin_manager import StageRegistry, load_plugins
from medllm_core.kernel.profile import load_profile
from medllm_core.kernel.schema import SchemaError, build, describe_settings, describe_type, option
from medllm_core.kernel.stages import StageSpec
from tests.conftest import REPO

PROFILES = sorted((REPO / "profiles").glob("*.toml"))
TINY = REPO / "profiles" / "cpu_tiny.toml"
JUDGE_STAGES = ("stages.llm_judge", "stages.risk_judge", "stages.eval.fallback_judge")


@pytest.fixture(scope="module")
def registry() -> StageRegistry:
    return load_plugins(environ={})


def load(path: Path, registry: StageRegistry, environ: dict[str, str] | None = None,
         cli: dict | None = None):
    return load_profile(path, environ=environ or {}, cli_overrides=cli, stages=registry.catalogue())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return path


def value(profile, dotted: str):
    node = profile.stages
    for part in dotted.split(".")[1:]:
        node = node[part]
    return node


# --- the schema: choices, help, described as data ---------------------------------

class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Inner:
    url: str = option("", "where to call")


@dataclass
class Sample:
    mode: Literal["fast", "careful"] = option("fast", "how to go")
    colour: Colour = option(Colour.RED, "paint")
    rate: float = field(default=0.5, metadata={"help": "TRL-style help"})
    count: int | None = None
    inner: Inner = option(help="a nested table", default_factory=Inner)


def test_literal_error_lists_choices_and_suggests() -> None:
    with pytest.raises(SchemaError) as caught:
        build(Sample, {"mode": "carefull"}, "stages.x")
    assert caught.value.key == "stages.x.mode"
    assert "must be one of fast, careful" in caught.value.message
    assert caught.value.hint == "did you mean 'careful'?"


def test_enum_values_coerce_and_serialise() -> None:
    sample = build(Sample, {"colour": "blue"})
    assert sample.colour is Colour.BLUE
    with pytest.raises(SchemaError, match="one of red, blue"):
        build(Sample, {"colour": "green"})


def test_non_finite_numbers_are_rejected() -> None:
    with pytest.raises(SchemaError, match="finite"):
        build(Sample, {"rate": float("nan")})


def test_describe_type_and_settings() -> None:
    assert describe_type(Literal["a", "b"]) == "one of a, b"
    fields = {f.name: f for f in describe_settings(Sample)}
    assert fields["mode"].kind == "choice" and fields["mode"].choices == ("fast", "careful")
    assert fields["mode"].help == "how to go" and fields["mode"].default == "fast"
    assert fields["colour"].choices == ("red", "blue") and fields["colour"].default == "red"
    assert fields["rate"].help == "TRL-style help" and fields["rate"].kind == "float"
    assert fields["count"].optional and fields["count"].kind == "int" and fields["count"].default is None
    assert fields["inner"].kind == "table" and [f.name for f in fields["inner"].nested] == ["url"]


def test_every_built_in_setting_has_help(registry: StageRegistry) -> None:
    def walk(cls, prefix):
        for f in describe_settings(cls):
            if f.nested is not None:
                continue
            assert f.help, f"{prefix}.{f.name} has no help"
    for name, spec in registry.stages.items():
        if spec.settings is not None:
            walk(spec.settings, f"stages.{name}")


def test_training_choices_are_literals(registry: StageRegistry) -> None:
    fields = {f.name: f for f in describe_settings(registry.stages["dpo"].settings)}
    for name in ("lr_scheduler", "loss_guard_fallback", "optimize", "loss_type"):
        assert fields[name].kind == "choice", name


def test_a_bad_choice_in_a_file_names_file_line_and_key(tmp_path: Path, registry: StageRegistry) -> None:
    text = TINY.read_text(encoding="utf-8").replace('[stages.sft]\n', '[stages.sft]\nlr_scheduler = "cosin"\n', 1)
    text = text.replace('path = "../', f'path = "{REPO}/')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, registry)
    where = caught.value.location
    assert where.key == "stages.sft.lr_scheduler" and where.file == str(path)
    assert text.splitlines()[where.line - 1].startswith("lr_scheduler")
    assert caught.value.hint == "did you mean 'cosine'?"


@pytest.mark.parametrize("key", ["learning_rate", "num_epochs", "beta"])
def test_non_finite_training_numbers_are_rejected(key: str, registry: StageRegistry) -> None:
    with pytest.raises(ConfigError):
        load(TINY, registry, cli={f"stages.dpo.{key}": float("inf")})


# --- shipped profiles and the README ------------------------------------------------

@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_shipped_profile_loads_against_the_registry(path: Path, registry: StageRegistry) -> None:
    profile = load(path, registry)
    assert set(profile.stages) <= set(registry.stages)
    assert "preflight" in profile.stages  # its older [gates] table landed in the stage's settings
    assert not hasattr(profile, "gates") and not hasattr(profile, "judges")


def test_readme_reference_block_loads(tmp_path: Path, registry: StageRegistry) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    reference = next(b for b in blocks if "[stages.sft]" in b)
    profile = load(write(tmp_path, reference), registry)
    assert profile.stages["sft"]


# --- older keys and the seed's variables ----------------------------------------------

LEGACY = """name = "old"
[gates]
allow_skip_training = true
min_vram_gb_7b = 20
[judges]
llm_judge = true
risk_judge = false
v2_llm_fallback = true
required = true
model = "judge-m"
base_url = "http://judge:1/v1"
timeout_s = 5
"""


def test_older_keys_land_in_the_stages(tmp_path: Path, registry: StageRegistry) -> None:
    profile = load(write(tmp_path, LEGACY), registry)
    assert value(profile, "stages.preflight.allow_skip_training") is True
    assert value(profile, "stages.preflight.min_vram_gb_7b") == 20.0
    assert value(profile, "stages.llm_judge.use_llm") is True
    assert value(profile, "stages.risk_judge.use_llm") is False
    assert value(profile, "stages.eval.llm_fallback") is True
    assert value(profile, "stages.llm_judge.fail_if_unavailable") is True
    assert value(profile, "stages.risk_judge.fail_if_unavailable") is True
    for stage in JUDGE_STAGES:  # one old key feeds every judge endpoint
        assert value(profile, f"{stage}.model") == "judge-m"
        assert value(profile, f"{stage}.timeout_s") == 5.0
        assert profile.sources[f"{stage}.model"] == "file"


def test_variables_feed_several_stages_and_beat_the_file(tmp_path: Path, registry: StageRegistry) -> None:
    environ = {"OPENAI_BASE_URL": "http://env:2/v1", "ENABLE_LLM_JUDGE": "false", "MIN_CUDA_MEM_GB_7B": "30"}
    profile = load(write(tmp_path, LEGACY), registry, environ=environ,
                   cli={"judges.llm_judge": True, "judges.model": "cli-m"})
    for stage in JUDGE_STAGES:
        assert value(profile, f"{stage}.base_url") == "http://env:2/v1"
        assert profile.sources[f"{stage}.base_url"] == "env:OPENAI_BASE_URL"
        assert value(profile, f"{stage}.model") == "cli-m"
        assert profile.sources[f"{stage}.model"] == "cli"
    assert value(profile, "stages.llm_judge.use_llm") is True  # --set beats the variable
    assert profile.sources["stages.llm_judge.use_llm"] == "cli"
    assert value(profile, "stages.preflight.min_vram_gb_7b") == 30.0
    assert profile.sources["stages.preflight.min_vram_gb_7b"] == "env:MIN_CUDA_MEM_GB_7B"


def test_new_and_old_key_in_conflict(tmp_path: Path, registry: StageRegistry) -> None:
    text = LEGACY + "[stages.llm_judge]\nuse_llm = false\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, registry)
    assert caught.value.location.key == "judges.llm_judge"
    assert caught.value.location.line == 6 and caught.value.location.file == str(path)
    assert "conflicts with 'stages.llm_judge.use_llm'" in caught.value.message
    # The same value twice is not a conflict.
    agreed = load(write(tmp_path, LEGACY + "[stages.llm_judge]\nuse_llm = true\n"), registry)
    assert value(agreed, "stages.llm_judge.use_llm") is True


def test_bad_old_key_value_names_the_key_written(tmp_path: Path, registry: StageRegistry) -> None:
    path = write(tmp_path, LEGACY.replace("timeout_s = 5", 'timeout_s = "soon"'))
    with pytest.raises(ConfigError) as caught:
        load(path, registry)
    assert caught.value.location.key == "judges.timeout_s" and caught.value.location.line == 12


def test_unknown_old_key_suggests(tmp_path: Path, registry: StageRegistry) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, LEGACY.replace("risk_judge = false", "risk_juge = false")), registry)
    assert caught.value.location.key == "judges.risk_juge"
    assert caught.value.hint == "did you mean 'risk_judge'?"


def test_loading_without_a_registry_still_accepts_older_keys(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, LEGACY), environ={})
    assert value(profile, "stages.llm_judge.use_llm") is True


def test_a_plugin_declares_its_own_variable_and_old_key(tmp_path: Path) -> None:
    @dataclass
    class Knob:
        level: int = option(1, "how much")

    reg = StageRegistry()
    reg.stages["knob"] = StageSpec(name="knob", run=lambda ctx: None, settings=Knob, env={"KNOB_LEVEL": "level"},
                                   aliases={"knobs.level": "level"})
    path = write(tmp_path, "[knobs]\nlevel = 3\n")
    assert load_profile(path, environ={}, stages=reg.catalogue()).stages["knob"]["level"] == 3
    profile = load_profile(path, environ={"KNOB_LEVEL": "7"}, stages=reg.catalogue())
    assert profile.stages["knob"]["level"] == 7 and profile.sources["stages.knob.level"] == "env:KNOB_LEVEL"


# --- rendered from data: the options listing and the wizard's forms --------------------------

def test_options_listing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from medllm_tui import cli

    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["options"]) == 0
    out = capsys.readouterr().out
    for text in ("[stages.preflight]", "allow_skip_training", "ALLOW_SKIP_TRAINING", "[stages.llm_judge]",
                 "use_llm", "fallback_judge.base_url", "one of sigmoid", "peak learning rate"):
        assert text in out, text
    assert cli.main(["options", "dpo"]) == 0
    out = capsys.readouterr().out
    assert "loss_type" in out and "[stages.sft]" not in out
    assert cli.main(["options", "dpp"]) == 2
    assert "did you mean 'dpo'" in capsys.readouterr().err


def test_a_plugins_settings_become_a_wizard_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples" / "medllm_orpo"))
    sys.modules.pop("medllm_orpo", None)
    from medllm_orpo.plugin import ORPOSettings

    from medllm_tui.stage_forms import options_rows, parse_value, stage_forms

    reg = load_plugins(environ={})
    reg.stages["orpo"] = StageSpec(name="orpo", run=lambda ctx: None, settings=ORPOSettings)
    reg.origin["orpo"] = "orpo"
    profile = load(TINY, reg)
    form = next(f for f in stage_forms(profile, {"stages.orpo.beta": 0.3}, reg) if f.stage == "orpo")
    beta = next(f for f in form.fields if f.key == "beta")
    assert beta.value == 0.3 and "odds-ratio" in beta.setting.help and beta.setting.kind == "float"
    scheduler = next(f for f in form.fields if f.key == "lr_scheduler")
    assert "cosine" in scheduler.setting.choices
    assert parse_value(beta.setting, "0.25") == 0.25
    rows = dict(options_rows(reg, "orpo"))["orpo"]
    assert any(row[0] == "beta" and "odds-ratio" in row[3] for row in rows)
