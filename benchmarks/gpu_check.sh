#!/usr/bin/env bash
# GPU check for issue 13, ready to run on a machine with an NVIDIA GPU (none was available when it was written).
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (default benchmarks/results/gpu_check; needs a CUDA build of torch)
#
# 1. what torch sees (nvidia-smi, torch/CUDA/cuDNN versions, bf16 support);
# 2. the CUDA tests of the trainer (tests/training/test_device.py: fp32/fp16/bf16 training, --deterministic reruns);
# 3. training img/s on CUDA: benchmarks/training_speed.py --device cuda (fp32, channels_last, bf16 autocast; the
#    plain "timm-style" step next to edgeskd's trainer for the same model and batch);
# 4. a two-worker search with --device cuda (one worker per GPU; two workers on one GPU when there is one), a GPU
#    latency target and the per-device measurement lock; which GPU each worker used is read from its log;
# 5. the torch-cuda, ort-cuda and tensorrt latency targets on the search winner's ONNX model (a target whose runtime
#    is not installed is reported as such, not hidden).
# Every step writes into OUT_DIR; a failing step is recorded and the script goes on.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu_check}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
STATUS="$OUT/status.txt"
: > "$STATUS"

step() {  # step NAME COMMAND... : run, keep the output, record the exit code
  local name=$1; shift
  echo "== $name: $*" | tee -a "$STATUS"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s (log: $OUT/$name.log)" | tee -a "$STATUS"
  tail -n 5 "$OUT/$name.log" | sed 's/^/   | /'
  return 0
}

step environment bash -c "nvidia-smi; $PY - <<'EOF'
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())
print('cuda available', torch.cuda.is_available(), 'devices', torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(i, torch.cuda.get_device_name(i), 'bf16', torch.cuda.is_bf16_supported())
EOF"

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "torch sees no CUDA device here: nothing else to check" | tee -a "$STATUS"
  exit 1
fi
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")

step cuda_tests "$PY" -m pytest -q -rs tests/training/test_device.py tests/search/test_search_devices.py

step training_speed "$PY" benchmarks/training_speed.py --device cuda --skip-search --out "$OUT/training_speed_cuda"

WORKERS=2  # one per GPU on a 2-GPU machine; two on the one GPU otherwise
RUN="$OUT/search-2workers"
rm -rf "$RUN"
step search_two_workers "$PY" -m edgeskd search --data chest-xray-samples --teacher tf_efficientnet_lite0 \
  --space demo --target torch-cuda --latency-ms 50 --trials 6 --workers $WORKERS --device cuda \
  --run-dir "$RUN" --json
step search_worker_gpus bash -c "for f in '$RUN'/workers/worker-*.log; do echo \"\$f\"; grep -h -m3 -i 'cuda\|error' \"\$f\"; done; \
  $PY - <<'EOF'
import json, pathlib
run = pathlib.Path('$RUN')
for trial in sorted((run / 'trials').glob('*/model.safetensors')):
    from safetensors import safe_open
    with safe_open(str(trial), 'pt') as fh:
        info = json.loads(fh.metadata().get('info', '{}'))
    print(trial.parent.name, info.get('runtime'))
EOF"

MODEL=$(ls "$RUN"/bundle/*.onnx 2>/dev/null | head -n 1)
if [ -n "$MODEL" ]; then
  step latency_targets "$PY" -m edgeskd bench "$MODEL" -t torch-cuda -t ort-cuda -t tensorrt -t tensorrt:fp16 \
    --json --save "$OUT/latency_targets.json"
else
  echo "== latency_targets: no winner bundle in $RUN (see search_two_workers.log)" | tee -a "$STATUS"
fi
echo "GPUs: $GPUS; results in $OUT" | tee -a "$STATUS"
