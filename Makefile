# Performance harness (not part of the test suite; results go to benchmarks/RESULTS.md).
#   make bench                    everything below, on the bundled model (MODEL=DIR for another artifact)
#   make bench-model|bench-analysis|bench-daemon|bench-training   one part; QUICK=1 for a short smoke run of each
#   make bench-programme, bench-replay, bench-overload   the programme benchmark, its offline replay, overload
# PYTHON: the project's virtual environment (.venv, or ../venv beside the checkout), else python3.

PYTHON ?= $(firstword $(wildcard .venv/bin/python ../venv/bin/python) python3)
MODEL ?= models/default
OUTDIR ?= benchmarks/results
TAG ?= $(notdir $(MODEL))
QUICK ?=
quick := $(if $(QUICK),--quick,)

.PHONY: bench bench-model bench-analysis bench-daemon bench-training bench-programme

bench: bench-model bench-analysis bench-daemon bench-training

bench-model:
	$(PYTHON) -m benchmarks.model_throughput --model $(MODEL) $(quick) --json $(OUTDIR)/model_$(TAG).json

# CPU per scored window of each [analysis] part beside genre (speech gate, mood, tags; tempo; key).
bench-analysis:
	$(PYTHON) -m benchmarks.analysis_cost $(quick) --json $(OUTDIR)/analysis_cost.json

# Batched search, the unbatched baseline (max_batch_size 1) side by side, and 64 streams as fast as possible.
bench-daemon:
	$(PYTHON) -m benchmarks.daemon_e2e --model $(MODEL) --baseline --rate0 64 $(quick) \
		--json $(OUTDIR)/e2e_$(TAG).json --plot $(OUTDIR)/latency_$(TAG).png

bench-training:
	$(PYTHON) -m benchmarks.training_input $(quick) --json $(OUTDIR)/training_input.json

# Programme benchmark (issue 13): radio-like programmes of held-out songs through the real daemon, one column
# per run (NAME:MODEL[:CONFIG.toml]). mer4q clips by artists not in music/ (GTZAN's blues and reggae artists are
# joined with theirs) are held out for the fast model and the previous default; the current default trained on
# mer4q too, so score it with an artifact trained without the programmes' artists (README). PROG_ARGS adds options
# (--programmes, --songs, --seed, --keep --workdir DIR; `python -m benchmarks.programme -h`).
SHARED ?= ../shared/data
PROG_RUNS ?= default:default fast:fast
PROG_SOURCES ?= mer4q
PROG_MANIFESTS ?= $(SHARED)/music/manifest.csv $(SHARED)/mer4q/manifest.csv
PROG_ARGS ?=

bench-programme:
	$(PYTHON) -m benchmarks.programme $(foreach m,$(PROG_MANIFESTS),--manifest $(m)) \
		$(foreach s,$(PROG_SOURCES),--source $(s)) $(foreach r,$(PROG_RUNS),--run $(r)) \
		--exclude-artists-of $(SHARED)/music/manifest.csv --json $(OUTDIR)/programme.json $(PROG_ARGS)

# Offline replay of kept programmes (PROG_ARGS="--keep --workdir DIR" above): the model scores each programme
# once (cached beside it), then every combination of REPLAY_SET's [smoothing] values is replayed through the
# daemon's own smoother in seconds. E.g. make bench-replay REPLAY_DIR=DIR REPLAY_SET="ema_alpha=0.2,0.3 change_windows=2,3"
REPLAY_DIR ?=
REPLAY_SET ?=

.PHONY: bench-replay
bench-replay:
	$(PYTHON) -m benchmarks.programme_replay --workdir $(REPLAY_DIR) --model $(MODEL) \
		$(foreach s,$(REPLAY_SET),--set $(s)) --json $(OUTDIR)/replay_$(TAG).json

# Graceful overload (issue 18 point 3): the capacity (largest stream count with zero drops and p99 under 250 ms),
# then 1.5x that many streams, with the daemon's default age bound and without it (batch.max_age_ms = 0); peak
# RSS, drops by reason and p99 of the windows scored, for each. Producers send 0.5 s messages, so that at 1.5x
# the daemon runs out before the load generator sharing its cores. OVERLOAD_MODEL defaults to the fast model;
# OVERLOAD_ARGS replaces the options: --capacity N (no search), --start N, --runtime keras, --workers N, ...
OVERLOAD_MODEL ?= models/fast
OVERLOAD_ARGS ?= --start 200 --chunk-seconds 0.5 --seconds 15

.PHONY: bench-overload
bench-overload:
	$(PYTHON) -m benchmarks.daemon_e2e --model $(OVERLOAD_MODEL) --overload --without-age-bound $(quick) \
		$(OVERLOAD_ARGS) --json $(OUTDIR)/overload_$(notdir $(OVERLOAD_MODEL)).json

# Tempo and key (issue 16 point 3): the streaming trackers (pipeline/tempo.py, pipeline/key.py) fed each GTZAN clip
# of gtzan_tempo_key.csv in 0.5 s blocks, beside the plain librosa recipes: Accuracy1/2 against both tempo
# references, MIREX key score against both key references, confidence checks and CPU cost per audio second.
.PHONY: bench-tempo-key
bench-tempo-key:
	$(PYTHON) -m benchmarks.tempo_key --references $(SHARED)/music/gtzan_tempo_key.csv \
		--json $(OUTDIR)/tempo_key.json

# Mood quadrants (issue 16 point 2): the mood head (class-balanced softmax regression per window on the genre head's
# backbone features) scored by artist-grouped 5-fold CV on $(SHARED)/mer4q (774 clips, clip rule of classify):
# accuracy, macro F1, per-quadrant recall against chance and a librosa clip-feature baseline; penultimate, taggram
# or both, per window or pooled per clip. Embeddings come from the genre recipe's cache (MOOD_CACHE; a miss embeds
# the clip); the librosa features are cached in ../cache/mood. MOOD_ARGS adds options (--no-nested, --c-grid ...).
MOOD_CACHE ?= ../cache/emb
MOOD_ARGS ?=

.PHONY: bench-mood
bench-mood:
	$(PYTHON) -m benchmarks.mood_cv --manifest $(SHARED)/mer4q/manifest.csv --cache-dir $(MOOD_CACHE) \
		--json $(OUTDIR)/mood_cv.json $(MOOD_ARGS)

# Speech or music per window (issue 16 point 1): talk, music and talk over music beds (0/-6/-12/-18 dB, noise and
# band-limit augments) from $(SHARED)/speech and both music collections, group-disjoint 5-fold window accuracy of a
# linear head on the genre model's backbone features against hand-made-feature baselines, the radio-style examples,
# and each method's CPU cost per window. Embeddings are cached per clip (SPEECH_CACHE; the music collections' clips
# reuse the genre head's cache, GENRE_CACHE, when it is there). SPEECH_ARGS adds options (--quick, --sweep-C ...).
SPEECH_CACHE ?= ../scratch/speech/emb
GENRE_CACHE ?= ../cache/emb
SPEECH_ARGS ?=

.PHONY: bench-speech
bench-speech:
	$(PYTHON) -m benchmarks.speech_music --speech-manifest $(SHARED)/speech/manifest.csv \
		--music-manifest $(SHARED)/music/manifest.csv --music-manifest $(SHARED)/mer4q/manifest.csv \
		--cache-dir $(SPEECH_CACHE) $(if $(wildcard $(GENRE_CACHE)),--music-cache-dir $(GENRE_CACHE),) \
		--json $(OUTDIR)/speech_music.json $(SPEECH_ARGS)
