"""What the musicnn backbones take as input, without importing Keras.

Training frames and resamples clips for the backbones at import-light call
sites (``--help`` must stay instant), so the numbers live here and
:mod:`genretag.models.musicnn` builds on them.
"""

from __future__ import annotations

#: The backbones' sample rate (Hz); every musicnn-based model (tagger, student) runs at it.
BACKBONE_RATE = 16000
#: 186 hops of 256 samples: with a centred STFT this gives the 187 frames musicnn
#: was trained on.
WINDOW_SAMPLES = 47616
