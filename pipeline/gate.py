"""The evaluation gate: the model is blessed (and so pushed) only if it beats popularity.

It judges the Trainer's candidate (<Model artifact>/candidate, trained on the train split only) on
the eval split; the Trainer's served model is the same recipe refitted on train + eval
(trainer/run.py), so a blessing vouches for the settings and the data, not for a model that saw
the eval split.

Standard TFX Evaluator (TFMA) evaluates per-example predictions; a retrieval model must be
judged by ranking the whole catalogue per user, so the gate is a small component of our own.
Pusher only pushes a model whose ModelBlessing has the custom property blessed == 1.
"""

import json
import logging
import os

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing, ModelEvaluation

from trainer.dataset import as_numpy, read_batches
from trainer.evaluation import beats_baseline, evaluate_retrieval
from trainer.features import ITEM_ID, USER_ID
from trainer.run import candidate_dir

METRICS_FILE = "metrics.json"
_PAIR_SPEC = {USER_ID: tf.io.FixedLenFeature([], tf.string),
              ITEM_ID: tf.io.FixedLenFeature([], tf.string)}


def _interactions(examples, split: str):
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    users, items = [], []
    for batch in as_numpy(read_batches(pattern, _PAIR_SPEC, batch_size=65_536)):
        users.append(batch[USER_ID].astype(str))
        items.append(batch[ITEM_ID].astype(str))
    return np.concatenate(users), np.concatenate(items)


@tfx.dsl.components.component
def RetrievalGate(  # TFX names components like classes
        model: tfx.dsl.components.InputArtifact[Model],
        examples: tfx.dsl.components.InputArtifact[Examples],
        blessing: tfx.dsl.components.OutputArtifact[ModelBlessing],
        evaluation: tfx.dsl.components.OutputArtifact[ModelEvaluation],
        baseline_model: tfx.dsl.components.InputArtifact[Model] = None,
        recall_ks: tfx.dsl.components.Parameter[str] = "10,100",
        tolerance: tfx.dsl.components.Parameter[float] = 0.005,
        code_version: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Recall@k of the candidate and of popularity on the eval split; blesses if it wins.

    recall_ks: comma-separated k values the model must win at.
    code_version: a fingerprint of the project's code, so that a code change re-runs the gate
      instead of reusing a cached verdict (TFX caches on inputs and parameters only).
    """
    del code_version
    ks = [int(k) for k in recall_ks.split(",")]
    metrics = evaluate_retrieval(candidate_dir(model.uri),
                                 train=_interactions(examples, "train"),
                                 held_out=_interactions(examples, "eval"), ks=ks)
    metrics["blessed"] = beats_baseline(metrics, ks)
    metrics["gate"] = f"model recall@k > popularity recall@k for k in {ks}"
    tf.io.gfile.makedirs(evaluation.uri)
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, METRICS_FILE), "w") as handle:
        json.dump(metrics, handle, indent=2)
    blessing.set_int_custom_property("blessed", int(metrics["blessed"]))
    # What LatestBlessedModelStrategy (the pipeline's production_model resolver) matches on.
    blessing.set_int_custom_property("current_model_id", model.id)
    for who in ("model", "popularity"):
        for name, value in metrics[who].items():
            evaluation.set_float_custom_property(f"{who}_{name}", value)
    logging.info("retrieval gate: %s", json.dumps(metrics))
