"""Offline retrieval metrics, shared by the evaluation gate and the benchmarks (numpy only).

Setup (as in DESIGN.md's reference table): each user's training items are excluded from their
ranking, items are ranked over the full catalogue, recall is micro-averaged (hits over all
held-out interactions).
"""

from typing import Dict, Iterable, List, Sequence, Set

import numpy as np
import scipy.sparse as sp

# Users scored per chunk: bounds memory at chunk x catalogue floats.
_CHUNK = 1024


def interaction_matrix(user_rows: np.ndarray, item_columns: np.ndarray,
                       shape) -> sp.csr_matrix:
    """Binary users x items matrix (repeated interactions count once)."""
    ones = np.ones(len(user_rows), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (user_rows, item_columns)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def user_item_scores(user_vectors: np.ndarray, item_vectors: np.ndarray,
                     score_offsets: np.ndarray) -> np.ndarray:
    """[U, I] what the exported `recommend` ranks a known user's items by: the cosine of the
    user's and the item's unit vectors plus the item's score offset (learned popularity;
    serving_default's `score_offset`)."""
    return user_vectors @ item_vectors.T + score_offsets[None, :]


def top_k_items(score_fn, users: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k item columns per user, best first, skipping each user's excluded items (and items
    scored -inf); a row with fewer than k such items is padded with -1.

    score_fn(user_rows) -> [len(user_rows), n_items] scores; exclude is users x items.
    """
    ranked = []
    for start in range(0, len(users), _CHUNK):
        rows = users[start:start + _CHUNK]
        scores = np.array(score_fn(rows), dtype=np.float32, copy=True)
        excluded = exclude[rows]
        scores[np.repeat(np.arange(len(rows)), np.diff(excluded.indptr)),
               excluded.indices] = -np.inf
        width = min(k, scores.shape[1])
        part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        # Fewer than k items left after the exclusions: the rest of the row is -1, never an
        # excluded (-inf) item.
        top[np.isneginf(np.take_along_axis(scores, top, axis=1))] = -1
        ranked.append(top)
    return np.concatenate(ranked) if ranked else np.zeros((0, k), dtype=np.int64)


def recall_at_k(ranked: np.ndarray, users: np.ndarray, held_out: sp.csr_matrix,
                ks: Sequence[int]) -> Dict[int, float]:
    """Micro-averaged recall: held-out interactions found in the top k / all held-out ones.

    ranked[i] is the ranking for users[i]; held_out is users x items (binary).
    """
    relevant = held_out[users]
    total = relevant.sum()
    if total == 0:
        raise ValueError("no held-out interactions to evaluate")
    rows = np.arange(len(users))[:, None]
    hits = np.asarray(relevant[rows, np.maximum(ranked, 0)].todense()) * (ranked >= 0)
    return {k: float(hits[:, :k].sum() / total) for k in ks}


def genre_coherence(neighbours: np.ndarray, items: np.ndarray,
                    genres: Sequence[Set[str]]) -> float:
    """Share of each item's neighbours that share at least one genre with it.

    neighbours[i] are the neighbour columns of item column items[i]; genres[c] is the set
    of genres of item column c.
    """
    shared = [bool(genres[item] & genres[other])
              for item, row in zip(items, neighbours) for other in row]
    if not shared:
        raise ValueError("no neighbours to score")
    return float(np.mean(shared))


def split_values(joined: Iterable[str], separator: str = "|") -> List[Set[str]]:
    """`|`-joined genre/author strings -> sets of values."""
    return [{value for value in text.split(separator) if value} for text in joined]
