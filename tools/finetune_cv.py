"""Experiment: do fine-tuned backbones, or a head trained on augmented audio, beat the frozen default?

Issue 13 names two representation levers for the default model: fine-tuning the musicnn backbones with
augmentation on a GPU, and training the head on augmented audio.  This recipe measures both on the figures
the default is chosen by (leave-one-source-out and artist-grouped 5-fold CV, candidate-set metrics of
:mod:`genretag.training.source_cv`), with ``train-tagger``'s folds, windows (3 s, 1.5 s hop), calibration
(a temperature fitted on the LOSO scores) and scoring
(:func:`genretag.training.tagger_recipe.figures_from_logits`).  It ships no model.

Three steps, two places:

``prepare`` (here, where ``../shared`` lives) writes ``folds.npz``: the corpus in ``train-tagger``'s order
(clip ids, their Opus copies made by ``distill_inputs.py``, candidate sets, sources, artists) and every
clip's leave-one-source-out and artist fold.

``gpu`` (on ``device``, Keras 3 on JAX, set up as ``benchmarks/gpu.sh`` does) decodes the copies, cuts
the windows and writes, per scheme (``loso``, ``artist``), the out-of-fold logits of every window for:

* ``frozen``: the default recipe itself on the Opus copies (the control: frozen backbones, set-loss head
  of :func:`~genretag.training.set_head.fit_set_head`, C = 0.0003);
* ``aug_head``: frozen backbones, the head fitted on the clean windows plus ``--copies`` augmented
  versions of each (every clip still weighs one);
* ``finetune``: both backbones and the head trained end to end from the fold's ``frozen`` head on
  augmented random crops (:class:`FineTuner`: class-balanced set loss with the head's weights and L2,
  Adam, backbone learning rate ``--backbone-lr``, head ``--head-lr``; batch norms keep their statistics).

Augmentation (:func:`augment`, on the GPU, per window): a time shift of up to +-0.75 s, gain -12..+6 dB,
a spectral tilt of +-3 dB/octave around 1 kHz, with probability 0.5 a 4th-order low-pass at 3.5-8 kHz
(band-limited streams), and white noise at 15-35 dB SNR (``--augment shift``: the time shift alone).

``score`` (here) turns the logits into the figures and prints the table.

Commands (2026-12-07, one H100; 1,152 clips, 21,518 windows; the run below took 358 s)::

    python tools/finetune_cv.py prepare --manifest ../shared/data/music/manifest.csv \\
        --manifest ../shared/data/mer4q/manifest.csv --clips .dist/jobs/all/clips.json \\
        --out .dist/jobs/finetune
    # device: .dist/audio travels in four calls to a warm machine (about 35 MiB each beside the tree):
    # .whl + music/audio/emotify; music/audio/gtzan + mer4q/audio/{pop,reggae};
    # mer4q/audio/{blues,classical,country,electronic,hiphop}; mer4q/audio/jazz + .dist/jobs/finetune, then:
    KERAS_BACKEND=jax python3 tools/finetune_cv.py gpu .dist/jobs/finetune/folds.npz $OUT \\
        --copies 3 --epochs 2 --cache /tmp/ftcache
    # the same warm machine, from the cache (208 s): stronger fine-tuning, LOSO only
    KERAS_BACKEND=jax python3 tools/finetune_cv.py gpu .dist/jobs/finetune/folds.npz $OUT \\
        --schemes loso --variants finetune --copies 3 --epochs 4 --backbone-lr 3e-5 --cache /tmp/ftcache
    python tools/finetune_cv.py score .dist/jobs/finetune/folds.npz OUT/loso.npz OUT/artist.npz

Result: **neither lever wins; the default stays frozen.** hit@1 / macro ROC-AUC / mean per-genre recall /
precision at 70 % coverage (LOSO on the 1,138 clips whose fold saw one of their genres):

| variant | T | leave-one-source-out | artist-grouped 5-fold |
|---|---|---|---|
| shipped default (MP3s; manifest) | 1.34 | 0.652 / 0.877 / 0.573 / 0.740 | 0.760 / 0.966 / 0.755 / 0.855 |
| ``frozen`` (Opus; control) | 1.36 | 0.637 / 0.874 / 0.570 / 0.725 | 0.762 / 0.966 / 0.755 / 0.855 |
| ``aug_head`` (3 copies) | 1.79 | 0.619 / 0.856 / 0.520 / 0.711 | 0.766 / 0.966 / 0.762 / 0.860 |
| ``finetune`` (2 ep., 1e-5) | 1.56 | 0.610 / 0.869 / 0.541 / 0.706 | 0.749 / 0.964 / 0.747 / 0.851 |
| ``finetune`` (4 ep., 3e-5) | 1.68 | 0.627 / 0.861 / 0.529 / 0.708 | not run |

(ep.: epochs; then the backbone learning rate; the head's was 1e-3.)

Per held-out source (LOSO hit@1, Magnatune / GTZAN / AllMusic): control 0.528 / 0.815 / 0.664, aug_head
0.428 / 0.769 / 0.680, finetune (2 epochs) 0.498 / 0.754 / 0.641, finetune (4 epochs) 0.502 / 0.800 /
0.661.  Augmentation helps only the AllMusic fold of the frozen head (+0.016) and costs Magnatune 0.10;
fine-tuning lowers the training loss (0.90 -> 0.67) while the held-out source gets worse: with three
sources, adapting the backbones fits the training sources' sound.  Artist-grouped CV, whose folds share
the sources, barely moves either way (-0.013 to +0.004).  The win needed was LOSO hit@1 +0.02 with
artist CV within -0.01.  Not measured (the device time ran out): fine-tuning with the time shift alone
(``--augment shift``), a slower head.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SCHEMES = ("loso", "artist")
SHIFT_SECONDS = 0.75


# ---------------------------------------------------------------- prepare (here)


def prepare(manifests: Sequence[Path], clips_json: Path, out: Path) -> None:
    from genretag.training.corpus import candidates_of, corpus_labels, read_corpus
    from genretag.training.source_cv import artist_folds, source_folds
    from genretag.training.tagger_recipe import TaggerRecipe

    clips = read_corpus(manifests)
    names = corpus_labels(clips)
    listed = json.loads(clips_json.read_text())["clips"]
    copies = {c["clip_id"]: clips_json.parent / c["file"] for c in listed}
    candidates = candidates_of(clips, names)
    sources = np.array([c.source for c in clips])
    groups = np.array([c.group for c in clips])
    recipe = TaggerRecipe()

    def fold_ids(folds: Sequence[np.ndarray]) -> np.ndarray:
        ids = np.full(len(clips), -1)
        for i, test in enumerate(folds):
            ids[test] = i
        return ids

    files = [str(Path(copies[c.clip_id]).resolve().relative_to(Path.cwd().resolve())) for c in clips]
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "folds.npz",
        clip_ids=np.array([c.clip_id for c in clips]),
        files=np.array(files),
        names=np.array(names),
        candidates=candidates,
        sources=sources,
        groups=groups,
        loso=fold_ids(source_folds(sources)),
        artist=fold_ids(artist_folds(candidates, groups, recipe.artist_folds, recipe.seed)),
        C=recipe.head.C,
    )
    print(f"{out / 'folds.npz'}: {len(clips)} clips, {len(names)} genres")


# ---------------------------------------------------------------- gpu (device)


def augment(key: Any, pcm: Any) -> Any:
    """Augmented copies of a batch of 16 kHz windows (JAX; see the module docstring)."""
    import jax
    import jax.numpy as jnp

    from genretag.models.musicnn_input import BACKBONE_RATE

    n, length = pcm.shape
    k = jax.random.split(key, 6)
    freqs = jnp.fft.rfftfreq(length, 1.0 / BACKBONE_RATE)
    octaves = jnp.log2(jnp.maximum(freqs, 20.0) / 1000.0)
    slope = jax.random.uniform(k[0], (n, 1), minval=-3.0, maxval=3.0)
    gain_db = slope * octaves + jax.random.uniform(k[1], (n, 1), minval=-12.0, maxval=6.0)
    cutoff = jax.random.uniform(k[2], (n, 1), minval=3500.0, maxval=8000.0)
    butterworth = 1.0 / jnp.sqrt(1.0 + (freqs / cutoff) ** 8)  # 4th order
    lowpass = jnp.where(jax.random.bernoulli(k[3], 0.5, (n, 1)), butterworth, 1.0)
    out = jnp.fft.irfft(jnp.fft.rfft(pcm, axis=1) * (10.0 ** (gain_db / 20.0)) * lowpass, n=length, axis=1)
    rms = jnp.sqrt(jnp.mean(out**2, axis=1, keepdims=True)) + 1e-9
    snr_db = jax.random.uniform(k[4], (n, 1), minval=15.0, maxval=35.0)
    return out + jax.random.normal(k[5], out.shape) * rms * 10.0 ** (-snr_db / 20.0)


class Audio:
    """Every clip's 16 kHz PCM in one array; the windows ``train-tagger`` cuts, and shifted crops of them."""

    def __init__(self, files: Sequence[str], hop_seconds: float, cache: Path | None = None) -> None:
        from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES
        from genretag.pipeline.audio import decode
        from genretag.pipeline.windows import WindowSpec, tile_to_length

        stored = cache / "audio.npz" if cache else None
        if stored is not None and stored.is_file():
            with np.load(stored) as a:
                self.flat, self.offsets = a["flat"], a["offsets"]
        else:
            with ThreadPoolExecutor(16) as pool:
                pcm = list(pool.map(lambda f: decode(f, BACKBONE_RATE), files))
            pcm = [p if p.size >= WINDOW_SAMPLES else tile_to_length(p, WINDOW_SAMPLES) for p in pcm]
            self.offsets = np.concatenate([[0], np.cumsum([p.size for p in pcm])])
            self.flat = np.concatenate(pcm).astype(np.float32)
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                np.savez(stored, flat=self.flat, offsets=self.offsets)
        spec = WindowSpec(BACKBONE_RATE, WINDOW_SAMPLES / BACKBONE_RATE, hop_seconds)
        sizes = np.diff(self.offsets)
        counts = [1 + (size - spec.window_samples) // spec.hop_samples for size in sizes]
        self.clip_index = np.repeat(np.arange(len(sizes)), counts)
        self.starts = np.concatenate([np.arange(c) * spec.hop_samples for c in counts])  # within the clip
        self.length = WINDOW_SAMPLES
        self.shift = int(SHIFT_SECONDS * BACKBONE_RATE)

    def windows(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The windows ``rows``; with ``rng``, each moved by a random shift inside its clip."""
        clip = self.clip_index[rows]
        start = self.starts[rows]
        if rng is not None:
            room = self.offsets[clip + 1] - self.offsets[clip] - self.length
            start = np.clip(start + rng.integers(-self.shift, self.shift + 1, len(rows)), 0, room)
        begin = self.offsets[clip] + start
        return np.stack([self.flat[b : b + self.length] for b in begin])


def _feature_model(variants: Sequence[str], layers: Sequence[str], normalize_db: float | None) -> Any:
    """PCM -> the head's input features (the default's layers of every backbone, concatenated)."""
    import keras

    from genretag.models.musicnn_input import WINDOW_SAMPLES
    from genretag.training.backbone_train import backbone_outputs

    pcm = keras.Input((WINDOW_SAMPLES,), name="pcm")
    outputs = backbone_outputs(variants, normalize_db)(pcm)  # type: ignore[operator]
    model = keras.Model(
        pcm, keras.layers.Concatenate()([outputs[f"{v}/{layer}"] for v in variants for layer in layers])
    )
    for layer in model._flatten_layers():  # noqa: SLF001 - pretrained statistics stay (fine-tuning on ~1k clips)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


def _embed(model: Any, audio: Audio, rows: np.ndarray, key: Any = None, batch: int = 512) -> np.ndarray:
    """Features of the windows ``rows`` (``key``: augmented, shifted copies)."""
    import jax

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def run(tv: Any, ntv: Any, x: Any, k: Any) -> Any:
        if k is not None:
            x = augment(k, x)
        return model.stateless_call(tv, ntv, x)[0]

    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1))) if key is not None else None
    out = []
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        x = np.zeros((batch, audio.length), np.float32)
        x[: len(part)] = audio.windows(part, rng)
        k = jax.random.fold_in(key, i) if key is not None else None
        out.append(np.asarray(run(tv, ntv, x, k))[: len(part)])
    return np.concatenate(out)


def _fit(args: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> Any:
    from genretag.training.set_head import fit_set_head

    return fit_set_head(*args)


class FineTuner:
    """Backbones and head trained end to end on augmented crops (one compiled step for every fold).

    Adam, learning rates ``backbone_lr`` / ``head_lr`` warmed up over 5 % of the steps and then
    cosine-decayed; the loss is :func:`~genretag.training.set_head.fit_set_head`'s per window (weighted
    set log-loss plus its L2 penalty on the head), on standardised features as the frozen head sees them.
    """

    def __init__(self, model: Any, opts: argparse.Namespace) -> None:
        import jax
        import jax.numpy as jnp

        self.model, self.opts = model, opts
        self.ntv = [v.value for v in model.non_trainable_variables]

        def logits_of(params: Any, ntv: Any, x: Any, training: bool) -> Any:
            feats = model.stateless_call(params["backbone"], ntv, x, training=training)[0]
            return ((feats - params["mean"]) / params["scale"]) @ params["coef"].T + params["bias"]

        def loss_fn(params: Any, ntv: Any, x: Any, cand: Any, w: Any, l2: Any) -> Any:
            logp = jax.nn.log_softmax(logits_of(params, ntv, x, True), axis=-1)
            in_set = jax.nn.logsumexp(jnp.where(cand > 0, logp, -jnp.inf), axis=-1)
            return -(w * in_set).mean() + l2 * (params["coef"] ** 2).sum()

        def step(
            params: Any,
            moments: Any,
            ntv: Any,
            t: Any,
            steps: Any,
            x: Any,
            cand: Any,
            w: Any,
            l2: Any,
            key: Any,
        ) -> Any:
            x = augment(key, x) if opts.augment == "full" else x  # "shift": the random crops alone
            loss, grads = jax.value_and_grad(loss_fn)(params, ntv, x, cand, w, l2)
            rates = {
                "backbone": [opts.backbone_lr] * len(params["backbone"]),
                "coef": opts.head_lr,
                "bias": opts.head_lr,
                "mean": 0.0,
                "scale": 0.0,
            }
            warmup = jnp.maximum(1, steps // 20)
            factor = jnp.where(
                t < warmup,
                (t + 1) / warmup,
                0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t - warmup, steps) / steps)),
            )
            m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, moments[0], grads)
            v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, moments[1], grads)
            m_hat, v_hat = 1 - 0.9 ** (t + 1), 1 - 0.999 ** (t + 1)
            params = jax.tree.map(
                lambda p, m, v, lr: p - lr * factor * (m / m_hat) / (jnp.sqrt(v / v_hat) + 1e-8),
                params,
                m,
                v,
                rates,
            )
            return params, (m, v), loss

        self.step = jax.jit(step)
        self.infer = jax.jit(lambda params, ntv, x: logits_of(params, ntv, x, False))

    def fit(
        self,
        head: Any,
        audio: Audio,
        rows: np.ndarray,
        candidates: np.ndarray,
        weights: np.ndarray,
        C: float,
        seed: int,
    ) -> Any:
        """Train from the frozen ``head`` on the windows ``rows``; returns the trained parameters."""
        import jax
        import jax.numpy as jnp

        opts = self.opts
        params = {
            "backbone": [v.value for v in self.model.trainable_variables],
            "coef": jnp.asarray(head.coef, jnp.float32),
            "bias": jnp.asarray(head.intercept, jnp.float32),
            "mean": jnp.asarray(head.mean, jnp.float32),
            "scale": jnp.asarray(head.scale, jnp.float32),
        }
        moments = jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, params)
        steps = jnp.asarray(max(2, opts.epochs * (len(rows) // opts.batch)))
        l2 = jnp.asarray(1.0 / (2.0 * C * len(rows)), jnp.float32)  # fit_set_head's penalty, per window
        rng = np.random.default_rng(seed)
        key = jax.random.PRNGKey(seed)
        started, n = time.monotonic(), 0
        with ThreadPoolExecutor(4) as pool:
            for epoch in range(opts.epochs):
                order = rng.permutation(len(rows))
                picks = [order[i : i + opts.batch] for i in range(0, len(order) - opts.batch + 1, opts.batch)]
                seeds = rng.integers(0, 2**31, len(picks))
                batches = pool.map(
                    lambda a: audio.windows(rows[a[0]], np.random.default_rng(a[1])),
                    zip(picks, seeds, strict=True),
                )
                losses = []
                for pick, x in zip(picks, batches, strict=True):
                    key, sub = jax.random.split(key)
                    params, moments, loss = self.step(
                        params,
                        moments,
                        self.ntv,
                        jnp.asarray(n),
                        steps,
                        x,
                        candidates[pick],
                        weights[pick],
                        l2,
                        sub,
                    )
                    losses.append(loss)
                    n += 1
                mean_loss = float(np.mean([float(v) for v in losses]))
                print(
                    f"    epoch {epoch + 1}/{opts.epochs}: loss {mean_loss:.4f} "
                    f"({n} steps, {time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        return params

    def predict(self, params: Any, audio: Audio, rows: np.ndarray, batch: int = 512) -> np.ndarray:
        out = []
        for i in range(0, len(rows), batch):
            part = rows[i : i + batch]
            x = np.zeros((batch, audio.length), np.float32)
            x[: len(part)] = audio.windows(part)
            out.append(np.asarray(self.infer(params, self.ntv, x))[: len(part)])
        return np.concatenate(out)


def gpu(folds_npz: Path, out: Path, opts: argparse.Namespace) -> None:
    import jax

    from genretag.training.backbone_train import HeadConfig
    from genretag.training.set_head import window_weights
    from genretag.training.source_cv import head_logits

    t0 = time.monotonic()
    f = np.load(folds_npz)
    config = HeadConfig(C=float(f["C"]))
    audio = Audio([str(x) for x in f["files"]], config.hop_seconds, opts.cache)
    cand_w = f["candidates"][audio.clip_index].astype(np.float32)
    n_win = len(audio.clip_index)
    print(f"[{time.monotonic() - t0:.0f} s] {len(f['files'])} clips decoded, {n_win} windows", flush=True)
    model = _feature_model(config.variants, config.layers, config.normalize_db)
    all_rows = np.arange(n_win)
    stored = opts.cache / f"embeddings-{opts.copies}.npz" if opts.cache else None
    if stored is not None and stored.is_file():
        with np.load(stored) as e:
            clean, copies = e["clean"], [e[f"copy{r}"] for r in range(opts.copies)]
    else:
        clean = _embed(model, audio, all_rows)
        copies = [_embed(model, audio, all_rows, jax.random.PRNGKey(100 + r)) for r in range(opts.copies)]
        if stored is not None:
            np.savez(stored, clean=clean, **{f"copy{r}": c for r, c in enumerate(copies)})
    print(f"[{time.monotonic() - t0:.0f} s] embedded: clean and {opts.copies} augmented copies", flush=True)
    tuner = FineTuner(model, opts)
    out.mkdir(parents=True, exist_ok=True)
    for scheme in opts.schemes.split(","):
        fold_of = f[scheme][audio.clip_index]
        n_folds = int(f[scheme].max()) + 1
        results = {v: np.zeros((n_win, cand_w.shape[1]), np.float32) for v in opts.variants.split(",")}
        jobs = []
        for k in range(n_folds):
            tr = fold_of != k
            jobs.append((clean[tr], cand_w[tr], audio.clip_index[tr], config.C))
            if "aug_head" in results:
                x_aug = np.concatenate([clean[tr]] + [c[tr] for c in copies])
                ids = np.tile(audio.clip_index[tr], 1 + opts.copies)
                jobs.append((x_aug, np.tile(cand_w[tr], (1 + opts.copies, 1)), ids, config.C))
        os.environ["OMP_NUM_THREADS"] = "2"  # for the spawned fitters
        with ProcessPoolExecutor(min(len(jobs), 12), mp_context=multiprocessing.get_context("spawn")) as pool:
            heads = list(pool.map(_fit, jobs))
        per_fold = len(jobs) // n_folds
        print(f"[{time.monotonic() - t0:.0f} s] {scheme}: frozen heads fitted", flush=True)
        for k in range(n_folds):
            test = fold_of == k
            frozen, aug_head = heads[per_fold * k], heads[per_fold * k + per_fold - 1]
            if "frozen" in results:
                results["frozen"][test] = head_logits(frozen, clean[test])
            if "aug_head" in results:
                results["aug_head"][test] = head_logits(aug_head, clean[test])
            if "finetune" in results:
                tr = np.flatnonzero(fold_of != k)
                w = window_weights(cand_w[tr], audio.clip_index[tr]).astype(np.float32)
                print(f"  {scheme} fold {k}: fine-tuning on {len(tr)} windows", flush=True)
                params = tuner.fit(frozen, audio, tr, cand_w[tr], w, config.C, seed=k)
                results["finetune"][test] = tuner.predict(params, audio, np.flatnonzero(test))
            arrays: dict[str, Any] = {"clip_index": audio.clip_index, "folds_done": k + 1, **results}
            np.savez(out / f"{scheme}{opts.tag}.npz", **arrays)  # after every fold: an early stop keeps them
            print(f"[{time.monotonic() - t0:.0f} s] {scheme} fold {k + 1}/{n_folds} done", flush=True)
    (out / f"run{opts.tag}.json").write_text(
        json.dumps(
            {
                **vars(opts),
                "windows": n_win,
                "seconds": time.monotonic() - t0,
                "device": str(jax.devices()[0].device_kind),
            },
            default=str,
        )
    )


# ---------------------------------------------------------------- score (here)


def score(folds_npz: Path, results: Sequence[Path], out: Path | None) -> dict[str, Any]:
    from genretag.training.source_cv import CorpusWindows, trained_genres
    from genretag.training.tagger_recipe import TaggerRecipe, figures_from_logits

    f = np.load(folds_npz)
    names = [str(x) for x in f["names"]]
    by_scheme = {p.stem.split("-")[0]: np.load(p) for p in results}
    clip_index = by_scheme["loso"]["clip_index"]
    corpus = CorpusWindows(
        np.zeros((len(clip_index), 0)), clip_index, f["candidates"], f["groups"], f["sources"]
    )
    trained = {
        s: trained_genres(f["candidates"], [f[s] == k for k in range(int(f[s].max()) + 1)]) for s in SCHEMES
    }
    variants = [
        v for v in ("frozen", "aug_head", "finetune") if all(v in r.files for r in by_scheme.values())
    ]
    figures = {}
    keys = ("hit_at_1", "macro_roc_auc", "mean_per_genre_recall", "precision_at_70")
    print("| variant | T | LOSO hit@1 / AUC / recall / prec@70 | artist CV hit@1 / AUC / recall / prec@70 |")
    print("|---|---|---|---|")
    for v in variants:
        figs, temperature, _ = figures_from_logits(
            corpus,
            names,
            TaggerRecipe(),
            (by_scheme["loso"][v], trained["loso"]),
            (by_scheme["artist"][v], trained["artist"]),
        )
        figures[v] = {"temperature": temperature, **figs}
        cells = [
            " / ".join(f"{figs[s][k]:.3f}" for k in keys)
            for s in ("leave_one_source_out", "artist_grouped_cv")
        ]
        print(f"| {v} | {temperature:.2f} | {cells[0]} | {cells[1]} |")
    if out is not None:
        out.write_text(json.dumps(figures, indent=1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--manifest", type=Path, action="append", required=True)
    p.add_argument(
        "--clips", type=Path, required=True, help="clips.json of distill_inputs.py (the Opus copies)"
    )
    p.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("gpu")
    g.add_argument("folds", type=Path)
    g.add_argument("out", type=Path)
    g.add_argument("--schemes", default="loso,artist")
    g.add_argument("--variants", default="frozen,aug_head,finetune")
    g.add_argument("--copies", type=int, default=3, help="augmented copies of each window for aug_head")
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--backbone-lr", type=float, default=1e-5)
    g.add_argument("--head-lr", type=float, default=1e-3)
    g.add_argument(
        "--augment",
        choices=("full", "shift"),
        default="full",
        help="fine-tuning augmentation: all of it, or the random time shift alone",
    )
    g.add_argument("--tag", default="", help="suffix of the output files (-NAME)")
    g.add_argument(
        "--cache", type=Path, help="keeps the decoded audio and the frozen embeddings between runs"
    )
    s = sub.add_parser("score")
    s.add_argument("folds", type=Path)
    s.add_argument("results", type=Path, nargs="+", help="loso.npz and artist.npz of the gpu step")
    s.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.manifest, args.clips, args.out)
    elif args.command == "gpu":
        gpu(args.folds, args.out, args)
    else:
        score(args.folds, args.results, args.json)


if __name__ == "__main__":
    main()
