#!/usr/bin/env bash
# Create .venv and install medllm into it (editable).
#   bash scripts/setup.sh            # everything a user needs: training stack, TUI, judge client
#   bash scripts/setup.sh all,dev    # plus test and lint tools
# On a GPU image that already ships a CUDA torch (AutoDL & co), reuse it instead of
# downloading another: MEDLLM_SYSTEM_SITE=1 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if [ "${MEDLLM_SYSTEM_SITE:-0}" = 1 ]; then
    "$python" -m venv --system-site-packages .venv
  else
    "$python" -m venv .venv
  fi
fi
# torch first: otherwise a dependency pulls whichever torch build the index offers (GBs of CUDA).
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "medllm installed in $(pwd)/.venv (extras: ${extras})"
