#!/usr/bin/env bash
# GPU checks (issue 9), under 8 minutes on one GPU:
#   1. the CUDA tests (python -m pytest -m cuda);
#   2. every example spec for $STEPS steps (default 300) on the device and on the CPU, compared
#      (tolerances in scripts/compare_devices.py: test loss 10 % relative, accuracy 0.03);
#   3. the step-time benchmark against plain PyTorch on the device (trainctl bench
#      --compare-torch), for the MLP and the CNN digits specs.
# Prints a summary to paste into docs/performance.md.
# Usage: scripts/gpu_check.sh [DEVICE]   (default cuda; "cpu" runs steps 2 and 3 on the CPU
# only, a dry run of the script where there is no GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-cuda}"
STEPS="${STEPS:-300}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
echo "== gpu_check on $DEVICE: $(python -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")')" | tee -a "$LOG"

echo "== 1. CUDA tests" | tee -a "$LOG"
if [ "$DEVICE" = cpu ]; then
  echo "skipped (DEVICE=cpu)" | tee -a "$LOG"
else
  timeout 150 python -m pytest -q -p no:cacheprovider -m cuda 2>&1 | tail -3 | tee -a "$LOG"
fi

echo "== 2. example specs, $STEPS steps on $DEVICE against the CPU" | tee -a "$LOG"
status=0
timeout 270 python scripts/compare_devices.py --device "$DEVICE" --steps "$STEPS" specs/*.yaml \
  2>&1 | tee -a "$LOG" || status=1

echo "== 3. step time against plain PyTorch on $DEVICE" | tee -a "$LOG"
for spec in specs/digits_mlp.yaml specs/digits_cnn.yaml; do
  timeout 30 trainctl bench "$spec" --device "$DEVICE" --compare-torch 2>&1 | tail -4 \
    | tee -a "$LOG" || status=1
done

echo
echo "== summary (paste into docs/performance.md, with the command: scripts/gpu_check.sh $DEVICE)"
cat "$LOG"
exit "$status"
