"""The CPU default's SFT sample: the Q&A rows plus exam drills generated from the sample MCQs.

The drills are regenerated with ``python scripts/make_sample_drills.py`` whenever the MCQ file
or the evaluator's prompt template changes; these tests fail until that is done.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from medllm_core.kernel.profile import load_profile
from medllm_core.library.evaluation.mcq import extract_choice, format_prompt, load_mcq_file
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "make_sample_drills.py"
SAMPLES = REPO / "data" / "samples"
DRILLS = SAMPLES / "sft_medical_drills_zh_en.jsonl"
QA = SAMPLES / "sft_medical_zh_en.jsonl"
MCQ = SAMPLES / "eval_mcq_zh_en.jsonl"
TINY = REPO / "profiles" / "cpu_tiny.toml"


def _generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_committed_drill_file_is_up_to_date() -> None:
    result = _generator("--check")
    assert result.returncode == 0, result.stdout + result.stderr + "\nrun: python scripts/make_sample_drills.py"


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "stale.jsonl"
    text = DRILLS.read_text(encoding="utf-8").replace('"content": "C"}', '"content": "Answer: C"}', 1)
    stale.write_text(text, encoding="utf-8")
    result = _generator("--check", "--output", str(stale))
    assert result.returncode == 1 and "out of date" in result.stderr


def test_qa_rows_verbatim_then_drills_of_every_eval_item() -> None:
    items, _ = load_mcq_file(str(MCQ))
    rows = _rows(DRILLS)
    qa = _rows(QA)
    assert rows[:len(qa)] == qa
    drills = rows[len(qa):]
    by_prompt = {format_prompt(item): item for item in items}
    assert len(by_prompt) == len(items) == 40  # prompts are distinct, so a drill names one item
    counts = Counter(row["messages"][0]["content"] for row in drills)
    # every eval item, each drilled the same number of times, nothing else
    assert set(counts) == set(by_prompt)
    assert len(set(counts.values())) == 1 and len(drills) == len(items) * next(iter(counts.values()))
    for row in drills:
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        item = by_prompt[user["content"]]
        # the reply states the item's answer in the shape the extractor reads first
        assert extract_choice(assistant["content"], set(item.options)) == (item.answer, "letters_only")


def test_cpu_tiny_trains_on_the_drills_and_keeps_every_answer_within_max_length(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from medllm_core.library.tiny_model import ensure_tiny_model

    profile = load_profile(TINY, environ={})
    assert profile.resolve_path(profile.data["sft"].path) == DRILLS
    # the tiny tokenizer is trained on every data file of the profile (model_loading.corpus_files)
    corpus = sorted({profile.resolve_path(d.path) for d in profile.data.values() if d.path})
    assert DRILLS in corpus
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model(tmp_path, corpus, seed=profile.run.seed))
    longest = max(len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])
                  for row in _rows(DRILLS)[len(_rows(QA)):])
    assert longest <= profile.stages["sft"]["max_length"], "drill answers would be truncated away"
