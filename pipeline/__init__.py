"""Audio building blocks shared by training and serving: decode, mono, resample, windows, and the
signal analyses (STFT, tempo, key, speech features).

Despite the folder's name this is not the daemon's processing pipeline (that is
``genretag.daemon.tagging``: sources -> windows -> batches -> smoothing -> events); it holds the
pure functions that pipeline and the trainers are built from.  No TensorFlow at import time, no I/O
policy: functions and small stateful trackers over numpy arrays; imports nothing else of ours.
"""
