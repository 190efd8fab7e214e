"""A small, fast student distilled from the musicnn tagger, for many streams per core.

The bundled musicnn tagger runs two large backbones per window: about ten
windows a second on a 2-core CPU, i.e. a dozen live streams.  A broadcaster
monitoring hundreds of streams per box needs a model a hundred times cheaper.
From-scratch CNNs trained on our few hundred labelled clips over-fit the
artists (see ``compare``), but a student trained to reproduce the *teacher's*
view of each window learns from 500 soft numbers per window instead of one
hard label, and inherits much of what musicnn learned from a million songs.

The student sees what the teacher sees (per-window loudness normalisation,
the same log-mel front end) and is trained on two targets per window:

* the teacher's standardised features (musicnn penultimate and taggram of both
  backbones: the input of the teacher's linear head), by mean squared error;
* the teacher's genre probabilities, by KL divergence, through a softmax layer
  initialised with the teacher's own head.

The log-mel front end is fixed, so mels are computed once and the CNN trains on
them; the shipped model is again one Keras graph from PCM to probabilities.
No label is used beyond fitting the teacher's head, so unlabelled audio could
be added later as more distillation data.  The architecture itself (front end,
body, assembly) is :mod:`genretag.models.student`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from genretag.models.artifact import ArtifactManifest
from genretag.models.manifest_features import StudentFeatures, new_manifest
from genretag.models.model_types import STUDENT_SCORES_MODEL
from genretag.models.musicnn_input import BACKBONE_RATE, WINDOW_SAMPLES
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.backbone_train import (
    HeadConfig,
    LinearHead,
    backbone_outputs,
    dataset_clips,
    embed_clips,
    fit_head,
)
from genretag.training.reader import DatasetInfo

Config = TypeVar("Config")
Item = TypeVar("Item")
#: Threads that make the next batches (augmented windows for the teacher, masked mels for the
#: student) while the accelerator works on this one: done in line, the host's share of a step
#: cost more than the GPU's.
PREPARE_THREADS = 4


@dataclass(frozen=True)
class StudentConfig:
    """Student size and training schedule."""

    widths: tuple[int, ...] = (24, 48, 96, 192)  # channels of the stride-2 stages
    final_width: int = 256
    dropout: float = 0.3
    teacher_hop_seconds: float = 0.5  # distillation windows overlap more than the serving hop
    augmented_windows: int = 40960
    epochs: int = 25
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    kd_weight: float = 1.0  # KL(teacher probs || student probs), next to the feature MSE (weight 1)
    freq_masks: int = 2  # SpecAugment-style masks per training example
    time_masks: int = 2
    seed: int = 0


def teacher_head_layer(head: LinearHead, n_labels: int) -> Any:
    """A softmax Dense over *standardised* teacher features, initialised as the teacher's head."""
    import keras

    dense = keras.layers.Dense(n_labels, activation="softmax", name="scores")
    dense.build((None, head.coef.shape[1]))
    dense.set_weights([head.coef.T.astype(np.float32), head.intercept.astype(np.float32)])
    return dense


@dataclass
class DistillationData:
    """Per training window: log-mel input and the teacher's two targets."""

    mels: np.ndarray  # (n, frames, mels) float16 to halve memory
    features: np.ndarray  # (n, dim) standardised teacher features
    probs: np.ndarray  # (n, n_labels) teacher probabilities


def teacher_windows(clips: Sequence[np.ndarray], hop_seconds: float) -> np.ndarray:
    """Every window of every 16 kHz clip, ``hop_seconds`` apart."""
    spec = WindowSpec(BACKBONE_RATE, WINDOW_SAMPLES / BACKBONE_RATE, hop_seconds)
    return np.concatenate([frame_windows(pcm, spec)[0] for pcm in clips])


