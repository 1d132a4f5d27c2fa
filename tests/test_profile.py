"""Profiles: shipped files, precedence file < env < CLI, located errors, saving, stage planning.

Unit tests only (no training, no subprocess). Every profile with an error is a
real file in ``tmp_path`` so the reported file and line can be checked exactly.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from medllm_core.kernel.errors import ConfigError, ExitCode
from medllm_core.kernel.graph import plan_stages
from medllm_core.kernel.plugin_manager import StageRegistry, load_plugins
from medllm_core.kernel.profile import (
    MODEL_TIERS,
    Profile,
    dump_profile,
    load_profile,
    model_slug,
    save_profile,
)
from medllm_core.kernel.schema import build
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec
from medllm_core.library.training.settings import TrainingSettings

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"
TINY = PROFILES / "cpu_tiny.toml"
SHIPPED = sorted(PROFILES.glob("*.toml"))
GPU_PROFILES = [p for p in SHIPPED if p.name != TINY.name]
# cpu_tiny trains on the Q&A sample plus the MCQ drills (scripts/make_sample_drills.py).
SFT_SAMPLE = REPO / "data" / "samples" / "sft_medical_drills_zh_en.jsonl"
PREF_SAMPLE = REPO / "data" / "samples" / "preference_medical_zh_en.jsonl"


@pytest.fixture(scope="module")
def schemas() -> dict[str, type | None]:
    return load_plugins(environ={}).catalogue()


def load(spec: str | Path, schemas: dict[str, type | None], *, environ: dict[str, str] | None = None,
         cli: dict[str, Any] | None = None) -> Profile:
    """load_profile isolated from the host environment (environ={} unless given)."""
    return load_profile(spec, environ=environ or {}, cli_overrides=cli, stage_schemas=schemas)


def value_at(profile: Profile, dotted: str) -> Any:
    node: Any = profile
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def tiny_text() -> str:
    """cpu_tiny.toml with absolute data paths, so a copy anywhere still finds the samples."""
    text = TINY.read_text(encoding="utf-8")
    text = text.replace('"../data/samples/sft_medical_drills_zh_en.jsonl"', f'"{SFT_SAMPLE}"')
    return text.replace('"../data/samples/preference_medical_zh_en.jsonl"', f'"{PREF_SAMPLE}"')


def mutate(text: str, old_prefix: str, new_line: str) -> tuple[str, int]:
    """Replace the first line starting with ``old_prefix``; return the text and that 1-based line."""
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if line.startswith(old_prefix):
            lines[number - 1] = new_line
            return "\n".join(lines) + "\n", number
    raise AssertionError(f"no line starts with {old_prefix!r}")


def write(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, schemas: dict[str, type | None], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path, schemas, **kwargs)
    assert info.value.exit_code == ExitCode.CONFIG_ERROR
    return info.value


# --- shipped profiles ------------------------------------------------------------


def test_cpu_tiny_key_values(schemas: dict[str, type | None]) -> None:
    profile = load(TINY, schemas)
    assert profile.name == "cpu_tiny"
    assert profile.source_path == TINY
    assert profile.hardware.device == "cpu"
    assert profile.hardware.gpu_count == 0
    assert profile.model.name_or_path == "medllm/tiny-qwen2"
    assert profile.model.tier == "tiny"
    assert (profile.model.lora.r, profile.model.lora.alpha, profile.model.lora.dropout) == (8, 16, 0.0)
    assert profile.model.lora.target_modules == "all-linear"
    assert profile.stages["preflight"]["allow_skip_training"] is False
    assert profile.stages["preflight"]["force_skip_training"] is False
    assert profile.run.dry_run is False
    assert profile.run.seed == 42
    assert not (profile.stages["llm_judge"]["use_llm"] or profile.stages["risk_judge"]["use_llm"]
                or profile.stages["eval"]["llm_fallback"])
    assert profile.data["sft"].format == "messages"
    assert profile.resolve_path(profile.data["sft"].path) == SFT_SAMPLE
    assert profile.resolve_path(profile.data["preference"].path) == PREF_SAMPLE
    sft = profile.stages["sft"]
    assert sft["max_steps"] == 400
    assert sft["learning_rate"] == pytest.approx(5e-3)
    assert isinstance(sft["learning_rate"], float)
    assert (sft["micro_batch_size"], sft["gradient_accumulation_steps"], sft["max_length"]) == (1, 1, 320)
    assert (sft["save_steps"], sft["save_total_limit"]) == (100, 2)
    assert sft["gradient_checkpointing"] is False
    assert sft["warmup_ratio"] == 0.0
    # The stage table is validated against TrainingSettings and its defaults are filled in.
    assert sft["lr_scheduler"] == TrainingSettings.lr_scheduler
    assert set(sft) == {f.name for f in dataclasses.fields(schemas["sft"])} - {"seed"}  # None is not stored
    assert set(profile.sources.values()) == {"file"}
    assert profile.sources["stages.sft.max_steps"] == "file"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path: Path, schemas: dict[str, type | None]) -> None:
    profile = load(path, schemas)
    assert profile.name == path.stem
    assert profile.description
    assert profile.model.tier in MODEL_TIERS
    assert set(profile.stages) <= set(schemas)
    for key in ("sft", "preference"):
        assert profile.resolve_path(profile.data[key].path).is_file(), f"{path.name}: data.{key}.path is missing"
    # The validated table (defaults filled in) builds the registered settings class again.
    sft_settings = schemas["sft"]
    assert sft_settings is not None
    build(sft_settings, profile.stages["sft"], "stages.sft")
    assert set(profile.sources.values()) == {"file"}


@pytest.mark.parametrize("path", GPU_PROFILES, ids=lambda p: p.stem)
def test_gpu_profiles_match_their_card(path: Path, schemas: dict[str, type | None]) -> None:
    profile = load(path, schemas)
    assert profile.hardware.device == "cuda"
    assert profile.hardware.gpu_count >= 1
    assert profile.model.tier in ("7b", "14b")
    assert profile.model.tier.upper() in profile.model.name_or_path.upper()
    assert profile.model_slug == f"qwen25_{profile.model.tier}"
    gate = profile.stages["preflight"][f"min_vram_gb_{profile.model.tier}"]
    assert profile.hardware.min_vram_gb >= gate, "the card the profile is written for would fail its own gate"
    assert profile.stages["sft"]["gradient_checkpointing"] is True


def test_shipped_profile_specifics(schemas: dict[str, type | None]) -> None:
    big = load(PROFILES / "h100_80g_14b.toml", schemas)
    assert big.model.name_or_path == "Qwen/Qwen2.5-14B-Instruct"
    assert big.model.tier == "14b"
    assert big.model_slug == "qwen25_14b"
    dual = load(PROFILES / "v100_dual.toml", schemas)
    assert dual.hardware.gpu_count == 2
    assert dual.hardware.min_vram_gb == 32
    small = load(PROFILES / "rtx4090_24g.toml", schemas)
    assert small.hardware.min_vram_gb == 24
    assert small.model_slug == "qwen25_7b"


@pytest.mark.parametrize("path", GPU_PROFILES, ids=lambda p: p.stem)
def test_gpu_profiles_have_a_usable_max_length(path: Path, schemas: dict[str, type | None]) -> None:
    assert load(path, schemas).stages["sft"]["max_length"] >= 512


# --- precedence: file < environment < command line ----------------------------------

ENV_CASES = [
    ("MODEL_NAME", "Qwen/Qwen2.5-7B-Instruct", "model.name_or_path", "Qwen/Qwen2.5-7B-Instruct"),
    ("MODEL_TIER", "14b", "model.tier", "14b"),
    ("ALLOW_SKIP_TRAINING", "true", "stages.preflight.allow_skip_training", True),
    ("FORCE_SKIP_TRAINING", "1", "stages.preflight.force_skip_training", True),
    ("ENABLE_LLM_JUDGE", "yes", "stages.llm_judge.use_llm", True),
    ("ENABLE_LLM_RISK_JUDGE", "on", "stages.risk_judge.use_llm", True),
    ("ENABLE_V2_LLM_FALLBACK", "TRUE", "stages.eval.llm_fallback", True),
    ("DRY_RUN", "true", "run.dry_run", True),
    ("DAY1_DRY_RUN", "1", "run.dry_run", True),
    ("MIN_CUDA_MEM_GB_7B", "20.5", "stages.preflight.min_vram_gb_7b", 20.5),
    ("MIN_CUDA_MEM_GB_14B", "40", "stages.preflight.min_vram_gb_14b", 40.0),
    ("OPENAI_BASE_URL", "http://localhost:8000/v1", "stages.llm_judge.base_url", "http://localhost:8000/v1"),
    ("MEDLLM_OUTPUT_ROOT", "/tmp/medllm-out", "output_root", "/tmp/medllm-out"),
]


@pytest.mark.parametrize(("var", "raw", "dotted", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_env_overrides_the_right_key(var: str, raw: str, dotted: str, expected: Any,
                                     schemas: dict[str, type | None]) -> None:
    before = value_at(load(TINY, schemas), dotted)
    assert before != expected, "the case must change the value"
    profile = load(TINY, schemas, environ={var: raw})
    assert value_at(profile, dotted) == expected
    assert type(value_at(profile, dotted)) is type(expected)
    assert profile.sources[dotted] == f"env:{var}"
    # Nothing else moved (one variable may feed several stages: OPENAI_BASE_URL).
    others = {k: v for k, v in profile.sources.items() if v != f"env:{var}"}
    assert set(others.values()) <= {"file"}


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", "", " false "])
def test_env_false_values_switch_a_file_true_off(raw: str, schemas: dict[str, type | None]) -> None:
    path = PROFILES / "a100_40g.toml"
    assert load(path, schemas).stages["risk_judge"]["use_llm"] is True
    profile = load(path, schemas, environ={"ENABLE_LLM_RISK_JUDGE": raw})
    assert profile.stages["risk_judge"]["use_llm"] is False
    assert profile.sources["stages.risk_judge.use_llm"] == "env:ENABLE_LLM_RISK_JUDGE"


def test_unrelated_env_is_ignored(schemas: dict[str, type | None]) -> None:
    profile = load(TINY, schemas, environ={"TIER": "14b", "model_tier": "14b", "HF_TOKEN": "x"})
    assert profile.model.tier == "tiny"
    assert set(profile.sources.values()) == {"file"}


def test_cli_beats_env_beats_file(schemas: dict[str, type | None]) -> None:
    environ = {"MODEL_TIER": "14b", "MODEL_NAME": "Qwen/Qwen2.5-14B-Instruct", "ALLOW_SKIP_TRAINING": "true",
               "DRY_RUN": "false"}
    cli = {"model.tier": "7b", "run.dry_run": True, "stages.sft.max_steps": 5}
    profile = load(TINY, schemas, environ=environ, cli=cli)
    assert profile.model.tier == "7b"
    assert profile.sources["model.tier"] == "cli"
    assert profile.run.dry_run is True
    assert profile.sources["run.dry_run"] == "cli"
    assert profile.model.name_or_path == "Qwen/Qwen2.5-14B-Instruct"
    assert profile.sources["model.name_or_path"] == "env:MODEL_NAME"
    assert profile.stages["preflight"]["allow_skip_training"] is True
    assert profile.sources["stages.preflight.allow_skip_training"] == "env:ALLOW_SKIP_TRAINING"
    assert profile.stages["sft"]["max_steps"] == 5
    assert profile.sources["stages.sft.max_steps"] == "cli"
    # Untouched keys keep their file value and say so.
    assert profile.model.lora.r == 8
    assert profile.sources["model.lora.r"] == "file"
    assert profile.sources["stages.sft.learning_rate"] == "file"
    # Defaults that nobody set are not claimed by any source.
    assert "stages.llm_judge.model" not in profile.sources


@pytest.mark.parametrize(("dotted", "value"), [
    ("model.name_or_path", "Qwen/Qwen2.5-14B-Instruct"),
    ("model.tier", "14b"),
    ("stages.preflight.allow_skip_training", True),
    ("stages.preflight.force_skip_training", True),
    ("stages.llm_judge.use_llm", True),
    ("stages.risk_judge.use_llm", True),
    ("stages.eval.llm_fallback", True),
    ("stages.eval.fallback_judge.model", "judge-x"),
    ("run.dry_run", True),
    ("model.lora.r", 4),
    ("stages.sft.learning_rate", 0.5),
    ("output_root", "/tmp/elsewhere"),
])
def test_cli_override_each_key(dotted: str, value: Any, schemas: dict[str, type | None]) -> None:
    profile = load(TINY, schemas, cli={dotted: value})
    assert value_at(profile, dotted) == value
    assert profile.sources[dotted] == "cli"


def test_cli_can_add_a_stage_table(schemas: dict[str, type | None]) -> None:
    profile = load(TINY, schemas, cli={"stages.completion_check.enabled": False})
    assert profile.stages["completion_check"] == {"enabled": False}


@pytest.mark.parametrize(("var", "dotted"), [("MIN_CUDA_MEM_GB_7B", "stages.preflight.min_vram_gb_7b"),
                                             ("MIN_CUDA_MEM_GB_14B", "stages.preflight.min_vram_gb_14b")])
def test_vram_gate_env_overrides_an_integer_file_value(var: str, dotted: str,
                                                       schemas: dict[str, type | None]) -> None:
    profile = load(PROFILES / "a100_40g.toml", schemas, environ={var: "20"})
    assert value_at(profile, dotted) == 20.0


# --- bad environment / command-line values -----------------------------------------


@pytest.mark.parametrize("var", ["ALLOW_SKIP_TRAINING", "FORCE_SKIP_TRAINING", "DRY_RUN", "ENABLE_LLM_JUDGE"])
def test_bad_boolean_env_names_the_variable(var: str, schemas: dict[str, type | None]) -> None:
    error = config_error(TINY, schemas, environ={var: "maybe"})
    assert var in str(error)
    assert "maybe" in str(error)
    assert "boolean" in error.message
    assert error.hint and "true" in error.hint


def test_bad_number_env_names_the_variable(schemas: dict[str, type | None]) -> None:
    error = config_error(TINY, schemas, environ={"MIN_CUDA_MEM_GB_7B": "lots"})
    assert "MIN_CUDA_MEM_GB_7B" in str(error)
    assert "number" in error.message


def test_bad_env_value_blames_the_variable_not_the_file(schemas: dict[str, type | None]) -> None:
    error = config_error(TINY, schemas, environ={"MODEL_TIER": "13b"})
    assert "MODEL_TIER" in error.message
    assert error.location.key == "model.tier"
    assert error.location.file is None
    assert error.hint == "did you mean '14b'?"


def test_bad_cli_value_blames_set(schemas: dict[str, type | None]) -> None:
    error = config_error(TINY, schemas, cli={"stages.sft.max_steps": "ten"})
    assert "--set" in error.message
    assert "expected integer" in error.message
    assert error.location.key == "stages.sft.max_steps"
    error = config_error(TINY, schemas, cli={"stages.sft.learning_rat": 0.1})
    assert error.location.key == "stages.sft.learning_rat"
    assert error.hint == "did you mean 'learning_rate'?"


def test_cli_cannot_set_inside_a_scalar(schemas: dict[str, type | None]) -> None:
    error = config_error(TINY, schemas, cli={"model.tier.x": 1})
    assert "model.tier.x" in error.message


# --- located errors in the file ---------------------------------------------------------

UNKNOWN_KEYS = [
    # (line to replace, replacement, dotted key, suggestion)
    ('name = "cpu_tiny"', 'nmae = "cpu_tiny"', "nmae", "name"),
    ("description = ", 'descripton = "x"', "descripton", "description"),
    ('device = "cpu"', 'devcie = "cpu"', "hardware.devcie", "device"),
    ('name_or_path = "medllm/tiny-qwen2"', 'name_or_pth = "medllm/tiny-qwen2"', "model.name_or_pth",
     "name_or_path"),
    ("alpha = 16", "alhpa = 16", "model.lora.alhpa", "alpha"),
    ("allow_skip_training = false", "allow_skip_trainig = false", "gates.allow_skip_trainig",
     "allow_skip_training"),
    ("seed = 42", "sede = 42", "run.sede", "seed"),
    ("llm_judge = false", "llm_juge = false", "judges.llm_juge", "llm_judge"),
    ('format = "messages"', 'fromat = "messages"', "data.sft.fromat", "format"),
    ("learning_rate = 5e-3", "learning_rat = 5e-3", "stages.sft.learning_rat", "learning_rate"),
    ("max_steps = 400", "max_step = 400", "stages.sft.max_step", "max_steps"),
]


@pytest.mark.parametrize(("old", "new", "dotted", "suggestion"), UNKNOWN_KEYS, ids=[c[2] for c in UNKNOWN_KEYS])
def test_unknown_key_suggests_closest_with_file_and_line(old: str, new: str, dotted: str, suggestion: str,
                                                         tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), old, new)
    path = write(tmp_path, text)
    error = config_error(path, schemas)
    assert error.message == "unknown key"
    assert error.location.file == str(path)
    assert error.location.line == line
    assert error.location.key == dotted
    assert error.hint == f"did you mean '{suggestion}'?"
    assert str(error).startswith(f"{path}:{line}, key '{dotted}': unknown key")


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path,
                                                          schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), "seed = 42", "zzz = 1")
    error = config_error(write(tmp_path, text), schemas)
    assert error.location.line == line
    assert error.hint is not None and "seed" in error.hint and "dry_run" in error.hint


WRONG_VALUES = [
    # (line to replace, replacement, dotted key, message fragment)
    ("max_steps = 400", 'max_steps = "ten"', "stages.sft.max_steps", "expected integer, got str 'ten'"),
    ('tier = "tiny"', "tier = 7", "model.tier", "expected string, got int 7"),
    ("learning_rate = 5e-3", 'learning_rate = "fast"', "stages.sft.learning_rate", "expected number"),
    ("gradient_checkpointing = false", "gradient_checkpointing = 1", "stages.sft.gradient_checkpointing",
     "expected true/false"),
    ("gpu_count = 0", "gpu_count = 1.5", "hardware.gpu_count", "expected integer"),
    ("allow_skip_training = false", 'allow_skip_training = "no"', "gates.allow_skip_training",
     "expected true/false"),
    ('target_modules = "all-linear"', "target_modules = 3", "model.lora.target_modules",
     "expected string or list of string"),
    ("r = 8", "r = 0", "model.lora.r", "must be > 0"),
    ("max_steps = 400", "max_steps = 0", "stages.sft.max_steps", "must be -1"),
    ("micro_batch_size = 1", "micro_batch_size = -1", "stages.sft.micro_batch_size", "must be > 0"),
    ("warmup_ratio = 0.0", "warmup_ratio = 1.5", "stages.sft.warmup_ratio", "must be in [0, 1)"),
    ('format = "messages"', 'format = "jsonl"', "data.sft.format", "must be one of"),
    ('device = "cpu"', 'device = "tpu"', "hardware.device", "must be one of auto, cpu, cuda"),
]


@pytest.mark.parametrize(("old", "new", "dotted", "fragment"), WRONG_VALUES,
                         ids=[f"{c[2]}={c[1].split('= ', 1)[1]}" for c in WRONG_VALUES])
def test_wrong_value_reports_file_line_and_key(old: str, new: str, dotted: str, fragment: str,
                                               tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), old, new)
    path = write(tmp_path, text)
    error = config_error(path, schemas)
    assert fragment in error.message
    assert error.location.file == str(path)
    assert error.location.line == line
    assert error.location.key == dotted
    assert f"{path}:{line}" in str(error)


@pytest.mark.parametrize(("tier", "suggestion"), [("13b", "14b"), ("7B", "7b"), ("tinyy", "tiny")])
def test_invalid_tier_suggests_a_valid_one(tier: str, suggestion: str, tmp_path: Path,
                                           schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), 'tier = "tiny"', f'tier = "{tier}"')
    path = write(tmp_path, text)
    error = config_error(path, schemas)
    assert "must be one of tiny, 7b, 14b" in error.message
    assert f"'{tier}'" in error.message
    assert error.hint == f"did you mean '{suggestion}'?"
    assert (error.location.file, error.location.line, error.location.key) == (str(path), line, "model.tier")


def test_unknown_stage_table_suggests_the_stage(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), "[stages.sft]", "[stages.sftt]")
    path = write(tmp_path, text)
    error = config_error(path, schemas)
    assert "unknown stage" in error.message
    assert error.hint == "did you mean 'sft'?"
    assert (error.location.file, error.location.line, error.location.key) == (str(path), line, "stages.sftt")


def test_unknown_stage_without_close_match_lists_stages(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    path = write(tmp_path, tiny_text() + "\n[stages.zzzzzz]\nenabled = true\n")
    error = config_error(path, schemas)
    assert error.hint is not None and "known stages" in error.hint
    assert all(name in error.hint for name in ("preflight", "sft", "completion_check"))


def test_stage_without_settings_accepts_only_toggles(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    good = write(tmp_path, tiny_text() + "\n[stages.completion_check]\nenabled = false\nrequired = true\n")
    profile = load(good, schemas)
    assert profile.stages["completion_check"] == {"enabled": False, "required": True}

    text = tiny_text() + "\n[stages.preflight]\nstrict = true\n"
    bad = write(tmp_path, text, "bad.toml")
    error = config_error(bad, schemas)
    assert error.location.key == "stages.preflight.strict"
    assert error.location.line == len(text.splitlines())
    assert error.hint is not None and "enabled" in error.hint and "required" in error.hint


def test_stage_toggle_type_is_checked(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), "max_steps = 400", 'enabled = "yes"')
    error = config_error(write(tmp_path, text), schemas)
    assert error.location.key == "stages.sft.enabled"
    assert error.location.line == line
    assert "expected true/false" in error.message


def test_stage_table_must_be_a_table(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text = tiny_text().replace("[data.sft]", "[stages]\nnot_a_table = 3\n\n[data.sft]", 1)
    error = config_error(write(tmp_path, text), schemas)
    assert error.location.key in ("stages.not_a_table", "stages")


def test_invalid_toml_reports_the_line(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), "seed = 42", "seed = = 42")
    path = write(tmp_path, text)
    error = config_error(path, schemas)
    assert error.message.startswith("invalid TOML")
    assert error.location.file == str(path)
    assert f"line {line}" in str(error)


def test_invalid_toml_line_is_in_the_location(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, line = mutate(tiny_text(), "seed = 42", "seed = = 42")
    error = config_error(write(tmp_path, text), schemas)
    assert error.location.line == line


def test_missing_profile_is_reported_with_a_hint(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    write(tmp_path, tiny_text(), "cpu_tiny.toml")
    missing = tmp_path / "cpu_tinny.toml"
    error = config_error(missing, schemas)
    assert error.message == "profile not found"
    assert error.location.file == str(missing)
    assert error.hint == f"did you mean '{tmp_path / 'cpu_tiny.toml'}'?"


def test_missing_profile_in_empty_folder(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    error = config_error(tmp_path / "nothing_here.toml", schemas)
    assert error.message == "profile not found"
    assert str(tmp_path / "nothing_here.toml") in str(error)


def test_profile_path_that_is_a_folder(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    error = config_error(tmp_path, schemas)
    assert "folder" in error.message
    assert error.location.file == str(tmp_path)


def test_bare_shipped_name_resolves_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  schemas: dict[str, type | None]) -> None:
    monkeypatch.chdir(tmp_path)
    profile = load("cpu_tiny", schemas)
    assert profile.source_path == TINY
    assert profile.resolve_path(profile.data["sft"].path) == SFT_SAMPLE


def test_mistyped_bare_name_suggests_the_shipped_profile(monkeypatch: pytest.MonkeyPatch,
                                                         schemas: dict[str, type | None]) -> None:
    monkeypatch.chdir(REPO)
    error = config_error("cpu_tinyy", schemas)
    assert error.message == "profile not found"
    assert error.hint is not None
    assert "cpu_tiny" in error.hint
    assert "pyproject" not in error.hint


@pytest.mark.parametrize("line", ['source_path = "x"', 'sources = { a = "b" }'])
def test_internal_fields_are_not_profile_keys(line: str, tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, number = mutate(tiny_text(), "output_root = ", line)
    error = config_error(write(tmp_path, text), schemas)
    assert error.message == "unknown key"
    assert error.location.line == number


# --- model slug ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slug"), [
    ("Qwen/Qwen2.5-7B-Instruct", "qwen25_7b"),
    ("Qwen/Qwen2.5-14B-Instruct", "qwen25_14b"),
    ("Qwen/Qwen2.5-7B-Instruct/", "qwen25_7b"),
    ("/models/Qwen2.5-14B-Instruct", "qwen25_14b"),
    ("meta-llama/Llama-3.1-8B-Chat", "llama_31_8b"),
    ("medllm/tiny-qwen2", "tiny_qwen2"),
])
def test_model_slug(name: str, slug: str) -> None:
    assert model_slug(name) == slug


def test_explicit_slug_wins(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    text, _ = mutate(tiny_text(), 'tier = "tiny"', 'tier = "tiny"\nslug = "mine"')
    assert load(write(tmp_path, text), schemas).model_slug == "mine"
    assert load(TINY, schemas).model_slug == "tiny_qwen2"


# --- save / dump round trip --------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_dump_round_trip(path: Path, tmp_path: Path, schemas: dict[str, type | None]) -> None:
    profile = load(path, schemas)
    dumped = dump_profile(profile)
    assert tomllib.loads(dumped) == profile.to_toml_dict()
    assert "source_path" not in dumped and "sources" not in dumped
    again = load(write(tmp_path, dumped, path.name), schemas)
    assert again.to_toml_dict() == profile.to_toml_dict()
    assert dump_profile(again) == dumped


def test_save_keeps_overrides(tmp_path: Path, schemas: dict[str, type | None]) -> None:
    profile = load(TINY, schemas, environ={"ALLOW_SKIP_TRAINING": "true", "MODEL_TIER": "7b"},
                   cli={"stages.sft.max_steps": 3, "run.dry_run": True})
    saved = save_profile(profile, tmp_path / "sub" / "effective.toml")
    assert saved.is_file()
    raw = tomllib.loads(saved.read_text(encoding="utf-8"))
    assert raw["stages"]["preflight"]["allow_skip_training"] is True
    assert "gates" not in raw and "judges" not in raw  # saved in the stages' own tables
    assert raw["model"]["tier"] == "7b"
    assert raw["stages"]["sft"]["max_steps"] == 3
    assert raw["run"]["dry_run"] is True
    again = load(saved, schemas)
    assert again.to_toml_dict() == profile.to_toml_dict()
    assert set(again.sources.values()) == {"file"}


# --- stage planning ------------------------------------------------------------------------


def spec(name: str, kind: StageKind = StageKind.CUSTOM, **kwargs: Any) -> StageSpec:
    return StageSpec(name=name, run=lambda ctx: StageResult.done(), kind=kind, **kwargs)


def registry_of(*specs: StageSpec) -> StageRegistry:
    registry = StageRegistry()
    for item in specs:
        registry.stages[item.name] = item
        registry.origin[item.name] = f"plugin_{item.name}"
    return registry


def names(planned: list[Any]) -> list[str]:
    return [p.spec.name for p in planned]


def test_builtin_plan_order(schemas: dict[str, type | None]) -> None:
    planned = plan_stages(load(TINY, schemas), load_plugins(environ={}))
    order = names(planned)
    assert order.index("preflight") < order.index("sft") < order.index("completion_check")
    by_name = {p.spec.name: p for p in planned}
    assert by_name["sft"].enabled and by_name["sft"].required
    assert isinstance(by_name["sft"].settings, TrainingSettings)  # SFT settings extend the shared ones
    assert by_name["sft"].settings.max_steps == 400
    assert by_name["preflight"].required is False


def test_plan_orders_by_phase_then_requires() -> None:
    # Registered in a scrambled order on purpose.
    registry = registry_of(
        spec("completion_check", StageKind.CHECK),
        spec("dpo", StageKind.TRAINING, requires=("sft",)),
        spec("report", StageKind.REPORT),
        spec("judge", StageKind.CUSTOM, after=("dpo",)),
        spec("sft", StageKind.TRAINING, settings=TrainingSettings),
        spec("preflight", StageKind.PREFLIGHT, required_by_default=False),
        spec("eval", StageKind.EVALUATION, requires=("dpo",)),
    )
    profile = Profile(stages={"sft": {"max_steps": 3}, "judge": {"enabled": False}, "eval": {"required": True}})
    planned = plan_stages(profile, registry)
    assert names(planned) == ["preflight", "sft", "dpo", "eval", "judge", "completion_check", "report"]
    by_name = {p.spec.name: p for p in planned}
    assert by_name["sft"].settings.max_steps == 3
    assert by_name["dpo"].required is True  # training stages are required by default
    assert by_name["preflight"].required is False
    assert by_name["eval"].required is True
    assert by_name["judge"].enabled is False  # disabled stages stay in the plan
    assert by_name["dpo"].source_plugin == "plugin_dpo"


def test_requires_within_a_phase_beats_registration_order() -> None:
    registry = registry_of(
        spec("c", requires=("b",)),
        spec("b", requires=("a",)),
        spec("a"),
    )
    assert names(plan_stages(Profile(), registry)) == ["a", "b", "c"]


@pytest.mark.parametrize("edge", ["requires", "after"])
def test_dependency_cycle_is_a_config_error(edge: str) -> None:
    registry = registry_of(
        spec("pre", StageKind.PREFLIGHT),
        spec("a", **{edge: ("b",)}),
        spec("b", **{edge: ("c",)}),
        spec("c", **{edge: ("a",)}),
    )
    with pytest.raises(ConfigError) as info:
        plan_stages(Profile(), registry)
    assert "cycle" in info.value.message
    assert "a, b, c" in info.value.message
    assert "pre" not in info.value.message.split(":", 1)[1]
    assert info.value.exit_code == ExitCode.CONFIG_ERROR


def test_unknown_requirement_is_a_config_error() -> None:
    registry = registry_of(spec("sft", StageKind.TRAINING), spec("dpo", StageKind.TRAINING, requires=("sfft",)))
    with pytest.raises(ConfigError) as info:
        plan_stages(Profile(), registry)
    assert "'dpo'" in info.value.message
    assert "plugin_dpo" in info.value.message
    assert "'sfft'" in info.value.message


def test_after_an_absent_stage_is_ignored() -> None:
    registry = registry_of(spec("x", after=("not_installed",)), spec("y"))
    assert names(plan_stages(Profile(), registry)) == ["x", "y"]
