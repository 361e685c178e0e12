"""The classic peers the two-tower must beat, and their tuning (numpy, scipy, implicit).

Each peer is fitted on a binary users x items matrix of training interactions and returns a
`Fitted`: a score function for the ranking and an item-item similarity for neighbour coherence.

  popularity   training counts
  item-kNN     cosine between item columns with shrinkage, the `neighbours` most similar kept
  ALS          implicit's AlternatingLeastSquares, optionally on BM25-weighted counts
  EASE         Steck, "Embarrassingly Shallow Autoencoders" (WWW 2019): B = I - P / diag(P)
               with P = (X^T X + lambda I)^-1 and a zero diagonal; scores = X B

`tune` picks each peer's setting on a validation split carved out of the training part only:
the held-out interactions that the table reports are never seen while choosing.
"""

import dataclasses
import itertools
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from trainer.metrics import recall_at_k, top_k_items

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class Fitted:
    """A fitted peer: scores(user_rows) -> [rows, items]; similarity(items) -> [len, items]."""

    scores: ScoreFn
    similarity: Optional[Callable[[np.ndarray], np.ndarray]]


def popularity(train: sp.csr_matrix) -> Fitted:
    counts = np.asarray(train.sum(axis=0)).ravel().astype(np.float32)
    return Fitted(lambda rows: np.broadcast_to(counts, (len(rows), len(counts))), None)


def item_knn(train: sp.csr_matrix, neighbours: Optional[int] = None,
             shrinkage: float = 0.0) -> Fitted:
    """Cosine of item columns, sim = x_i.x_j / (|x_i| |x_j| + shrinkage), own item excluded;
    only each item's `neighbours` most similar items keep a weight (None: all)."""
    matrix = train.tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    similarity = (matrix.T @ matrix).toarray()
    similarity /= np.outer(norms, norms) + shrinkage + 1e-12
    np.fill_diagonal(similarity, 0.0)
    if neighbours is not None and neighbours < similarity.shape[0] - 1:
        cut = np.argpartition(-similarity, neighbours, axis=0)[neighbours:]
        np.put_along_axis(similarity, cut, 0.0, axis=0)
    user_items = train.tocsr().astype(np.float32)
    return Fitted(lambda rows: user_items[rows] @ similarity, lambda items: similarity[items])


def ease(train: sp.csr_matrix, regularization: float) -> Fitted:
    """EASE's closed form: one items x items inverse."""
    gram = (train.T @ train).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += regularization
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    weights = weights.astype(np.float32)
    user_items = train.tocsr().astype(np.float32)
    return Fitted(lambda rows: user_items[rows] @ weights, lambda items: weights[items])


def als(train: sp.csr_matrix, factors: int, regularization: float, weighting: str = "none",
        iterations: int = 15, seed: int = 42) -> Fitted:
    """implicit's ALS on the binary matrix, or on its BM25 weighting (weighting="bm25")."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import bm25_weight

    user_items = train.tocsr().astype(np.float32)
    if weighting == "bm25":
        user_items = bm25_weight(user_items, K1=100, B=0.8).tocsr().astype(np.float32)
    elif weighting != "none":
        raise ValueError(f"weighting must be none or bm25, not {weighting!r}")
    model = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                    iterations=iterations, random_state=seed,
                                    calculate_training_loss=False)
    model.fit(user_items, show_progress=False)
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    return Fitted(lambda rows: users[rows] @ items.T, lambda rows: unit[rows] @ unit.T)


# Settings tried for each peer (a small grid; the chosen one is printed with the results).
GRIDS: Dict[str, Dict[str, Sequence]] = {
    "EASE": {"regularization": [50, 100, 200, 300, 500, 800, 1200]},
    "ALS": {"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0],
            "weighting": ["none", "bm25"]},
    "item-kNN": {"neighbours": [20, 50, 100, 200, None], "shrinkage": [0.0, 10.0, 50.0]},
}
FITS: Dict[str, Callable[..., Fitted]] = {"EASE": ease, "ALS": als, "item-kNN": item_knn}


def recall(fitted: Fitted, seen: sp.csr_matrix, relevant: sp.csr_matrix,
           ks: Sequence[int]) -> Dict[int, float]:
    """Micro recall@k of a fitted peer: users with held-out interactions, seen items excluded."""
    users = np.unique(relevant.nonzero()[0])
    return recall_at_k(top_k_items(fitted.scores, users, seen, max(ks)), users, relevant, ks)


def grid(settings: Dict[str, Sequence]) -> List[Dict]:
    names = list(settings)
    return [dict(zip(names, values)) for values in itertools.product(*settings.values())]


def tune(fit: Callable[..., Fitted], settings: Dict[str, Sequence], train: sp.csr_matrix,
         validation: sp.csr_matrix, ks: Sequence[int] = (10, 100)) -> Dict:
    """The setting of `fit` with the best mean recall@ks on `validation`, fitted on `train`.

    Both matrices come from the training part of the split: `validation` is a share of its
    interactions held out from `train`. Returns {"setting", "validation": [(setting,
    mean recall)]}.
    """
    tried = []
    for setting in grid(settings):
        found = recall(fit(train, **setting), train, validation, ks)
        tried.append((setting, float(np.mean([found[k] for k in ks]))))
    best = max(tried, key=lambda pair: pair[1])
    return {"setting": best[0], "validation": tried}
