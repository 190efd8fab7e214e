"""Model builders, the self-describing model artifact, and the Predictor interface.

This package is the contract between training and serving: a predictor takes a
batch of raw PCM windows and returns per-label scores.
"""
