"""Evaluates an exported model against a popularity baseline on the same split.

The model is scored through what it exports (user vectors from its `user_embeddings`
signature, its catalogue vectors), so the evaluation sees exactly what TF Serving will serve;
users it does not know fall back to popularity, as its `recommend` signature does.
"""

from typing import Dict, Sequence, Tuple

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from towergraph.constants import SIGNATURE_USER_EMBEDDINGS
from trainer.metrics import interaction_matrix, recall_at_k, top_k_items

Interactions = Tuple[np.ndarray, np.ndarray]  # (user ids, item ids) as str arrays


def _decode(values) -> np.ndarray:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values],
                    dtype=object)


def _index(values: np.ndarray) -> Dict[str, int]:
    return {value: i for i, value in enumerate(values)}


def evaluate_retrieval(model_dir: str, train: Interactions, held_out: Interactions,
                       ks: Sequence[int] = (10, 100)) -> Dict:
    """Recall@k of the exported model and of popularity, ranking the full catalogue with each
    user's training items excluded."""
    loaded = tf.saved_model.load(model_dir)
    catalog = _decode(loaded.item_ids.numpy())
    item_vectors = loaded.item_vectors.numpy()

    items = np.unique(np.concatenate([catalog, train[1], held_out[1]]).astype(str))
    users = np.unique(np.concatenate([train[0], held_out[0]]).astype(str))
    item_column, user_row = _index(items), _index(users)
    shape = (len(users), len(items))

    def matrix(pairs: Interactions):
        return interaction_matrix(np.array([user_row[u] for u in pairs[0]]),
                                  np.array([item_column[i] for i in pairs[1]]), shape)

    seen, relevant = matrix(train), matrix(held_out)
    popularity = np.asarray(seen.sum(axis=0)).ravel()
    catalog_columns = np.array([item_column[i] for i in catalog])

    user_vectors = loaded.signatures[SIGNATURE_USER_EMBEDDINGS](
        user_ids=tf.constant(users.tolist()))
    found = user_vectors["found"].numpy()
    user_vectors = user_vectors["embeddings"].numpy()

    def model_scores(rows):
        scores = np.full((len(rows), len(items)), -np.inf, dtype=np.float32)
        scores[:, catalog_columns] = user_vectors[rows] @ item_vectors.T
        cold = ~found[rows]
        scores[cold] = popularity
        return scores

    evaluated = np.unique(relevant.nonzero()[0])
    k_max = max(ks)
    results = {
        name: recall_at_k(top_k_items(score_fn, evaluated, seen, k_max), evaluated, relevant, ks)
        for name, score_fn in (
            ("model", model_scores),
            ("popularity", lambda rows: np.tile(popularity.astype(np.float32), (len(rows), 1))),
        )
    }
    return {
        "model": {f"recall@{k}": v for k, v in results["model"].items()},
        "popularity": {f"recall@{k}": v for k, v in results["popularity"].items()},
        "held_out_interactions": int(relevant.sum()),
        "users": int(len(evaluated)),
        "users_unknown_to_model": int((~found[evaluated]).sum()),
        "catalog_items": int(len(catalog)),
    }


def beats_baseline(metrics: Dict, ks: Sequence[int]) -> bool:
    """The gate: the model must beat popularity on recall@k for every k."""
    return all(metrics["model"][f"recall@{k}"] > metrics["popularity"][f"recall@{k}"]
               for k in ks)
