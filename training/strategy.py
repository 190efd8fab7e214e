"""Choosing a ``tf.distribute`` strategy for the hardware at hand, and the rules of training under one.

Order of preference: a TPU (``TPU_NAME`` or a Cloud TPU VM), a multi-worker
cluster described by ``TF_CONFIG``, several local GPUs, else the default
strategy (one device).  Only meaningful on the TensorFlow Keras backend; other
backends get ``None`` and train on their default device.

Training on several replicas is meant to be the same computation as on one
device with the same global batch:

- :func:`choose_strategy` must run before TensorFlow runs its first op (a
  multi-worker strategy configures the runtime's collectives at start-up);
- :func:`shard_by_data`: every worker runs the whole input pipeline and keeps
  its part of each global batch, so the replicas together see exactly the
  batches, in the order, of a one-device run;
- :func:`global_batch_training`: BatchNormalization normalises with the
  statistics of the global batch (all-reduced), not of each replica's part,
  and Dropout drops each replica's rows of the global batch's mask;
- :func:`worker_output`: only the chief writes the artifact; the other
  workers write theirs to a temporary folder that is then removed (the
  ``tf.distribute`` saving rule: every worker saves, only one keeps it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def choose_strategy() -> Any:
    """Return a ``tf.distribute.Strategy`` (or ``None`` off the TensorFlow backend).

    Call it before any TensorFlow op runs in the process (datasets, seeds with
    op determinism are fine after it): ``MultiWorkerMirroredStrategy`` refuses
    to start once the runtime is up.
    """
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
    if _cluster():
        strategy = _multi_worker_strategy()
        log.info(
            "training with MultiWorkerMirroredStrategy from TF_CONFIG: %d replicas, this is %s",
            strategy.num_replicas_in_sync,
            "the chief" if is_chief() else "a worker",
        )
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _multi_worker_strategy() -> Any:
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    Keras 3 (keras-team/keras#20585) reduces a whole ``(x, y, sample_weight)``
    batch in one call (to learn its shapes before the first step), and each
    step's scalar logs with ``axis=0``; this strategy's own ``reduce`` takes
    one value, and an axis only where there is one.  Each element is reduced
    in turn, and a scalar across the replicas only (the mean of the workers'
    loss), as Keras does on one worker's several devices.
    """
    import tensorflow as tf

    class KerasReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op: Any, value: Any, axis: Any = None) -> Any:
            parent = super().reduce

            def one(v: Any) -> Any:
                rank = self.experimental_local_results(v)[0].shape.rank
                return parent(reduce_op, v, axis if rank else None)

            return tf.nest.map_structure(one, value)

    return KerasReduceStrategy()


def _cluster() -> dict[str, Any]:
    """``TF_CONFIG``'s cluster (empty without one, or without workers in it)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    cluster = json.loads(raw).get("cluster", {})
    return dict(cluster) if cluster.get("worker") else {}


def is_chief() -> bool:
    """Whether this process writes the artifact: always, except in a ``TF_CONFIG`` cluster, where only
    the task of type ``chief`` does, or worker 0 when the cluster has no chief (TensorFlow's rule)."""
    cluster = _cluster()
    if not cluster:
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if cluster.get("chief"):
        return bool(kind == "chief")
    return bool(kind == "worker" and index == 0)


def shard_by_data(dataset: Any) -> Any:
    """``dataset`` (of global batches) with the DATA auto-shard policy.

    Under a multi-worker strategy each global batch is split into one part per
    replica and each worker keeps its own parts, so the replicas together train
    on exactly the batches of a one-device run (with the same crops, shuffles
    and seeds).  The FILE policy would spare each worker reading the others'
    shards but would change which windows meet in a batch; the windows come
    out of a few hundred clips a worker reads in seconds, so DATA costs little.
    Without a distribution strategy the option does nothing.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _sublayers(layer: Any) -> Iterator[Any]:
    yield layer
    for sub in getattr(layer, "layers", ()):
        yield from _sublayers(sub)


def _global_batch_dropout(layer: Any) -> Any:
    """A ``call`` for a Dropout layer that drops, on each replica, its rows of the mask a one-device
    run draws for the whole global batch (same seed, same shape), instead of a mask of its own part's
    shape that every replica would draw alike."""
    import keras
    import tensorflow as tf

    def call(inputs: Any, training: bool = False) -> Any:
        if not training or layer.rate <= 0:
            return inputs
        context = tf.distribute.get_replica_context()
        local = tf.shape(inputs)[:1]
        sizes = context.all_gather(local, axis=0)  # every replica's rows, in replica order
        start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        shape = tf.concat([tf.reduce_sum(sizes, keepdims=True), tf.shape(inputs)[1:]], 0)
        ones = tf.ones(shape, inputs.dtype)
        mask = keras.random.dropout(ones, layer.rate, seed=layer.seed_generator)  # 0 or 1 / (1 - rate)
        return inputs * mask[start : start + local[0]]

    return call


@contextmanager
def global_batch_training(model: Any, strategy: Any) -> Iterator[None]:
    """Context for ``model.fit`` under ``strategy``: with several replicas, train as one device would.

    - BatchNormalization layers normalise with the global batch's moments
      (``synchronized``), not with each replica's part of the batch;
    - Dropout layers (without a ``noise_shape``) drop each replica's rows of
      the global batch's mask (:func:`_global_batch_dropout`);
    - under ``MultiWorkerMirroredStrategy`` the model is fitted as one built
      outside a strategy, inside the strategy's scope: Keras 3's own
      multi-worker path first reduces a whole data batch across workers to
      learn its shapes, which fails on uneven batches and draws the input
      pipeline's random crops once more than a one-device run
      (keras-team/keras#20585).

    Layers are switched back on exit, so the saved model's config is a
    one-device run's.  With one replica (or no strategy) this does nothing.
    """
    import keras
    import tensorflow as tf

    if strategy is None or strategy.num_replicas_in_sync == 1:
        yield
        return
    layers = list(_sublayers(model))
    batch_norms = [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
    ]
    dropouts = [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.Dropout) and layer.noise_shape is None and "call" not in vars(layer)
    ]
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    own_strategy = model._distribute_strategy  # private: see keras-team/keras#20585 above
    for layer in batch_norms:
        layer.synchronized = True
    for layer in dropouts:
        layer.call = _global_batch_dropout(layer)
    if multi_worker:
        model._distribute_strategy = None
    try:
        with strategy.scope():
            yield
    finally:
        model._distribute_strategy = own_strategy
        for layer in batch_norms:
            layer.synchronized = False
        for layer in dropouts:
            del layer.call


@contextmanager
def worker_output(out_dir: Path) -> Iterator[Path]:
    """Where this process writes its artifact (and logs): ``out_dir`` on the chief, else a temporary
    folder removed on exit."""
    if is_chief():
        yield out_dir
        return
    scratch = Path(tempfile.mkdtemp(prefix="genretag-worker-"))
    try:
        log.info("not the chief: writing the artifact to %s and discarding it", scratch)
        yield scratch / out_dir.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
