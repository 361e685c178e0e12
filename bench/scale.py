"""How data preparation, Transform and training grow with the number of ratings.

    .venv/bin/python bench/scale.py [--sizes 1m,3m] [--json bench/results/scale.json]
    .venv/bin/python bench/scale.py --sizes 1m,3m,6m            # goodbooks-10k size too (long)
    .venv/bin/python bench/scale.py --sizes 6m --steps generate       # data generation only
    .venv/bin/python bench/scale.py --sizes 6m --before e29a468       # training: before/after

Data: the synthetic catalogue (pipeline.data.generate_synthetic) shaped like goodbooks-10k:
10,000 items, 113 ratings per user, users = ratings / 113 (6m: 53,097 users, 6.0M ratings).

Steps, each in its own subprocess so that its peak memory is its own:
  generate   generate_synthetic writing the prepared layout (what `data prepare` writes)
  transform  the real pipeline (pipeline.definition.create_pipeline) cut after Transform:
             CsvExampleGen -> StatisticsGen -> SchemaGen -> Transform, LocalDagRunner, Beam
             DirectRunner as --beam-mode says (default auto: the pipeline's own choice by
             input size; the result records the mode that ran), no cache
  train      what the Trainer's run_fn does before exporting: vocabularies from Transform's
             output, build_catalog over the transformed training split, compile_model, then
             ONE epoch of fit on the transformed examples (default ModelConfig), timed
CPU s is getrusage user+system time of the step and its reaped children (the Beam workers):
on a shared machine it moves less than wall time. Peak memory is the largest resident set of
the step's process tree (the step and, for Beam, its worker processes), sampled every 0.2 s
with psutil, or the step's own getrusage peak if that is larger.
Growth: for each quantity, the exponent b of value ~ size^b between consecutive sizes, also
given as the factor per doubling (2^b): 2.0 is linear.
"""

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the project, from a checkout

ITEMS = 10_000
RATINGS_PER_USER = 113  # goodbooks-10k: 5,976,479 ratings / 53,424 users
SEED = 42
STEPS = ("generate", "transform", "train")
SAMPLE_SECONDS = 0.2
BEAM_MODE = "auto"      # --beam-mode: the pipeline's own default unless told


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def users_for(ratings: int) -> int:
    return max(1, round(ratings / RATINGS_PER_USER))


# --- steps (run in a child process: bench/scale.py --step NAME --work DIR --size N) ------------

def step_generate(work: str, size: int) -> Dict:
    from pipeline.data import generate_synthetic

    started = time.perf_counter()
    manifest = generate_synthetic(os.path.join(work, "data"), users=users_for(size),
                                  items=ITEMS, ratings_per_user=RATINGS_PER_USER, seed=SEED)
    seconds = time.perf_counter() - started
    csv_bytes = os.path.getsize(os.path.join(work, "data", "interactions",
                                             "interactions.csv"))
    return {"seconds": seconds, "ratings": manifest["counts"]["ratings"],
            "users": manifest["counts"]["users"], "items": manifest["counts"]["items"],
            "csv_mb": csv_bytes / 2 ** 20}


def _config(work: str):
    from pipeline.config import load_config

    return load_config(None, data_dir=os.path.join(work, "data"),
                       output_dir=os.path.join(work, "run"), beam_mode=BEAM_MODE)


def step_transform(work: str, size: int) -> Dict:
    """The pipeline up to Transform (create_pipeline(until="Transform")), uncached."""
    from pipeline.definition import local_beam_args
    from pipeline.local_runner import run
    from pipeline.results import component_seconds

    config = _config(work)
    started = time.perf_counter()
    run(config, enable_cache=False, until="Transform")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "components": component_seconds(config),
            "beam_args": local_beam_args(config)}


