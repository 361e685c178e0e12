"""What the benchmarks share: the data, the split protocols, the evaluation matrices, and the
project's own pipeline and trainer functions to make the model that is measured.

No second implementation of the trainer lives here: models come from `create_pipeline` run by
`pipeline.local_runner.run` (what `towergraph run` does), or from `trainer.train.train` on
that pipeline's Transform output (what the Trainer's `run_fn` calls); they are scored through
their exported signatures.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
ML_100K = REPO.parent / "shared" / "data" / "ml-100k"
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:  # run as `python bench/x.py` from a checkout
    sys.path.insert(0, str(REPO))

from pipeline.data.prepared import INTERACTIONS, Item, write_prepared  # noqa: E402
from trainer.features import (GENRES, AUTHORS, ITEM_ID, LIST_FEATURES,  # noqa: E402
                              LIST_SEPARATOR, RATING, TITLE, USER_ID)
from trainer.metrics import interaction_matrix, split_values, user_item_scores  # noqa: E402


# --- data and splits -------------------------------------------------------------------------

def write_results(path: str, results) -> None:
    """A bench's results as JSON at `path` (its folder made if needed); values JSON cannot
    hold (paths, numpy numbers) are written as text."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2, default=str) + "\n")


def read_interactions(prepared_dir: str) -> pd.DataFrame:
    """The prepared interactions CSV as strings ('' for an empty list cell)."""
    return pd.read_csv(os.path.join(prepared_dir, INTERACTIONS), dtype=str,
                       keep_default_na=False, na_filter=False)


def write_interactions(frame: pd.DataFrame, prepared_dir: str) -> str:
    """Writes a subset of prepared interactions as prepared data (the one writer, so
    items.csv, the pipeline's item catalogue, lists the subset's items): the pipeline trains
    on exactly these interactions and knows no other item."""
    lists = [name for name in LIST_FEATURES if name in frame.columns]
    content = frame.drop_duplicates(ITEM_ID)
    items = {row[ITEM_ID]: Item(row[TITLE], **{
                 name: tuple(value for value in row[name].split(LIST_SEPARATOR) if value)
                 for name in lists})
             for row in content.to_dict("records")}
    write_prepared(prepared_dir, items,
                   zip(frame[USER_ID], frame[ITEM_ID], frame[RATING].astype(str)),
                   {"format": "bench subset"})
    return prepared_dir


def random_split(frame: pd.DataFrame, seed: int = 42,
                 eval_fraction: float = 0.2) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Random split of interactions: numpy default_rng(seed).permutation; the first
    (1 - eval_fraction) share of the permutation trains, the rest is held out."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(len(frame) * (1 - eval_fraction)))
    return (frame.iloc[np.sort(order[:cut])].reset_index(drop=True),
            frame.iloc[np.sort(order[cut:])].reset_index(drop=True))


def temporal_split(frame: pd.DataFrame, timestamps: np.ndarray,
                   eval_fraction: float = 0.2) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest `eval_fraction` of interactions (by timestamp, ties by row) held out;
    a user with one interaction keeps it in training."""
    order = pd.DataFrame({"user": frame[USER_ID].to_numpy(), "time": timestamps,
                          "row": np.arange(len(frame))}).sort_values(["user", "time", "row"])
    position = order.groupby("user").cumcount().to_numpy()
    size = order.groupby("user")["row"].transform("size").to_numpy()
    held = position >= np.ceil(size * (1 - eval_fraction))
    rows = order["row"].to_numpy()
    return (frame.iloc[np.sort(rows[~held])].reset_index(drop=True),
            frame.iloc[np.sort(rows[held])].reset_index(drop=True))


def timestamps_for(frame: pd.DataFrame, ratings_csv: str) -> np.ndarray:
    """The raw ratings file's timestamp of each prepared (user, item) interaction."""
    raw = pd.read_csv(ratings_csv, dtype={USER_ID: str, ITEM_ID: str})
    raw = raw.drop_duplicates([USER_ID, ITEM_ID], keep="last")
    merged = frame[[USER_ID, ITEM_ID]].merge(raw[[USER_ID, ITEM_ID, "timestamp"]],
                                             on=[USER_ID, ITEM_ID], how="left")
    if merged["timestamp"].isna().any():
        raise ValueError(f"{ratings_csv}: some prepared interactions have no timestamp")
    return merged["timestamp"].to_numpy(dtype=np.int64)


# --- the evaluation problem ------------------------------------------------------------------

@dataclasses.dataclass
class Problem:
    """A split as matrices. Columns: items by training count (most-rated first), then items
    seen only in the held-out part (no model trained on the split can return those)."""

    users: np.ndarray
    items: np.ndarray
    n_catalog: int
    seen: sp.csr_matrix          # training interactions, users x items
    relevant: sp.csr_matrix      # held-out interactions
    genres: List[Set[str]]       # per item column (genres, else authors)

    def train_matrix(self) -> sp.csr_matrix:
        return self.seen[:, :self.n_catalog].tocsr()

    def most_rated(self, n: int) -> np.ndarray:
        return np.arange(min(n, self.n_catalog))


