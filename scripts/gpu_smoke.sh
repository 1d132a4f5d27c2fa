#!/usr/bin/env bash
# GPU smoke test (no network): the real pipeline on the tiny locally built model.
#   bash scripts/gpu_smoke.sh OUT_DIR [GPUS]
# GPUS=1: single-GPU path end to end (precision from the card, e.g. bf16 on H100).
# GPUS=2: SFT and DPO under accelerate launch (DDP), both ranks training.
# Wheels the GPU image lacks can be installed first from .device-wheels/ (see STACK notes).
set -uo pipefail
out="${1:?usage: gpu_smoke.sh OUT_DIR [GPUS]}"
gpus="${2:-1}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
common=(--run profiles/cpu_tiny.toml --set 'hardware.device="cuda"' --set "hardware.gpu_count=$gpus")
if [ "$gpus" -gt 1 ]; then
  common+=(--set stages.simpo.enabled=false --set stages.kto.enabled=false)
fi
PYTHONPATH=. "$python" -m medllm_tui "${common[@]}" --output-root "$out/run" > "$out/console.txt" 2>&1
status=$?
echo "exit code: $status" | tee -a "$out/console.txt"
# Keep only the evidence a reviewer reads (the full run folder stays under $out/run).
mkdir -p "$out/evidence"
for f in migration/gpu_completion_check.md migration/day1_run_summary.md training/method_comparison.md \
         eval_default.md thesis_support/thesis_readiness.md; do
  [ -f "$out/run/reports/$f" ] && cp "$out/run/reports/$f" "$out/evidence/$(echo "$f" | tr / _)"
done
cat "$out"/run/reports/training/*_metrics.json > "$out/evidence/training_metrics.json" 2>/dev/null
grep -h "\[medllm\] rank" "$out"/run/reports/runs/*/workers/*.log > "$out/evidence/ranks.txt" 2>/dev/null
find "$out/run/checkpoints" -path '*final*' -name 'adapter_model.safetensors' | sort > "$out/evidence/final_checkpoints.txt"
exit $status
