# Sourced by benchmarks/gpu.sh and gpu_overload.sh: the GPU box's environment for genretag.
# That machine has JAX on CUDA but no TensorFlow, and genretag is not installed: the wheels of the daemon's missing dependencies
# (in .whl/, carried along) go to /tmp/site, a package folder of symlinks to the source dirs stands in for
# the package, and Keras runs on JAX. Results go to $OUT (default /tmp/bench-out).
set -u
OUT=${OUT:-/tmp/bench-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
mkdir -p /tmp/pkg/genretag
for d in pipeline models training cli daemon; do ln -sfn "$PWD/$d" "/tmp/pkg/genretag/$d"; done
touch /tmp/pkg/genretag/__init__.py
mkdir -p /tmp/pkg/genretag-0.1.0.dist-info  # the CLI asks importlib.metadata for its version
printf 'Metadata-Version: 2.1\nName: genretag\nVersion: 0.1.0\n' >/tmp/pkg/genretag-0.1.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:/tmp/pkg:$PWD PATH=/tmp/site/bin:$PATH KERAS_BACKEND=jax PYTHONUNBUFFERED=1
# Compiled batch shapes survive the daemon restarts between levels.
export JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
