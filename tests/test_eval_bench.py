"""bench/eval_suite.py on the CPU with the tiny architecture: every phase runs the stage's own engine and
writes its line and the table. The numbers that matter come from a GPU (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_eval_bench_phases_write_results_and_table(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.eval_suite", "--data", "data/samples/eval_mcq_zh_en.jsonl",
                           "--arch", "tiny", "--adapters", "1", "--ref-items", "8", "--gen-items", "8",
                           "--loglik-items", "12", "--max-new-tokens", "4", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {r["phase"]: r for r in map(json.loads, (tmp_path / "out" / "eval_results.jsonl").read_text().splitlines())}
    assert set(rows) == {"prepare", "ref", "gen", "loglik"}
    assert rows["gen"]["variants"] == 2 and rows["gen"]["items_per_s_per_variant"] > 0
    assert rows["loglik"]["items"] == 12 and set(rows["loglik"]["accuracy"]) == {"base", "adapter1"}
    # the reference and the engine answer the same items; on the CPU in fp32 the base replies agree
    assert rows["ref"]["answers"]["base"] == rows["gen"]["answers"]["base"][:8]
    md = (tmp_path / "out" / "eval_bench.md").read_text()
    assert "Generate protocol, engine vs reference" in md and "Loglik:" in md
