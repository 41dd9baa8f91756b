#!/usr/bin/env bash
# The GPU checks, in one go, on a machine with a CUDA device and PyTorch (metazoo need not be
# installed: it runs from this checkout). Writes everything to $OUT (default: runs/gpu):
#
#   METAZOO_OMNIGLOT_DIR=/path/to/omniglot bash benchmarks/gpu.sh
#
# 1. the device; 2. Omniglot 5-way 1-shot MAML (paper protocol) trained on the GPU for
# $TRAIN_SECONDS seconds, then evaluated on 600 test tasks; 3. benchmarks/bench.py on the
# device, workload S then O, metazoo against the baseline in the same run. TF32=1 allows TF32
# (PyTorch's cuDNN default; metazoo's default is strict float32).
set -u
OUT=${OUT:-runs/gpu}
TRAIN_SECONDS=${TRAIN_SECONDS:-150}
BENCH_SECONDS=${BENCH_SECONDS:-120}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$LOG"

RUN=$(mktemp -d)/omniglot-maml
timeout $((TRAIN_SECONDS + 150)) $PY -m metazoo train --task omniglot --device cuda --n-way 5 \
    --k-shot 1 --query-shots 1 --inner-lr 0.4 --meta-batch 32 --iterations 60000 \
    --time-budget "$TRAIN_SECONDS" --eval-query-shots 15 --eval-steps 0 1 3 5 10 \
    --log-every 100 --checkpoint-every 1000 --no-progress --out "$RUN" ${TF32:+--tf32} 2>&1 | tee -a "$LOG"
cp "$RUN/results.json" "$OUT/omniglot-maml-results.json"
cp "$RUN/log.jsonl" "$OUT/omniglot-maml-log.jsonl"

for workload in S O; do
    timeout "$BENCH_SECONDS" $PY benchmarks/bench.py --device cuda --workloads $workload \
        --ks 1 5 10 20 --repeats 7 --budget 2 --no-control ${TF32:+--tf32} --out "$OUT/bench-$workload-cuda" 2>&1 | tee -a "$LOG"
done
