"""Multiple-choice loading (the shapes users bring) and the answer-extraction cascade."""

from __future__ import annotations

import json

import pytest

from medllm_core.kernel.errors import DataError
from medllm_core.library.evaluation.mcq import (
    extract_by_option_text,
    extract_choice,
    format_prompt,
    load_mcq_file,
    parse_answer,
    parse_options,
)

ABCD = {"A", "B", "C", "D"}


def test_option_shapes():
    assert parse_options({"A": "发热", "B": "咳嗽"}) == {"A": "发热", "B": "咳嗽"}
    assert parse_options(["fever", "cough", "rash"]) == {"A": "fever", "B": "cough", "C": "rash"}
    expected = {"A": "阿司匹林", "B": "布洛芬", "C": "对乙酰氨基酚"}
    assert parse_options("(A) 阿司匹林\n(B) 布洛芬\n(C) 对乙酰氨基酚") == expected
    assert parse_options("A. Aspirin\nB. Ibuprofen") == {"A": "Aspirin", "B": "Ibuprofen"}
    # Markers count only at line starts: inside a line "B" is option text ("Hepatitis B"), so this is one option.
    assert parse_options("A 高血压 B 糖尿病 C 冠心病") == {}
    assert parse_options("A 高血压\nB 糖尿病\nC 冠心病") == {"A": "高血压", "B": "糖尿病", "C": "冠心病"}
    assert parse_options("no options here") == {}
    assert parse_options(42) == {}


def test_answer_shapes():
    assert parse_answer("C", ABCD) == {"C"}
    assert parse_answer("(C)", ABCD) == {"C"}
    assert parse_answer("AC", ABCD) == {"A", "C"}
    assert parse_answer("A, C", ABCD) == {"A", "C"}
    assert parse_answer(["B", "D"], ABCD) == {"B", "D"}
    assert parse_answer("E", ABCD) == frozenset()
    assert parse_answer("布洛芬", ABCD) == frozenset()


def test_load_cmexam_medqa_cmb_shapes_with_problems(tmp_path):
    rows = [
        {"Question": "急性阑尾炎最典型的症状是", "Options": "A 转移性右下腹痛\nB 恶心\nC 发热\nD 腹泻",
         "Answer": "A", "exam_subject": "外科"},                                                   # CMExam
        {"question": "First-line drug for anaphylaxis?", "options": {"A": "Antihistamine", "B": "Epinephrine"},
         "answer_idx": "B", "meta_info": "step1", "source": "MedQA"},                               # MedQA
        {"question": "以下哪些属于抗凝药", "option": {"A": "华法林", "B": "肝素", "C": "阿莫西林"},
         "answer": "AB", "exam_type": "CMB"},                                                       # CMB, multi
        {"question": "broken", "options": {"A": "x", "B": "y"}, "answer": "Z"},
        {"question": "", "options": ["x", "y"], "answer": "A"},
    ]
    path = tmp_path / "mcq.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    items, problems = load_mcq_file(str(path))
    assert [i.answer for i in items] == [{"A"}, {"B"}, {"A", "B"}]
    assert items[0].options["A"] == "转移性右下腹痛" and items[0].subject == "外科"
    assert items[1].source == "MedQA" and items[2].source == "CMB" and items[2].multiple
    assert [(p.line, p.key) for p in problems] == [(4, "answer"), (5, "question")]
    prompt = format_prompt(items[0])
    assert "A. 转移性右下腹痛" in prompt and "D. 腹泻" in prompt


def test_load_rejects_files_without_usable_items(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"question": "q", "options": "nothing", "answer": "A"}]), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_mcq_file(str(path))
    assert "no usable multiple-choice items" in str(err.value) and "bad.json:1" in str(err.value)


@pytest.mark.parametrize("reply, expected, rule", [
    ("答案：C", {"C"}, "marker"),
    ("正确答案是 (B)，因为……", {"B"}, "marker"),
    ("The answer is D.", {"D"}, "marker"),
    ("Answer: A, C", {"A", "C"}, "marker"),
    ("B. 布洛芬可以缓解疼痛", {"B"}, "leading_letter"),
    ("**C**", {"C"}, "leading_letter"),
    ("我认为应该选（D）", {"D"}, "parenthesised_letter"),
    ("选 B 比较合适", {"B"}, "single_letter"),
    ("I am not sure which is right.", None, "none"),
    ("A or B, hard to say", None, "none"),
    ("答案：Z", None, "none"),
])
def test_extraction_cascade(reply, expected, rule):
    chosen, fired = extract_choice(reply, ABCD)
    assert (set(chosen) if chosen else None) == expected
    assert fired == rule


def test_option_text_fallback():
    options = {"A": "阿司匹林", "B": "布洛芬"}
    assert extract_by_option_text("我建议使用布洛芬", options) == {"B"}
    assert extract_by_option_text("阿司匹林或布洛芬都可以", options) is None
