"""Over-long preference rows: prompts cut keeping their end, completions fitted, empty rows dropped.

The regression: prompts that fill ``max_length`` (140 of 300 in LLaMA-Factory's dpo_zh_demo at 256)
left SimPO's completions zero tokens and its length-normalised loss NaN at step 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medllm_core.kernel.plugin_manager import load_plugins
from medllm_core.kernel.schema import SchemaError
from medllm_core.kernel.stages import StageKind
from medllm_core.library.data.lengths import count_lengths
from medllm_core.library.tiny_model import build_tiny_model
from medllm_core.library.training.long_rows import _length, fit_rows, fit_sft_rows
from medllm_core.library.training.settings import SimPOSettings
from tests.conftest import REPO, read_events, run_cli

SAMPLES = REPO / "data" / "samples"
QUESTION = "最后的问题：胸痛怎么办？"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    target = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(target, sorted(SAMPLES.glob("*.json*")))
    return AutoTokenizer.from_pretrained(str(target))


def long_rows(n: int = 8) -> list[dict]:
    background = "患者既往有高血压和糖尿病病史，长期服药，近期睡眠差。" * 30
    return [{"prompt": [{"role": "user", "content": f"{i} {background}{QUESTION}"}],
             "chosen": [{"role": "assistant", "content": "请立即拨打120，停止活动并休息。" * 10}],
             "rejected": [{"role": "assistant", "content": "多喝热水，明天再说。" * 10}]} for i in range(n)]


def test_prompts_keep_their_end_and_rows_fit(tokenizer) -> None:
    rows = long_rows(3) + [{"prompt": "短问题", "completion": "短回答", "label": True}]
    fitted, counts = fit_rows(tokenizer, rows, max_length=160, max_prompt_length=80)
    assert (counts.rows, counts.prompts_cut, counts.completions_cut, counts.dropped) == (4, 3, 3, 0)
    for row in fitted[:3]:
        prompt = row["prompt"]
        assert _length(tokenizer, prompt) <= 80
        assert prompt[0]["content"].endswith(QUESTION)  # the question, at the end, survives
        for key in ("chosen", "rejected"):
            completion = _length(tokenizer, row[key], prompt=prompt)
            assert 0 < completion and _length(tokenizer, prompt) + completion <= 160
    assert fitted[3] == rows[3]  # short rows are left alone


def test_row_with_no_room_for_a_completion_is_dropped(tokenizer) -> None:
    # a system prompt alone longer than the budget: cutting the user turn cannot bring it under
    row = {"prompt": [{"role": "system", "content": "x"}, {"role": "user", "content": "问"}],
           "chosen": [{"role": "assistant", "content": "答" * 50}],
           "rejected": [{"role": "assistant", "content": "否" * 50}]}
    template = _length(tokenizer, [{"role": "system", "content": ""}, {"role": "user", "content": ""}])
    fitted, counts = fit_rows(tokenizer, [row], max_length=template + 2, max_prompt_length=template - 1)
    assert fitted == [] and counts.dropped == 1


def test_max_prompt_length_is_validated() -> None:
    SimPOSettings(max_length=64, max_prompt_length=32).validate("stages.simpo")
    assert SimPOSettings(max_length=64).prompt_budget() == 32
    for bad in (0, -1, 64, 100):
        with pytest.raises(SchemaError, match="max_prompt_length"):
            SimPOSettings(max_length=64, max_prompt_length=bad).validate("stages.simpo")


@pytest.mark.slow
def test_dpo_simpo_kto_train_on_long_prompts_without_nan(tmp_path: Path) -> None:
    data = tmp_path / "long_preference.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in long_rows(8)), encoding="utf-8")
    profile = (REPO / "profiles" / "cpu_tiny.toml").read_text(encoding="utf-8")
    profile = profile.replace('"../data/samples/', f'"{SAMPLES.as_posix()}/')
    profile = profile.replace(f'"{SAMPLES.as_posix()}/preference_medical_zh_en.jsonl"', f'"{data.as_posix()}"')
    (tmp_path / "long.toml").write_text(profile, encoding="utf-8")
    flags = ["--set", "stages.sft.max_steps=2", "--set", "stages.sft.max_length=128"]
    for name, spec in load_plugins(environ={}).stages.items():
        if name in ("dpo", "simpo", "kto"):
            for key, value in (("max_steps", 3), ("max_length", 128), ("micro_batch_size", 2), ("save_steps", 3)):
                flags += ["--set", f"stages.{name}.{key}={value}"]
        elif name != "sft" and StageKind(spec.kind) in (StageKind.TRAINING, StageKind.EVALUATION):
            flags += ["--set", f"stages.{name}.enabled=false"]
    out = tmp_path / "out"
    result = run_cli(["--run", str(tmp_path / "long.toml"), "--output-root", str(out), *flags])
    events = read_events(out)
    text = result.stdout + result.stderr
    assert "loss guard" not in text, text
    for method in ("dpo", "simpo", "kto"):
        decisions = [e for e in events if e.get("stage") == method and e.get("kind") == "long_rows"]
        assert decisions and decisions[0]["facts"]["prompts_cut"] > 0, (method, text)
        metrics = json.loads(next((out / "reports" / "training").glob(f"{method}_metrics.json")).read_text())
        assert metrics["steps"] == 3 and math.isfinite(metrics["final_loss"]), (method, metrics)


def test_counts_rows_over_max_length_and_prompts_over_budget(tokenizer) -> None:
    short = {"prompt": [{"role": "user", "content": "问"}], "chosen": [{"role": "assistant", "content": "答"}],
             "rejected": [{"role": "assistant", "content": "否"}]}
    counts = count_lengths(tokenizer, long_rows(3) + [short], max_length=160, prompt_budget=80)
    assert (counts.rows, counts.over_max_length, counts.prompts_over_budget) == (4, 3, 3)
    assert counts.describe() == ("lengths: 3 of 4 rows exceed max length 160, "
                                 "3 prompts alone exceed the prompt budget 80")


def test_data_check_reports_lengths_or_says_the_tokenizer_is_missing(tokenizer, tmp_path: Path) -> None:
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in long_rows(4)), encoding="utf-8")
    found = run_cli(["data", "check", str(data), "--stage", "simpo", "--tokenizer", tokenizer.name_or_path,
                     "--max-length", "160"])
    assert found.returncode == 0, found.stderr
    assert "lengths: 4 of 4 rows exceed max length 160, 4 prompts alone exceed the prompt budget 80" in found.stdout
    missing = run_cli(["data", "check", str(data), "--stage", "dpo", "--tokenizer", "nobody/not-cached-model",
                       "--max-length", "160"], env={"HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 0, missing.stderr
    assert "length check skipped: tokenizer for nobody/not-cached-model not available locally" in missing.stdout
    bad = run_cli(["data", "check", str(data), "--stage", "dpo", "--max-length", "0"])
    assert bad.returncode == 2 and "error: --max-length must be > 0 (got 0)" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


def test_dry_run_reports_lengths_per_training_stage() -> None:
    result = run_cli(["--run", "profiles/cpu_tiny.toml", "--dry-run", "--set", "stages.dpo.max_length=64"])
    text = " ".join(result.stdout.split()).replace("│", "")
    assert result.returncode == 0, result.stderr
    assert "rows exceed max length 320" in " ".join(text.split())  # sft
    assert "prompts alone exceed the prompt budget 32" in " ".join(text.split())  # dpo's budget: half of 64


def test_sft_rows_cut_before_any_answer_are_dropped(tokenizer) -> None:
    long_question = "患者既往有高血压病史。" * 60
    rows = [{"messages": [{"role": "user", "content": long_question}, {"role": "assistant", "content": "就医"}]},
            {"messages": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "答" * 300}]},
            {"messages": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "答"}]}]
    kept, over, dropped = fit_sft_rows(tokenizer, rows, max_length=160)
    assert (over, dropped) == (2, 1) and kept == rows[1:]  # the long answer is truncated by TRL, not dropped
