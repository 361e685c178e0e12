"""Cold-start quality (issue 11): items the model never trained on, placed by the exported
`embed_content` signature from their content alone.

    .venv/bin/python bench/cold_start.py                     # ML-100K, then goodbooks-10k
    .venv/bin/python bench/cold_start.py --datasets movielens --set id_dropout=0.1
    .venv/bin/python bench/cold_start.py --goodbooks-ratings ratings.csv --goodbooks-users 3000

Protocol, per data set: a seeded random 10% of the items (numpy default_rng(seed).choice over
the prepared items) is held out with all of its ratings. The rest is written as prepared data,
the pipeline (`create_pipeline`, as `towergraph run`) runs on it up to Transform, and
trainer.train.train (what the Trainer's run_fn calls) trains on all of its transformed examples
with the default settings (or --set ones); trainer.export.export_serving_model exports it. The
held-out ("cold") items are then embedded by the export's `embed_content` signature from their
title and genres (ML-100K) or authors (goodbooks-10k); the catalogue's items by
`catalog_items` + `serving_default`; users by `user_embeddings`.

Recall (the "recall" columns): for each user with ratings of cold items whom the model knows
(`user_embeddings` found), the cold items only are ranked (ties broken by a seeded random
order) and micro-averaged recall@10/50/100 is reported: cold-item ratings found in the top k
over all cold-item ratings of those users. With ~168 cold items on ML-100K, @100 ranks more
than half of them, so @10 and @50 are the informative cut-offs there.
  two-tower             score = user vector . embed_content vector.
  popularity-by-genre   score(u, i) = sum over g in G(i) of n_u(g) * p(g): G(i) the cold item's
                        genres (authors on goodbooks), n_u(g) how many of u's training ratings
                        are of items with g, p(g) the share of all training ratings that are of
                        items with g (the genre's overall popularity). Items sharing nothing
                        with u's history score 0.
  random                the expected recall of a uniformly random order: min(k, n) / n for n
                        cold items (exact, no sampling).

Coherence@10 (the "coherence" columns): each item's 10 nearest neighbours by cosine among all
items (the catalogue's vectors from the export plus the cold items' embed_content vectors),
the item itself excluded; the share of them that share a genre (ML-100K) or an author
(goodbooks) with it, averaged over the cold items ("cold") and over the catalogue's warm items
("warm"); "cold->warm": the cold items' 10 nearest among the catalogue's warm items only
(is a new item placed beside the right trained items, not only beside other new ones?). The
"random vectors" row does the same with seeded random unit vectors for every item: what chance
gives with these items' genres/authors.
The line under the table: the share of the cold items' 10 neighbours that are cold items
themselves (content-only vectors crowding together), beside the cold items' share of all items.

goodbooks-10k: ../shared/data/goodbooks-10k holds books.csv but only a 99-rating sample of
ratings.csv; the full ratings file (`towergraph data download`) is needed, and then all ratings
of a seeded sample of --goodbooks-users users are used (the full 6M ratings are too slow on a
laptop). Without it the data set is reported as skipped.

Output: one table per data set on stdout; bench/results/cold_start.json (--json).
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Set

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID  # noqa: E402
from trainer.metrics import (genre_coherence, interaction_matrix, recall_at_k,  # noqa: E402
                             split_values)

KS = (10, 50, 100)
COLD_FRACTION = 0.1
COHERENCE_K = 10
GOODBOOKS = common.REPO.parent / "shared" / "data" / "goodbooks-10k"
DATASETS = {
    "movielens": {"label": "ML-100K", "content": GENRES, "shared": "genre"},
    "goodbooks": {"label": "goodbooks-10k", "content": AUTHORS, "shared": "author"},
}


# --- pure helpers (tests/test_bench_helpers.py) -------------------------------------------

def cold_split(frame: pd.DataFrame, seed: int, fraction: float = COLD_FRACTION):
    """(training frame, cold frame, cold item ids): round(fraction * items) items drawn by
    numpy default_rng(seed).choice from the sorted distinct items, with all their ratings."""
    items = np.array(sorted(set(frame[ITEM_ID])), dtype=object)
    count = int(round(len(items) * fraction))
    cold = np.sort(np.random.default_rng(seed).choice(items, size=count, replace=False))
    is_cold = frame[ITEM_ID].isin(set(cold)).to_numpy()
    return (frame[~is_cold].reset_index(drop=True), frame[is_cold].reset_index(drop=True),
            [str(item) for item in cold])


def content_matrix(content: Sequence[Set[str]], values: Dict[str, int]) -> sp.csr_matrix:
    """[items, values] binary: which of `values` (value -> column) each item has; values not
    in the mapping are ignored."""
    rows = [i for i, item in enumerate(content) for value in item if value in values]
    columns = [values[value] for item in content for value in item if value in values]
    return sp.csr_matrix((np.ones(len(rows), np.float64), (rows, columns)),
                         shape=(len(content), len(values)))


def popularity_by_genre(seen: sp.csr_matrix, warm_content: Sequence[Set[str]],
                        cold_content: Sequence[Set[str]],
                        everyone: Optional[sp.csr_matrix] = None) -> np.ndarray:
    """[users, cold items] scores: sum over the cold item's genres g of n_u(g) * p(g), with
    n_u(g) the user's training ratings (rows of `seen`, users x warm items) of items with g and
    p(g) the share of all training ratings (`everyone`'s, default `seen`'s) of items with g.
    Genres no warm item has count for nothing."""
    everyone = seen if everyone is None else everyone
    values = {value: i for i, value in enumerate(sorted(set().union(*warm_content)))}
    warm = content_matrix(warm_content, values)
    per_user = np.asarray((sp.csr_matrix(seen, dtype=np.float64) @ warm).todense())
    popularity = (np.asarray((sp.csr_matrix(everyone, dtype=np.float64) @ warm).sum(axis=0))
                  .ravel() / max(float(everyone.sum()), 1.0))
    cold = content_matrix(cold_content, values)
    return np.asarray((cold @ sp.diags(popularity) @ per_user.T).T)


def rank(scores: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Top-k columns per row, best first; ties in a seeded random order."""
    tie = np.random.default_rng(seed).random(scores.shape)
    order = np.lexsort((tie, -np.asarray(scores, dtype=np.float64)), axis=1)
    return order[:, :min(k, scores.shape[1])]


