"""The evaluation stage through the real CLI: both protocols, reproducibility, and unreadable items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

SFT_ONLY = ["--set", "stages.dpo.enabled=false", "--set", "stages.simpo.enabled=false",
            "--set", "stages.kto.enabled=false"]
SAMPLE_MCQ = REPO / "data" / "samples" / "eval_mcq_zh_en.jsonl"


def _eval(out: Path) -> dict:
    return json.loads((out / "reports" / "eval" / "eval_results.json").read_text(encoding="utf-8"))


def _predictions(out: Path) -> dict[str, str]:
    folder = out / "reports" / "eval" / "predictions"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    outs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name)
        result = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(out), *SFT_ONLY])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outs.append(out)
    return outs[0], outs[1]


def test_tiny_run_scores_both_protocols_and_sft_beats_base_on_each(two_runs) -> None:
    results = _eval(two_runs[0])
    assert results["protocol"] == "generate" and list(results["protocols"]) == ["generate", "loglik"]
    assert results["items"] == results["items_in_file"] == 40 and results["dropped"]["count"] == 0
    loglik = results["protocols"]["loglik"]
    assert all(v["extraction_failures"] == 0 for v in loglik["variants"].values())
    assert loglik["chance_accuracy"] == pytest.approx(results["chance_accuracy"])
    for protocol, block in results["protocols"].items():
        sft = next(c for c in block["comparisons_vs_base"] if c["variant"] == "sft")
        assert sft["difference"] > 0.3 and sft["mcnemar_p"] < 0.05, (protocol, sft)
    report = (two_runs[0] / "reports" / "eval_default.md").read_text(encoding="utf-8")
    assert "loglik" in report and "generate" in report and "mcq-v1" in report
    assert (two_runs[0] / "reports/eval/predictions/sft_mcq.loglik.jsonl").is_file()


def test_same_profile_and_seed_reproduce_every_evaluation_number(two_runs) -> None:
    first, second = (_eval(out) for out in two_runs)
    assert first["protocols"] == second["protocols"]
    assert _predictions(two_runs[0]) == _predictions(two_runs[1])


def _with_bad_items(tmp_path: Path) -> Path:
    bad = tmp_path / "mcq_with_bad_items.jsonl"
    lines = SAMPLE_MCQ.read_text(encoding="utf-8").splitlines()[:6]
    lines.insert(2, json.dumps({"id": "bad-1", "question": "Which vitamin?", "options": "no markers here",
                                "answer": "A"}))
    lines.append(json.dumps({"id": "bad-2", "question": "Hepatitis B. is caused by?",
                             "options": {"A": "A virus", "B": "A bacterium"}, "answer": "E"}))
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


def test_unreadable_items_are_dropped_and_reported(tmp_path: Path) -> None:
    bad = _with_bad_items(tmp_path)
    out = tmp_path / "out"
    result = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(out), *SFT_ONLY,
                      "--set", "stages.sft.max_steps=2", "--set", f"data.eval_mcq.path={bad}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = _eval(out)
    assert (results["items"], results["items_in_file"], results["dropped"]["count"]) == (6, 8, 2)
    assert [(e["line"], e["key"]) for e in results["dropped"]["examples"]] == [(3, "options"), (8, "answer")]
    report = (out / "reports" / "eval_default.md").read_text(encoding="utf-8")
    assert "dropped" in report.lower() and "2" in report


def test_on_bad_items_fail_stops_before_any_model_loads(tmp_path: Path) -> None:
    bad = _with_bad_items(tmp_path)
    out = tmp_path / "out"
    result = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(out), "--set",
                      f"data.eval_mcq.path={bad}", "--set", "stages.eval.on_bad_items=fail"])
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    text = result.stdout + result.stderr
    assert f"{bad}:3" in text and "2 of 8 multiple-choice items cannot be read" in text
    assert "Traceback" not in text
    assert not (out / "checkpoints").exists()  # nothing trained


def test_shots_come_from_the_dev_file_and_are_recorded(tmp_path: Path) -> None:
    dev = REPO / "tests" / "fixtures" / "benchmarks" / "cmb_val.json"
    out = tmp_path / "out"
    result = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(out), *SFT_ONLY,
                      "--set", "stages.sft.max_steps=2", "--set", "stages.eval.shots=2",
                      "--set", f"data.eval_dev.path={dev}", "--set", "stages.eval.protocol=loglik"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = _eval(out)
    assert results["shots"] == 2 and results["protocols"]["loglik"]["shots"] == 2
    assert "2-shot" in (out / "reports" / "eval_default.md").read_text(encoding="utf-8")
    missing = run_cli(["--run", "profiles/cpu_tiny.toml", "--output-root", str(tmp_path / "b"),
                       "--set", "stages.eval.shots=2"])
    assert missing.returncode == 2 and "[data.eval_dev]" in missing.stdout
