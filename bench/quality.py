"""Retrieval quality of the two-tower model against popularity, item-kNN and implicit ALS.

    .venv/bin/python bench/quality.py [--format movielens --input ../shared/data/ml-100k]
                                      [--json bench/results/quality.json]
                                      [--png bench/results/quality.png]
    .venv/bin/python bench/quality.py --check      # exit 1 if the two-tower misses a target
    .venv/bin/python bench/quality.py --set temperature=0.05 --set epochs=20   # try settings
    .venv/bin/python bench/quality.py --sweep "temperature=0.1|0.2" --sweep "epochs=10|20"

Setup (DESIGN.md's reference table): a random 80/20 split of the interactions
(numpy default_rng(seed).permutation), every model fitted on the same 80 %; the full catalogue
is ranked for each held-out user known in training, their training items excluded;
micro-averaged recall@10/50/100 over the held-out interactions (trainer/metrics.py, the code
the gate uses). Genre coherence@10: over the 500 most-rated items (training counts), the share
of each item's 10 nearest neighbours (cosine of item vectors) that share a genre with it.

The two-tower is trained with the project's trainer code (vocabularies as Transform computes
them, build_catalog, compile_model, fit, index_catalog) but without TFX, so a run takes minutes.
--sweep trains only the two-tower for every combination of the given settings.
"""

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

# implicit's ALS wants single-threaded BLAS (it parallelises over users itself).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Appended, not prepended: bench/serving.py must not shadow the `serving` package.
sys.path.append(str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets TF_USE_LEGACY_KERAS through trainer)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from trainer.config import ModelConfig  # noqa: E402
from trainer.features import AUTHORS, GENRES, ITEM_ID, USER_ID  # noqa: E402
from trainer.metrics import (genre_coherence, interaction_matrix, recall_at_k,  # noqa: E402
                             split_values, top_k_items)

KS = (10, 50, 100)
COHERENCE_ITEMS = 500
COHERENCE_K = 10
ALS_SETTINGS = {"factors": 64, "iterations": 15, "regularization": 0.01}
# What the two-tower must reach on ML-100K with the default ModelConfig (--check).
TARGETS = {"recall@10": 0.15, "recall@100": 0.56, "genre_coherence@10": 0.70}


@dataclasses.dataclass
class Problem:
    """The split, as matrices: rows are users, columns the training catalogue (most-rated
    first) followed by items seen only in the held-out part (no model can return those)."""

    train: "object"
    held_out: "object"
    users: np.ndarray
    items: np.ndarray
    n_catalog: int
    seen: sp.csr_matrix
    relevant: sp.csr_matrix
    evaluated: np.ndarray
    genres: list
    coherence_items: np.ndarray


def make_problem(train, held_out, item_vocabulary: List[str]) -> Problem:
    extra_items = sorted(set(held_out[ITEM_ID]) - set(item_vocabulary))
    items = np.array(list(item_vocabulary) + extra_items, dtype=object)
    users = np.array(sorted(set(train[USER_ID]) | set(held_out[USER_ID])), dtype=object)
    column = {item: i for i, item in enumerate(items)}
    row = {user: i for i, user in enumerate(users)}
    shape = (len(users), len(items))

    def matrix(frame):
        return interaction_matrix(frame[USER_ID].map(row).to_numpy(),
                                  frame[ITEM_ID].map(column).to_numpy(), shape)

    seen, relevant = matrix(train), matrix(held_out)
    known_users = np.flatnonzero(np.asarray(seen.sum(axis=1)).ravel() > 0)
    evaluated = np.intersect1d(np.unique(relevant.nonzero()[0]), known_users)

    content = None
    for name in (GENRES, AUTHORS):
        if name in train.columns:
            content = name
            break
    genres = [set() for _ in items]
    if content:
        for frame in (train, held_out):
            firsts = frame.drop_duplicates(ITEM_ID)
            for item, values in zip(firsts[ITEM_ID], split_values(firsts[content])):
                genres[column[item]] = values
    # The catalogue is ordered by training count: its first 500 are the most-rated items.
    coherence_items = np.arange(min(COHERENCE_ITEMS, len(item_vocabulary))) if content else \
        np.zeros(0, dtype=int)
    return Problem(train, held_out, users, items, len(item_vocabulary), seen, relevant,
                   evaluated, genres, coherence_items)


