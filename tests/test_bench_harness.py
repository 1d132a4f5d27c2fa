"""bench/ on the CPU with the tiny architecture: the harness itself (one process per configuration,
results.jsonl, bench.json and the markdown tables) keeps working where CI can run it. The numbers
that matter come from a GPU (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_bench_runs_configurations_in_their_own_processes_and_writes_tables(tmp_path):
    labels = "ref-sft-trl-default,ours-sft,parity-ref-sft,parity-ours-sft,ref-dpo-trl-default,ours-dpo-inline-ref"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--arch", "tiny", "--steps", "2", "--pref-steps", "2",
                           "--only", labels, "--timeout", "300", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "bench.json").read_text())
    results = {r["label"]: r for r in data["results"]}
    assert set(results) == set(labels.split(","))
    for label, r in results.items():
        assert "error" not in r, (label, r.get("error"))
        assert r["tokens_per_s"] > 0 and r["step_s_p50"] > 0 and len(r["losses"]) >= 2, label
        assert r["device"] == "cpu" and r["versions"]["trl"]
    # each configuration ran in its own process: one log per configuration
    assert {p.stem for p in tmp_path.glob("*.log")} == set(labels.split(","))
    md = (tmp_path / "bench.md").read_text()
    assert "| ours-sft |" in md and "Loss parity" in md
    parity = data["summary"]["parity"]["pairs"]
    assert any(p["pair"].startswith("parity-ours-sft") for p in parity)
    # summarising again from results.jsonl rebuilds the same tables
    again = subprocess.run([sys.executable, "-m", "bench.run", "--summarize", str(tmp_path), "--out",
                            str(tmp_path / "again")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and (tmp_path / "again" / "bench.md").read_text() == md
