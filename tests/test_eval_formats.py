"""Benchmark loaders: each downloaded format loads exactly, and every item left out is reported where it is.

The fixtures under ``fixtures/benchmarks/`` are synthetic items written for these
tests, in the real files' field names and quirks (BOM, quoted multi-line CSV
cells, CMB's empty option padding, MedMCQA's 1-based ``cop`` …).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medllm_core.kernel.errors import DataError
from medllm_core.kernel.profile import DATA_FORMATS, MCQ_DATA_FORMATS
from medllm_core.library.data_report import check_data_file, render_data_report
from medllm_core.library.evaluation.benchmarks import MCQ_FORMATS, detect
from medllm_core.library.evaluation.mcq import (
    LETTERS,
    ItemProblem,
    McqItem,
    drop_summary,
    load_mcq_file,
    read_answer,
    read_options,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"


def load(name: str, fmt: str = "auto") -> tuple[list[McqItem], list[tuple[int | None, str | None, str]]]:
    items, problems = load_mcq_file(str(FIXTURES / name), fmt)
    return items, [(p.line, p.key, p.message.split(": ", 1)[0]) for p in problems]


# --- option and answer parsing --------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("(A) Vitamin D deficiency\n(B) Hepatitis B.\n(C) Type A personality\n(D) vitamin B12",
     {"A": "Vitamin D deficiency", "B": "Hepatitis B.", "C": "Type A personality", "D": "vitamin B12"}),
    ("A Vitamin D deficiency\nB Hepatitis B\nC Factor I", {"A": "Vitamin D deficiency", "B": "Hepatitis B",
                                                           "C": "Factor I"}),
    ("A. 甲\nB. 乙", {"A": "甲", "B": "乙"}),
    ("A、甲\nB、乙", {"A": "甲", "B": "乙"}),
    ("（A）甲\n（B）乙", {"A": "甲", "B": "乙"}),
    ("A: yes\nB: no", {"A": "yes", "B": "no"}),
    ("A．甲\r\nB．乙\r\n", {"A": "甲", "B": "乙"}),
    ("A) one\nB) two", {"A": "one", "B": "two"}),
    ("(A) first line\n  continued here\n(B) second", {"A": "first line\ncontinued here", "B": "second"}),
    ("(A) B-cell lymphoma\n(B) D-dimer raised\n(C) B12 low", {"A": "B-cell lymphoma", "B": "D-dimer raised",
                                                             "C": "B12 low"}),
])
def test_option_markers_only_at_line_starts(text, expected):
    assert read_options(text) == expected


@pytest.mark.parametrize("value, reason, detail", [
    ("(A) one\n(C) three", "option letters out of order", "got AC"),
    ("(A) one\n(B) two\n(B) again", "option letters out of order", "got ABB"),
    ("(B) one\n(A) two", "option letters out of order", "got BA"),
    ("A 高血压 B 糖尿病 C 冠心病", "options unreadable", "only one option"),
    ("Choose one\n(A) x\n(B) y", "options unreadable", "text before the first option"),
    ("no markers at all", "options unreadable", "text before the first option"),
    ("(A) x\n(B)\n(C) z", "empty option", "option B"),
    ({"A": "x", "B": "", "C": "z"}, "option letters out of order", "got AC"),
    ({"A": "x", "opb": "y"}, "options unreadable", "key 'opb'"),
    (None, "options unreadable", "no options"),
    (42, "options unreadable", "got int"),
])
def test_unreadable_options_say_why(value, reason, detail):
    with pytest.raises(ItemProblem) as err:
        read_options(value)
    assert err.value.reason == reason and detail in err.value.detail


def test_answers_are_letters_never_option_text():
    assert read_answer("(ACE)", "ABCDE") == {"A", "C", "E"}
    assert read_answer("c", "ABCD") == {"C"}
    for value, reason in [("bad", "answer unreadable"), ("Hepatitis B.", "answer unreadable"),
                          ("ACE inhibitor", "answer unreadable"), ("", "missing answer"), (None, "missing answer"),
                          ("E", "answer not among options")]:
        with pytest.raises(ItemProblem) as err:
            read_answer(value, "ABCD")
        assert err.value.reason == reason, value


# --- one test per format ----------------------------------------------------------------


def test_cmexam_csv_with_bom_quoted_multiline_cells_and_multi_answers():
    items, problems = load("cmexam_test.csv")
    assert problems == [(12, "Options", "option letters out of order"), (19, "Answer", "answer not among options")]
    assert [i.line for i in items] == [2, 8, 15, 24]
    first, multi, b12, ecg = items
    assert first.options == {"A": "维生素D缺乏性佝偻病", "B": "软骨发育不全", "C": "先天性甲状腺功能减低症",
                             "D": "成骨不全", "E": "黏多糖病"}
    assert first.answer == {"A"} and first.explanation == "方颅、串珠肋提示骨样组织堆积,\n属于维生素D缺乏的典型体征"
    assert (first.format, first.source, first.subject, first.language) == ("cmexam", "cmexam", "儿科", "zh")
    assert multi.answer == {"A", "C", "D"} and multi.multiple and len(multi.options) == 4
    assert b12.subject == "内科学"  # no Clinical Department: the Medical Discipline
    assert ecg.options["C"] == "P 波\n时限大于 0.2 秒为正常" and ecg.options["B"] == "P 波代表心室复极"


def test_cmb_json_drops_empty_padding_options():
    items, problems = load("cmb_val.json")
    assert problems == [(34, "option", "option letters out of order"), (50, "answer", "missing answer")]
    single, multi, type_a = items
    assert single.options == {"A": "血钙", "B": "血磷", "C": "血清25-羟维生素D", "D": "碱性磷酸酶"}
    assert (single.id, single.source, single.subject, single.question_type) == ("101", "医师考试", "内科学", "single")
    assert multi.answer == {"A", "B", "D"} and multi.question_type == "multi"
    assert len(type_a.options) == 5 and type_a.answer == {"E"}
    assert type_a.subject == "执业药师"  # empty exam_subject: the exam_class


def test_medqa_answer_is_text_cross_checked_against_answer_idx():
    items, problems = load("medqa_us_test.jsonl")
    assert problems == [(3, "answer", "answer text does not match its option"),
                        (4, "answer_idx", "answer not among options")]
    rickets, needle, b12 = items
    assert rickets.options == {"A": "Vitamin D deficiency", "B": "Hepatitis B.", "C": "Type A personality",
                               "D": "Vitamin B12 excess", "E": "Factor I deficiency"}
    assert rickets.answer == {"A"} and needle.answer == {"B"} and b12.answer == {"B"}  # "Vitamin  B12": spaces
    assert (rickets.format, rickets.source, rickets.subject, rickets.language) == ("medqa", "medqa", "step1", "en")
    assert needle.subject == "step2&3"


def test_medqa_mainland_and_a_broken_json_line():
    items, problems = load("medqa_mainland_test.jsonl")
    assert problems == [(2, None, "invalid JSON")]
    assert [i.answer for i in items] == [{"A"}, {"B"}] and items[0].subject == "卫生法规"
    assert items[1].options == {"A": "抗-HBs", "B": "HBeAg", "C": "抗-HBc IgG", "D": "抗-HBe"}
    assert items[0].language == "zh" and items[1].line == 3


def test_medmcqa_cop_is_one_based():
    items, problems = load("medmcqa_dev.json")
    assert problems == [(4, "cop", "answer not among options"), (5, "opa/opb/opc/opd", "option letters out of order")]
    rickets, hep_b, type_a, entecavir = items
    assert rickets.options == {"A": "Vitamin D", "B": "Vitamin C", "C": "Vitamin B12", "D": "Vitamin A"}
    assert [i.answer for i in items] == [{"A"}, {"C"}, {"D"}, {"B"}]  # cop 1, "3", 4, 2
    assert (rickets.id, rickets.subject, rickets.source, rickets.explanation) == \
        ("mm-0001", "Pediatrics", "medmcqa", "Vitamin D is needed for bone mineralisation.")
    assert type_a.question_type == "multi" and hep_b.explanation == ""
    assert "1-based" in load_mcq_file(str(FIXTURES / "medmcqa_dev.json"))[1][0].message


def test_cmmlu_csv_subject_from_file_name_and_leading_index_column():
    items, problems = load("cmmlu/clinical_knowledge.csv")
    assert problems == [(5, "Answer", "answer not among options"), (6, None, "wrong number of columns")]
    assert [(i.id, i.line) for i in items] == [("0", 2), ("1", 3), ("4", 7)]
    assert items[1].question == "乙型肝炎病毒（HBV）表面抗原\n简称为"
    assert items[0].options == {"A": "升高", "B": "降低", "C": "不变", "D": "先升后降"} and items[0].answer == {"B"}
    assert {(i.subject, i.source, i.format) for i in items} == {("clinical_knowledge", "cmmlu", "cmmlu")}


def test_ceval_file_name_drops_the_split_suffix():
    items, problems = load("cmmlu/clinical_medicine_val.csv")
    assert problems == []
    assert {(i.subject, i.source) for i in items} == {("clinical_medicine", "ceval")}
    assert items[0].line == 2 and items[0].explanation == "1. HBsAg阳性提示乙肝病毒感染"
    assert items[1].options == {"A": "coronary heart disease", "B": "asthma", "C": "gout"}


def test_a_folder_of_csvs_reads_every_file_with_its_own_subject():
    items, problems = load_mcq_file(str(FIXTURES / "cmmlu"))
    assert len(items) == 5 and len(problems) == 2
    assert [i.id for i in items] == ["clinical_knowledge/0", "clinical_knowledge/1", "clinical_knowledge/4",
                                     "clinical_medicine/0", "clinical_medicine/1"]
    assert {p.file for p in problems} == {str(FIXTURES / "cmmlu" / "clinical_knowledge.csv")}
    assert items[-1].file.endswith("clinical_medicine_val.csv")


def test_apollo_options_string():
    items, problems = load("apollo_test.json")
    assert problems == [(20, "options", "option letters out of order"), (32, "answer", "answer not among options")]
    zh, en, multi, initials = items
    assert en.options == {"A": "Anti-HAV IgM.", "B": "HBsAg for more than 6 months, Hepatitis B.",
                          "C": "Anti-HCV.", "D": "Type A antibody.", "E": "Factor I."}
    assert initials.options == {"A": "Smith J. K.", "B": "Beadle G.W.", "C": "Avery O. T."}
    assert multi.answer == {"A", "C", "E"} and zh.answer == {"A"} and en.answer == {"B"}
    assert [i.source for i in items] == ["cmexam", "medqa-usmle", "cmb-multi", "cmmlu-medical"]
    assert {i.format for i in items} == {"apollo"} and [i.line for i in items] == [2, 8, 14, 26]


# --- format selection, summaries, the data check -------------------------------------


def test_every_format_is_a_profile_format_and_detection_picks_each():
    assert MCQ_FORMATS == ("auto", *MCQ_DATA_FORMATS) and set(MCQ_FORMATS) <= set(DATA_FORMATS)
    assert detect({"question": "q", "opa": "x", "cop": 1}) == "medmcqa"
    assert detect({"question": "q", "options": {}, "answer_idx": "A"}) == "medqa"
    assert detect({"question": "q", "option": {}, "answer": "A"}) == "cmb"
    assert detect({"": "0", "Question": "q", "A": "x", "B": "y", "Answer": "A"}) == "cmmlu"
    assert detect({"Question": "q", "Options": "A x\nB y", "Answer": "A"}) == "cmexam"
    assert detect({"question": "q", "options": "(A) x\n(B) y", "answer": "(A)"}) == "apollo"
    assert detect({"question": "q", "choices": ["x", "y"], "answer": "A"}) == "mcq"


def test_a_forced_format_reads_every_row_its_way():
    items, problems = load("apollo_test.json", fmt="mcq")
    assert len(items) == 4 and {i.format for i in items} == {"mcq"}
    with pytest.raises(DataError) as err:
        load_mcq_file(str(FIXTURES / "apollo_test.json"), "medmcqa")  # no cop anywhere
    assert "no usable multiple-choice items" in str(err.value) and "apollo_test.json:2" in str(err.value)
    with pytest.raises(DataError, match="unknown multiple-choice format 'medqa-us'"):
        load_mcq_file(str(FIXTURES / "apollo_test.json"), "medqa-us")


def test_drop_summary_groups_by_reason():
    problems = []
    for name in ("cmexam_test.csv", "apollo_test.json", "medqa_mainland_test.jsonl"):
        problems += load_mcq_file(str(FIXTURES / name))[1]
    summary = drop_summary(problems, examples=2)
    assert summary["count"] == 5
    assert summary["by_reason"] == {"option letters out of order": 2, "answer not among options": 2,
                                    "invalid JSON": 1}
    assert summary["examples"][0] == {"file": str(FIXTURES / "cmexam_test.csv"), "line": 12, "key": "Options",
                                      "reason": "option letters out of order",
                                      "message": problems[0].message}
    assert len(summary["examples"]) == 2 and json.dumps(summary)


def test_data_check_lists_the_dropped_items_with_lines(capsys):
    report = check_data_file(str(FIXTURES / "cmexam_test.csv"), "eval_mcq")
    text = render_data_report(report)
    assert "rows:    4 valid" in text and "cmexam 4" in text
    assert "cmexam_test.csv:12 [Options]: option letters out of order" in text
    assert "cmexam_test.csv:19 [Answer]: answer not among options: F not in ABCDE" in text

    from medllm_tui.cli import main

    assert main(["data", "check", str(FIXTURES / "cmmlu"), "--stage", "eval_mcq", "--format", "cmmlu"]) == 2
    assert "clinical_knowledge.csv:6: wrong number of columns" in capsys.readouterr().out


def test_sample_file_still_loads_every_item():
    items, problems = load_mcq_file(str(REPO / "data/samples/eval_mcq_zh_en.jsonl"))
    assert len(items) == 40 and problems == []


# --- the real Apollo / XMedBench file (shared, not in the repo) -------------------------


def _shared_file(name: str) -> Path | None:
    candidates = [REPO.parent / "shared/data/public" / name]
    if os.environ.get("MEDLLM_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["MEDLLM_SHARED_DATA"]) / name)
    return next((p for p in candidates if p.is_file()), None)


def test_real_apollo_file_loads_every_item_unmangled():
    path = _shared_file("apollo_test_zh.json")
    if path is None:
        pytest.skip("shared/data/public/apollo_test_zh.json not available (set MEDLLM_SHARED_DATA)")
    items, problems = load_mcq_file(str(path))
    assert len(items) == 8759 and problems == []
    raw = json.loads(path.read_text(encoding="utf-8"))
    for item, row in zip(items, raw, strict=True):
        letters = "".join(item.options)
        assert len(letters) >= 2 and letters == LETTERS[: len(letters)]
        assert item.answer <= set(letters) and all(item.options.values())
        # Nothing was split inside an option: each option is exactly one "(X) …" line of the file.
        lines = [line for line in row["options"].split("\n") if line.strip()]
        assert [line.split(")", 1)[1].strip() for line in lines] == list(item.options.values())
    assert {i.source for i in items} == {"medqa-mcmle", "cmb-single", "cmexam", "cmmlu-medical"}