def recall(problem: Problem, score_fn: Callable) -> Dict[int, float]:
    """score_fn(user_rows) -> [rows, n_catalog] scores; held-out-only items rank last."""
    n_extra = len(problem.items) - problem.n_catalog

    def full(rows):
        scores = np.asarray(score_fn(rows), dtype=np.float32)
        if n_extra:
            scores = np.hstack([scores, np.full((len(rows), n_extra), -np.inf, np.float32)])
        return scores

    ranked = top_k_items(full, problem.evaluated, problem.seen, max(KS))
    return recall_at_k(ranked, problem.evaluated, problem.relevant, KS)


def neighbours_by_similarity(similarity: np.ndarray, k: int = COHERENCE_K) -> np.ndarray:
    """Top-k columns per row of a [items, catalogue] similarity, the item itself excluded
    (row i of `similarity` is catalogue item i)."""
    similarity = np.array(similarity, dtype=np.float32, copy=True)
    similarity[np.arange(len(similarity)), np.arange(len(similarity))] = -np.inf
    part = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def coherence_of_vectors(problem: Problem, vectors: np.ndarray) -> Optional[float]:
    """Genre coherence@10 of cosine neighbours of [n_catalog, d] item vectors."""
    if not len(problem.coherence_items):
        return None
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    similarity = unit[problem.coherence_items] @ unit.T
    return coherence_of_similarity(problem, similarity)


def coherence_of_similarity(problem: Problem, similarity: np.ndarray) -> Optional[float]:
    if not len(problem.coherence_items):
        return None
    neighbours = neighbours_by_similarity(similarity)
    return genre_coherence(neighbours, problem.coherence_items, problem.genres)


# --- the models ------------------------------------------------------------------------------

def fit_popularity(problem: Problem) -> Dict:
    started = time.perf_counter()
    counts = np.asarray(problem.seen[:, :problem.n_catalog].sum(axis=0)).ravel()
    counts = counts.astype(np.float32)
    seconds = time.perf_counter() - started
    return {"recall": recall(problem, lambda rows: np.broadcast_to(counts, (len(rows),
                                                                            len(counts)))),
            "coherence": None, "fit_seconds": seconds}


def fit_item_knn(problem: Problem) -> Dict:
    """Cosine between the item columns of the binary user-item matrix; a user's score for an
    item is the sum of its similarities to the user's training items."""
    started = time.perf_counter()
    matrix = problem.seen[:, :problem.n_catalog].tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    normalised = matrix @ sp.diags(1.0 / np.maximum(norms, 1e-12))
    similarity = (normalised.T @ normalised).toarray()
    np.fill_diagonal(similarity, 0.0)
    seconds = time.perf_counter() - started
    user_items = problem.seen[:, :problem.n_catalog].tocsr()
    return {"recall": recall(problem, lambda rows: (user_items[rows] @ similarity)),
            "coherence": coherence_of_similarity(problem,
                                                 similarity[problem.coherence_items]),
            "fit_seconds": seconds}


def fit_als(problem: Problem, seed: int) -> Dict:
    from implicit.cpu.als import AlternatingLeastSquares

    user_items = problem.seen[:, :problem.n_catalog].tocsr().astype(np.float32)
    started = time.perf_counter()
    model = AlternatingLeastSquares(**ALS_SETTINGS, random_state=seed,
                                    calculate_training_loss=False)
    model.fit(user_items, show_progress=False)
    seconds = time.perf_counter() - started
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return {"recall": recall(problem, lambda rows: users[rows] @ items.T),
            "coherence": coherence_of_vectors(problem, items), "fit_seconds": seconds}


