"""Evaluates exported models against a popularity baseline on the same split, and the gate's rule.

A model is scored through what it exports (user vectors from its `user_embeddings` signature,
its catalogue vectors), so the evaluation sees exactly what TF Serving will serve; users it does
not know fall back to popularity, as its `recommend` signature does. Several models (the
candidate and the one in production) are scored in one pass: the interaction matrices and
popularity are built once, and every model ranks the same items for the same users.
"""

import dataclasses
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from towergraph.constants import SIGNATURE_USER_EMBEDDINGS
from trainer.metrics import interaction_matrix, recall_at_k, top_k_items, user_item_scores

Interactions = Tuple[np.ndarray, np.ndarray]  # (user ids, item ids) as str arrays
POPULARITY = "popularity"


def _decode(values) -> np.ndarray:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values],
                    dtype=object)


def _index(values: np.ndarray) -> Dict[str, int]:
    return {value: i for i, value in enumerate(values)}


def _recall_names(recall: Dict[int, float]) -> Dict[str, float]:
    return {f"recall@{k}": value for k, value in recall.items()}


@dataclasses.dataclass
class ExportedModel:
    """What the evaluation reads from an exported SavedModel."""
    catalog: np.ndarray                    # item ids, one per row of item_vectors
    item_vectors: np.ndarray
    score_offsets: np.ndarray              # what recommend adds to the cosine, per row
    user_embeddings: Callable              # the user_embeddings signature
    saved_model: object = None             # keeps the loaded SavedModel (and its variables) alive


def load_exported(model_dir: str) -> ExportedModel:
    """The rows of an export's catalogue that its `recommend` may return (all of them, or the
    warm ones when the model's cold_neighbours is false), their vectors, its user tower."""
    loaded = tf.saved_model.load(model_dir)
    item_ids = _decode(loaded.item_ids.numpy())
    # Exports from before the `returnable` rows could return every row.
    rows = (loaded.returnable.numpy() if hasattr(loaded, "returnable")
            else np.ones(len(item_ids), bool))
    # Exports from before item biases had none.
    offsets = (loaded.score_offsets.numpy() if hasattr(loaded, "score_offsets")
               else np.zeros(len(item_ids), np.float32))
    return ExportedModel(catalog=item_ids[rows], item_vectors=loaded.item_vectors.numpy()[rows],
                         score_offsets=offsets[rows],
                         user_embeddings=loaded.signatures[SIGNATURE_USER_EMBEDDINGS],
                         saved_model=loaded)


def evaluate_models(models: Mapping[str, ExportedModel], train: Interactions,
                    held_out: Interactions, ks: Sequence[int] = (10, 100)) -> Dict:
    """Recall@k of each model and of popularity, ranking the full catalogue with each user's
    training items excluded.

    Returns {"recall": {name: {"recall@k": ...}, ..., "popularity": {...}},
             "users_unknown": {name: count}, "catalog_items": {name: count},
             "held_out_interactions": ..., "users": ...}.
    """
    if POPULARITY in models:
        raise ValueError(f"{POPULARITY!r} names the baseline, not a model")
    items = np.unique(np.concatenate([*(model.catalog for model in models.values()),
                                      train[1], held_out[1]]).astype(str))
    users = np.unique(np.concatenate([train[0], held_out[0]]).astype(str))
    item_column, user_row = _index(items), _index(users)
    shape = (len(users), len(items))

    def matrix(pairs: Interactions):
        return interaction_matrix(np.array([user_row[u] for u in pairs[0]]),
                                  np.array([item_column[i] for i in pairs[1]]), shape)

    seen, relevant = matrix(train), matrix(held_out)
    popularity = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
    evaluated = np.unique(relevant.nonzero()[0])
    k_max = max(ks)

    def recall(score_fn) -> Dict[str, float]:
        ranked = top_k_items(score_fn, evaluated, seen, k_max)
        return _recall_names(recall_at_k(ranked, evaluated, relevant, ks))

    def model_scores(model: ExportedModel, found: np.ndarray, user_vectors: np.ndarray):
        catalog_columns = np.array([item_column[i] for i in model.catalog])

        def scores(rows):
            result = np.full((len(rows), len(items)), -np.inf, dtype=np.float32)
            result[:, catalog_columns] = user_item_scores(user_vectors[rows], model.item_vectors,
                                                          model.score_offsets)
            result[~found[rows]] = popularity
            return result
        return scores

    results = {"recall": {}, "users_unknown": {}, "catalog_items": {}}
    for name, model in models.items():
        user_vectors = model.user_embeddings(user_ids=tf.constant(users.tolist()))
        found = user_vectors["found"].numpy()
        results["recall"][name] = recall(
            model_scores(model, found, user_vectors["embeddings"].numpy()))
        results["users_unknown"][name] = int((~found[evaluated]).sum())
        results["catalog_items"][name] = int(len(model.catalog))
    results["recall"][POPULARITY] = recall(lambda rows: np.tile(popularity, (len(rows), 1)))
    results["held_out_interactions"] = int(relevant.sum())
    results["users"] = int(len(evaluated))
    return results


def judged_ks(ks: Sequence[int], catalog_items: int) -> List[Dict]:
    """The k the gate judges for each configured k: k itself, or at most half the catalogue.

    Each user's training items are excluded from their ranking, so once k reaches the number of
    items a user has not read, every model ranks all of them and recall@k is 1.0 for the
    candidate, production and popularity alike: such a k cannot tell models apart, and a
    strict win over popularity is impossible there, so it would block every model. At half the
    catalogue a ranking that knows nothing still finds only about half of a user's held-out
    items (k / unread items), so a better model has room to show; and half stays below the
    unread count of every user who has read less than half the catalogue.

    Returns [{"configured": k, "judged": j}, ...] with "why" where j < k.
    """
    cap = max(1, catalog_items // 2)
    judged = []
    for k in ks:
        entry = {"configured": int(k), "judged": int(min(k, cap))}
        if k > cap:
            entry["why"] = (f"the catalogue has {catalog_items} items: recall@k near the "
                            f"catalogue size is 1.0 for every model, so k is capped at half "
                            f"the catalogue ({cap})")
        judged.append(entry)
    return judged


def unique_judged(judged: Sequence[Dict]) -> List[int]:
    """The distinct judged k values, in the order of the configured ones."""
    return list(dict.fromkeys(entry["judged"] for entry in judged))


# Recall values are ratios of counts: a difference this small is rounding, not a regression.
_SLACK = 1e-9


def gate_shortfalls(model: Dict[str, float], popularity: Dict[str, float],
                    production: Optional[Dict[str, float]], ks: Sequence[int],
                    tolerance: float) -> List[str]:
    """Why the gate refuses the model; empty when it blesses it.

    The model must beat popularity (strictly: a tie is no evidence of learning) at every k and,
    when a production model is given, must not fall below production recall@k - tolerance at
    any k (the tolerance absorbs run-to-run noise, so a retrain on fresh data can ship).
    """
    reasons = []
    for k in ks:
        name = f"recall@{k}"
        if not model[name] > popularity[name]:
            reasons.append(f"{name} {model[name]:.3f} does not beat popularity "
                           f"{popularity[name]:.3f}")
        if production is not None and model[name] < production[name] - tolerance - _SLACK:
            reasons.append(f"{name} {model[name]:.3f} is more than {tolerance:g} below "
                           f"production {production[name]:.3f}")
    return reasons
