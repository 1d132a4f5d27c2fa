"""Bad *files* through the real CLI (issue 14, "Files"): FIFOs, non-UTF-8, deep JSON, bad strings, output roots.

Each case: the documented exit code (2), no traceback, and the file (and line / key
where there is one) in the message. The FIFO cases run under a short subprocess
timeout: before the fix they blocked forever in ``open()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bad_input_cli import (
    CONFIG,
    GOOD_ROW,
    REPO,
    SFT_SAMPLE,
    cli,
    mutate,
    no_traceback,
    one_error_line,
    tiny_text,
    write_jsonl,
)

FIFO_TIMEOUT_S = 60  # the CLI imports torch: seconds, not the forever a blocked open() takes
GOOD = json.dumps(GOOD_ROW, ensure_ascii=False)
SURROGATE_ROW = '{"messages": [{"role": "user", "content": "x\\ud800"}, {"role": "assistant", "content": "b"}]}'
NUL_ROW = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b\\u0000c"}]}'


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def quick_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``cli`` with a hard timeout: a FIFO opened by mistake would block here forever."""
    environ = {**os.environ, "COLUMNS": "250", "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8",
               "MEDLLM_ENV_FILE": str(cwd / "absent.env"), **(env or {})}
    for name in ("MEDLLM_OUTPUT_ROOT", "DRY_RUN"):
        environ.pop(name, None)
    return subprocess.run([sys.executable, "-m", "medllm_tui", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=FIFO_TIMEOUT_S)


def profile_with_sft(tmp_path: Path, data: Path, name: str = "profile.toml") -> Path:
    profile = tmp_path / name
    profile.write_text(tiny_text(data), encoding="utf-8")
    return profile


# --- non-regular files: refused before they are opened ----------------------------------


def test_fifo_as_profile(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "profile.toml")
    error = one_error_line(quick_cli(["--run", str(pipe), "--output-root", str(tmp_path / "out")], tmp_path))
    assert f"error: {pipe}: profile is a named pipe (FIFO), not a regular file" in error
    assert not (tmp_path / "out").exists()


def test_fifo_as_data_file_in_a_run(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "sft.jsonl")
    profile = profile_with_sft(tmp_path, pipe)
    error = one_error_line(quick_cli(["--run", str(profile), "--dry-run", "--output-root", str(tmp_path / "out")],
                                     tmp_path))
    assert f"{pipe}: data file is a named pipe (FIFO), not a regular file" in error


@pytest.mark.parametrize("stage", ["sft", "preference", "kto", "eval"])
def test_fifo_given_to_data_check(stage: str, tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "data.jsonl")
    error = one_error_line(quick_cli(["data", "check", str(pipe), "--stage", stage], tmp_path))
    assert f"error: {pipe}: data file is a named pipe (FIFO)" in error


def test_fifo_as_eval_csv(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "cmexam.csv")
    error = one_error_line(quick_cli(["data", "check", str(pipe), "--stage", "eval"], tmp_path))
    assert f"error: {pipe}: benchmark file is a named pipe (FIFO)" in error


def test_fifo_as_dataset_info(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "dataset_info.json")
    error = one_error_line(quick_cli(["data", "check", "--dataset-info", str(pipe), "--dataset-name", "x"],
                                     tmp_path))
    assert f"error: {pipe}: dataset_info.json is a named pipe (FIFO)" in error


def test_character_device_as_data_file(tmp_path: Path) -> None:
    error = one_error_line(quick_cli(["data", "check", "/dev/null"], tmp_path))
    assert "error: /dev/null: data file is a character device, not a regular file" in error


def test_fifo_as_human_labels(tmp_path: Path) -> None:
    """The judge stages read human labels before any model loads; a FIFO must not block them."""
    pipe = fifo(tmp_path / "labels.jsonl")
    code = ("import sys\nfrom medllm_core.kernel.errors import DataError\n"
            "from medllm_core.library.judges.human_labels import load_human_labels\n"
            "try:\n    load_human_labels(sys.argv[1])\nexcept DataError as exc:\n    print(exc.render())\n")
    result = subprocess.run([sys.executable, "-c", code, str(pipe)], cwd=REPO, capture_output=True, text=True,
                            timeout=FIFO_TIMEOUT_S, env={**os.environ, "PYTHONPATH": str(REPO)})
    no_traceback(result)
    assert f"{pipe}: human labels file is a named pipe (FIFO), not a regular file" in result.stdout


# --- encodings ---------------------------------------------------------------------------


def test_gbk_profile(tmp_path: Path) -> None:
    text, line = mutate(tiny_text(), "description = ", 'description = "发烧 CPU 冒烟测试"')
    profile = tmp_path / "gbk.toml"
    profile.write_bytes(text.encode("gbk"))
    error = one_error_line(cli(["--run", str(profile), "--output-root", str(tmp_path / "out")], tmp_path))
    assert f"error: {profile}:{line}: profile is not UTF-8 text" in error
    assert f"iconv -f GBK -t UTF-8 {profile}" in error


def test_gbk_data_file_in_data_check_and_run(tmp_path: Path) -> None:
    data = tmp_path / "gbk.jsonl"
    data.write_bytes(f"{json.dumps({'messages': GOOD_ROW['messages']})}\n{GOOD}\n".encode("gbk"))
    error = one_error_line(cli(["data", "check", str(data)], tmp_path))
    assert f"error: {data}:2: data file is not UTF-8 text" in error
    assert "iconv -f GBK -t UTF-8" in error
    profile = profile_with_sft(tmp_path, data)
    error = one_error_line(cli(["--run", str(profile), "--dry-run", "--output-root", str(tmp_path / "out")],
                               tmp_path))
    assert f"{data}:2: data file is not UTF-8 text" in error


def test_gbk_benchmark_csv(tmp_path: Path) -> None:
    data = tmp_path / "cmexam.csv"
    data.write_bytes("id,question,A,B,answer\n1,发烧怎么办,喝水,跑步,A\n".encode("gbk"))
    error = one_error_line(cli(["data", "check", str(data), "--stage", "eval"], tmp_path))
    assert f"error: {data}:2: benchmark file is not UTF-8 text" in error
    assert "iconv" in error


# --- JSON nesting and strings no tokenizer can take --------------------------------------


@pytest.mark.parametrize(("name", "text", "line"), [
    ("array.json", "[" * 100_000, 1),
    ("lines.jsonl", GOOD + "\n" + "[" * 100_000 + "\n", 2),
])
def test_deeply_nested_json(name: str, text: str, line: int, tmp_path: Path) -> None:
    data = tmp_path / name
    data.write_text(text, encoding="utf-8")
    result = cli(["data", "check", str(data)], tmp_path)
    assert result.returncode == CONFIG, result.stdout + result.stderr
    no_traceback(result)
    assert "RecursionError" not in result.stdout + result.stderr
    assert f"{data}:{line}" in result.stdout + result.stderr
    assert "nested too deeply" in result.stdout + result.stderr


def test_nesting_beyond_the_bound_is_a_row_error(tmp_path: Path) -> None:
    """Under Python's own limit but deeper than any data format needs: refused, located."""
    deep = '{"messages": [{"role": "user", "content": "a", "x": ' + "[" * 150 + "]" * 150 + "}]}"
    data = write_jsonl(tmp_path / "deep.jsonl", [GOOD, deep])
    result = cli(["data", "check", str(data)], tmp_path)
    assert result.returncode == CONFIG
    no_traceback(result)
    assert f"error: {data}:2 [messages[0].x" in result.stdout
    assert "nested more than 100 levels deep" in result.stdout


@pytest.mark.parametrize(("row", "key", "fragment"), [
    (SURROGATE_ROW, "messages[0].content", "unpaired surrogate \\ud800"),
    (NUL_ROW, "messages[1].content", "NUL character (\\u0000)"),
])
def test_bad_strings_in_data_check(row: str, key: str, fragment: str, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "bad.jsonl", [GOOD, row, GOOD])
    result = cli(["data", "check", str(data)], tmp_path)
    assert result.returncode == CONFIG, result.stdout + result.stderr
    no_traceback(result)
    assert f"error: {data}:2 [{key}]: {fragment}" in result.stdout
    assert "result: FAIL" in result.stdout


def test_lone_surrogate_stops_the_run_before_training(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "bad.jsonl", [GOOD, SURROGATE_ROW])
    profile = profile_with_sft(tmp_path, data)
    error = one_error_line(cli(["--run", str(profile), "--dry-run", "--output-root", str(tmp_path / "out")],
                               tmp_path))
    assert f"{data}:2, key 'messages[0].content': unpaired surrogate \\ud800" in error


def test_nul_in_a_benchmark_csv(tmp_path: Path) -> None:
    data = tmp_path / "mcq.csv"
    data.write_text("id,question,A,B,answer\n1,q\x00,a,b,A\n2,q,a,b,B\n", encoding="utf-8")
    result = cli(["data", "check", str(data), "--stage", "eval"], tmp_path)
    no_traceback(result)
    assert f"{data}:2 [question]: NUL character" in result.stdout + result.stderr


# --- output root that is not a folder ----------------------------------------------------


@pytest.mark.parametrize("origin", ["profile", "flag", "env"])
def test_output_root_is_a_file(origin: str, tmp_path: Path) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder", encoding="utf-8")
    text, args, env = tiny_text(), [], {}
    if origin == "profile":
        text, line = mutate(text, "output_root = ", f"output_root = {json.dumps(str(taken))}")
    elif origin == "flag":
        args = ["--output-root", str(taken)]
    else:
        env = {"MEDLLM_OUTPUT_ROOT": str(taken)}
    profile = tmp_path / "profile.toml"
    profile.write_text(text, encoding="utf-8")
    error = one_error_line(cli(["--run", str(profile), "--dry-run", *args], tmp_path, env))
    assert f"output root '{taken}' is a file, not a folder" in error
    assert "NotADirectoryError" not in error
    expected = {"profile": f"{profile}:{line}, key 'output_root'" if origin == "profile" else "",
                "flag": "(from --output-root)", "env": "(from environment variable MEDLLM_OUTPUT_ROOT)"}[origin]
    assert expected in error


def test_output_root_under_a_file(tmp_path: Path) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder", encoding="utf-8")
    profile = tmp_path / "profile.toml"
    profile.write_text(tiny_text(), encoding="utf-8")
    error = one_error_line(cli(["--run", str(profile), "--dry-run", "--output-root", str(taken / "sub")], tmp_path))
    assert f"output root '{taken / 'sub'}' lies under '{taken}', which is a file" in error


def test_good_file_still_passes(tmp_path: Path) -> None:
    result = cli(["data", "check", str(SFT_SAMPLE)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK" in result.stdout


# --- every [data.*] table through one code path: path and dataset_info + dataset_name -----

SFT_ROWS = [{"instruction": f"问题 {i}", "input": "", "output": f"回答 {i}"} for i in range(4)]
PREF_ROWS = [{"instruction": f"问题 {i}", "input": "", "chosen": f"好 {i}", "rejected": f"坏 {i}"} for i in range(4)]
KTO_ROWS = [{"instruction": f"问题 {i}", "input": "", "output": f"回答 {i}", "kto_tag": i % 2 == 0}
            for i in range(6)]
MCQ_ROWS = [{"id": f"q{i}", "question": f"题 {i}", "options": {"A": "甲", "B": "乙"}, "answer": "A"} for i in range(3)]
INFO = {
    "my_sft": {"file_name": "sft.jsonl"},
    "my_pref": {"file_name": "pref.jsonl", "ranking": True,
                "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
    "my_kto": {"file_name": "kto.jsonl",
               "columns": {"prompt": "instruction", "query": "input", "response": "output", "kto_tag": "kto_tag"}},
    "my_mcq": {"file_name": "mcq.jsonl"},
}


def write_lf_folder(folder: Path) -> Path:
    """A LLaMA-Factory style data folder: four files and their dataset_info.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("sft", SFT_ROWS), ("pref", PREF_ROWS), ("kto", KTO_ROWS), ("mcq", MCQ_ROWS)):
        write_jsonl(folder / f"{name}.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    info = folder / "dataset_info.json"
    info.write_text(json.dumps(INFO), encoding="utf-8")
    return info


def profile_of(folder: Path, tables: dict[str, dict[str, str]]):
    from medllm_core.kernel.profile import DataSection, Profile

    profile = Profile()
    profile.source_path = folder / "profile.toml"
    profile.data = {key: DataSection(**table) for key, table in tables.items()}
    return profile


@pytest.mark.parametrize(("key", "loader", "file", "entry"), [
    ("sft", "sft", "sft.jsonl", "my_sft"),
    ("preference", "preference", "pref.jsonl", "my_pref"),
    ("kto", "kto", "kto.jsonl", "my_kto"),
])
def test_training_tables_resolve_the_same_both_ways(key: str, loader: str, file: str, entry: str,
                                                    tmp_path: Path) -> None:
    from medllm_core.library.data import data_source

    write_lf_folder(tmp_path)
    profile = profile_of(tmp_path, {"by_path": {"path": file}, "by_info": {"dataset_info": "dataset_info.json",
                                                                           "dataset_name": entry}})
    by_path, by_info = data_source(profile, "by_path"), data_source(profile, "by_info")
    assert by_path.file == by_info.file == str(tmp_path / file)
    rows_path, rows_info = by_path.load(loader), by_info.load(loader)
    assert rows_info.stage == rows_path.stage == loader
    assert not rows_path.derived_from_preference and not rows_info.derived_from_preference
    assert rows_info.rows == rows_path.rows
    assert len(rows_info.rows) == {"sft": 4, "preference": 4, "kto": 6}[key]


def test_eval_mcq_resolves_the_same_both_ways(tmp_path: Path) -> None:
    from medllm_core.library.data import data_source
    from medllm_core.library.evaluation.mcq import load_mcq_file

    write_lf_folder(tmp_path)
    profile = profile_of(tmp_path, {"eval_mcq": {"path": "mcq.jsonl"},
                                    "eval_dev": {"dataset_info": str(tmp_path), "dataset_name": "my_mcq"}})
    by_path, by_info = data_source(profile, "eval_mcq"), data_source(profile, "eval_dev")
    assert by_path.file == by_info.file == str(tmp_path / "mcq.jsonl")
    items_path, items_info = load_mcq_file(by_path.file, "auto")[0], load_mcq_file(by_info.file, "auto")[0]
    assert [i.id for i in items_path] == [i.id for i in items_info] == ["q0", "q1", "q2"]


def test_dataset_name_without_dataset_info_is_not_skipped(tmp_path: Path) -> None:
    from medllm_core.kernel.errors import DataError
    from medllm_core.library.data import data_source

    profile = profile_of(tmp_path, {"eval_mcq": {"dataset_name": "my_mcq"}})
    source = data_source(profile, "eval_mcq")
    assert source is not None
    with pytest.raises(DataError, match="dataset_info and dataset_name must be given together"):
        source.file  # noqa: B018  (the property reads the entry)


def test_kto_table_via_dataset_info_is_what_kto_trains_on(tmp_path: Path) -> None:
    """Before: [data.kto] given through dataset_info was ignored and KTO used rows derived from the pairs."""
    from medllm_core.testing import run_pipeline

    info = write_lf_folder(tmp_path / "lf")
    run = run_pipeline(tmp_path / "out", only=["sft", "kto"], sft_steps=2, overrides={
        "data.kto.dataset_info": str(info), "data.kto.dataset_name": "my_kto",
        "stages.kto.max_steps": 2, "stages.kto.save_steps": 2,
    })
    assert run.exit_code == 0, run.message
    kto_file = str(tmp_path / "lf" / "kto.jsonl")
    decisions = {e["kind"]: e for e in run.events("decision", stage="kto")}
    assert "kto_data_derived" not in decisions, decisions
    assert decisions["kto_data_file"]["facts"]["source"] == kto_file
    assert decisions["kto_data_file"]["facts"]["rows"] == len(KTO_ROWS)
    metrics = json.loads(next(run.output_root.rglob("kto_metrics.json")).read_text(encoding="utf-8"))
    assert metrics["data"]["path"] == kto_file


def test_file_whose_only_row_has_a_nul(tmp_path: Path) -> None:
    """Every row refused while reading: one located error, not an IndexError."""
    data = write_jsonl(tmp_path / "only.jsonl", [NUL_ROW])
    error = one_error_line(cli(["data", "check", str(data)], tmp_path))
    assert f"error: {data}:1, key 'messages[1].content': no usable rows" in error
    assert "NUL character" in error