def step_train(work: str, size: int) -> Dict:
    """One epoch of what the Trainer's run_fn trains (trainer/train.py), timed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf

    from trainer.config import ModelConfig
    from trainer.model import compile_model
    from trainer.train import fit, load_catalog, load_vocabularies, training_data

    transform_output, train_files, _ = common.transform_inputs(_config(work))
    config = ModelConfig()

    started = time.perf_counter()
    vocabularies = load_vocabularies(transform_output)
    catalog = load_catalog(transform_output, train_files)
    model = compile_model(vocabularies, catalog, config)
    dataset = training_data(transform_output, train_files, catalog, config,
                            interactions=int(catalog.counts.sum()))
    setup = time.perf_counter() - started

    class Clock(tf.keras.callbacks.Callback):
        """(batch index, time) at each batch-end call (Keras calls it once per
        steps_per_execution batches): the steady-state rate leaves out the first quarter
        (tracing, XLA compilation)."""

        def __init__(self):
            super().__init__()
            self.ticks: List[tuple] = []

        def on_train_batch_end(self, batch, logs=None):
            self.ticks.append((batch, time.perf_counter()))

    clock = Clock()
    fit_started = time.perf_counter()
    fit(model, dataset, epochs=1, callbacks=[clock])
    epoch = time.perf_counter() - fit_started
    examples_seen = int(catalog.counts.sum())
    warm = len(clock.ticks) // 4
    steady = None
    if 0 < warm < len(clock.ticks) - 1:
        (first, started_at), (last, ended_at) = clock.ticks[warm], clock.ticks[-2]
        steady = (last - first) * config.batch_size / (ended_at - started_at)
    return {"setup_seconds": setup, "epoch_seconds": epoch, "examples": examples_seen,
            "batches": clock.ticks[-1][0] + 1 if clock.ticks else 0,
            "examples_per_second": examples_seen / epoch,
            "steady_examples_per_second": steady, "catalog_items": len(catalog),
            "users": len(vocabularies.users), "title_tokens": len(vocabularies.title_tokens)}


STEP_FUNCTIONS = {"generate": step_generate, "transform": step_transform, "train": step_train}


def run_child(step: str, work: str, size: int, result_path: str) -> None:
    result = STEP_FUNCTIONS[step](work, size)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["self_max_rss_mb"] = usage.ru_maxrss / 1024
    result["children_max_rss_mb"] = children.ru_maxrss / 1024
    # CPU time of the step and its reaped child processes (Beam workers): less sensitive than
    # wall time to other work on a shared machine.
    result["cpu_seconds"] = (usage.ru_utime + usage.ru_stime
                             + children.ru_utime + children.ru_stime)
    Path(result_path).write_text(json.dumps(result))


# --- the parent: one subprocess per step, peak memory of its process tree ---------------------

def run_step(step: str, work: str, size: int, log, tree: Optional[str] = None) -> Dict:
    """Runs one step in a child process; `tree`: a checkout of earlier code whose own
    bench/scale.py runs it instead (the train step, on this run's Transform output)."""
    import psutil

    result_path = os.path.join(work, f"{step}.json")
    if tree:
        command = [sys.executable, os.path.join(tree, "bench", "scale.py"), "--step", step,
                   "--work", work, "--size", str(size)]
    else:
        command = [sys.executable, __file__, "--step", step, "--work", work,
                   "--size", str(size), "--beam-mode", BEAM_MODE]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        total = 0
        try:
            tree = [process] + process.children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for member in tree:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, total)
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"step {step} at {size:,} ratings failed (exit {child.returncode}); "
                           f"see {log.name}")
    result = json.loads(Path(result_path).read_text())
    result["wall_seconds"] = wall
    # Sampling can miss a short spike; the step process's own getrusage peak cannot.
    result["peak_tree_rss_mb"] = max(peak / 2 ** 20, result["self_max_rss_mb"])
    return result


def growth(sizes: List[int], values: List[float]) -> List[str]:
    """Per doubling factor between consecutive sizes: 2^b where value ~ size^b."""
    factors = []
    for (a, va), (b, vb) in zip(zip(sizes, values), zip(sizes[1:], values[1:])):
        if not (va and vb and va > 0 and vb > 0):
            factors.append("n/a")
            continue
        exponent = math.log(vb / va) / math.log(b / a)
        factors.append(f"x{2 ** exponent:.2f}")
    return factors


