"""End to end through the real CLI: the whole pipeline (SFT → DPO, SimPO, KTO → evaluation of a fixed
item count) twice on the same card in one invocation, once with ``optimize = "off"`` on every training
stage (plain TRL) and once with the fast path, on a random-weight Qwen2.5-7B-shape model.

    python -m bench.e2e_suite --out bench-results/e2e                      # GPU machine, both modes
    python -m bench.e2e_suite --arch tiny --sft-rows 40 --pairs 16 --eval-items 8 --out /tmp/e2e   # CPU check

Phases (``--phases``, comma-separated): ``prepare`` (workload + model under ``--work``), ``off``, ``auto``.
A mode whose run folder already holds an unfinished run continues it with ``--resume`` (the stages it
finished keep their own recorded durations), so one mode may span several invocations on a machine whose
commands are time-limited. ``e2e.md`` / ``e2e.json`` are rebuilt from every finished mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.e2e_data import build_local_model, eval_file, write_workload

TRAINING = ("sft", "dpo", "simpo", "kto")
STAGES = (*TRAINING, "eval")


def write_profile(work: Path, arch: str, eval_items: int, cuda: bool) -> Path:
    """Profile with the batch settings left at their defaults (SFT 2 × 8, preference 2 × 4), one epoch."""
    tier = "tiny" if arch == "tiny" else arch.split("-")[-1]
    text = f"""# Written by bench/e2e_suite.py
name = "e2e_{arch}"
output_root = "."

[hardware]
gpu_count = {1 if cuda else 0}
device = "{'cuda' if cuda else 'cpu'}"

[model]
name_or_path = "{(work / 'model').as_posix()}"
tier = "{tier}"
smoke_test = true

[model.lora]
r = 16
alpha = 32
dropout = 0.05
target_modules = "all-linear"

[run]
seed = 42

[judges]
llm_judge = false
risk_judge = false
v2_llm_fallback = false

[data.sft]
path = "{(work / 'sft.jsonl').as_posix()}"

[data.preference]
path = "{(work / 'preference.jsonl').as_posix()}"

[data.eval_mcq]
path = "{eval_file().as_posix()}"

[stages.sft]
num_epochs = 1
save_steps = 1000

[stages.dpo]
num_epochs = 1
save_steps = 1000

[stages.simpo]
num_epochs = 1
save_steps = 1000

[stages.kto]
num_epochs = 1
save_steps = 1000

[stages.eval]
protocol = "generate"
max_items = {eval_items}
"""
    path = work / "profile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _runs(out_root: Path) -> list[Path]:
    runs = out_root / "reports" / "runs"
    return sorted(p for p in runs.iterdir() if (p / "events.jsonl").is_file()) if runs.is_dir() else []


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "events.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


def _finished(run: Path) -> bool:
    return any(e.get("type") == "run_finished" for e in _events(run))


def run_mode(mode: str, profile: Path, work: Path, out: Path, timeout: int) -> dict[str, Any]:
    """One CLI pipeline run (continued with --resume when an earlier invocation was cut short)."""
    root = work / f"out-{mode}"
    root.mkdir(parents=True, exist_ok=True)
    previous = _runs(root)
    sets = [a for stage in TRAINING for a in ("--set", f"stages.{stage}.optimize={mode}")]
    cmd = [sys.executable, "-m", "medllm_tui.cli", "--run", str(profile), "--output-root", str(root), *sets]
    if previous and not _finished(previous[-1]):
        cmd += ["--resume", str(previous[-1])]
    started = time.monotonic()
    log = out / f"{mode}.log"
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}).returncode
        except subprocess.TimeoutExpired:
            rc = -9
    wall = round(time.monotonic() - started, 1)
    print(f"[e2e] {mode}: exit {rc} after {wall} s (log {log})", flush=True)
    return {"mode": mode, "exit": rc, "invocation_wall_s": wall}


def stage_facts(root: Path) -> dict[str, Any]:
    """Per stage: duration (the runner's own, model loading included; a stage reused by --resume keeps the
    duration of the attempt that ran it), training wall and tokens/s from the stage's metrics file."""
    runs = _runs(root)
    if not runs:
        return {}
    durations: dict[str, float] = {}
    statuses: dict[str, str] = {}
    for run in runs:  # later attempts replace earlier ones; a reused stage keeps its first real duration
        for e in _events(run):
            if e.get("type") == "stage_finished":
                statuses[e["stage"]] = str(e.get("status", ""))
                if not e.get("reused"):
                    durations[e["stage"]] = e.get("duration_s", 0.0)
    facts: dict[str, Any] = {"run": runs[-1].name, "finished": _finished(runs[-1]), "stages": {}}
    training = root / "reports" / "training"
    for stage in STAGES:
        row: dict[str, Any] = {"duration_s": durations.get(stage), "status": statuses.get(stage)}
        files = sorted(training.glob(f"*{stage}_metrics.json")) if training.is_dir() else []
        if files and stage in TRAINING:
            metrics = json.loads(files[0].read_text(encoding="utf-8"))
            peak = metrics.get("peak_memory") or {}
            row.update(steps=metrics.get("steps"), train_wall_s=metrics.get("wall_time_s"),
                       tokens_per_s=metrics.get("tokens_per_second"), tokens=metrics.get("train_tokens"),
                       first_step_s=metrics.get("first_step_s"),
                       tokens_per_s_after_first_step=metrics.get("tokens_per_second_after_first_step"),
                       tokens_source=metrics.get("train_tokens_source"), final_loss=metrics.get("final_loss"),
                       peak_gib=peak.get("peak_allocated_gb"), failed=metrics.get("failed"),
                       settings={k: (metrics.get("final_settings") or metrics.get("settings") or {}).get(k)
                                 for k in ("micro_batch_size", "gradient_accumulation_steps")},
                       # the stage records the fast path's choices as speed_<key> decisions
                       decisions=[d for d in metrics.get("decisions", [])
                                  if str(d.get("kind", "")).removeprefix("speed_") in (
                                      "micro_batch", "packing", "activation_checkpointing", "simpo_loss", "path",
                                      "reference_logps")])
        facts["stages"][stage] = row
    return facts


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _mark(row: dict[str, Any]) -> str:
    return "(failed) " if row.get("status") == "failed" else ""


