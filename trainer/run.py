"""TFX Trainer entry point: `run_fn`, referenced by the pipeline as "trainer.run.run_fn".

Two models come out of one Trainer run, trained by the same functions (trainer/train.py):

  candidate  trained on the train split only and exported to <Model artifact>/candidate,
             beside the Format-Serving folder Pusher pushes: the evaluation gate judges it on
             the eval split it never saw, and, once blessed, the next runs' gate judges their
             candidates against it (a production model's candidate never saw that split);
  served     the candidate trained on for `refit_epochs` more epochs on train + eval
             (`refit_on_all`, the default; warm-started from the candidate's export, as from a
             production model), exported to the Model artifact that Pusher pushes once the gate
             blesses the candidate. So the eval split judges the recipe and is not wasted on the
             model users get. With refit_epochs 0 the served model is trained again on train +
             eval for `epochs` epochs instead (from the production served model, warm start
             permitting); with refit_on_all false the candidate itself is pushed.

Only hyperparameters travel in custom_config; data and vocabularies come through channels.

Warm start (trainer/warm_start.py): when the pipeline's resolver hands over the production
model (fn_args.base_model, its Format-Serving folder; None on a first run or with warm_start
false), the candidate starts from that model's candidate (the same recipe on the train split;
its served model when it has none), and a served model trained again (refit_epochs 0) from its
served model. What was carried over is logged per model and written to <Model
artifact>/warm_start.json for the run summary: the warm start from the production model (the
candidate's, which the served model continues, or with refit_epochs 0 the served model's own;
{"base_model": null} when it trained from scratch).

Several workers (Vertex's `replica_count > 1`, TF_CONFIG naming several tasks): every worker
runs run_fn with the same arguments, they train each model together under
MultiWorkerMirroredStrategy (trainer/distribute.py); only the chief writes the exports, the
others save to a temporary folder they delete, as TensorFlow's multi-worker guide does (saving
may read variables that need every worker).
"""

import contextlib
import json
import logging
import os
import shutil
import tempfile
from typing import Iterator, Optional, Tuple

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from towergraph.constants import DEFAULT_MAX_K
from trainer import distribute
from trainer.config import ModelConfig, from_mapping
from trainer.export import export_serving_model
from trainer.progress import EpochLog
from trainer.train import train
from trainer.warm_start import Report

# Sub-folder of the Trainer's Model artifact holding the model the gate judges.
CANDIDATE_DIR = "candidate"
# File of the Model artifact saying what the served model's warm start carried over.
WARM_START_FILE = "warm_start.json"
# File of the Model artifact saying what the served model's catalogue holds (warm and cold).
CATALOG_FILE = "catalog.json"


def candidate_dir(model_uri: str) -> str:
    """Where run_fn exports the candidate that the evaluation gate judges: in the Model
    artifact (`model_uri`), beside the served model's Format-Serving folder."""
    return os.path.join(model_uri, CANDIDATE_DIR)


def model_uri(serving_model_dir: str) -> str:
    """The Model artifact's folder, from the Trainer's serving_model_dir (its Format-Serving
    sub-folder) or from a base model's path (fn_args.base_model, the same sub-folder)."""
    return os.path.dirname(os.path.normpath(serving_model_dir))


def candidate_or_served(served_dir: str) -> Tuple[str, bool]:
    """The candidate export of the Model artifact whose served model is `served_dir` (its
    Format-Serving folder), or, for models made before the candidate moved into the artifact,
    the served model itself; and whether it is the candidate."""
    candidate = candidate_dir(model_uri(served_dir))
    try:
        present = tf.io.gfile.exists(
            os.path.join(candidate, tf.saved_model.SAVED_MODEL_FILENAME_PB))
    except tf.errors.OpError:
        present = False
    return (candidate, True) if present else (served_dir, False)