def fit_two_tower(problem: Problem, config: ModelConfig, item_vocabulary: List[str],
                  verbose: int = 0) -> Dict:
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf

    tf.keras.backend.clear_session()
    model, _, catalog, seconds = common.train_two_tower(problem.train, config, verbose=verbose)
    assert list(catalog.item_ids) == list(item_vocabulary)
    items = model.item_embeddings().numpy()
    user_vectors = np.concatenate([
        model.query_tower(tf.constant(problem.users[start:start + 4096].astype(str))).numpy()
        for start in range(0, len(problem.users), 4096)])
    return {"recall": recall(problem, lambda rows: user_vectors[rows] @ items.T),
            "coherence": coherence_of_vectors(problem, items),
            "fit_seconds": seconds["prepare"] + seconds["fit"]}


def random_embeddings(problem: Problem, seed: int, dim: int = 64) -> Dict:
    vectors = np.random.default_rng(seed).normal(size=(problem.n_catalog, dim))
    return {"recall": None, "coherence": coherence_of_vectors(problem, vectors),
            "fit_seconds": None}


# --- output ----------------------------------------------------------------------------------

def _cell(value, width: int, digits: int = 3) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def table(results: Dict[str, Dict]) -> str:
    lines = [f"{'model':<16}" + "".join(f"{f'R@{k}':>8}" for k in KS)
             + f"{'coherence@10':>14}{'fit s':>9}"]
    for name, result in results.items():
        recalls = result["recall"] or {}
        lines.append(f"{name:<16}" + "".join(_cell(recalls.get(k), 8) for k in KS)
                     + _cell(result["coherence"], 14) + _cell(result["fit_seconds"], 9, 1))
    return "\n".join(lines)


