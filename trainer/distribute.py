"""The distribution strategy the Trainer trains under, chosen from the environment.

One process (no TF_CONFIG, or a cluster of one task): TensorFlow's default strategy, so the
single-process path is unchanged. Several workers (Vertex sets TF_CONFIG on every replica of a
custom job with `replica_count > 1`: pool 0 is "chief", pool 1's replicas are "worker" 0..N-2):
`tf.distribute.MultiWorkerMirroredStrategy`, one replica per worker on CPU, collectives over
gRPC between the tasks of TF_CONFIG's cluster.

MultiWorkerMirroredStrategy configures the eager context's collective ops, which TensorFlow
allows only before the context is first used ("Collective ops must be configured at program
startup"): call strategy() before any other TensorFlow op in the process (run_fn does so first
thing). The strategy is made once per process and reused (run_fn trains twice).
"""

import json
import os
from typing import Any, Dict, Mapping, Optional

# Task types of TF_CONFIG's cluster that train (ps and evaluator do not).
_TRAINING_TASKS = ("chief", "master", "worker", "workerpool0", "workerpool1")
# The chief: Vertex's pool 0 ("workerpool0" in its CLUSTER_SPEC), "master" in old AI Platform.
_CHIEF_TASKS = ("chief", "master", "workerpool0")

_strategy = None


def tf_config(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """TF_CONFIG as a dict ({} when unset or empty)."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    return json.loads(text) if text else {}


def num_workers(environ: Optional[Mapping[str, str]] = None) -> int:
    """How many training tasks TF_CONFIG's cluster names (1 without TF_CONFIG)."""
    cluster = tf_config(environ).get("cluster", {})
    return max(1, sum(len(cluster.get(task, ())) for task in _TRAINING_TASKS))


def is_chief(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether this task exports: the chief task, or worker 0 of a cluster without a chief;
    always true for one process."""
    config = tf_config(environ)
    if num_workers(environ) <= 1:
        return True
    task = config.get("task", {})
    kind, index = task.get("type", ""), int(task.get("index", 0))
    if kind in _CHIEF_TASKS:
        return True
    has_chief = any(config.get("cluster", {}).get(name) for name in _CHIEF_TASKS)
    return kind == "worker" and index == 0 and not has_chief


def strategy():
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else the default
    strategy; made once per process (see the module's docstring for when to call it)."""
    global _strategy
    if _strategy is None:
        import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
        import tensorflow as tf

        if num_workers() > 1:
            _strategy = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(
                    implementation=tf.distribute.experimental.CommunicationImplementation.AUTO))
        else:
            _strategy = tf.distribute.get_strategy()
    return _strategy
