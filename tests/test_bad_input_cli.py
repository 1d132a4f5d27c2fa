"""Bad input through the real CLI: documented exit code, one located ``error:`` line, no traceback.

Every case runs ``python -m medllm_tui`` in a subprocess with a scrubbed
environment, a temporary working folder and ``--output-root`` in ``tmp_path``.
Data errors are caught before training, so no tiny model is ever built here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from medllm_core.kernel.errors import ExitCode
from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.profile import ENV_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "profiles" / "cpu_tiny.toml"
SFT_SAMPLE = REPO / "data" / "samples" / "sft_medical_zh_en.jsonl"
# What cpu_tiny trains on: SFT_SAMPLE plus the MCQ drills (scripts/make_sample_drills.py).
TINY_SFT = REPO / "data" / "samples" / "sft_medical_drills_zh_en.jsonl"
PREF_SAMPLE = REPO / "data" / "samples" / "preference_medical_zh_en.jsonl"
CONFIG = int(ExitCode.CONFIG_ERROR)
SEED_VARIABLES = {*ENV_OVERRIDES, *load_plugins(environ={}).catalogue().env}
SCRUBBED = {*SEED_VARIABLES, "MEDLLM_BLOCK_PLUGINS", "MEDLLM_ALLOW_PLUGINS", "MEDLLM_ENV_FILE", "OPENAI_API_KEY",
            "HF_TOKEN"}

GOOD_ROW = {"messages": [{"role": "user", "content": "发烧怎么办"}, {"role": "assistant", "content": "多喝水"}]}


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environ.update({
        "COLUMNS": "250",  # keep rich from wrapping long messages in the captured stdout
        "HF_HUB_OFFLINE": "1",
        "MEDLLM_ENV_FILE": str(cwd / "absent.env"),
        "PYTHONIOENCODING": "utf-8",
    })
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "medllm_tui", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout, result.stdout
    assert "Traceback" not in result.stderr, result.stderr


def one_error_line(result: subprocess.CompletedProcess[str], code: int = CONFIG) -> str:
    """Exit code, no traceback, exactly one ``error:`` line on stderr; return that line."""
    assert result.returncode == code, f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, f"want one 'error:' line on stderr, got:\n{result.stderr}"
    return lines[0]


def tiny_text(sft_path: Path = TINY_SFT, sft_format: str = "messages") -> str:
    """cpu_tiny.toml with absolute data paths (the [data.sft] one replaceable)."""
    text = TINY.read_text(encoding="utf-8")
    text = text.replace('"../data/samples/sft_medical_drills_zh_en.jsonl"', json.dumps(str(sft_path)))
    text = text.replace('"../data/samples/preference_medical_zh_en.jsonl"', json.dumps(str(PREF_SAMPLE)))
    return text.replace('format = "messages"', f'format = "{sft_format}"')


def mutate(text: str, old_prefix: str, new_line: str) -> tuple[str, int]:
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if line.startswith(old_prefix):
            lines[number - 1] = new_line
            return "\n".join(lines) + "\n", number
    raise AssertionError(f"no line starts with {old_prefix!r}")


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def checkpoints_made(root: Path) -> list[Path]:
    return [p for p in root.rglob("checkpoints") if p.is_dir()] if root.exists() else []


# --- profile / flag errors (fail while loading the profile: fast) -------------------------


def test_unknown_profile_key_suggests_the_closest(tmp_path: Path) -> None:
    text, line = mutate(tiny_text(), "learning_rate = ", "learning_rat = 1e-2")
    profile = tmp_path / "typo.toml"
    profile.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(profile), "--output-root", str(out)], tmp_path))
    assert f"{profile}:{line}" in error
    assert "stages.sft.learning_rat" in error
    assert "unknown key" in error
    assert "did you mean 'learning_rate'?" in error
    assert not out.exists(), "nothing may be written for a bad profile"


@pytest.mark.parametrize(("old", "new", "key", "fragment"), [
    ("max_steps = ", 'max_steps = "ten"', "stages.sft.max_steps", "expected integer"),
    ("tier = ", "tier = 7", "model.tier", "expected string"),
    ("tier = ", 'tier = "13b"', "model.tier", "did you mean '14b'?"),
])
def test_wrong_value_type_names_file_line_and_key(old: str, new: str, key: str, fragment: str,
                                                  tmp_path: Path) -> None:
    text, line = mutate(tiny_text(), old, new)
    profile = tmp_path / "wrong.toml"
    profile.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(profile), "--output-root", str(out)], tmp_path))
    assert f"{profile}:{line}, key '{key}'" in error
    assert fragment in error
    assert not out.exists()


def test_unknown_stage_table(tmp_path: Path) -> None:
    text, line = mutate(tiny_text(), "[stages.sft]", "[stages.sftt]")
    profile = tmp_path / "stage.toml"
    profile.write_text(text, encoding="utf-8")
    error = one_error_line(cli(["--run", str(profile), "--output-root", str(tmp_path / "out")], tmp_path))
    assert f"{profile}:{line}" in error
    assert "did you mean 'sft'?" in error


def test_invalid_toml(tmp_path: Path) -> None:
    text, line = mutate(tiny_text(), "seed = ", "seed = = 42")
    profile = tmp_path / "broken.toml"
    profile.write_text(text, encoding="utf-8")
    error = one_error_line(cli(["--run", str(profile), "--output-root", str(tmp_path / "out")], tmp_path))
    assert str(profile) in error
    assert "invalid TOML" in error
    assert f"line {line}" in error


def test_missing_profile(tmp_path: Path) -> None:
    (tmp_path / "cpu_tiny.toml").write_text(tiny_text(), encoding="utf-8")
    missing = tmp_path / "cpu_tinny.toml"
    error = one_error_line(cli(["--run", str(missing), "--output-root", str(tmp_path / "out")], tmp_path))
    assert f"error: {missing}: profile not found" in error
    assert "did you mean" in error and "cpu_tiny.toml" in error


@pytest.mark.parametrize(("flag", "fragment"), [
    ("foo", "--set expects KEY=VALUE, got 'foo'"),
    ("=3", "--set expects KEY=VALUE, got '=3'"),
    ("stages.sft.max_steps=ten", "key 'stages.sft.max_steps': expected integer, got str 'ten' (from --set)"),
    ("stages.sft.learning_rat=0.1", "did you mean 'learning_rate'?"),
    ("model.tier.x=1", "cannot set 'model.tier.x'"),
    # Values that used to pass --dry-run and fail only after the model had loaded.
    ("run.seed=-1", "key 'run.seed': must be in [0, 2**32), got -1"),
    ("model.lora.dropout=2.0", "key 'model.lora.dropout': must be in [0, 1), got 2.0"),
    ("model.lora.alpha=0", "key 'model.lora.alpha': must be > 0"),
    ("stages.kto.desirable_weight=-1", "key 'stages.kto.desirable_weight': must be > 0"),
    ("stages.kto.undesirable_weight=0", "key 'stages.kto.undesirable_weight': must be > 0"),
    ("stages.sft.learning_rate=nan", "key 'stages.sft.learning_rate': must be a finite number, got nan"),
    ("stages.sft.num_epochs=inf", "key 'stages.sft.num_epochs': must be a finite number, got inf"),
    ("stages.dpo.beta=-0.1", "key 'stages.dpo.beta': must be > 0"),
    ("stages.kto.desirable_weight=-0.5", "key 'stages.kto.desirable_weight': must be > 0"),
    # Names are checked against the installed transformers / TRL, with the closest valid one.
    ("stages.sft.lr_scheduler=cosinee", "transformers' SchedulerType has no 'cosinee'"),
    ("stages.sft.lr_scheduler=cosinee", "did you mean 'cosine'?"),
    ("stages.dpo.loss_type=sigmoidd", "TRL's DPOConfig.loss_type has no 'sigmoidd'"),
    ("stages.llm_judge.max_concurrency=0",
     "key 'stages.llm_judge.max_concurrency': must be >= 1, got 0 (from --set) (nearest valid value: 1)"),
    ("stages.risk_judge.timeout_s=0", "key 'stages.risk_judge.timeout_s': must be > 0, got 0.0"),
])
def test_bad_set(flag: str, fragment: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(TINY), "--set", flag, "--output-root", str(out)], tmp_path))
    assert fragment in error
    assert not out.exists()


@pytest.mark.parametrize(("flag", "fragment"), [
    # Only transformers can say a schedule needs arguments medllm does not pass; asked before any model loads.
    ("stages.sft.lr_scheduler=cosine_with_min_lr",
     "key 'stages.sft.lr_scheduler': transformers cannot build the 'cosine_with_min_lr' schedule"),
    ("stages.dpo.max_length=9000",
     "key 'stages.dpo.max_length': max_length = 9000 is longer than the model's 4096 positions"),
    ('stages.eval.variants=["sft", "orpoo"]', "key 'stages.eval.variants[1]': eval variant 'orpoo' names no stage"),
])
def test_bad_value_found_by_the_input_checks_in_a_dry_run(flag: str, fragment: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(TINY), "--dry-run", "--set", flag, "--output-root", str(out)], tmp_path))
    assert fragment in error
    assert not checkpoints_made(out)


def test_empty_model_name_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(TINY), "--dry-run", "--output-root", str(out)], tmp_path,
                               env={"MODEL_NAME": ""}))
    assert "key 'model.name_or_path': must name a model" in error
    assert "(from environment variable MODEL_NAME)" in error
    assert not out.exists()


@pytest.mark.parametrize(("table", "fragment"), [
    ("[data.prefrence]", "did you mean 'preference'?"),
    ("[data.sftt]", "did you mean 'sft'?"),
    ("[data.my_extra]", "known data tables: eval_dev, eval_mcq, eval_open, eval_safety, kto, preference, sft"),
])
def test_unknown_data_table_names_file_and_line(table: str, fragment: str, tmp_path: Path) -> None:
    profile = tmp_path / "tables.toml"
    text = tiny_text() + f"\n{table}\npath = {json.dumps(str(PREF_SAMPLE))}\n"
    profile.write_text(text, encoding="utf-8")
    line = text.splitlines().index(table) + 1
    out = tmp_path / "out"
    error = one_error_line(cli(["--run", str(profile), "--dry-run", "--output-root", str(out)], tmp_path))
    assert f"{profile}:{line}, key 'data.{table[6:-1]}': unknown data table (no loaded stage reads it)" in error
    assert fragment in error
    assert not out.exists()


def test_bad_boolean_environment_variable(tmp_path: Path) -> None:
    result = cli(["--run", str(TINY), "--output-root", str(tmp_path / "out")], tmp_path,
                 env={"ALLOW_SKIP_TRAINING": "maybe"})
    error = one_error_line(result)
    assert "ALLOW_SKIP_TRAINING='maybe'" in error
    assert "not a boolean" in error


def test_bad_tier_flag_is_an_argparse_error(tmp_path: Path) -> None:
    result = cli(["--run", str(TINY), "--tier", "13b"], tmp_path)
    assert result.returncode == CONFIG
    no_traceback(result)
    assert "error: argument --tier: invalid choice: '13b'" in result.stderr


# --- data errors in a real (non dry) run: stop before training --------------------------


@dataclass
class DataCase:
    profile: Path
    data: Path
    out: Path
    fragments: tuple[str, ...]  # all must appear in the one message (file, line, what)
    result: subprocess.CompletedProcess[str] | None = None


def make_data_case(name: str, root: Path) -> DataCase:
    root.mkdir(parents=True, exist_ok=True)
    fmt = "messages"
    good = json.dumps(GOOD_ROW, ensure_ascii=False)
    if name == "missing_file":
        data = root / "does_not_exist.jsonl"
        fragments: tuple[str, ...] = (f"{data}: data file not found",)
    elif name == "malformed_line":
        data = write_jsonl(root / "broken.jsonl", [good, good, '{"messages": [broken', good])
        fragments = (f"{data}:3: invalid JSON",)
    elif name == "empty_file":
        data = root / "empty.jsonl"
        data.write_text("", encoding="utf-8")
        fragments = (f"{data}: empty data file",)
    elif name == "unknown_format":
        data = write_jsonl(root / "foo.jsonl", ['{"foo": 1}', '{"foo": 2}'])
        fmt = "auto"
        fragments = (f"{data}:1: unknown data format", "['foo']", "messages")
    else:
        raise AssertionError(name)
    profile = root / "profile.toml"
    profile.write_text(tiny_text(data, fmt), encoding="utf-8")
    return DataCase(profile, data, root / "out", fragments)


DATA_CASES = ["missing_file", "malformed_line", "empty_file", "unknown_format"]


@pytest.fixture(scope="module")
def data_run(tmp_path_factory: pytest.TempPathFactory):
    """Run each data case once (a run costs seconds: plugins and torch import) and share the result."""
    cache: dict[str, DataCase] = {}

    def get(name: str) -> DataCase:
        if name not in cache:
            case = make_data_case(name, tmp_path_factory.mktemp(name))
            case.result = cli(["--run", str(case.profile), "--output-root", str(case.out)], case.profile.parent)
            cache[name] = case
        return cache[name]

    return get


@pytest.mark.parametrize("name", DATA_CASES)
def test_data_error_stops_the_run_before_training(name: str, data_run) -> None:
    case = data_run(name)
    result = case.result
    assert result.returncode == CONFIG, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    no_traceback(result)
    both = result.stdout + result.stderr
    for fragment in case.fragments:
        assert fragment in both
    assert not checkpoints_made(case.out), "training started despite bad data"
    assert not (case.out / "reports" / "training").exists()
    events = list(case.out.glob("reports/runs/*/events.jsonl"))
    assert len(events) == 1
    types = [json.loads(line)["type"] for line in events[0].read_text(encoding="utf-8").splitlines()]
    assert "stage_started" not in types, "a stage ran although the inputs were rejected up front"
    finished = [json.loads(line) for line in events[0].read_text(encoding="utf-8").splitlines()
                if json.loads(line)["type"] == "run_finished"]
    assert finished and finished[-1]["exit_code"] == CONFIG


@pytest.mark.parametrize("name", DATA_CASES)
def test_data_error_in_a_run_is_one_error_line_on_stderr(name: str, data_run) -> None:
    case = data_run(name)
    error = one_error_line(case.result)
    for fragment in case.fragments:
        assert fragment in error


@pytest.mark.parametrize("name", ["malformed_line"])
def test_paths_printed_after_a_stopped_run_exist(name: str, data_run) -> None:
    case = data_run(name)
    printed = re.findall(r"^(?:summary|strict check): (.+)$", case.result.stdout, re.M)
    assert printed, case.result.stdout
    for path in printed:
        assert Path(path.strip()).is_file(), f"the CLI points at {path}, which does not exist"


def test_data_error_in_a_dry_run(tmp_path: Path) -> None:
    case = make_data_case("malformed_line", tmp_path)
    result = cli(["--run", str(case.profile), "--dry-run", "--output-root", str(case.out)], tmp_path)
    error = one_error_line(result)
    for fragment in case.fragments:
        assert fragment in error
    assert not checkpoints_made(case.out)


# --- medllm-tui data check ---------------------------------------------------------------


def test_data_check_good_file(tmp_path: Path) -> None:
    result = cli(["data", "check", str(SFT_SAMPLE)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traceback(result)
    assert re.search(r"^format:\s+messages$", result.stdout, re.M), result.stdout
    assert re.search(r"^rows:\s+80 valid$", result.stdout, re.M), result.stdout
    assert "0 error(s)" in result.stdout
    assert "result: OK" in result.stdout


def test_data_check_bad_line(tmp_path: Path) -> None:
    good = json.dumps(GOOD_ROW, ensure_ascii=False)
    data = write_jsonl(tmp_path / "broken.jsonl", [good, good, '{"messages": [broken', good])
    result = cli(["data", "check", str(data), "--stage", "sft"], tmp_path)
    assert result.returncode == CONFIG
    no_traceback(result)
    assert f"error: {data}:3: invalid JSON" in result.stdout
    assert re.search(r"^rows:\s+3 valid$", result.stdout, re.M)
    assert "1 error(s)" in result.stdout
    assert "result: FAIL" in result.stdout


@pytest.mark.parametrize(("name", "fragment"), [
    ("missing_file", "data file not found"),
    ("empty_file", "empty data file"),
    ("unknown_format", ":1: unknown data format"),
])
def test_data_check_whole_file_errors(name: str, fragment: str, tmp_path: Path) -> None:
    case = make_data_case(name, tmp_path)
    error = one_error_line(cli(["data", "check", str(case.data)], tmp_path))
    assert f"error: {case.data}" in error
    assert fragment in error


def test_data_check_unknown_forced_format(tmp_path: Path) -> None:
    error = one_error_line(cli(["data", "check", str(SFT_SAMPLE), "--format", "jsonl"], tmp_path))
    assert "unknown data format 'jsonl'" in error
    assert str(SFT_SAMPLE) in error


def test_data_check_without_path(tmp_path: Path) -> None:
    error = one_error_line(cli(["data", "check"], tmp_path))
    assert "PATH" in error
