#!/usr/bin/env bash
# GPU check of stop + resume (no network; tiny model): start a run, ask it to stop
# mid-SFT (RUN_DIR/STOP, what the TUI's stop key does), then --resume it.
#   bash scripts/gpu_stop_resume_check.sh OUT_DIR [GPUS]
set -uo pipefail
out="${1:?usage: gpu_stop_resume_check.sh OUT_DIR [GPUS]}"
gpus="${2:-2}"
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
args=(--run profiles/cpu_tiny.toml --output-root "$out" --set 'hardware.device="cuda"'
      --set "hardware.gpu_count=$gpus" --set stages.simpo.enabled=false --set stages.kto.enabled=false
      --set stages.eval.max_items=4 --set stages.sft.max_steps=120 --set stages.sft.save_steps=1000)
PYTHONPATH=. "$python" -m medllm_tui "${args[@]}" > "$out.first.log" 2>&1 &
pid=$!
run_dir=""
for _ in $(seq 1 600); do
  sleep 0.5
  run_dir=$(ls -d "$out"/reports/runs/*/ 2>/dev/null | head -1)
  if [ -n "$run_dir" ] && grep -q '"type": "loss", "pid": [0-9]*, "stage": "sft", "step": [2-9][0-9]' "$run_dir/events.jsonl" 2>/dev/null; then
    touch "$run_dir/STOP"; echo "STOP requested"; break
  fi
done
wait $pid; echo "first attempt exit code: $?"
ls "$out/checkpoints/layer_b/tiny_qwen2_sft/" 2>/dev/null
PYTHONPATH=. "$python" -m medllm_tui "${args[@]}" --resume > "$out.resume.log" 2>&1
echo "resume exit code: $?"
grep -h "decision resume\|stopped_on_request\|stopped on request" "$out.first.log" "$out.resume.log" | head -5
"$python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
m = json.load(open(f"{out}/reports/training/layer_b_tiny_qwen2_sft_metrics.json"))
steps = [p["step"] for p in json.load(open(m["loss_curve_file"]))["points"]]
print("sft steps", m["steps"], "curve continuous:", steps == list(range(1, m["steps"] + 1)),
      "world_size", m.get("world_size"))
print("strict_pass", json.load(open(f"{out}/reports/migration/gpu_completion_check.json"))["strict_pass"])
PY