def recall(ranked: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int]) -> Dict[int, float]:
    """Micro recall@k: relevant (rows x columns, binary) found in each row's top k / all
    (trainer.metrics.recall_at_k, the gate's, over every row)."""
    return recall_at_k(ranked, np.arange(relevant.shape[0]), relevant.astype(np.float64), ks)


def random_recall(n_items: int, ks: Sequence[int]) -> Dict[int, float]:
    """The expected micro recall@k of a uniformly random order of n items: min(k, n) / n."""
    return {k: min(k, n_items) / n_items for k in ks}


def nearest(vectors: np.ndarray, items: np.ndarray, k: int = COHERENCE_K,
            pool: Optional[np.ndarray] = None) -> np.ndarray:
    """[len(items), k] rows of `vectors` nearest each of `items` by cosine: among all rows, the
    item itself excluded, or among the rows `pool` (which must not hold `items`)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    outside = None
    if pool is not None:
        assert not np.isin(items, pool).any(), "items must be outside the pool"
        outside = np.ones(len(unit), bool)
        outside[np.asarray(pool)] = False
    chunks = np.array_split(np.asarray(items), max(1, len(items) // 1024))
    out = []
    for rows in chunks:
        similarity = unit[rows] @ unit.T
        if outside is not None:
            similarity[:, outside] = -np.inf
        out.append(common.neighbours_by_similarity(similarity, rows, k))
    return np.concatenate(out)


def coherence(vectors: np.ndarray, content: Sequence[Set[str]], items: np.ndarray,
              k: int = COHERENCE_K, pool: Optional[np.ndarray] = None) -> float:
    """Share of each of `items`' k nearest neighbours (nearest(): among all rows of `vectors`,
    the item itself excluded, or among `pool`) that share a value of `content` with it
    (trainer.metrics.genre_coherence)."""
    return genre_coherence(nearest(vectors, items, k, pool), items, content)


# --- data ---------------------------------------------------------------------------------

def goodbooks_input(source: Path, ratings: str, users: int, seed: int, scratch: str) -> str:
    """A goodbooks folder holding books.csv and all ratings of `users` seeded-random users."""
    frame = pd.read_csv(source / ratings, dtype=str)
    everyone = np.array(sorted(frame["user_id"].unique()), dtype=object)
    if users and users < len(everyone):
        chosen = set(np.random.default_rng(seed).choice(everyone, size=users, replace=False))
        frame = frame[frame["user_id"].isin(chosen)]
    folder = os.path.join(scratch, "goodbooks-input")
    os.makedirs(folder)
    frame.to_csv(os.path.join(folder, "ratings.csv"), index=False)
    os.symlink(os.path.abspath(source / "books.csv"), os.path.join(folder, "books.csv"))
    return folder


def prepared(name: str, args, scratch: str) -> pd.DataFrame:
    from pipeline.data import prepare

    output = os.path.join(scratch, name, "prepared")
    if name == "movielens":
        prepare("movielens", args.movielens, output)
    else:
        prepare("goodbooks", goodbooks_input(Path(args.goodbooks), args.goodbooks_ratings,
                                             args.goodbooks_users, args.seed, scratch), output)
    return common.read_interactions(output)


# --- the model's side ---------------------------------------------------------------------

def train_and_export(train: pd.DataFrame, settings: Dict, scratch: str, name: str) -> str:
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf

    from trainer.config import ModelConfig
    from trainer.export import export_serving_model
    from trainer.train import train as train_model

    data = common.write_interactions(train, os.path.join(scratch, name, "data"))
    config = common.run_pipeline(data, os.path.join(scratch, name, "run"), until="Transform")
    transform_output, train_files, eval_files = common.transform_inputs(config)
    tf.keras.backend.clear_session()
    model = train_model(transform_output, train_files + eval_files,
                        dataclasses.replace(ModelConfig(), **settings))
    export_dir = os.path.join(scratch, name, "export")
    export_serving_model(model, export_dir)
    return export_dir


class Export:
    """The exported model's vectors, through its signatures only."""

    def __init__(self, export_dir: str):
        import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
        import tensorflow as tf

        from towergraph import constants

        self.tf, self.constants = tf, constants
        self.signatures = tf.saved_model.load(export_dir).signatures
        catalog = self.signatures[constants.SIGNATURE_CATALOG_ITEMS]
        size = int(catalog(rows=tf.constant([0], tf.int64))["catalog_size"].numpy()[0])
        items = catalog(rows=tf.range(size, dtype=tf.int64))
        self.item_ids = [value.decode("utf-8") for value in items["item_ids"].numpy()]
        self.catalog_cold = items["cold"].numpy()
        out = self.signatures[constants.SIGNATURE_EMBEDDINGS](
            item_ids=tf.constant(self.item_ids))
        assert out["found"].numpy().all()
        self.item_vectors = out["embeddings"].numpy()

    def users(self, user_ids: Sequence[str]):
        out = self.signatures[self.constants.SIGNATURE_USER_EMBEDDINGS](
            user_ids=self.tf.constant(list(user_ids)))
        return out["embeddings"].numpy(), out["found"].numpy()

    def embed_content(self, titles: Sequence[str], genres: Sequence[str],
                      authors: Sequence[str]) -> np.ndarray:
        tf = self.tf
        return self.signatures[self.constants.SIGNATURE_EMBED_CONTENT](
            titles=tf.constant(list(titles)), genres=tf.constant(list(genres)),
            authors=tf.constant(list(authors)))["embeddings"].numpy()