def summarize(results: dict[str, Any]) -> str:
    off, auto = results.get("off", {}).get("stages", {}), results.get("auto", {}).get("stages", {})
    lines = [f"Card: {results.get('device', 'unknown')}; workload: {json.dumps(results.get('workload', {}))}", "",
             "| stage | off: wall s | off: tokens/s | fast: wall s | fast: tokens/s | fast: after step 1 | "
             "wall ratio | fast plan |",
             "|---|---|---|---|---|---|---|---|"]
    totals = {"off": 0.0, "auto": 0.0}
    failed: list[str] = []
    for stage in STAGES:
        o, a = off.get(stage, {}), auto.get(stage, {})
        if "failed" in (o.get("status"), a.get("status")):
            # a failed stage's wall time says nothing about speed: shown, left out of the ratio and the total
            failed.append(f"{stage} ({'fast' if a.get('status') == 'failed' else 'off'} path failed)")
            lines.append(f"| {stage} | {_n(o.get('duration_s'), 1)} {_mark(o)}| {_n(o.get('tokens_per_s'))} | "
                         f"{_n(a.get('duration_s'), 1)} {_mark(a)}| {_n(a.get('tokens_per_s'))} | — | — | |")
            continue
        for mode, row in (("off", o), ("auto", a)):
            totals[mode] += row.get("duration_s") or 0.0
        ratio = (o["duration_s"] / a["duration_s"]) if o.get("duration_s") and a.get("duration_s") else None
        plan = a.get("settings") or {}
        plan_text = (f"{plan.get('micro_batch_size')} × {plan.get('gradient_accumulation_steps')}"
                     if plan.get("micro_batch_size") else "")
        lines.append(f"| {stage} | {_n(o.get('duration_s'), 1)} | {_n(o.get('tokens_per_s'))} | "
                     f"{_n(a.get('duration_s'), 1)} | {_n(a.get('tokens_per_s'))} | "
                     f"{_n(a.get('tokens_per_s_after_first_step'))} | "
                     f"{'—' if ratio is None else f'{ratio:.2f}×'} | {plan_text} |")
    ratio = totals["off"] / totals["auto"] if totals["auto"] else None
    lines.append(f"| **total** | {_n(totals['off'], 1)} | | {_n(totals['auto'], 1)} | | | "
                 f"**{'—' if ratio is None else f'{ratio:.2f}×'}** | |")
    lines += ["", "Wall s = the runner's stage duration (model loading and data preparation included). "
              "tokens/s = the stage's metrics file (training loop); after step 1 = from the second optimizer step on "
              "(the first holds compilation and warm-up). Total = the five stages"
              + (f", less the failed: {', '.join(failed)}." if failed else ".")]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results/e2e"))
    ap.add_argument("--work", type=Path, default=Path(".bench-work/e2e"))
    ap.add_argument("--arch", default="qwen2.5-7b")
    ap.add_argument("--phases", default="prepare,auto,off")
    ap.add_argument("--sft-rows", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--eval-items", type=int, default=200)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per mode in this invocation")
    ap.add_argument("--summarize", type=Path, help="rewrite e2e.md next to this e2e.json and print it")
    a = ap.parse_args()
    if a.summarize:
        md = summarize(json.loads(a.summarize.read_text(encoding="utf-8")))
        (a.summarize.parent / "e2e.md").write_text(md, encoding="utf-8")
        print(md)
        return 0
    import torch

    cuda = torch.cuda.is_available()
    # the profile names its files by absolute path: relative ones would resolve against the profile's folder
    a.out, a.work = a.out.resolve(), a.work.resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    state_file = a.out / "e2e.json"
    results = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
    results["device"] = torch.cuda.get_device_name() if cuda else "cpu"
    for phase in a.phases.split(","):
        if phase == "prepare":
            started = time.monotonic()
            model = build_local_model(a.work, a.arch, cuda)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(a.work / "model")
            results["workload"] = {**write_workload(a.work, tokenizer, a.sft_rows, a.pairs), **model,
                                   "eval_items": a.eval_items, "eval_file": eval_file().name}
            write_profile(a.work, a.arch, a.eval_items, cuda)
            print(f"[e2e] prepared in {time.monotonic() - started:.0f} s: {results['workload']}", flush=True)
        elif phase in ("off", "auto"):
            write_profile(a.work, a.arch, a.eval_items, cuda)  # cheap; keeps an earlier prepare's data and model
            invocation = run_mode(phase, a.work / "profile.toml", a.work, a.out, a.timeout)
            results[phase] = {**stage_facts(a.work / f"out-{phase}"), "last_invocation": invocation}
        else:
            raise SystemExit(f"unknown phase {phase!r}")
        state_file.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    md = summarize(results)
    (a.out / "e2e.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
