"""Choosing a ``tf.distribute`` strategy for the hardware at hand.

Order of preference: a TPU (``TPU_NAME`` or a Cloud TPU VM), a multi-worker
cluster described by ``TF_CONFIG``, several local GPUs, else the default
strategy (one device).  Only meaningful on the TensorFlow Keras backend; other
backends get ``None`` and train on their default device.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def choose_strategy() -> Any:
    """Return a ``tf.distribute.Strategy`` (or ``None`` off the TensorFlow backend)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0"):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        log.info("training on TPU %s", resolver.master())
        return tf.distribute.TPUStrategy(resolver)
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config and json.loads(tf_config).get("cluster", {}).get("worker"):
        log.info("training with MultiWorkerMirroredStrategy from TF_CONFIG")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
