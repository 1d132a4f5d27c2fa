"""Tests of medllm_core.library.data: every input format, detection, errors and line numbers.

All inputs are real files written to ``tmp_path``; the public MedicalGPT samples
in ``../shared/data/public`` are used when present (never copied here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medllm_core.kernel.errors import DataError
from medllm_core.library.data import (
    FORMAT_NAMES,
    LoadedData,
    Problem,
    derive_kto_from_preference,
    load_dataset_file,
    require_valid,
)

PUBLIC = Path(__file__).resolve().parents[2] / "shared/data/public"
# Real Chinese text with full-width punctuation must pass through byte for byte.
ZH_Q = "发烧怎么办？"  # noqa: RUF001
ZH_A = "多喝水，必要时就医。"  # noqa: RUF001


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def sg(who: str, value: Any) -> dict[str, Any]:
    return {"from": who, "value": value}


def keys_of(data: LoadedData) -> list[tuple[int | None, str | None]]:
    return [(p.line, p.key) for p in data.errors]


# --------------------------------------------------------------------------- SFT formats


def test_messages_format_with_openai_roles_parts_and_top_level_system(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": [msg("user", ZH_Q), msg("assistant", ZH_A)]},
        {"system": "你是医生。", "messages": [msg("user", "q"), msg("assistant", "a")]},
        {"messages": [msg("developer", "sys"), msg("user", "q"),
                      {"role": "assistant", "content": [{"type": "text", "text": "a1"},
                                                        {"type": "text", "text": "a2"}]}]},
    ])
    data = load_dataset_file(path, "sft")
    assert (data.format, data.stage, data.problems) == ("messages", "sft", [])
    assert data.rows[0] == {"messages": [msg("user", ZH_Q), msg("assistant", ZH_A)]}
    assert data.rows[1]["messages"][0] == msg("system", "你是医生。")
    assert data.rows[2]["messages"] == [msg("system", "sys"), msg("user", "q"),
                                        msg("assistant", "a1a2")]
    assert data.source_lines == [1, 2, 3]


def test_sharegpt_format_keeps_chinese_and_system(tmp_path: Path) -> None:
    text = f"头痛 \u2028 伴恶心 {ZH_Q}\n"  # U+2028 inside a JSON string is legal
    path = write_jsonl(tmp_path / "sg.jsonl", [
        {"conversations": [sg("human", text), sg("gpt", "建议先就诊。")]},
        {"system": "医疗助手", "conversations": [sg("human", "q1"), sg("gpt", "a1"),
                                                 sg("human", "q2"), sg("gpt", "a2")]},
        {"conversations": [sg("system", "s"), sg("user", "q"), sg("assistant", "a")]},
    ])
    data = load_dataset_file(path, "sft")
    assert data.format == "sharegpt" and data.errors == []
    assert data.rows[0]["messages"][0]["content"] == text
    assert [m["role"] for m in data.rows[1]["messages"]] == [
        "system", "user", "assistant", "user", "assistant"]
    assert data.rows[2]["messages"][0] == msg("system", "s")
    assert data.source_lines == [1, 2, 3]


def test_alpaca_format_with_input_system_and_history(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "解释下列症状", "input": "咳嗽三天", "output": "可能是感冒。"},
        {"instruction": "q", "input": "", "output": "a", "system": "sys",
         "history": [["h1", "a1"], ["h2", "a2"]]},
        {"instruction": "q", "input": None, "output": "a"},
    ])
    data = load_dataset_file(path, "sft")
    assert data.format == "alpaca" and data.problems == []
    assert data.rows[0]["messages"] == [msg("user", "解释下列症状\n咳嗽三天"),
                                        msg("assistant", "可能是感冒。")]
    assert data.rows[1]["messages"] == [
        msg("system", "sys"), msg("user", "h1"), msg("assistant", "a1"), msg("user", "h2"),
        msg("assistant", "a2"), msg("user", "q"), msg("assistant", "a")]
    assert data.rows[2]["messages"][0] == msg("user", "q")


def test_prompt_completion_sft(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "q", "completion": "a"}])
    data = load_dataset_file(path, "sft")
    assert data.format == "prompt_completion"
    assert data.rows == [{"messages": [msg("user", "q"), msg("assistant", "a")]}]


# --------------------------------------------------------------------- preference formats


def test_preference_trl_conversational_plain_and_implicit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pref.jsonl", [
        {"prompt": [msg("system", "s"), msg("user", "q")],
         "chosen": [msg("assistant", "good")], "rejected": [msg("assistant", "bad")]},
        {"prompt": "q", "chosen": "good", "rejected": "bad"},
        {"chosen": [msg("user", "q"), msg("assistant", "good")],
         "rejected": [msg("user", "q"), msg("assistant", "bad")]},
    ])
    data = load_dataset_file(path, "preference")
    assert (data.format, data.stage, data.problems) == ("preference", "preference", [])
    assert data.rows[0] == {"prompt": [msg("system", "s"), msg("user", "q")],
                            "chosen": [msg("assistant", "good")],
                            "rejected": [msg("assistant", "bad")]}
    expected = {"prompt": [msg("user", "q")], "chosen": [msg("assistant", "good")],
                "rejected": [msg("assistant", "bad")]}
    assert data.rows[1] == expected
    assert data.rows[2] == expected


def test_preference_sharegpt_medicalgpt_and_llamafactory(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dpo.jsonl", [
        {"conversations": [sg("human", ZH_Q)], "chosen": ZH_A, "rejected": "随便。"},
        {"conversations": [sg("system", "s"), sg("human", "q1"), sg("gpt", "a1"),
                           sg("human", "q2")],
         "chosen": sg("gpt", "good"), "rejected": sg("gpt", "bad")},
    ])
    data = load_dataset_file(path, "preference")
    assert data.format == "preference_sharegpt" and data.problems == []
    assert data.rows[0] == {"prompt": [msg("user", ZH_Q)],
                            "chosen": [msg("assistant", ZH_A)],
                            "rejected": [msg("assistant", "随便。")]}
    assert [m["role"] for m in data.rows[1]["prompt"]] == ["system", "user", "assistant", "user"]
    assert data.rows[1]["chosen"] == [msg("assistant", "good")]


def test_preference_alpaca_and_output_pair(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rank.jsonl", [
        {"instruction": "i", "input": "x", "chosen": "good", "rejected": "bad"},
    ])
    data = load_dataset_file(path, "preference")
    assert data.format == "preference_alpaca"
    assert data.rows[0]["prompt"] == [msg("user", "i\nx")]
    assert data.rows[0]["rejected"] == [msg("assistant", "bad")]
    old = write_jsonl(tmp_path / "old.jsonl", [{"instruction": "i", "output": ["good", "bad"]}])
    data = load_dataset_file(old, "preference", "alpaca")
    assert data.format == "preference_alpaca"
    assert data.rows[0]["chosen"] == [msg("assistant", "good")]


def test_preference_problems_identical_answers_and_prompt_ending(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"conversations": [sg("human", "q")], "chosen": "same", "rejected": "same"},
        {"conversations": [sg("human", "q"), sg("gpt", "a")], "chosen": "x", "rejected": "y"},
        {"conversations": [sg("human", "q")], "chosen": sg("human", "x"), "rejected": "y"},
    ])
    data = load_dataset_file(path, "preference")
    assert len(data.rows) == 1  # identical answers are only a warning
    assert [(p.line, p.key, p.severity) for p in data.problems] == [
        (1, "rejected", "warning"),
        (2, "conversations[1].from", "error"),
        (3, "chosen.from", "error"),
    ]
    assert "must end with a user turn" in data.problems[1].message


# ----------------------------------------------------------------------------- KTO formats


def test_kto_formats(tmp_path: Path) -> None:
    trl = write_jsonl(tmp_path / "kto.jsonl", [
        {"prompt": "q", "completion": "a", "label": True},
        {"prompt": [msg("user", "q")], "completion": [msg("assistant", "b")], "label": False},
        {"prompt": "q", "completion": "a", "label": "false"},
    ])
    data = load_dataset_file(trl, "kto")
    assert data.format == "kto" and not data.derived_from_preference
    assert data.rows == [
        {"prompt": [msg("user", "q")], "completion": [msg("assistant", "a")], "label": True},
        {"prompt": [msg("user", "q")], "completion": [msg("assistant", "b")], "label": False},
    ]
    assert keys_of(data) == [(3, "label")]
    assert "true or false" in data.errors[0].message

    lf = write_jsonl(tmp_path / "lf.jsonl", [
        {"messages": [msg("user", "q1"), msg("assistant", "a1"), msg("user", "q2"),
                      msg("assistant", "a2")], "label": True},
    ])
    data = load_dataset_file(lf, "kto")
    assert data.format == "kto_messages"
    assert data.rows[0]["prompt"] == [msg("user", "q1"), msg("assistant", "a1"),
                                      msg("user", "q2")]
    assert data.rows[0]["completion"] == [msg("assistant", "a2")]

    tag = write_jsonl(tmp_path / "tag.jsonl", [
        {"conversations": [sg("human", "q"), sg("gpt", "a")], "kto_tag": False}])
    data = load_dataset_file(tag, "kto")
    assert data.format == "kto_sharegpt" and data.rows[0]["label"] is False


# ---------------------------------------------------------------- detection / forced format


@pytest.mark.parametrize(("row", "stage", "expected"), [
    ({"messages": [msg("user", "q"), msg("assistant", "a")]}, "sft", "messages"),
    ({"conversations": [sg("human", "q"), sg("gpt", "a")]}, "sft", "sharegpt"),
    ({"instruction": "q", "output": "a"}, "sft", "alpaca"),
    ({"prompt": "q", "completion": "a"}, "sft", "prompt_completion"),
    ({"messages": [msg("user", "q"), msg("assistant", "a")], "label": "x"}, "sft", "messages"),
    ({"prompt": "q", "chosen": "a", "rejected": "b"}, "preference", "preference"),
    ({"conversations": [sg("human", "q")], "chosen": "a", "rejected": "b"}, "preference",
     "preference_sharegpt"),
    ({"instruction": "q", "chosen": "a", "rejected": "b"}, "preference", "preference_alpaca"),
    ({"prompt": "q", "completion": "a", "label": True}, "kto", "kto"),
    ({"messages": [msg("user", "q"), msg("assistant", "a")], "label": True}, "kto",
     "kto_messages"),
    ({"instruction": "q", "output": "a", "kto_tag": True}, "kto", "kto_alpaca"),
])
def test_auto_detection(tmp_path: Path, row: dict, stage: str, expected: str) -> None:
    data = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", [row]), stage)
    assert data.format == expected and data.errors == []


def test_detection_skips_rows_that_match_nothing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"conversation": [sg("human", "q"), sg("gpt", "a")]},  # typo'd key
        {"conversations": [sg("human", "q"), sg("gpt", "a")]},
    ])
    data = load_dataset_file(path, "sft")
    assert data.format == "sharegpt" and data.source_lines == [2]
    assert keys_of(data) == [(1, "conversations")]


def test_forced_format_and_stage_aliases(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": [sg("human", "q"), sg("gpt", "a")]},  # sharegpt turns under "messages"
    ])
    assert load_dataset_file(path, "sft", "sharegpt").format == "sharegpt"
    assert load_dataset_file(path, "sft", "openai").format == "messages"
    pref = write_jsonl(tmp_path / "p.jsonl", [
        {"conversations": [sg("human", "q")], "chosen": "a", "rejected": "b"}])
    assert load_dataset_file(pref, "preference", "sharegpt").format == "preference_sharegpt"
    with pytest.raises(DataError, match="no usable rows") as info:
        load_dataset_file(path, "sft", "alpaca")  # forced format wins over detection
    assert info.value.location.key == "instruction"
    with pytest.raises(DataError, match="unknown data format 'csv'") as info:
        load_dataset_file(path, "sft", "csv")
    assert "sharegpt" in str(info.value)


def test_unknown_format_lists_keys_and_supported_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as info:
        load_dataset_file(path, "sft")
    text = str(info.value)
    assert info.value.location.line == 1
    assert "['answer', 'question']" in text
    for name in ("messages", "sharegpt", "alpaca", "conversations", "instruction"):
        assert name in text


def test_stage_mismatch_is_explained(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl",
                       [{"conversations": [sg("human", "q"), sg("gpt", "a")]}])
    with pytest.raises(DataError, match=r"this is sft data .* stage 'preference'"):
        load_dataset_file(path, "preference")
    with pytest.raises(DataError, match="unknown stage 'dpo'"):
        load_dataset_file(path, "dpo")


# ------------------------------------------------------------------------ row-level problems


def test_row_problems_have_line_and_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"conversations": [sg("human", "q"), sg("gpt", "a")]},                  # 1 ok
        {"conversations": [sg("human", "q"), sg("gpt", 42)]},                   # 2 type
        {"conversations": [sg("human", "q"), sg("gpt", "  ")]},                 # 3 empty
        {"conversations": [sg("human", "q"), sg("human", "q"), sg("gpt", "a")]},  # 4 order
        {"conversations": [sg("human", "q"), sg("tool", "a")]},                 # 5 role
        ["not", "an", "object"],                                                # 6
        {"conversations": [sg("human", "q")]},                                  # 7 ends user
        {"conversations": "q"},                                                 # 8 not a list
        {"conversations": [{"from": "human"}, sg("gpt", "a")]},                  # 9 missing
    ])
    data = load_dataset_file(path, "sft")
    assert len(data.rows) == 1 and data.source_lines == [1]
    assert keys_of(data) == [
        (2, "conversations[1].value"),
        (3, "conversations[1].value"),
        (4, "conversations[1].from"),
        (5, "conversations[1].from"),
        (6, None),
        (7, "conversations[0].from"),
        (8, "conversations"),
        (9, "conversations[0].value"),
    ]
    messages = [p.message for p in data.errors]
    assert "must be a string, got number" in messages[0]
    assert messages[1] == "empty content"
    assert "alternate" in messages[2]
    assert "unknown role 'tool'" in messages[3]
    assert "JSON object" in messages[4]
    assert "must end with an assistant turn" in messages[5]
    assert all(isinstance(p, Problem) and p.file == str(path) for p in data.problems)


def test_malformed_jsonl_line_reports_line_and_rest_loads(tmp_path: Path) -> None:
    good = json.dumps({"conversations": [sg("human", "q"), sg("gpt", "a")]})
    path = tmp_path / "d.jsonl"
    path.write_text(f"{good}\n\n{{\"conversations\": [\n{good}\n\n", encoding="utf-8")
    data = load_dataset_file(path, "sft")
    assert data.source_lines == [1, 4]
    assert len(data.errors) == 1
    assert data.errors[0].line == 3 and data.errors[0].message.startswith("invalid JSON: ")


def test_json_array_items_report_their_start_lines(tmp_path: Path) -> None:
    rows = [
        {"instruction": "q1", "output": "a1"},
        {"instruction": "q2", "output": ""},
        {"instruction": "q3", "output": "a3"},
    ]
    path = write_json(tmp_path / "d.json", rows)  # indent=2: each item spans 4 lines
    data = load_dataset_file(path, "sft")
    assert data.source_lines == [2, 10]
    assert keys_of(data) == [(6, "output")]
    compact = tmp_path / "c.json"
    compact.write_text("[" + ",\n ".join(json.dumps(r) for r in rows) + "]", encoding="utf-8")
    assert load_dataset_file(compact, "sft").source_lines == [1, 3]


def test_invalid_json_array_raises_with_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"instruction": "q", "output": "a"},\n  {"instruction": }\n]',
                    encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON") as info:
        load_dataset_file(path, "sft")
    assert info.value.location.line == 3
    path.write_text('[\n  {"instruction": "q", "output": "a"}\n  {"x": 1}\n]', encoding="utf-8")
    with pytest.raises(DataError, match="expecting ','") as info:
        load_dataset_file(path, "sft")
    assert info.value.location.line == 3


def test_json_extension_with_jsonl_content_and_trailing_comma(tmp_path: Path) -> None:
    lines = tmp_path / "lines.json"
    lines.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": "b"}\n',
                     encoding="utf-8")
    assert load_dataset_file(lines, "sft").source_lines == [1, 2]
    comma = tmp_path / "comma.json"
    comma.write_text('[{"instruction": "q", "output": "a"},\n]', encoding="utf-8")
    with pytest.raises(DataError, match="trailing comma") as info:
        load_dataset_file(comma, "sft")
    assert info.value.location.line == 2


def test_json_single_object_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text("\ufeff" + json.dumps({"instruction": "问", "output": "答"}, indent=2,
                                          ensure_ascii=False), encoding="utf-8")
    data = load_dataset_file(path, "sft")
    assert data.rows == [{"messages": [msg("user", "问"), msg("assistant", "答")]}]


# ------------------------------------------------------------------------ file-level errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found") as info:
        load_dataset_file(tmp_path / "nope.jsonl", "sft")
    assert info.value.location.file == str(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("content", ["", "\n  \n", "[]", "[ \n ]"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_dataset_file(path, "sft")


def test_not_json_at_all(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("question,answer\nq,a\n", encoding="utf-8")
    with pytest.raises(DataError, match="not JSON or JSON Lines") as info:
        load_dataset_file(path, "sft")
    assert info.value.location.line == 1
    binary = tmp_path / "d.parquet"
    binary.write_bytes(b"PAR1\xff\xfe\x00")
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset_file(binary, "sft")


def test_no_usable_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"conversations": [sg("human", "q")]},
        {"conversations": [sg("gpt", "a")]},
    ])
    with pytest.raises(DataError, match="no usable rows") as info:
        load_dataset_file(path, "sft")
    assert (info.value.location.line, info.value.location.key) == (1, "conversations[0].from")


# ------------------------------------------------------------------------- dataset_info.json


def test_dataset_info_alpaca_column_mapping(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_json(tmp_path / "data" / "med.json", [
        {"q": "头痛", "ctx": "两天", "a": "休息", "sys": "医生", "hist": [["h", "ha"]]},
        {"q": "x", "a": 5},
    ])
    info = write_json(tmp_path / "dataset_info.json", {"med": {
        "file_name": "data/med.json",
        "columns": {"prompt": "q", "query": "ctx", "response": "a", "system": "sys",
                    "history": "hist", "images": "img"},
    }})
    data = load_dataset_file(None, "sft", dataset_info=str(info), dataset_name="med")
    assert data.format == "alpaca" and data.path == str(tmp_path / "data" / "med.json")
    assert data.rows == [{"messages": [msg("system", "医生"), msg("user", "h"),
                                       msg("assistant", "ha"), msg("user", "头痛\n两天"),
                                       msg("assistant", "休息")]}]
    assert keys_of(data) == [(14, "a")]  # item start line; the user's column name, not ours
    warning = data.warnings[0]
    assert (warning.file, warning.key) == (str(info), "med.columns.images")


def test_dataset_info_sharegpt_custom_tags(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "chat.jsonl", [
        {"dialog": [{"speaker": "patient", "text": "胸闷"},
                    {"speaker": "doctor", "text": "做心电图"}],
         "sys_prompt": "你是心内科医生"},
        {"dialog": [{"speaker": "human", "text": "q"}, {"speaker": "doctor", "text": "a"}]},
    ])
    info = write_json(tmp_path / "dataset_info.json", {"chat": {
        "file_name": "chat.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "dialog", "system": "sys_prompt"},
        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "patient",
                 "assistant_tag": "doctor"},
    }})
    data = load_dataset_file("", "sft", dataset_info=str(tmp_path), dataset_name="chat")
    assert data.format == "sharegpt" and data.errors == []
    assert data.rows[0]["messages"] == [msg("system", "你是心内科医生"), msg("user", "胸闷"),
                                        msg("assistant", "做心电图")]
    assert len(data.rows) == 2  # default aliases ("human") still work
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"dialog": [{"speaker": "patient", "text": "q"}, {"speaker": "nurse", "text": "a"}]}])
    with pytest.raises(DataError, match="no usable rows") as exc:
        load_dataset_file(bad, "sft", dataset_info=str(info), dataset_name="chat")
    assert exc.value.location.key == "dialog[1].speaker"


def test_dataset_info_ranking_and_kto(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "rank.jsonl", [
        {"conversations": [sg("human", "q")], "chosen": sg("gpt", "good"),
         "rejected": sg("gpt", "bad")}])
    write_jsonl(tmp_path / "kto.jsonl", [
        {"instruction": "q", "output": "a", "tag": True}])
    info = write_json(tmp_path / "dataset_info.json", {
        "rank": {"file_name": "rank.jsonl", "formatting": "sharegpt", "ranking": True},
        "kto": {"file_name": "kto.jsonl", "columns": {"kto_tag": "tag"}},
        "hub": {"hf_hub_url": "someone/data"},
    })
    data = load_dataset_file(None, "preference", dataset_info=str(info), dataset_name="rank")
    assert data.format == "preference_sharegpt"
    assert data.rows[0]["chosen"] == [msg("assistant", "good")]
    data = load_dataset_file(None, "kto", dataset_info=str(info), dataset_name="kto")
    assert data.format == "kto_alpaca" and data.rows[0]["label"] is True
    with pytest.raises(DataError, match="this is preference data"):
        load_dataset_file(None, "sft", dataset_info=str(info), dataset_name="rank")
    with pytest.raises(DataError, match="only local datasets"):
        load_dataset_file(None, "sft", dataset_info=str(info), dataset_name="hub")


def test_dataset_info_missing_name_and_file(tmp_path: Path) -> None:
    info = write_json(tmp_path / "dataset_info.json", {"a": {"file_name": "a.json"}})
    with pytest.raises(DataError, match="dataset 'b' not found") as exc:
        load_dataset_file(None, "sft", dataset_info=str(info), dataset_name="b")
    assert (exc.value.location.file, exc.value.location.key) == (str(info), "b")
    assert "entries: a" in str(exc.value)
    with pytest.raises(DataError, match="data file not found"):
        load_dataset_file(None, "sft", dataset_info=str(info), dataset_name="a")
    with pytest.raises(DataError, match=r"dataset_info\.json not found"):
        load_dataset_file(None, "sft", dataset_info=str(tmp_path / "x.json"), dataset_name="a")
    with pytest.raises(DataError, match="given together"):
        load_dataset_file(None, "sft", dataset_name="a")


# --------------------------------------------------------------- derive KTO / require_valid


def test_derive_kto_from_preference(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "q1", "chosen": "g1", "rejected": "b1"},
        {"prompt": "q2", "chosen": 1, "rejected": "b2"},
        {"prompt": "q3", "chosen": "g3", "rejected": "b3"},
    ])
    pref = load_dataset_file(path, "preference")
    kto = derive_kto_from_preference(pref)
    assert (kto.stage, kto.format, kto.derived_from_preference) == ("kto", "preference", True)
    assert [r["label"] for r in kto.rows] == [True, False, True, False]
    assert kto.source_lines == [1, 1, 3, 3]
    assert kto.rows[1] == {"prompt": [msg("user", "q1")],
                           "completion": [msg("assistant", "b1")], "label": False}
    assert kto.problems == pref.problems and len(pref.rows) == 2  # source untouched
    direct = load_dataset_file(path, "kto")  # the kto stage accepts pairs directly
    assert direct.derived_from_preference and direct.rows == kto.rows
    sft = load_dataset_file(write_jsonl(tmp_path / "s.jsonl", [{"prompt": "q", "completion": "a"}]),
                            "sft")
    with pytest.raises(DataError, match="cannot derive KTO"):
        derive_kto_from_preference(sft)


def test_require_valid(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "q", "output": "a"},
        {"instruction": "q", "output": ""},
        {"instruction": "q"},
    ])
    data = load_dataset_file(path, "sft")
    with pytest.raises(DataError) as info:
        require_valid(data)
    err = info.value
    assert (err.location.file, err.location.line, err.location.key) == (str(path), 2, "output")
    assert "2 errors in total" in err.message and "1 valid row)" in err.message
    assert str(err).startswith(f"{path}:2, key 'output': empty content")
    ok = load_dataset_file(write_jsonl(tmp_path / "ok.jsonl", [{"instruction": "q",
                                                                "output": "a"}]), "sft")
    assert require_valid(ok) is ok


def test_format_names_exported() -> None:
    assert {"messages", "sharegpt", "alpaca", "preference", "preference_sharegpt",
            "preference_alpaca", "kto", "kto_messages", "kto_sharegpt"} <= set(FORMAT_NAMES)


# ------------------------------------------------------------------ real public MedicalGPT data


def test_real_medicalgpt_files() -> None:
    sft_file = PUBLIC / "medicalgpt_sft_zh_200.jsonl"
    dpo_file = PUBLIC / "medicalgpt_dpo_zh_100.jsonl"
    if not (sft_file.is_file() and dpo_file.is_file()):
        pytest.skip("../shared/data/public is not present")

    sft = require_valid(load_dataset_file(sft_file, "sft"))
    assert (sft.format, len(sft.rows), sft.problems) == ("sharegpt", 200, [])
    assert sft.source_lines == list(range(1, 201))
    first_line = json.loads(sft_file.read_text(encoding="utf-8").splitlines()[0])
    assert sft.rows[0]["messages"] == [
        msg("user", first_line["conversations"][0]["value"]),
        msg("assistant", first_line["conversations"][1]["value"]),
    ]
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in sft.rows)

    dpo = require_valid(load_dataset_file(dpo_file, "preference"))
    assert (dpo.format, len(dpo.rows), dpo.problems) == ("preference_sharegpt", 100, [])
    # 15 of the 100 prompts carry a system turn before the human turn.
    with_system = [r for r in dpo.rows if r["prompt"][0]["role"] == "system"]
    assert len(with_system) == 15
    assert all(r["prompt"][-1]["role"] == "user" for r in dpo.rows)
    raw = json.loads(dpo_file.read_text(encoding="utf-8").splitlines()[0])
    assert dpo.rows[0]["chosen"] == [msg("assistant", raw["chosen"])]
    assert dpo.rows[0]["rejected"] == [msg("assistant", raw["rejected"])]

    kto = load_dataset_file(dpo_file, "kto")
    assert kto.derived_from_preference and len(kto.rows) == 200