def chart(results: Dict[str, Dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [f"R@{k}" for k in KS] + ["coherence@10"]
    names = list(results)
    width = 0.8 / len(names)
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for index, name in enumerate(names):
        result = results[name]
        values = [(result["recall"] or {}).get(k) for k in KS] + [result["coherence"]]
        positions = [m + (index - (len(names) - 1) / 2) * width for m in range(len(metrics))]
        bars = axis.bar([p for p, v in zip(positions, values) if v is not None],
                        [v for v in values if v is not None], width, label=name)
        axis.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    axis.set_xticks(range(len(metrics)), metrics)
    axis.set_ylim(0, 1)
    axis.set_ylabel("micro recall / share of same-genre neighbours")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, ncol=len(names), loc="upper left")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_settings(pairs: List[str]) -> Dict:
    """['temperature=0.05', 'candidate_layers=256,128', 'candidate_layers='] -> overrides."""
    settings = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name.endswith("layers"):
            settings[name] = tuple(int(v) for v in value.strip("()").split(",") if v.strip())
        else:
            settings[name] = _parse_value(value)
    return settings


def parse_sweep(specs: List[str]) -> List[Dict]:
    """['temperature=0.05|0.1', 'epochs=10|20'] -> the grid of override dicts ('|' between
    values, so that layer tuples can use commas)."""
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        axes.append([(name, parse_settings([f"{name}={value}"])[name])
                     for value in values.split("|")])
    return [dict(combination) for combination in itertools.product(*axes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="movielens")
    parser.add_argument("--input", default=str(common.ML_100K),
                        help="input dataset (default: ../shared/data/ml-100k)")
    parser.add_argument("--top-items", type=int, default=0)
    parser.add_argument("--ratings-file", help="ratings file name inside --input (goodbooks "
                        "sample: ratings_sample.csv)")
    parser.add_argument("--seed", type=int, default=42, help="split (and ALS) seed")
    parser.add_argument("--json", default=str(common.RESULTS / "quality.json"))
    parser.add_argument("--png", default=str(common.RESULTS / "quality.png"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a ModelConfig default for the two-tower "
                        "(candidate_layers=256,128; candidate_layers= for none)")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1|V2",
                        help="train only the two-tower, for every combination")
    parser.add_argument("--no-determinism", action="store_true",
                        help="skip tf.config.experimental.enable_op_determinism()")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the two-tower misses a target (meant for ML-100K)")
    parser.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity")
    args = parser.parse_args()

    started = time.perf_counter()
    if not args.no_determinism:
        common.determinism()
    scratch = tempfile.mkdtemp(prefix="towergraph-quality-")
    options = {"ratings_file": args.ratings_file} if args.ratings_file else {}
    from pipeline.data import prepare
    try:
        prepare(args.format, args.input, os.path.join(scratch, "data"),
                top_items=args.top_items, **options)
        frame = common.read_interactions(os.path.join(scratch, "data"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    train, held_out = common.random_split(frame, seed=args.seed)
    _, item_vocabulary = common.transform_vocabularies(train)
    problem = make_problem(train, held_out, item_vocabulary)
    config = dataclasses.replace(ModelConfig(), **parse_settings(args.set))
    header = (f"data: {args.format} {args.input} — {len(frame):,} interactions, "
              f"{len(problem.users):,} users, {problem.n_catalog:,} items in training; "
              f"random 80/20 split (seed {args.seed}), "
              f"{int(problem.relevant[problem.evaluated].sum()):,} held-out interactions of "
              f"{len(problem.evaluated):,} users")

    if args.sweep:
        print(header)
        rows = []
        for overrides in parse_sweep(args.sweep):
            swept = dataclasses.replace(config, **overrides)
            result = fit_two_tower(problem, swept, item_vocabulary, args.verbose)
            rows.append({"settings": overrides, **result})
            print(f"{json.dumps(overrides):<60}" + "".join(_cell(result["recall"][k], 7)
                                                          for k in KS)
                  + _cell(result["coherence"], 7) + _cell(result["fit_seconds"], 7, 1),
                  flush=True)
        if args.json and args.json != parser.get_default("json"):
            Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
        return

    results = {
        "two-tower": fit_two_tower(problem, config, item_vocabulary, args.verbose),
        "implicit ALS": fit_als(problem, args.seed),
        "item-kNN": fit_item_knn(problem),
        "popularity": fit_popularity(problem),
        "random vectors": random_embeddings(problem, args.seed),
    }
    print(header)
    print(f"two-tower: {json.dumps(dataclasses.asdict(config))}")
    print(f"implicit ALS: {json.dumps(ALS_SETTINGS)} (alpha default), binary matrix")
    print(table(results))
    tower = results["two-tower"]
    reached = {"recall@10": tower["recall"][10], "recall@100": tower["recall"][100],
               "genre_coherence@10": tower["coherence"]}
    missed = [name for name, target in TARGETS.items()
              if reached[name] is None or reached[name] < target]
    print("two-tower targets (" + ", ".join(f"{name} >= {target}" for name, target in
                                            TARGETS.items())
          + "): " + (f"MISSED {missed}" if missed else "met"))
    wall = time.perf_counter() - started
    print(f"wall time: {wall:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "data": {"format": args.format, "input": args.input, "top_items": args.top_items,
                     "interactions": len(frame), "users": len(problem.users),
                     "catalog_items": problem.n_catalog,
                     "held_out_interactions": int(problem.relevant[problem.evaluated].sum()),
                     "evaluated_users": len(problem.evaluated)},
            "split": {"kind": "random", "seed": args.seed, "eval_fraction": 0.2},
            "two_tower_config": dataclasses.asdict(config),
            "als_settings": ALS_SETTINGS,
            "results": {name: {"recall": {f"recall@{k}": v for k, v in
                                          (result["recall"] or {}).items()},
                               "genre_coherence@10": result["coherence"],
                               "fit_seconds": result["fit_seconds"]}
                        for name, result in results.items()},
            "targets": TARGETS, "targets_missed": missed,
            "wall_seconds": wall,
        }, indent=2))
    if args.png:
        chart(results, args.png, f"{Path(args.input).name}: random 80/20 split, full "
                                 f"catalogue, train items excluded")
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
