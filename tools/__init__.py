"""One-off scripts beside the package, not installed with it: the musicnn weight converter, the GPU recipes.

Run them from the repository root (``python -m tools.musicnn_convert ...``,
``python tools/distill_on_gpu.py ...``); they import the installed ``genretag``.
"""
