"""Warm start on MovieLens-100K: how many epochs a second run needs when it starts from the
first run's model (trainer/warm_start.py) instead of from scratch.

    .venv/bin/python bench/warm_start.py [--epochs 10] [--json bench/results/warm_start.json]

Protocol: a random 10% of the ratings (seeded) is held out from every model. Of the rest, the
first run trains on the earliest 80% by timestamp, the second on all of it: the data grew,
with new users and items, as between two scheduled runs. Each run is what the Trainer's
run_fn trains for the served model: the pipeline (create_pipeline, as `towergraph run`) up to
Transform on that run's data, then trainer.train.train on all of its transformed examples
with the default settings; the first run is exported (trainer/export.py) and the second is
trained twice, from scratch and with warm_start_from that export.

Recall@10/@100 on the held-out ratings after every epoch (epoch 0: before training), the full
catalogue ranked for each held-out user with their training items excluded (trainer/metrics.py,
as bench/quality.py): user and item vectors from the model's towers as its user_embeddings and
serving_default signatures compute them (users it does not know get popularity, as
`recommend` does); the last epoch's is also scored through the exported signatures, as a check.
Seconds: the epoch's training time (fit), not the scoring; setup: vocabularies, catalogue,
compile and, for the warm run, the warm start itself.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from trainer.metrics import recall_at_k, top_k_items  # noqa: E402

KS = (10, 100)
HELD_OUT_FRACTION = 0.1
FIRST_RUN_FRACTION = 0.8
TIME = "_timestamp"   # a column of the benchmark's frames only, never written


def splits(frame, timestamps: np.ndarray, seed: int):
    """(held out, first run's ratings, second run's ratings): a random HELD_OUT_FRACTION held
    out; the first run gets the earliest FIRST_RUN_FRACTION of the rest (by timestamp, ties by
    row), the second all of the rest."""
    frame = frame.assign(**{TIME: timestamps})
    rest, held_out = common.random_split(frame, seed=seed, eval_fraction=HELD_OUT_FRACTION)
    order = np.lexsort((np.arange(len(rest)), rest[TIME].to_numpy()))
    first = rest.iloc[np.sort(order[:int(round(len(rest) * FIRST_RUN_FRACTION))])]
    return held_out, first.reset_index(drop=True), rest


class ModelScorer(common.SignatureScorer):
    """SignatureScorer's scores for a model in memory: the user and item vectors and the item
    score offsets its user_embeddings and serving_default signatures would return (zero and not
    found outside its vocabularies), from its towers."""

    def __init__(self, model, problem: common.Problem):
        import tensorflow as tf

        self.problem = problem
        users = tf.constant(problem.users.astype(str))
        self.user_found = model.query_tower.known(users).numpy()
        self.user_vectors = model.query_tower(users).numpy() * self.user_found[:, None]
        column = {item: i for i, item in enumerate(problem.items)}
        vectors, offsets = model.item_embeddings().numpy(), model.score_offsets()
        self.item_vectors = np.zeros((len(problem.items), vectors.shape[1]), np.float32)
        self.score_offsets = np.zeros(len(problem.items), np.float32)
        self.item_found = np.zeros(len(problem.items), bool)
        for row, item in enumerate(model.catalog.item_ids):
            if item in column:
                self.item_vectors[column[item]] = vectors[row]
                self.score_offsets[column[item]] = offsets[row]
                self.item_found[column[item]] = True
        self.popularity = np.asarray(problem.seen.sum(axis=0)).ravel().astype(np.float32)


def recall(scorer, problem: common.Problem) -> Dict[int, float]:
    users = np.unique(problem.relevant.nonzero()[0])
    ranked = top_k_items(scorer.scores, users, problem.seen, max(KS))
    return recall_at_k(ranked, users, problem.relevant, KS)


def epoch_recorder(problem: common.Problem):
    """A Keras callback recording each epoch's training seconds and held-out recall (epoch 0:
    when training begins)."""
    import tensorflow as tf

    class Recorder(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: List[Dict] = []

        def _record(self, epoch: int, seconds: Optional[float]):
            scores = recall(ModelScorer(self.model, problem), problem)
            self.rows.append({"epoch": epoch, "seconds": seconds,
                              **{f"recall@{k}": scores[k] for k in KS}})
            print(f"  epoch {epoch}: " + ", ".join(f"R@{k} {scores[k]:.4f}" for k in KS)
                  + (f", {seconds:.1f} s" if seconds is not None else ""), flush=True)

        def on_train_begin(self, logs=None):
            self.began = time.perf_counter()   # train()'s setup ends here
            self._record(0, None)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self._record(epoch + 1, time.perf_counter() - self.started)

    return Recorder()


def transform(frame, scratch: str, name: str):
    """The pipeline up to Transform on `frame`; its output and all its transformed files."""
    data = common.write_interactions(frame.drop(columns=[TIME]),
                                     os.path.join(scratch, name, "data"))
    config = common.run_pipeline(data, os.path.join(scratch, name, "run"), until="Transform")
    transform_output, train_files, eval_files = common.transform_inputs(config)
    return transform_output, train_files + eval_files


def run(problem, transform_output, files, config, epochs: int, scratch: str, name: str,
        warm_start_from: Optional[str] = None) -> Dict:
    """trainer.train.train with a per-epoch recorder, then the export scored by signatures."""
    import tensorflow as tf

    from trainer.export import export_serving_model
    from trainer.train import train

    print(f"{name}:", flush=True)
    tf.keras.backend.clear_session()
    recorder = epoch_recorder(problem)
    started = time.perf_counter()
    model = train(transform_output, files, config, epochs=epochs, callbacks=[recorder],
                  warm_start_from=warm_start_from)
    setup = recorder.began - started
    training = sum(row["seconds"] for row in recorder.rows[1:])
    export_dir = os.path.join(scratch, "exports", name.replace(" ", "_"))
    export_serving_model(model, export_dir)
    exported = recall(common.SignatureScorer(export_dir, problem), problem)
    report = model.warm_start_report
    if report.base_model:
        print(f"  warm start: {report.summary()}", flush=True)
    return {"epochs": recorder.rows, "train_seconds": training, "setup_seconds": setup,
            "exported": {f"recall@{k}": exported[k] for k in KS}, "export_dir": export_dir,
            "catalog_items": len(model.catalog),
            "users": model.query_tower.user.index.vocabulary_size() - 1,
            "warm_start": report.as_json()}


def first_epoch_reaching(rows: List[Dict], metric: str, target: float) -> Optional[int]:
    return next((row["epoch"] for row in rows if row[metric] >= target), None)


def report_text(results: Dict, epochs: int) -> str:
    first, scratch, warm = results["first"], results["scratch"], results["warm"]
    lines = [f"{'epoch':>5} | {'second run from scratch':^26} | {'second run warm-started':^26}",
             f"{'':>5} | {'R@10':>7} {'R@100':>7} {'s':>8} | {'R@10':>7} {'R@100':>7} {'s':>8}"]
    for a, b in zip(scratch["epochs"], warm["epochs"]):
        def cells(row):
            seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
            return f"{row['recall@10']:>7.4f} {row['recall@100']:>7.4f} {seconds:>8}"
        lines.append(f"{a['epoch']:>5} | {cells(a)} | {cells(b)}")
    lines.append(f"{'total':>5} | {'':>15} {scratch['train_seconds']:>8.1f} | {'':>15} "
                 f"{warm['train_seconds']:>8.1f}")
    lines.append(f"{'setup':>5} | {'':>15} {scratch['setup_seconds']:>8.1f} | {'':>15} "
                 f"{warm['setup_seconds']:>8.1f}")
    lines.append("")
    final = first["epochs"][-1]
    targets = {"the first run's": final,
               f"the from-scratch second run's ({epochs} epochs)": scratch["epochs"][-1]}
    for label, target in targets.items():
        for metric in (f"recall@{k}" for k in KS):
            needed = {name: first_epoch_reaching(results[name]["epochs"], metric,
                                                 target[metric]) for name in ("warm", "scratch")}
            said = {name: (f"{value} epoch{'s' if value != 1 else ''}" if value is not None
                           else f"not within {epochs}") for name, value in needed.items()}
            lines.append(f"to reach {label} {metric} {target[metric]:.4f}: warm-started "
                         f"{said['warm']}, from scratch {said['scratch']}")
    lines.append("")
    for name, label in (("first", "first run"), ("scratch", "second, from scratch"),
                        ("warm", "second, warm-started")):
        result = results[name]
        lines.append(f"{label:<22} last epoch R@10 {result['epochs'][-1]['recall@10']:.4f} "
                     f"R@100 {result['epochs'][-1]['recall@100']:.4f}; through the exported "
                     f"signatures R@10 {result['exported']['recall@10']:.4f} "
                     f"R@100 {result['exported']['recall@100']:.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(common.ML_100K),
                        help="MovieLens-100K folder (default: ../shared/data/ml-100k)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every run (default: the model's default)")
    parser.add_argument("--seed", type=int, default=42, help="held-out split seed")
    parser.add_argument("--json", default=str(common.RESULTS / "warm_start.json"))
    args = parser.parse_args()

    from trainer.config import ModelConfig

    config = ModelConfig()
    epochs = args.epochs or config.epochs
    started = time.perf_counter()
    common.determinism()
    scratch = tempfile.mkdtemp(prefix="towergraph-warm-start-")
    try:
        from pipeline.data import prepare

        prepare("movielens", args.input, os.path.join(scratch, "prepared"))
        frame = common.read_interactions(os.path.join(scratch, "prepared"))
        timestamps = common.timestamps_for(frame, os.path.join(args.input, "ratings.csv"))
        held_out, first_frame, second_frame = splits(frame, timestamps, args.seed)
        problem = common.make_problem(second_frame, held_out)
        cut = first_frame[TIME].max()
        print(f"{len(frame):,} ratings: {len(held_out):,} held out; first run "
              f"{len(first_frame):,} (up to timestamp {cut}, {first_frame['user_id'].nunique():,}"
              f" users, {first_frame['item_id'].nunique():,} items); second run "
              f"{len(second_frame):,} ({second_frame['user_id'].nunique():,} users, "
              f"{second_frame['item_id'].nunique():,} items)", flush=True)

        transform_started = time.perf_counter()
        first_inputs = transform(first_frame, scratch, "first")
        second_inputs = transform(second_frame, scratch, "second")
        transform_seconds = time.perf_counter() - transform_started
        results = {"first": run(problem, *first_inputs, config, epochs, scratch, "first run")}
        results["scratch"] = run(problem, *second_inputs, config, epochs, scratch,
                                 "second run from scratch")
        results["warm"] = run(problem, *second_inputs, config, epochs, scratch,
                              "second run warm-started",
                              warm_start_from=results["first"]["export_dir"])
        text = report_text(results, epochs)
        wall = time.perf_counter() - started
        print("\n" + text)
        print(f"\nwall time: {wall:.0f} s (two pipeline runs up to Transform: "
              f"{transform_seconds:.0f} s)")
        if args.json:
            summary = {"data": {"ratings": len(frame), "held_out": len(held_out),
                                "first_run": len(first_frame), "second_run": len(second_frame),
                                "seed": args.seed},
                       "epochs": epochs, "wall_seconds": wall,
                       "results": {name: {key: value for key, value in result.items()
                                          if key != "export_dir"}
                                   for name, result in results.items()},
                       "table": text}
            common.write_results(args.json, summary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