def report(results: Dict[str, Dict], sizes: List[int]) -> str:
    labels = list(results)
    rows = []  # (quantity, values per size)

    def value(label, step, key):
        return results[label].get(step, {}).get(key)

    def add(name, step, key, fmt):
        rows.append((name, [value(label, step, key) for label in labels], fmt))

    add("ratings", "generate", "ratings", "{:,.0f}")
    add("users", "generate", "users", "{:,.0f}")
    add("generate: wall s", "generate", "wall_seconds", "{:.1f}")
    add("generate: cpu s", "generate", "cpu_seconds", "{:.1f}")
    add("generate: peak MB", "generate", "peak_tree_rss_mb", "{:,.0f}")
    add("interactions.csv MB", "generate", "csv_mb", "{:,.0f}")
    for component in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform"):
        rows.append((f"  {component} s",
                     [(results[label].get("transform", {}).get("components") or {})
                      .get(component) for label in labels], "{:.1f}"))
    add("transform: wall s", "transform", "wall_seconds", "{:.1f}")
    add("transform: cpu s", "transform", "cpu_seconds", "{:.1f}")
    add("transform: peak MB", "transform", "peak_tree_rss_mb", "{:,.0f}")
    add("train: setup s", "train", "setup_seconds", "{:.1f}")
    add("train: 1 epoch s", "train", "epoch_seconds", "{:.1f}")
    add("train: cpu s", "train", "cpu_seconds", "{:.1f}")
    add("train: examples/s", "train", "examples_per_second", "{:,.0f}")
    add("train: steady ex/s", "train", "steady_examples_per_second", "{:,.0f}")
    add("train: peak MB", "train", "peak_tree_rss_mb", "{:,.0f}")
    add("before: 1 epoch s", "train_before", "epoch_seconds", "{:.1f}")
    add("before: examples/s", "train_before", "examples_per_second", "{:,.0f}")
    add("before: steady ex/s", "train_before", "steady_examples_per_second", "{:,.0f}")
    rows.append(("ratio examples/s", [
        value(label, "train", "examples_per_second") / value(label, "train_before",
                                                             "examples_per_second")
        if value(label, "train_before", "examples_per_second") else None
        for label in labels], "x{:.2f}"))

    width = 14
    header = f"{'':<22}" + "".join(f"{label:>{width}}" for label in labels)
    if len(labels) > 1:
        header += "".join(f"{f'{a}->{b}':>{width}}" for a, b in zip(labels, labels[1:]))
    lines = [header]
    for name, values, fmt in rows:
        if all(v is None for v in values):
            continue
        line = f"{name:<22}" + "".join(
            f"{'n/a' if v is None else fmt.format(v):>{width}}" for v in values)
        if len(labels) > 1 and name not in ("ratings", "users"):
            line += "".join(f"{g:>{width}}" for g in growth(sizes, values))
        lines.append(line)
    if len(labels) > 1:
        lines.append("columns a->b: growth per doubling of ratings (x2.00 = linear)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,3m", help="ratings per run: 1m,3m,6m, 500k...")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help="generate,transform,train (train needs transform)")
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent / "results"
                                              / "scale.json"))
    parser.add_argument("--work", help="scratch folder (default: a new temporary one, removed "
                        "after each size unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data")
    parser.add_argument("--before", metavar="REV",
                        help="also time the train step with the code of this git revision (a "
                        "worktree, removed afterwards), right after this code's, on the same "
                        "Transform output: the before/after rows and their ratio")
    parser.add_argument("--beam-mode", default="auto",
                        help="the pipeline's beam_mode for the transform step: auto (its "
                        "default), in_memory or multi_processing")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global BEAM_MODE
    BEAM_MODE = args.beam_mode

    if args.step:  # a child
        run_child(args.step, args.work, args.size, os.path.join(args.work, f"{args.step}.json"))
        return

    steps = [step for step in args.steps.split(",") if step]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown steps {unknown}")
    if "train" in steps and "transform" not in steps:
        parser.error("train reads Transform's output: include transform")
    labels = [label.strip().lower() for label in args.sizes.split(",") if label.strip()]
    sizes = [parse_size(label) for label in labels]
    base = args.work or tempfile.mkdtemp(prefix="towergraph-scale-")
    os.makedirs(base, exist_ok=True)
    print(f"scratch: {base}; {os.cpu_count()} cores; steps {steps}", flush=True)
    before_tree = None
    if args.before:
        if "train" not in steps:
            parser.error("--before compares the train step: include train")
        before_tree = os.path.join(base, f"before-{args.before}")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f",
                        before_tree, args.before], check=True, stdout=subprocess.DEVNULL)

    results: Dict[str, Dict] = {}
    started = time.perf_counter()
    for label, size in zip(labels, sizes):
        work = os.path.join(base, label)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        results[label] = {"size": size}
        with open(os.path.join(base, f"{label}.log"), "w") as log:
            for step in steps:
                result = run_step(step, work, size, log)
                results[label][step] = result
                print(f"{label} {step}: {result['wall_seconds']:.1f} s, "
                      f"peak {result['peak_tree_rss_mb']:,.0f} MB", flush=True)
                if step == "train" and before_tree:
                    result = run_step(step, work, size, log, tree=before_tree)
                    results[label]["train_before"] = result
                    print(f"{label} train with {args.before}: "
                          f"{result['wall_seconds']:.1f} s", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"synthetic catalogue: {ITEMS:,} items, {RATINGS_PER_USER} ratings per user, seed "
          f"{SEED}; default ModelConfig; Beam DirectRunner beam_mode {BEAM_MODE}")
    print(report(results, sizes))
    wall = time.perf_counter() - started
    print(f"wall time: {wall:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "setup": {"items": ITEMS, "ratings_per_user": RATINGS_PER_USER, "seed": SEED,
                      "cores": os.cpu_count(), "steps": steps},
            "results": results,
            "growth_per_doubling": {
                f"{step}.{key}": dict(zip([f"{a}->{b}" for a, b in zip(labels, labels[1:])],
                                          growth(sizes, [results[label].get(step, {}).get(key)
                                                         for label in labels])))
                for step, key in (("generate", "wall_seconds"),
                                  ("generate", "peak_tree_rss_mb"),
                                  ("transform", "wall_seconds"),
                                  ("transform", "cpu_seconds"),
                                  ("transform", "peak_tree_rss_mb"),
                                  ("train", "epoch_seconds"),
                                  ("train", "examples_per_second"),
                                  ("train", "peak_tree_rss_mb"))},
            "wall_seconds": wall,
        }, indent=2))
    if before_tree:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", before_tree],
                       check=False)
    if not args.work and not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
