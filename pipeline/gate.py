"""The evaluation gate: the model is blessed (and so pushed) only if it beats popularity and is
not worse than the model in production.

It judges the Trainer's candidate (<Model artifact>/candidate, trained on the train split only) on
the eval split; the Trainer's served model is the same recipe refitted on train + eval
(trainer/run.py), so a blessing vouches for the settings and the data, not for a model that saw
the eval split. The production model (the latest blessed one, from the pipeline's resolver) is
judged the same way, by its own candidate: the eval split is a hash split of the interaction
rows, so that candidate has not seen this run's eval rows either. A production model exported
before candidates were kept in the Model artifact has only its served model, which may have
seen them (its recall may be flattering, so the comparison errs against the new model); the
metrics say so.

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
from tfx.utils import path_utils

from trainer.dataset import as_numpy, read_batches
from trainer.evaluation import (POPULARITY, evaluate_models, gate_shortfalls, judged_ks,
                                load_exported, unique_judged)
from trainer.features import ITEM_ID, USER_ID
from trainer.run import candidate_dir, candidate_or_served

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


def _production_dir(baseline: Model):
    """The production model to judge: its candidate, or (exported before candidates were kept)
    its served model, with a note saying so."""
    path, is_candidate = candidate_or_served(path_utils.serving_model_path(baseline.uri))
    if is_candidate:
        return path, "candidate", None
    return (path, "served",
            "no candidate in the production Model artifact (exported before candidates were "
            "kept): its served model is judged, which was refitted on its run's train + eval "
            "rows and may have seen this eval split, so its recall may be flattering")


def _same_artifact(model: Model, baseline: Model) -> bool:
    return model.uri == baseline.uri or (model.id != 0 and model.id == baseline.id)


def _sentence(metrics) -> str:
    production = metrics.get("production")
    if metrics["already_in_production"]:
        return (f"the candidate is production model {production['id']} itself (the Trainer's "
                f"output came from the cache) -> already in production, not blessed again")
    rule = "candidate recall@k > popularity"
    if production:
        rule += f" and >= production model {production['id']} - {metrics['tolerance']:g}"
    rule += f" at k in {metrics['judged_ks']}"
    if not production:
        rule += " (no production model yet)"
    if metrics["blessed"]:
        return f"{rule} -> blessed"
    return f"{rule} -> NOT blessed: " + "; ".join(metrics["reasons"])


def judge(model: Model, examples: Examples, baseline_model, ks, tolerance: float) -> dict:
    """The gate's metrics and verdict (what metrics.json holds)."""
    already = baseline_model is not None and _same_artifact(model, baseline_model)
    models = {"model": load_exported(candidate_dir(model.uri))}
    production_dir = evaluated = note = None
    if baseline_model is not None and not already:
        production_dir, evaluated, note = _production_dir(baseline_model)
        models["production"] = load_exported(production_dir)
    judged = judged_ks(ks, len(models["model"].catalog))
    judged_k = unique_judged(judged)
    results = evaluate_models(models, train=_interactions(examples, "train"),
                              held_out=_interactions(examples, "eval"), ks=judged_k)
    recall = results["recall"]
    metrics = {
        "model": recall["model"],
        "popularity": recall[POPULARITY],
        "tolerance": float(tolerance),
        "ks": judged,
        "judged_ks": judged_k,
        "held_out_interactions": results["held_out_interactions"],
        "users": results["users"],
        "users_unknown_to_model": results["users_unknown"]["model"],
        "catalog_items": results["catalog_items"]["model"],
    }
    if baseline_model is not None:
        who = "model" if already else "production"
        metrics["production"] = {
            "id": int(baseline_model.id), "uri": baseline_model.uri,
            "evaluated": evaluated or "candidate",
            "path": production_dir or candidate_dir(model.uri),
            **({"note": note} if note else {}),
            "users_unknown_to_model": results["users_unknown"][who],
            "catalog_items": results["catalog_items"][who],
            **recall[who],
        }
    reasons = gate_shortfalls(
        metrics["model"], metrics["popularity"],
        metrics["production"] if baseline_model is not None else None, judged_k, tolerance)
    if already:
        reasons = ["already in production: the Trainer's model is the production model "
                   "(from the cache); blessing it again would push a duplicate version"]
    metrics.update(already_in_production=already, reasons=reasons,
                   blessed=not reasons)
    metrics["gate"] = _sentence(metrics)
    return metrics


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
    """Recall@k of the candidate, the production model and popularity on the eval split; blesses
    the candidate if it beats popularity and is within `tolerance` of production at every k.

    baseline_model: the model in production (None on a first run: popularity only).
    recall_ks: comma-separated k values the model is judged at (each capped below the
      catalogue size, see trainer.evaluation.judged_ks).
    tolerance: how far below production's recall@k the candidate may fall.
    code_version: a fingerprint of the project's code, so that a code change re-runs the gate
      instead of reusing a cached verdict (TFX caches on inputs and parameters only).
    """
    del code_version
    ks = [int(k) for k in recall_ks.split(",")]
    metrics = judge(model, examples, baseline_model, ks, tolerance)
    tf.io.gfile.makedirs(evaluation.uri)
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, METRICS_FILE), "w") as handle:
        json.dump(metrics, handle, indent=2)
    blessing.set_int_custom_property("blessed", int(metrics["blessed"]))
    # What LatestBlessedModelStrategy (the pipeline's production_model resolver) matches on.
    blessing.set_int_custom_property("current_model_id", model.id)
    for who in ("model", POPULARITY, "production"):
        for name, value in metrics.get(who, {}).items():
            if name.startswith("recall@"):
                evaluation.set_float_custom_property(f"{who}_{name}", value)
    if "production" in metrics:
        evaluation.set_int_custom_property("production_model_id", metrics["production"]["id"])
        evaluation.set_string_custom_property("production_model_uri",
                                              metrics["production"]["uri"])
        evaluation.set_string_custom_property("production_evaluated",
                                              metrics["production"]["evaluated"])
    evaluation.set_int_custom_property("already_in_production",
                                       int(metrics["already_in_production"]))
    logging.info("retrieval gate: %s", metrics["gate"])
    logging.info("retrieval gate metrics: %s", json.dumps(metrics))
