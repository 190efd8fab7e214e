#!/bin/bash
# The fast model on the GPU with tempo and key off, then on (the daemon's defaults: at most analysis.cpu_share
# of the inference thread), at the same stream counts, one after the other on one machine: does the tracking
# budget keep the GPU capacity? For the machine of benchmarks/gpu.sh (its wheels in .whl/). Levels are judged
# by zero drops (read p99 against the 500 ms of the GPU target and producers lateness); each row
# also gives the share of scored windows that tempo and key left out. GPU_LEVELS (default 10000) and
# GPU_SECONDS (15); results (JSON, log) go to ${OUT:-/tmp/bench-out}.
source "$(dirname "$0")/gpu_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/analysis_gpu.log"
for analysis in off on; do
    extra=""
    [ "$analysis" = off ] && extra="--analysis-off"
    echo "== tempo and key $analysis ($(date -u +%T))" | tee -a "$OUT/analysis_gpu.log"
    python3 -m benchmarks.daemon_e2e --model models/fast --backend jax --runtime keras \
        --streams "${GPU_LEVELS:-10000}" --lift-stream-limit $extra \
        --sample-rate 16000 --chunk-seconds 1.0 --max-batch 1024 --max-wait-ms 100 --queue-size 8192 --workers 6 \
        --warmup 12 --seconds "${GPU_SECONDS:-15}" --procs-per-1000 1 \
        --json "$OUT/analysis_fast_jax_${analysis}.json" 2>&1 \
        | grep --line-buffered -v -E "^(W|I)[0-9]{4}|libmpg123" | tee -a "$OUT/analysis_gpu.log"
done
