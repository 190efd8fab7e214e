"""The help of ``--model`` where it names a model artifact (classify, evaluate, serve): one wording.

``train`` names a model *type* instead, with ``--model-type``.
"""

from __future__ import annotations

MODEL_HELP = ("Model artifact directory, or a bundled model: \"default\" (musicnn, most accurate; used when "
              "--model is not given) or \"fast\" (distilled, for many streams).")