def make_problem(train: pd.DataFrame, held_out: pd.DataFrame) -> Problem:
    counts = train[ITEM_ID].value_counts()
    catalog = sorted(counts.index, key=lambda item: (-counts[item], item))
    extra = sorted(set(held_out[ITEM_ID]) - set(catalog))
    items = np.array(catalog + extra, dtype=object)
    users = np.array(sorted(set(train[USER_ID]) | set(held_out[USER_ID])), dtype=object)
    column = {item: i for i, item in enumerate(items)}
    row = {user: i for i, user in enumerate(users)}

    def matrix(frame):
        return interaction_matrix(frame[USER_ID].map(row).to_numpy(),
                                  frame[ITEM_ID].map(column).to_numpy(),
                                  (len(users), len(items)))

    content = next((name for name in (GENRES, AUTHORS) if name in train.columns), None)
    genres: List[Set[str]] = [set() for _ in items]
    if content:
        both = pd.concat([train, held_out]).drop_duplicates(ITEM_ID)
        for item, values in zip(both[ITEM_ID], split_values(both[content])):
            genres[column[item]] = values
    return Problem(users, items, len(catalog), matrix(train), matrix(held_out), genres)


def matrices_like(problem: Problem, *frames: pd.DataFrame) -> List[sp.csr_matrix]:
    """Interactions of `frames` as users x catalogue matrices in the problem's rows and
    columns (items outside the training catalogue are left out)."""
    column = {item: i for i, item in enumerate(problem.items[:problem.n_catalog])}
    row = {user: i for i, user in enumerate(problem.users)}
    out = []
    for frame in frames:
        columns = frame[ITEM_ID].map(column)
        keep = columns.notna().to_numpy()
        out.append(interaction_matrix(frame[USER_ID].map(row).to_numpy()[keep],
                                      columns.to_numpy()[keep].astype(int),
                                      (len(problem.users), problem.n_catalog)))
    return out


def neighbours_by_similarity(similarity: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k columns per row of a [len(rows), items] similarity, row i's own item excluded."""
    similarity = np.array(similarity, dtype=np.float32, copy=True)
    similarity[np.arange(len(rows)), rows] = -np.inf
    part = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


# --- the pipeline's model --------------------------------------------------------------------

def run_pipeline(data_dir: str, output_dir: str, until: Optional[str] = None,
                 model: Optional[Dict] = None, **settings):
    """Runs `create_pipeline` locally (what `towergraph run` runs); returns its config."""
    from pipeline.config import load_config
    from pipeline.local_runner import run

    config = load_config(None, data_dir=data_dir, output_dir=output_dir, model=model or {},
                         **settings)
    run(config, until=until)
    return config


def pushed_model_dir(config) -> str:
    """The newest version the Pusher wrote under <serving>/<model_name>/."""
    base = Path(config.model_base_path)
    versions = sorted((path for path in base.iterdir() if path.name.isdigit()),
                      key=lambda path: int(path.name)) if base.exists() else []
    if not versions:
        raise RuntimeError(f"nothing pushed under {base}: did the gate reject the model?")
    return str(versions[-1])


def transform_inputs(config):
    """(TFTransformOutput, train files, eval files) of the latest run's Transform: what the
    Trainer's run_fn receives."""
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow_transform as tft

    from pipeline.results import output_uri

    graph = output_uri(config, "Transform", "transform_graph")
    examples = output_uri(config, "Transform", "transformed_examples")
    return (tft.TFTransformOutput(graph), [os.path.join(examples, "Split-train", "*")],
            [os.path.join(examples, "Split-eval", "*")])


class SignatureScorer:
    """Scores a problem's users and items through an exported model's signatures: user
    vectors from `user_embeddings`, item vectors and score offsets from `serving_default`
    (ranked as `recommend` ranks: trainer.metrics.user_item_scores), neighbours from
    `similar_items`. Users the model does not know get popularity, as `recommend` does."""

    def __init__(self, model_dir: str, problem: Problem):
        import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
        import tensorflow as tf

        from towergraph import constants

        self.tf = tf
        self.loaded = tf.saved_model.load(model_dir)
        self.signatures = self.loaded.signatures
        self.problem = problem
        users = self.signatures[constants.SIGNATURE_USER_EMBEDDINGS](
            user_ids=tf.constant(problem.users.astype(str)))
        self.user_vectors = users["embeddings"].numpy()
        self.user_found = users["found"].numpy()
        items = self.signatures[constants.SIGNATURE_EMBEDDINGS](
            item_ids=tf.constant(problem.items.astype(str)))
        self.item_vectors = items["embeddings"].numpy()
        self.score_offsets = items["score_offset"].numpy()
        self.item_found = items["found"].numpy()
        self.popularity = np.asarray(problem.seen.sum(axis=0)).ravel().astype(np.float32)
        self.similar_items_name = constants.SIGNATURE_SIMILAR_ITEMS

    def scores(self, rows: np.ndarray) -> np.ndarray:
        scores = user_item_scores(self.user_vectors[rows], self.item_vectors, self.score_offsets)
        scores[:, ~self.item_found] = -np.inf
        unknown = ~self.user_found[rows]
        scores[unknown] = self.popularity
        return scores

    def neighbours(self, item_columns: np.ndarray, k: int) -> List[List[str]]:
        """The `similar_items` signature's top-k item ids for the given item columns."""
        tf = self.tf
        out = self.signatures[self.similar_items_name](
            item_ids=tf.constant(self.problem.items[item_columns].astype(str)),
            k=tf.constant(np.full(len(item_columns), k, np.int32)))
        return [[value.decode("utf-8") for value in row if value]
                for row in out["item_ids"].numpy()]


def genre_coherence_of(problem: Problem, items: Sequence[int],
                       neighbour_columns: Sequence[Sequence[int]]) -> Optional[float]:
    """Share of neighbours sharing a genre with their item (None: the data has no genres)."""
    if not any(problem.genres):
        return None
    shared = [bool(problem.genres[item] & problem.genres[other])
              for item, row in zip(items, neighbour_columns) for other in row]
    return float(np.mean(shared)) if shared else None


def determinism() -> None:
    """Same numbers for the same seed: seeded ops and deterministic kernels."""
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