# --- one data set -------------------------------------------------------------------------

def evaluate(name: str, frame: pd.DataFrame, args, settings: Dict, scratch: str) -> Dict:
    spec = DATASETS[name]
    content_column = spec["content"]
    started = time.perf_counter()
    train, cold_frame, cold_items = cold_split(frame, args.seed)
    print(f"{spec['label']}: {len(frame):,} ratings, {frame[USER_ID].nunique():,} users, "
          f"{frame[ITEM_ID].nunique():,} items; {len(cold_items):,} cold items held out with "
          f"their {len(cold_frame):,} ratings", flush=True)
    export_dir = train_and_export(train, settings, scratch, name)
    train_seconds = time.perf_counter() - started
    model = Export(export_dir)

    # Item content, by id, as the prepared data has it ('|'-joined).
    info = frame.drop_duplicates(ITEM_ID).set_index(ITEM_ID)

    def column_text(column: str, ids: Sequence[str]):
        return [info.at[item, column] if column in info.columns else "" for item in ids]

    cold_vectors = model.embed_content(column_text(TITLE, cold_items),
                                       column_text(GENRES, cold_items),
                                       column_text(AUTHORS, cold_items))
    content_of = dict(zip(info.index, split_values(info[content_column])))
    cold_content = [content_of[item] for item in cold_items]

    # Recall over the cold items, for the users who rated some and whom the model knows.
    users = sorted(set(cold_frame[USER_ID]))
    user_vectors, found = model.users(users)
    known = [user for user, ok in zip(users, found) if ok]
    user_vectors = user_vectors[found]
    row = {user: i for i, user in enumerate(known)}
    cold_column = {item: i for i, item in enumerate(cold_items)}
    rated = cold_frame[cold_frame[USER_ID].isin(row)]
    relevant = interaction_matrix(rated[USER_ID].map(row).to_numpy(),
                                  rated[ITEM_ID].map(cold_column).to_numpy(),
                                  (len(known), len(cold_items)))
    warm_ids = sorted(set(train[ITEM_ID]))
    warm_column = {item: i for i, item in enumerate(warm_ids)}
    history = train[train[USER_ID].isin(row)]
    seen = interaction_matrix(history[USER_ID].map(row).to_numpy(),
                              history[ITEM_ID].map(warm_column).to_numpy(),
                              (len(known), len(warm_ids)))
    # p(g) from all training ratings, n_u(g) from these users': the baseline's two parts.
    everyone = {user: i for i, user in enumerate(sorted(set(train[USER_ID])))}
    all_seen = interaction_matrix(train[USER_ID].map(everyone).to_numpy(),
                                  train[ITEM_ID].map(warm_column).to_numpy(),
                                  (len(everyone), len(warm_ids)))
    warm_content = [content_of[item] for item in warm_ids]
    baseline = popularity_by_genre(seen, warm_content, cold_content, everyone=all_seen)
    top = max(KS)
    recalls = {
        "two-tower (embed_content)": recall(rank(user_vectors @ cold_vectors.T, top, args.seed),
                                            relevant, KS),
        f"popularity-by-{spec['shared']}": recall(rank(baseline, top, args.seed), relevant, KS),
        "random (expected)": random_recall(len(cold_items), KS),
    }

    # Coherence among all items: the catalogue's vectors plus the cold ones.
    all_ids = model.item_ids + cold_items
    all_vectors = np.concatenate([model.item_vectors, cold_vectors])
    all_content = [content_of.get(item, set()) for item in all_ids]
    catalog_warm = np.flatnonzero(~model.catalog_cold)
    cold_rows = np.arange(len(model.item_ids), len(all_ids))
    random_vectors = np.random.default_rng(args.seed).normal(size=all_vectors.shape)
    coherences = {
        "two-tower (embed_content)": {
            "cold": coherence(all_vectors, all_content, cold_rows),
            "warm": coherence(all_vectors, all_content, catalog_warm),
            "cold_to_warm": coherence(all_vectors, all_content, cold_rows, pool=catalog_warm)},
        "random vectors": {
            "cold": coherence(random_vectors, all_content, cold_rows),
            "warm": coherence(random_vectors, all_content, catalog_warm),
            "cold_to_warm": coherence(random_vectors, all_content, cold_rows,
                                      pool=catalog_warm)},
    }
    result = {
        "data": {"ratings": len(frame), "users": int(frame[USER_ID].nunique()),
                 "items": int(frame[ITEM_ID].nunique()), "training_ratings": len(train),
                 "cold_items": len(cold_items), "cold_ratings": len(cold_frame),
                 "catalog_items": len(model.item_ids),
                 "catalog_cold_items": int(model.catalog_cold.sum()),
                 "evaluated_users": len(known), "unknown_users_skipped": len(users) - len(known),
                 "evaluated_cold_ratings": int(relevant.sum()), "content": content_column},
        "recall": {method: {f"recall@{k}": value for k, value in values.items()}
                   for method, values in recalls.items()},
        f"{spec['shared']}_coherence@{COHERENCE_K}": coherences,
        "cold_neighbours_cold_share": float(
            np.mean(nearest(all_vectors, cold_rows) >= len(model.item_ids))),
        "train_seconds": train_seconds, "seconds": time.perf_counter() - started}
    result["table"] = table(spec, result, recalls, coherences)
    return result


