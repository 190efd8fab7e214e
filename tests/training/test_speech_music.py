"""Speech/music data and figures: mixing levels, augments, group-disjoint folds, the window features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import genretag.training.speech_music as sm
from genretag.pipeline.audio import decode
from genretag.pipeline.speech_features import FEATURE_NAMES, window_features
from genretag.pipeline.windows import WindowSpec, frame_windows
from genretag.training.speech_data import (
    MUSIC,
    RATE,
    SPEECH,
    SetOptions,
    SpeechItem,
    active_rms,
    assign_folds,
    augment,
    build_set,
    level_db,
    mix_at,
    read_radio_examples,
    read_speech_manifest,
    rng_for,
)
from genretag.training.speech_music import SpeechWindows, figures, out_of_fold

SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"


def talk_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts at a syllable rate (4 Hz) with pauses: talk's envelope, not its sound."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    carrier = np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(len(t))
    return (0.2 * envelope * carrier).astype(np.float32)


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Steady chords with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0))
    return (0.05 * x + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("bed_db", [0.0, -6.0, -12.0, -18.0])
def test_a_mix_puts_the_bed_at_the_asked_level_under_the_talk(bed_db: float) -> None:
    speech, bed = talk_like(6.0), music_like(6.0, seed=1)
    mixed = mix_at(speech, bed, bed_db)
    assert np.max(np.abs(mixed)) < 0.99  # quiet enough: no limiting
    assert level_db(mixed - speech) - level_db(speech) == pytest.approx(bed_db, abs=0.01)


def test_the_peak_limiter_keeps_the_level_ratio() -> None:
    speech, bed = 4 * talk_like(4.0), 4 * music_like(4.0, seed=1)  # loud: the limiter acts
    mixed = mix_at(speech, bed, -6.0)
    unlimited = mix_at(speech / 100, bed / 100, -6.0).astype(np.float64) * 100
    assert np.max(np.abs(mixed)) == pytest.approx(0.99, abs=1e-6)
    np.testing.assert_allclose(mixed, unlimited * 0.99 / np.max(np.abs(unlimited)), atol=1e-6)


def test_active_level_ignores_pauses() -> None:
    tone = music_like(2.0)
    with_pause = np.concatenate([tone, np.zeros(2 * RATE, np.float32)])
    assert active_rms(with_pause) == pytest.approx(active_rms(tone), rel=0.01)
    assert active_rms(np.zeros(RATE, np.float32)) == 0.0
    with pytest.raises(ValueError):
        mix_at(np.zeros(RATE, np.float32), tone[:RATE], -6)
    with pytest.raises(ValueError):
        mix_at(tone[:RATE], tone[: RATE // 2], -6)


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


def test_augments_limit_the_band_and_add_noise() -> None:
    white = (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    rng = rng_for(0, "t")
    phone = augment(white, "telephone", rng)
    assert band_energy(phone, 300, 3400) > 0.9 and band_energy(phone, 5000, 8000) < 0.01
    low = augment(white, "lowpass", rng)
    assert band_energy(low, 7200, 8000) < 0.01
    tone = music_like(2.0)
    noisy = augment(tone, "noise", rng)
    assert 12 < level_db(tone) - level_db(noisy - tone) < 32
    assert augment(tone, "none", rng) is not tone and np.array_equal(augment(tone, "none", rng), tone)
    with pytest.raises(ValueError, match="unknown augment"):
        augment(tone, "reverb", rng)


def test_folds_deal_every_kind_round_robin_and_are_stable() -> None:
    kinds = {"talk": [f"t{i}" for i in range(10)], "artist": [f"a{i}" for i in range(23)]}
    folds = assign_folds(kinds, 5, seed=3)
    assert folds == assign_folds(kinds, 5, seed=3)
    assert set(folds) == set(kinds["talk"]) | set(kinds["artist"])
    for names in kinds.values():
        counts = np.bincount([folds[n] for n in names], minlength=5)
        assert counts.max() - counts.min() <= 1


def write_tiny_collections(root: Path) -> tuple[Path, Path]:
    """A speech manifest (4 talk recordings, 2 music clips) and a music collection of 10 artists."""
    (root / "speech" / "audio").mkdir(parents=True)
    rows = ["path,class,group,source,licence,segments"]
    for i in range(4):
        sf.write(root / "speech" / "audio" / f"talk{i}.wav", talk_like(6.0, seed=i), RATE)
        rows.append(f"audio/talk{i}.wav,speech,gtzan_ms:talk{i // 2 if i < 2 else i},gtzan_ms,x,")
    for i in range(2):
        sf.write(root / "speech" / "audio" / f"music{i}.wav", music_like(6.0, seed=i), RATE)
        rows.append(f"audio/music{i}.wav,music,gtzan_ms:music{i},gtzan_ms,x,")
    (root / "speech" / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "beds").mkdir()
    rows = ["path,labels,artist"]
    for i in range(10):
        sf.write(root / "beds" / f"b{i}.wav", music_like(4.0, seed=10 + i), 22050)
        rows.append(f"b{i}.wav,rock,Artist {i % 5}")
    (root / "beds" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "speech" / "manifest.csv", root / "beds" / "manifest.csv"


def test_the_set_is_group_disjoint_and_mixes_take_beds_from_their_fold(tmp_path: Path) -> None:
    speech, beds = write_tiny_collections(tmp_path)
    options = SetOptions(folds=3, seed=1, music_augment_share=0.5)
    items = build_set(speech, [beds], options)
    fold_of: dict[str, int] = {}
    for it in items:
        assert fold_of.setdefault(it.group, it.fold) == it.fold  # a group sits in one fold
        if it.bed_group:
            assert fold_of.setdefault(it.bed_group, it.fold) == it.fold  # and so does its bed's artist
    mixes = [it for it in items if it.condition.startswith("mix")]
    assert {it.condition for it in mixes} == {"mix+0", "mix-6", "mix-12", "mix-18"}
    assert all(it.label == SPEECH for it in mixes)
    assert {it.label for it in items if it.condition == "music"} == {MUSIC}
    talk = [it for it in items if it.condition == "speech"]
    assert len(talk) == 8 and sum(it.augment != "none" for it in talk) == 4
    again = build_set(speech, [beds], options)  # seeded: same audio, so the same embedding cache keys
    assert all(
        np.array_equal(a.pcm, b.pcm) and a.clip_id == b.clip_id for a, b in zip(items, again, strict=True)
    )


def fake_windows(items: list[SpeechItem], per_item: int = 4) -> SpeechWindows:
    rng = np.random.default_rng(0)
    labels = np.repeat([it.label for it in items], per_item)
    x = rng.standard_normal((len(labels), 6)) + 3 * labels[:, None]  # separable
    return SpeechWindows(
        x,
        x.copy(),
        labels,
        np.repeat(np.arange(len(items)), per_item),
        np.where(np.arange(len(labels)) % per_item == 0, -80.0, -20.0),
    )


def test_out_of_fold_scores_each_fold_from_the_others_and_leaves_silence_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pcm = np.zeros(1, np.float32)
    items = [
        SpeechItem(f"c{i}", f"g{i}", i % 3, i % 2, "speech" if i % 2 else "music", "none", "s", pcm)
        for i in range(12)
    ]
    windows = fake_windows(items)
    seen: list[tuple[set[int], set[int]]] = []

    def spy(method: str, train: SpeechWindows, C: float = 0.01, seed: int = 0):  # type: ignore[no-untyped-def]
        train_folds = {items[i].fold for i in train.item}
        return lambda w: seen.append((train_folds, {items[i].fold for i in w.item})) or w.labels * 1.0

    monkeypatch.setattr(sm, "fit_method", spy)
    scores = out_of_fold(items, windows, ["x"])
    assert all(not (train & test) for train, test in seen) and len(seen) == 3
    assert np.isnan(scores["x"][windows.levels_db <= -50]).all()
    result = figures(items, windows, scores)
    assert result["summary"]["x"]["pure_accuracy"] == 1.0
    assert result["silent_windows_left_out"] == 12
    assert result["conditions"]["speech (talk, clean)"]["windows"] == 18


def test_the_real_methods_learn_a_separable_toy_set() -> None:
    pcm = np.zeros(1, np.float32)
    items = [
        SpeechItem(f"c{i}", f"g{i}", i // 2 % 2, i % 2, "speech" if i % 2 else "music", "none", "s", pcm)
        for i in range(8)
    ]
    windows = fake_windows(items, per_item=10)
    scores = out_of_fold(items, windows, ["backbone", "baseline-lr"], C=1.0)
    for m in ("backbone", "baseline-lr"):
        assert figures(items, windows, scores)["summary"][m]["pure_accuracy"] > 0.9


def test_window_features_are_finite_gain_invariant_and_see_syllables() -> None:
    talk = talk_like(3.0)
    music = music_like(3.0)
    feats = window_features(np.stack([talk, 0.1 * talk, music, np.zeros_like(music)]))
    assert feats.shape == (4, len(FEATURE_NAMES)) and np.isfinite(feats).all()
    np.testing.assert_allclose(feats[0], feats[1], rtol=1e-2, atol=1e-3)
    i = FEATURE_NAMES.index
    assert feats[0, i("mod_2-6Hz")] > feats[2, i("mod_2-6Hz")]
    assert feats[0, i("low_energy_ratio")] > feats[2, i("low_energy_ratio")]
    with pytest.raises(ValueError):
        window_features(np.zeros((1, 100)))
    with pytest.raises(ValueError):
        window_features(np.zeros((1, 48000)), sr=22050)


@pytest.fixture(scope="module")
def speech_manifest() -> Path:
    manifest = SPEECH_DIR / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is missing: the real-speech check needs ../shared beside the repository")
    return manifest


def test_real_talk_and_music_differ_on_the_classic_cues(speech_manifest: Path) -> None:
    rows = read_speech_manifest(speech_manifest)
    groups = {r.group for r in rows}
    assert {r.group for r in rows if r.source == "fsdd"} == {
        f"fsdd:{n}" for n in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    }
    folds = assign_folds(
        {
            "talk": [r.group for r in rows if r.label == "speech"],
            "music": [r.group for r in rows if r.label == "music"],
        },
        5,
    )
    assert set(folds) == groups - {r.group for r in rows if r.label == "speech+music"}
    spec = WindowSpec(RATE, 3.0, 1.5)
    talk = [r for r in rows if r.label == "speech" and r.source == "gtzan_ms"][:2]
    music = [r for r in rows if r.label == "music"][:2]
    feats = {
        name: np.concatenate(
            [window_features(frame_windows(decode(r.path, RATE, 9.0), spec)[0]) for r in chosen]
        )
        for name, chosen in (("talk", talk), ("music", music))
    }
    i = FEATURE_NAMES.index("low_energy_ratio")
    assert np.median(feats["talk"][:, i]) > np.median(feats["music"][:, i])
    examples = read_radio_examples(speech_manifest)
    assert len(examples) == 3
    for e in examples:
        labels = e.window_labels(np.arange(0, 5.1, 1.5), 3.0)
        assert set(labels) <= {MUSIC, SPEECH}
