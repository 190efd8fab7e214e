"""Pure audio code shared by training and serving: decode, mono, resample, window.

No TensorFlow at import time, no I/O policy: functions over numpy arrays.
"""