def table(spec: Dict, result: Dict, recalls: Dict, coherences: Dict) -> str:
    data = result["data"]
    prefix = f"   {spec['shared']} coherence@{COHERENCE_K}:"
    lines = [f"== {spec['label']}: {data['cold_items']:,} cold items ({data['cold_ratings']:,} "
             f"ratings) of {data['items']:,}; trained on {data['training_ratings']:,} ratings; "
             f"{data['evaluated_users']:,} users ranked over the cold items "
             f"({data['evaluated_cold_ratings']:,} ratings; {data['unknown_users_skipped']} "
             f"unknown to the model skipped) ==",
             f"{'method':<28}" + "".join(f"{f'R@{k}':>8}" for k in KS)
             + f"{prefix}{'cold':>7}{'warm':>7}{'cold->warm':>12}"]
    for method in list(recalls) + [name for name in coherences if name not in recalls]:
        cells = "".join(f"{recalls[method][k]:>8.3f}" if method in recalls else f"{'':>8}"
                        for k in KS)
        shares = coherences.get(method)
        coherent = (f"{'':>{len(prefix)}}{shares['cold']:>7.3f}{shares['warm']:>7.3f}"
                    f"{shares['cold_to_warm']:>12.3f}" if shares else "")
        lines.append(f"{method:<28}{cells}{coherent}")
    lines.append(f"the cold items' {COHERENCE_K} neighbours (two-tower) that are cold items "
                 f"themselves: {result['cold_neighbours_cold_share']:.3f} (cold items are "
                 f"{data['cold_items'] / (data['cold_items'] + data['catalog_items']):.3f} of "
                 f"all items)")
    n = data["cold_items"]
    if n < 2 * max(KS):
        lines.append(f"(only {n} cold items: " + ", ".join(
            f"R@{k} ranks {min(k / n, 1):.0%} of them" for k in KS[1:])
            + "; read R@10 and R@50 first)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="movielens,goodbooks",
                        type=lambda text: text.split(","))
    parser.add_argument("--movielens", default=str(common.ML_100K))
    parser.add_argument("--goodbooks", default=str(GOODBOOKS))
    parser.add_argument("--goodbooks-ratings", default="ratings.csv",
                        help="ratings file inside --goodbooks (the full one: towergraph data "
                             "download)")
    parser.add_argument("--goodbooks-users", type=int, default=3000,
                        help="all ratings of this many seeded-random users (0: all users)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a model setting (as `towergraph run --NAME VALUE` would set it)")
    parser.add_argument("--json", default=str(common.RESULTS / "cold_start.json"))
    args = parser.parse_args()

    from trainer.config import ModelConfig
    from trainer.settings import parse_assignments

    settings = parse_assignments(ModelConfig, args.set, "--set")
    started = time.perf_counter()
    common.determinism()
    scratch = tempfile.mkdtemp(prefix="towergraph-cold-start-")
    report: Dict = {"seed": args.seed, "cold_fraction": COLD_FRACTION,
                    "model_settings": settings, "datasets": {}}
    try:
        for name in args.datasets:
            if name == "goodbooks":
                ratings = Path(args.goodbooks) / args.goodbooks_ratings
                if not ratings.exists():
                    reason = (f"{ratings} not found (this folder holds only a 99-rating sample; "
                              f"`towergraph data download` fetches the full ratings.csv)")
                    print(f"\n== goodbooks-10k: skipped: {reason} ==", flush=True)
                    report["datasets"][name] = {"skipped": reason}
                    continue
            frame = prepared(name, args, scratch)
            result = evaluate(name, frame, args, settings, scratch)
            if name == "goodbooks":
                result["data"]["sampled_users"] = args.goodbooks_users
            print("\n" + result["table"] + f"\n({result['seconds']:.0f} s, of which pipeline "
                  f"to Transform + training + export {result['train_seconds']:.0f} s)\n",
                  flush=True)
            report["datasets"][name] = result
        report["wall_seconds"] = time.perf_counter() - started
        print(f"wall time: {report['wall_seconds']:.0f} s")
        if args.json:
            common.write_results(args.json, report)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

