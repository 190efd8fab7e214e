#!/bin/bash
# Graceful overload on the GPU (issue 18 point 3), for the machine of benchmarks/gpu.sh (JAX on CUDA, no
# TensorFlow). The wheels in .whl/ that its image lacks: keras, namex, optree, pyzmq, sdnotify (no wheel on PyPI:
# `pip wheel --no-deps sdnotify==0.3.2`), soxr, soundfile, cffi, pycparser (librosa and its needs for
# training only).  The fast model at its capacity (GPU_CAPACITY streams, default 10,000, not
# searched), then 1.5x as many streams with the daemon's default age bound (batch.max_age_ms = 500) and, with
# GPU_WITHOUT_AGE_BOUND=1, again without it.  The capacity level is judged as the GPU section of RESULTS.md
# judges it: zero drops, producers on schedule, p99 under 500 ms.  Levels above the configuration's 10,000
# streams run with --lift-stream-limit (benchmarks/serve_lifted.py).
#
# GPU_ANALYSIS: "off" ([analysis] tempo = false, key = false, as the GPU figures before the trackers), "on" (the
# daemon's defaults), or both ("off on").  GPU_LEVELS="10000[,12000...]" runs just those stream counts, no
# overload level (each row gives the share of windows tempo and key left out: does their CPU share keep the
# capacity?).  Results (JSON, log) go to ${OUT:-/tmp/bench-out}.
source "$(dirname "$0")/gpu_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/overload_gpu.log"
date -u | tee -a "$OUT/overload_gpu.log"

for analysis in ${GPU_ANALYSIS:-off}; do
    extra=""
    [ "$analysis" = off ] && extra="--analysis-off"
    [ -n "${GPU_WITHOUT_AGE_BOUND:-}" ] && extra="$extra --without-age-bound"
    echo "== analysis $analysis: $extra" | tee -a "$OUT/overload_gpu.log"
    levels="--overload --capacity ${GPU_CAPACITY:-10000}"
    [ -n "${GPU_LEVELS:-}" ] && levels="--streams $GPU_LEVELS"
    python3 -m benchmarks.daemon_e2e --model models/fast --backend jax --runtime keras $levels \
        --p99-target 0.5 --lift-stream-limit $extra \
        --sample-rate 16000 --chunk-seconds 1.0 --max-batch 1024 --max-wait-ms 100 --queue-size 8192 --workers 6 \
        --warmup 12 --seconds "${GPU_SECONDS:-15}" --procs-per-1000 1 \
        --json "$OUT/overload_fast_jax_analysis_${analysis}.json" 2>&1 \
        | grep --line-buffered -v -E "^(W|I)[0-9]{4}|libmpg123" | tee -a "$OUT/overload_gpu.log"
done
