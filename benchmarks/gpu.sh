#!/bin/bash
# The GPU half of the harness, for a machine with JAX on CUDA but no TensorFlow (the lent H100/H200).
#
# Run from the repository root with the wheels of the daemon's missing dependencies in .whl/ (keras,
# pyzmq, soxr, soundfile, ...; see benchmarks/RESULTS.md) and an optional second artifact in
# $GPU_EXTRA_MODEL.  genretag is not installed: a package folder of symlinks to the source dirs stands in.
# Results (JSON and logs) go to ${OUT:-/tmp/bench-out}.
source "$(dirname "$0")/gpu_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"

MODELS=${GPU_MODELS:-models/default}
# GPU_SKIP_MODEL=1 runs the streams part only.
[ -n "${GPU_SKIP_MODEL:-}" ] && MODELS=""
for model in $MODELS; do
    tag=$(basename "$model")
    python3 -m benchmarks.model_throughput --model "$model" --backend jax --seconds 1 \
        --json "$OUT/model_${tag}_jax.json" 2>&1 | grep -v -E "^(W|I)[0-9]{4}" | tail -16
done
# Streams per GPU: producers at the model rate (16 kHz) in 1 s chunks (GPU_CHUNK_SECONDS); GPU_WORKERS ingest
# processes decode and window them (zmq:...?workers=N; 0: the daemon's own thread, see RESULTS.md).
for spec in ${GPU_E2E:-models/default:500,1000}; do
    model=${spec%%:*}; levels=${spec#*:}
    python3 -m benchmarks.daemon_e2e --model "$model" --backend jax --streams "$levels" --sample-rate 16000 \
        --chunk-seconds ${GPU_CHUNK_SECONDS:-1.0} --max-batch 1024 --max-wait-ms 100 --queue-size 8192 --workers ${GPU_WORKERS:-0} --warmup 12 \
        --seconds ${GPU_SECONDS:-15} --procs-per-1000 1 --json "$OUT/e2e_$(basename "$model")_jax.json" 2>&1 \
        | grep -v -E "^(W|I)[0-9]{4}|libmpg123" | tail -14
done
