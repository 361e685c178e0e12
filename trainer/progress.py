"""One log line per training epoch (logger "towergraph.training"), instead of Keras' progress bar.

Keras' own epoch lines (fit(verbose=2)) print every metric the model reports, including the
full-catalogue top-k metrics that the two-tower computes on evaluation only: during training
they read 0.0000 on every epoch, which looks like a model that learns nothing. This callback
logs the epoch number, the mean training loss over the epoch's batches, the seconds it took,
and only those other metrics that were actually updated during the epoch. `towergraph run`
shows these lines on the console (towergraph/console.py); anything else logging them (a
benchmark, a notebook) sees them through Python logging.
"""

import logging
import time
from typing import Dict, Optional, Set

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from towergraph.console import TRAINING_LOGGER as LOGGER_NAME
from trainer.model import MEAN_LOSS

# What TFRS' train_step reports besides the metrics: the loss (the last batch's; the epoch mean
# is logged instead) and the loss plus regularisation terms, which this model does not have.
_LOSS = "loss"
_LOSS_PARTS = {_LOSS, MEAN_LOSS, "regularization_loss", "total_loss"}


def idle_metrics(model: tf.keras.Model) -> Set[str]:
    """Names of the model's metrics that no batch updated since their last reset.

    A Keras mean-type metric counts its updates; a count of zero after an epoch means the
    metric was not computed (the two-tower's top-k metrics, computed on evaluation only).
    """
    return {metric.name for metric in model.metrics
            if getattr(metric, "count", None) is not None and _local(metric.count) == 0.0}


def _local(variable) -> float:
    """A variable's value on this process's first replica. Under a multi-worker strategy a
    metric's count is a SyncOnReadVariable, which float() cannot read (reading its aggregate
    would be a collective); every replica runs the same steps, so any one's count says
    whether a batch updated the metric."""
    return float(getattr(variable, "values", (variable,))[0])


class EpochLog(tf.keras.callbacks.Callback):
    """Logs "<label>: epoch i/n, loss L[, metric M ...], S s" at the end of each epoch.

    L is the epoch's mean loss: the model's "mean_loss" metric where it keeps one (the
    two-tower does, trainer/model.py), else Keras' "loss". Nothing is read per batch, so the
    callback never makes training wait for a batch's result.
    """

    def __init__(self, label: str, logger: Optional[logging.Logger] = None):
        super().__init__()
        self.label = label
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict] = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        # Read first: the last steps may still be running (eager calls return before their
        # results exist), and reading a result waits for them, so they count in the epoch.
        logs = {name: float(value) for name, value in (logs or {}).items()}
        idle = idle_metrics(self.model)
        seconds = time.monotonic() - self._started
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}"]
        loss = logs.get(MEAN_LOSS, logs.get(_LOSS))
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts += [f"{name} {value:.4f}" for name, value in sorted(logs.items())
                  if name not in _LOSS_PARTS and name not in idle]
        self.logger.info("%s: %s, %.1f s", self.label, ", ".join(parts), seconds)
