"""In-graph log-mel front end that reproduces librosa's default mel spectrogram.

Models shipped by genretag take raw PCM windows, so the features a network was
trained on must be computed inside the Keras graph.  The pretrained musicnn
weights expect ``log10(10000 * M + 1)`` where ``M`` is
``librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96)``
with every other argument at librosa's default.  ``keras.layers.MelSpectrogram``
is not a substitute: it builds an HTK-scale filterbank without Slaney area
normalisation and reflect-pads the signal, so the network would see features it
was never trained on.  This layer therefore

* zero-pads ``n_fft // 2`` samples on each side (librosa >= 0.10 ``center=True``
  with ``pad_mode="constant"``),
* takes the STFT of periodic-Hann frames with ``keras.ops.stft``,
* multiplies the power spectrum by ``librosa.filters.mel(...)``, stored as a
  non-trainable weight so a saved model carries the exact filterbank it used,
* compresses with ``log1p(scale * M) / ln(10)`` in float32.

Only ``keras.ops`` is used in :meth:`LogMelFrontEnd.call`, so the layer runs
under the TensorFlow and the JAX backends alike.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops


def n_frames(n_samples: int, n_fft: int = 512, hop_length: int = 256) -> int:
    """Frames librosa's centred STFT yields for a signal of ``n_samples`` samples."""
    return (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length + 1


@keras.saving.register_keras_serializable(package="genretag")
class LogMelFrontEnd(keras.layers.Layer):
    """Map ``(batch, samples)`` PCM to ``(batch, frames, n_mels)`` log-compressed mel power.

    Parameters
    ----------
    sample_rate : sampling rate of the PCM in Hz; fixes the mel filterbank.
    n_fft : FFT and frame length in samples.
    hop_length : frame advance in samples.
    n_mels : number of mel bands.
    log_scale : ``C`` in ``log10(C * M + 1)``; musicnn was trained with 10000.
    **kwargs : standard :class:`keras.layers.Layer` arguments.  ``dtype``
        defaults to ``"float32"`` so that a mixed-precision policy cannot push
        the power spectrum into float16, where ``C * M`` overflows.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 96,
        log_scale: float = 10000.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if min(sample_rate, n_fft, hop_length, n_mels) <= 0:
            raise ValueError(
                "sample_rate, n_fft, hop_length and n_mels must be positive, got "
                f"{sample_rate}, {n_fft}, {hop_length}, {n_mels}"
            )
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.log_scale = float(log_scale)
        self.input_spec = keras.layers.InputSpec(ndim=2)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # librosa is imported here, not at module import, so that merely
        # deserialising a model does not pay for it before it is needed.
        import librosa

        mel_basis = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        self.mel_basis = self.add_weight(
            name="mel_basis",
            shape=(self.n_fft // 2 + 1, self.n_mels),
            initializer=keras.initializers.Constant(mel_basis.T.astype(np.float32)),
            trainable=False,
            dtype="float32",
        )
        # The same window librosa uses: scipy's periodic ("fftbins") Hann.
        self._window = librosa.filters.get_window("hann", self.n_fft, fftbins=True).astype(np.float32)

    def call(self, pcm: Any) -> Any:
        pcm = ops.cast(pcm, "float32")
        half = self.n_fft // 2
        padded = ops.pad(pcm, [[0, 0], [half, half]])
        real, imag = ops.stft(
            padded,
            sequence_length=self.n_fft,
            sequence_stride=self.hop_length,
            fft_length=self.n_fft,
            window=self._window,
            center=False,
        )
        power = ops.square(real) + ops.square(imag)
        mel = ops.matmul(power, self.mel_basis)
        # log1p keeps full precision for quiet bins where 1 + C*M rounds to 1.
        return ops.log1p(self.log_scale * mel) / math.log(10.0)

    def power_to_log_mel(self) -> MelCompression:
        """The part of this layer after the power spectrum, as a layer of its own (for serving exports)."""
        return MelCompression(
            np.asarray(ops.convert_to_numpy(self.mel_basis)), self.log_scale, name=f"{self.name}_from_power"
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch, samples = input_shape
        frames = None if samples is None else n_frames(samples, self.n_fft, self.hop_length)
        return (batch, frames, self.n_mels)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            log_scale=self.log_scale,
        )
        return config


class MelCompression(keras.layers.Layer):
    """Map a power spectrum ``(batch, frames, n_fft // 2 + 1)`` to :class:`LogMelFrontEnd`'s log-mel.

    The head of a serving export (:mod:`genretag.models.serving_export`): the
    runtime computes the power spectrum in numpy once per window, and the
    filterbank stays in the graph with the weights the model was trained with.
    It writes ``log(1 + x)`` where the front end has ``log1p``, because
    OpenVINO has no ``Log1p`` in its ONNX frontend; they differ only where
    ``C * M < 1e-7``, by less than 1e-7 after compression.  Never saved in a
    ``.keras`` archive, so it is not registered for deserialisation.
    """

    def __init__(self, mel_basis: np.ndarray, log_scale: float, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self._mel_basis = np.asarray(mel_basis, np.float32)
        self.log_scale = float(log_scale)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.mel_basis = self.add_weight(
            name="mel_basis",
            shape=self._mel_basis.shape,
            trainable=False,
            dtype="float32",
            initializer=keras.initializers.Constant(self._mel_basis),
        )

    def call(self, power: Any) -> Any:
        mel = ops.matmul(ops.cast(power, "float32"), self.mel_basis)
        return ops.log(1.0 + self.log_scale * mel) / math.log(10.0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self._mel_basis.shape[1])