def warm_start_bases(base_model: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """The exports the candidate and the served model warm-start from: the base Model
    artifact's candidate (its served model when it has none) and its served model;
    (None, None) without a base."""
    if not base_model:
        return None, None
    candidate, is_candidate = candidate_or_served(base_model)
    if not is_candidate:
        logging.info("warm start: %s has no candidate; the candidate starts from its served "
                     "model", model_uri(base_model))
    return candidate, base_model


def write_json(value, model_dir: str, name: str) -> str:
    """Writes <model_dir>/<name> (model_dir: the Model artifact's folder), for the summary."""
    path = os.path.join(model_dir, name)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as out:
        json.dump(value, out, indent=2)
    return path


def write_warm_start(report: Report, model_dir: str) -> str:
    """Writes <model_dir>/warm_start.json (model_dir: the Model artifact's folder)."""
    return write_json(report.as_json(), model_dir, WARM_START_FILE)


@contextlib.contextmanager
def exported(model, export_dir: str, max_k: int) -> Iterator[str]:
    """Exports to export_dir on the chief (or the only process) and yields it; any other
    worker of a multi-worker run exports to a temporary folder, yields that (the same model:
    the workers train in step) and deletes it on exit."""
    scratch = None if distribute.is_chief() else tempfile.mkdtemp(
        prefix="towergraph-worker-export-")
    target = export_dir if scratch is None else os.path.join(scratch, "model")
    try:
        export_serving_model(model, target, max_k=max_k)
        yield target
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def export_model(model, export_dir: str, max_k: int) -> None:
    """Exports as `exported` does, keeping nothing on a worker other than the chief."""
    with exported(model, export_dir, max_k):
        pass


def serving_model(config: ModelConfig, candidate, candidate_export: str,
                  served_base: Optional[str], transform_output, files,
                  item_files) -> Tuple[object, Report]:
    """The model Pusher pushes: the candidate itself without refit_on_all; else the candidate
    trained refit_epochs more epochs on `files` (train + eval), warm-started from its export
    `candidate_export`; or, with refit_epochs 0, the same settings trained again on `files`
    (from `served_base`, the production served model, when there is one).

    Returns:
      The model, and what it owes the production model (for warm_start.json): the
      candidate's warm start when it is or continues the candidate, else its own.
    """
    if not config.refit_on_all:
        return candidate, candidate.warm_start_report
    if config.refit_epochs:
        logging.info("served model: the candidate, %d more epochs on train + eval",
                     config.refit_epochs)
        base, epochs, said = candidate_export, config.refit_epochs, "continues the candidate"
    else:
        logging.info("refit on train + eval for the served model")
        base, epochs, said = served_base, None, "warm start"
    served = train(transform_output, files, config, epochs=epochs,
                   callbacks=[EpochLog("served model (train + eval)")], verbose=0,
                   warm_start_from=base, item_files=item_files)
    logging.info("served model, %s: %s", said, served.warm_start_report.summary())
    return served, (candidate if config.refit_epochs else served).warm_start_report


def run_fn(fn_args) -> None:
    """Trains the candidate (train split) and the served model, exports both."""
    distribute.strategy()   # first: a multi-worker strategy must precede any other TF op
    config = from_mapping(ModelConfig, fn_args.custom_config.get("model", {}),
                          "Trainer custom_config[\"model\"]")
    max_k = fn_args.custom_config.get("max_k", DEFAULT_MAX_K)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    # TensorBoard logs from the chief only: the workers' would overwrite them.
    tensorboard = ([tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)]
                   if distribute.is_chief() else [])

    candidate_base, served_base = warm_start_bases(getattr(fn_args, "base_model", None))
    # Items nobody rated yet (pipeline/trainer_component.py); None under TFX's own Trainer.
    item_files = getattr(fn_args, "item_catalog_files", None)

    candidate = train(transform_output, fn_args.train_files, config,
                      callbacks=tensorboard + [EpochLog("candidate (train split)")], verbose=0,
                      warm_start_from=candidate_base, item_files=item_files)
    logging.info("candidate's warm start: %s", candidate.warm_start_report.summary())
    # The candidate is judged on the eval split by the gate alone (pipeline/gate.py: every
    # user's training items excluded, against production and popularity), not here as well.
    with exported(candidate, candidate_dir(model_uri(fn_args.serving_model_dir)),
                  max_k) as candidate_export:
        served, warm_start = serving_model(
            config, candidate, candidate_export, served_base, transform_output,
            list(fn_args.train_files) + list(fn_args.eval_files), item_files)
    export_model(served, fn_args.serving_model_dir, max_k)
    if distribute.is_chief():
        write_warm_start(warm_start, model_uri(fn_args.serving_model_dir))
        write_json(served.catalog.composition(), model_uri(fn_args.serving_model_dir),
                   CATALOG_FILE)
