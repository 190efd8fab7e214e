# Performance harness (not part of the test suite; results go to benchmarks/RESULTS.md).
#   make bench                    everything below, on the bundled model (MODEL=DIR for another artifact)
#   make bench-model|bench-daemon|bench-training   one part; QUICK=1 for a short smoke run of each
# PYTHON: the project's virtual environment (.venv, or ../venv beside the checkout), else python3.

PYTHON ?= $(firstword $(wildcard .venv/bin/python ../venv/bin/python) python3)
MODEL ?= models/default
OUTDIR ?= benchmarks/results
TAG ?= $(notdir $(MODEL))
QUICK ?=
quick := $(if $(QUICK),--quick,)

.PHONY: bench bench-model bench-daemon bench-training

bench: bench-model bench-daemon bench-training

bench-model:
	$(PYTHON) -m benchmarks.model_throughput --model $(MODEL) $(quick) --json $(OUTDIR)/model_$(TAG).json

# Batched search, the unbatched baseline (max_batch_size 1) side by side, and 64 streams as fast as possible.
bench-daemon:
	$(PYTHON) -m benchmarks.daemon_e2e --model $(MODEL) --baseline --rate0 64 $(quick) \
		--json $(OUTDIR)/e2e_$(TAG).json --plot $(OUTDIR)/latency_$(TAG).png

bench-training:
	$(PYTHON) -m benchmarks.training_input $(quick) --json $(OUTDIR)/training_input.json