def label_windows(
    windows: np.ndarray,
    head: LinearHead,
    teacher: HeadConfig,
    augmented: int,
    rng: np.random.Generator,
    batch_size: int = 512,
) -> DistillationData:
    """Teacher targets and student inputs for ``windows`` plus ``augmented`` new windows made from them."""
    from genretag.models.student import build_mel_front

    backbones = backbone_outputs(teacher.variants, teacher.normalize_db)
    front = build_mel_front(teacher.normalize_db)
    features, mels = [], []

    def label(chunk: np.ndarray) -> None:
        out = backbones.predict_on_batch(chunk)  # type: ignore[attr-defined]
        features.append(
            np.concatenate(
                [
                    np.asarray(out[f"{v}/{layer}"], np.float32)
                    for v in teacher.variants
                    for layer in teacher.layers
                ],
                axis=1,
            )
        )
        mels.append(np.asarray(front.predict_on_batch(chunk), np.float16))

    for i in tqdm(range(0, len(windows), batch_size), desc="teacher", unit="batch"):
        label(windows[i : i + batch_size])
    generators = rng.spawn(-(-augmented // batch_size)) if augmented else []  # one a batch, for the threads

    def make(generator: np.random.Generator) -> np.ndarray:
        return augmented_windows(windows, batch_size, generator)

    with ThreadPoolExecutor(PREPARE_THREADS) as pool:
        made = _prefetched(pool, make, generators, PREPARE_THREADS)
        for chunk in tqdm(made, desc="teacher (augmented)", unit="batch", total=len(generators)):
            label(chunk)
    x = np.concatenate(features)
    return DistillationData(
        np.concatenate(mels),
        ((x - head.mean) / head.scale).astype(np.float32),
        head.predict(x).astype(np.float32),
    )


def augmented_windows(windows: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` new PCM windows for the teacher to label: mixtures of two windows, tilted spectra, noise.

    The student copies the teacher closely on the windows it trains on and
    much less on new artists.  Mixtures of two songs, a brighter or darker
    mix and a little noise are new audio the teacher can still label (no
    ground truth is needed), so the student sees far more of the teacher's
    function than the few hundred clips alone show it.
    """
    first, second = rng.integers(0, len(windows), (2, count))
    out = (
        rng.uniform(0.5, 1.0, (count, 1)) * windows[first]
        + rng.uniform(0.0, 0.6, (count, 1)) * windows[second]
    ).astype(np.float32)
    spectrum = np.fft.rfft(out, axis=1)
    freqs = np.fft.rfftfreq(out.shape[1], 1.0 / BACKBONE_RATE)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    slope_db = rng.uniform(-3.0, 3.0, (count, 1))  # per octave around 1 kHz
    out = np.fft.irfft(spectrum * 10.0 ** (slope_db * octaves / 20.0), n=out.shape[1], axis=1)
    rms = np.sqrt(np.mean(out**2, axis=1, keepdims=True)) + 1e-9
    snr_db = rng.uniform(15.0, 45.0, (count, 1))
    out += rng.standard_normal(out.shape) * rms * 10.0 ** (-snr_db / 20.0)
    return out.astype(np.float32)


def _spans(rng: np.random.Generator, n: int, size: int, count: int) -> np.ndarray:
    """``(n, size)`` bool: per example, ``count`` random spans of 0 to ``size // 8`` positions."""
    widths = rng.integers(0, size // 8 + 1, (n, count))
    starts = rng.integers(0, size - widths + 1)
    pos = np.arange(size)
    return np.asarray(((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(axis=1))


def spec_augment(mels: np.ndarray, config: StudentConfig, rng: np.random.Generator) -> np.ndarray:
    """A float32 copy of a batch of log-mels with SpecAugment masks: per example ``freq_masks``
    bands and ``time_masks`` spans of frames set to zero."""
    n, frames, bands = mels.shape
    out = mels.astype(np.float32)
    out *= ~_spans(rng, n, bands, config.freq_masks)[:, None, :]
    out *= ~_spans(rng, n, frames, config.time_masks)[:, :, None]
    return out


def _prefetched(
    pool: ThreadPoolExecutor, make: Callable[[Item], Any], items: Iterable[Item], ahead: int
) -> Iterator[Any]:
    """``make(item)`` for each item, in order, computed up to ``ahead`` items in advance by ``pool``."""
    pending: deque[Future[Any]] = deque()
    for item in items:
        pending.append(pool.submit(make, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _student_batch(
    data: DistillationData, config: StudentConfig, order: np.ndarray, epoch: int, start: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The batch at ``start`` in an epoch's ``order``: masked mels and the teacher's two targets."""
    idx = np.sort(order[start : start + config.batch_size])
    mels = spec_augment(data.mels[idx], config, np.random.default_rng((config.seed, epoch, start)))
    return mels, {"embedding": data.features[idx], "scores": data.probs[idx]}


def fit_student(
    data: DistillationData,
    head: LinearHead,
    config: StudentConfig,
    validation: DistillationData | None = None,
) -> Any:
    """Train the student CNN on mels; returns the trained mel -> probabilities model."""
    import keras

    from genretag.models.student import build_student_body

    keras.utils.set_random_seed(config.seed)
    n, frames, bands = data.mels.shape
    n_labels = data.probs.shape[1]
    body = build_student_body(
        frames, bands, data.features.shape[1], config.widths, config.final_width, config.dropout
    )
    scores = teacher_head_layer(head, n_labels)
    mel = keras.Input((frames, bands), name="mel")
    embedding = body(mel)
    trainer = keras.Model(mel, {"embedding": embedding, "scores": scores(embedding)})
    steps = int(np.ceil(n / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(1, steps * config.epochs))
    trainer.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss={"embedding": "mse", "scores": keras.losses.KLDivergence()},
        loss_weights={"embedding": 1.0, "scores": config.kd_weight},
    )
    rng = np.random.default_rng(config.seed + 1)
    with ThreadPoolExecutor(PREPARE_THREADS) as pool:
        for epoch in range(config.epochs):
            started = time.monotonic()
            make = partial(_student_batch, data, config, rng.permutation(n), epoch)
            batches = _prefetched(pool, make, range(0, n, config.batch_size), 2 * PREPARE_THREADS)
            losses = [trainer.train_on_batch(x, y, return_dict=True)["loss"] for x, y in batches]
            seconds = time.monotonic() - started
            message = f"epoch {epoch + 1}/{config.epochs}: loss {np.mean(losses):.4f} ({seconds:.0f} s)"
            if validation is not None:
                val = trainer.evaluate(
                    validation.mels.astype(np.float32),
                    {"embedding": validation.features, "scores": validation.probs},
                    batch_size=256,
                    verbose=0,
                    return_dict=True,
                )
                message += f", dev loss {val['loss']:.4f}"
            print(message, flush=True)  # one line per epoch, like Keras' own fit progress
    return keras.Model(mel, scores(embedding), name=STUDENT_SCORES_MODEL)


def assemble_student(student_scores: Any, normalize_db: float | None) -> Any:
    """PCM -> loudness -> log-mel -> trained student: the shipped one-graph model
    (:func:`genretag.models.student.assemble_student`)."""
    from genretag.models.student import assemble_student as assemble

    return assemble(student_scores, normalize_db)


def distillation_data(
    clips: Sequence[np.ndarray],
    head: LinearHead,
    config: StudentConfig,
    teacher: HeadConfig,
    augmented: bool = True,
) -> DistillationData:
    """Every window of the 16 kHz ``clips`` at the config's hop, plus (``augmented``) its augmented
    windows, with the teacher's targets: what :func:`fit_student` trains on."""
    rng = np.random.default_rng(config.seed)
    return label_windows(
        teacher_windows(clips, config.teacher_hop_seconds),
        head,
        teacher,
        config.augmented_windows if augmented else 0,
        rng,
    )


def distil(
    train_clips: Sequence[np.ndarray],
    head: LinearHead,
    config: StudentConfig,
    teacher: HeadConfig | None = None,
    dev_clips: Sequence[np.ndarray] = (),
) -> Any:
    """The whole recipe on 16 kHz clips: teacher-labelled windows, training, the PCM -> probabilities model.

    ``head`` is the teacher's linear head (fitted on the training clips'
    embeddings, as for the default model); dev clips only report a dev loss.
    """
    teacher = teacher or HeadConfig()
    data = distillation_data(train_clips, head, config, teacher)
    validation = distillation_data(dev_clips, head, config, teacher, augmented=False) if dev_clips else None
    return assemble_student(fit_student(data, head, config, validation), teacher.normalize_db)


def config_from_json(cls: type[Config], fields: dict[str, Any]) -> Config:
    """A frozen config dataclass (:class:`StudentConfig`, :class:`HeadConfig`) from its JSON form."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def save_teacher_head(
    path: Path, head: LinearHead, teacher: HeadConfig, labels: Sequence[str], **info: Any
) -> None:
    """Write a teacher's head for the GPU recipe: its arrays, its config and labels, and ``info`` (JSON)."""
    np.savez(
        path,
        mean=head.mean,
        scale=head.scale,
        coef=head.coef,
        intercept=head.intercept,
        teacher=json.dumps(asdict(teacher)),
        labels=np.array(list(labels)),
        info=json.dumps(info),
    )


def load_teacher_head(path: Path) -> tuple[LinearHead, HeadConfig, list[str], dict[str, Any]]:
    """``(head, teacher config, labels, info)`` as :func:`save_teacher_head` wrote them."""
    with np.load(path, allow_pickle=False) as h:
        head = LinearHead(h["mean"], h["scale"], h["coef"], h["intercept"])
        teacher = config_from_json(HeadConfig, json.loads(str(h["teacher"])))
        return head, teacher, [str(x) for x in h["labels"]], json.loads(str(h["info"]))


def student_manifest(
    labels: Sequence[str],
    config: StudentConfig,
    teacher: HeadConfig,
    distillation: dict[str, Any] | None = None,
    **fields: Any,
) -> ArtifactManifest:
    """The student's manifest: the teacher's labels and windows, and the recipe.

    ``distillation`` (what the student was trained on, where) goes into ``features``;
    ``fields`` are further manifest fields (``training_data``, ``dev_metrics``, ``calibration``).
    """
    features = StudentFeatures(
        normalize_db=teacher.normalize_db,
        teacher=asdict(teacher),
        student=asdict(config),
        distillation=distillation or {},
    )
    return new_manifest(
        features,
        labels=labels,
        sample_rate=BACKBONE_RATE,
        window_seconds=WINDOW_SAMPLES / BACKBONE_RATE,
        hop_seconds=teacher.hop_seconds,
        **fields,
    )


def train_student(
    dataset_dir: Path,
    info: DatasetInfo,
    splits: Sequence[str],
    cache_dir: Path | None,
    config: StudentConfig,
    teacher: HeadConfig | None = None,
) -> tuple[Any, ArtifactManifest]:
    """Distil the default musicnn recipe, fitted on ``splits`` of a built dataset; ``(model, manifest)``.

    On a CPU the teacher labels about ten windows a second, so the full recipe
    (some 60,000 windows) takes hours there; a GPU does it in minutes.
    """
    teacher = teacher or HeadConfig()
    clips = dataset_clips(dataset_dir, splits)
    emb = embed_clips(clips, teacher.variants, teacher.hop_seconds, teacher.normalize_db, cache_dir)
    head = fit_head(emb.select(teacher), emb.labels, emb.clip_ids, teacher.C, config.seed)
    with_dev = "dev" not in splits and info.counts["splits"].get("dev")
    dev = dataset_clips(dataset_dir, ("dev",)) if with_dev else []
    model = distil([c.pcm for c in clips], head, config, teacher, [c.pcm for c in dev])
    return model, student_manifest(info.labels, config, teacher)
