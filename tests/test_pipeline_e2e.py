"""End to end: the whole local TFX pipeline on a small synthetic catalogue.

The synthetic generator knows each item's genre, and its users read mostly within a few
genres, so a model that learned anything returns same-genre neighbours. These tests take
minutes: they run the real CsvExampleGen .. Pusher with Beam and an MLMD sqlite store. The first
run is a `towergraph run` subprocess, as a user runs it, and its console is checked too (stdout
is a pipe there, so the display is plain lines); the reruns call the CLI in process.
"""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from towergraph.cli import main
from pipeline.config import load_config
from pipeline.data import generate_synthetic
from pipeline.results import latest_run_summary

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# beam_mode auto: the in-memory runner for inputs this small.
SMALL_RUN = ["--epochs", "5"]
TFX_LOG_LINE = "Component Transform is running."   # TFX's INFO log: the log file, not stdout


UNRATED = 12   # items in items.csv that nobody rated: cold items of the served catalogue


def _run(data, output, *flags):
    return main(["run", "--data", str(data), "--output", str(output), *SMALL_RUN, *flags])


def _versions(output):
    return sorted((Path(output) / "serving" / "towergraph").glob("*"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data, output = root / "data", root / "run"
    generate_synthetic(data, users=600, items=150, genres=4, ratings_per_user=25, seed=7,
                       unrated_items=UNRATED)
    # Without warm start, so that the reruns below without it find the Trainer's inputs (no
    # base_model channel) unchanged; a first run has no model to start from either way. Its
    # own temporary folder, to see what a run leaves there.
    temp = root / "temp"
    temp.mkdir()
    result = subprocess.run([str(BIN / "towergraph"), "run", "--data", str(data), "--output",
                             str(output), *SMALL_RUN, "--warm-start", "false"],
                            capture_output=True, text=True, env={**os.environ, "TMPDIR": str(temp)})
    return data, output, result


def test_a_run_leaves_nothing_in_the_temporary_folder(first_run):
    # Beam's DirectRunner left a Prism attempt's folders there, and TFX a 52 MB copy of itself
    # per Beam component (its sources packed for Beam's workers), on every run.
    data, _, result = first_run
    assert result.returncode == 0, result.stderr
    assert not list((data.parent / "temp").iterdir())


def _summary(output, **settings):
    return latest_run_summary(load_config(None, output_dir=str(output), **settings))


def test_first_run_blesses_and_pushes_a_versioned_model(first_run):
    _, output, result = first_run
    assert result.returncode == 0, result.stderr
    summary = _summary(output)
    assert set(summary.components.values()) == {"COMPLETE"}
    assert list(summary.components) == [
        "CsvExampleGen", "ItemCatalogGen", "production_model", "StatisticsGen", "SchemaGen",
        "ExampleValidator", "Transform", "Trainer", "RetrievalGate", "Pusher"]
    assert summary.metrics["blessed"]
    # A first run has no model in production: judged against popularity only, from scratch.
    assert "production" not in summary.metrics
    assert "warm start: none (trained from scratch)" in summary.describe()
    assert "catalogue: 162 items, 150 trained on, 12 cold placed by their content (" in \
        summary.describe()
    # 162 items (150 rated, 12 nobody rated): recall@100 cannot tell models apart (each user's
    # unread items are fewer), so the gate judges k=100 at half the catalogue and says so.
    assert summary.metrics["judged_ks"] == [10, 81]
    for k in summary.metrics["judged_ks"]:
        assert summary.metrics["model"][f"recall@{k}"] > summary.metrics["popularity"][f"recall@{k}"]
    [version] = _versions(output)
    assert summary.pushed_path.rstrip("/") == str(version)
    assert (version / "saved_model.pb").exists()


def test_first_run_prints_a_few_lines_and_logs_everything_else(first_run):
    _, output, result = first_run
    lines = result.stdout.splitlines()
    assert len(lines) < 60, result.stdout
    assert "\x1b" not in result.stdout            # no colour codes or cursor movement
    assert lines[0].startswith("full log: ")
    log = Path(lines[0].removeprefix("full log: "))
    assert log.parent == output / "logs" and log.name.startswith("run-")
    for component in ("CsvExampleGen", "Transform", "Trainer", "RetrievalGate", "Pusher"):
        assert any(line.split()[:2] == [component, "done"] for line in lines), component
    # The candidate's epochs, then the pushed model's (refit on train + eval).
    epochs = [line for line in lines if "epoch" in line]
    assert [line.split(",")[0].split()[-2:] for line in epochs] == [
        ["epoch", f"{epoch}/5"] for epoch in range(1, 6)] * 2
    assert not any("top_" in line or "0.0000e+00" in line for line in epochs)
    assert any(line.startswith("gate: ") for line in lines)
    # beam_mode auto picked the in-memory runner for this small input, and says so.
    assert re.search(r"^ran on: Beam FnApiRunner in_memory \(auto, by input size\); "
                     r"training on (CPU \(\d+ cores\)|GPU \(.+\)), "
                     r"loss products in (bfloat16|float32) \(auto\)$", result.stdout, re.M)
    text = log.read_text()
    assert TFX_LOG_LINE in text and TFX_LOG_LINE not in result.stdout + result.stderr
    # Third-party output written natively (TensorFlow's C++ logs) or through Python's
    # warnings and logging: in the log, not on the console.
    assert "tensorflow" in text.lower() and "tensorflow" not in result.stdout.lower()
    assert result.stderr == ""


def test_pushed_model_finds_neighbours_of_the_same_genre(first_run):
    data, output, _ = first_run
    with open(data / "items.csv", newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))  # ordered by num_ratings, most rated first
    genre = {item["item_id"]: item["genres"] for item in items}
    model = tf.saved_model.load(str(_versions(output)[-1]))
    queries = [item["item_id"] for item in items[:30]]
    result = model.signatures["similar_items"](item_ids=tf.constant(queries),
                                               k=tf.constant([10] * len(queries)))
    neighbours = result["item_ids"].numpy().astype(str)
    assert result["found"].numpy().all()
    same = [genre[neighbour] == genre[query]
            for query, row in zip(queries, neighbours) for neighbour in row]
    assert np.mean(same) >= 0.7, f"genre coherence {np.mean(same):.2f}"
    assert all(query not in row for query, row in zip(queries, neighbours))


def test_items_nobody_rated_are_served_cold_beside_items_of_their_genre(first_run):
    # They reach the model only through the item catalogue channel (items.csv): placed by
    # their title words and genre, flagged cold, their neighbours mostly of their own genre.
    data, output, _ = first_run
    with open(data / "items.csv", newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    genre = {item["item_id"]: item["genres"] for item in items}
    unrated = [item["item_id"] for item in items if item["num_ratings"] == "0"]
    assert len(unrated) == UNRATED
    model = tf.saved_model.load(str(_versions(output)[-1]))
    info = model.signatures["item_info"](item_ids=tf.constant(unrated + ["1"]))
    assert info["found"].numpy().all()
    assert info["cold"].numpy().tolist() == [True] * UNRATED + [False]
    assert (info["popularity"].numpy()[:UNRATED] == 0).all()
    result = model.signatures["similar_items"](item_ids=tf.constant(unrated),
                                               k=tf.constant([10] * UNRATED))
    neighbours = result["item_ids"].numpy().astype(str)
    same = [genre[neighbour] == genre[query]
            for query, row in zip(unrated, neighbours) for neighbour in row]
    assert np.mean(same) >= 0.6, f"genre coherence {np.mean(same):.2f} (4 genres: 0.25 by chance)"


def test_unchanged_rerun_without_warm_start_trains_nothing_and_pushes_nothing(first_run):
    data, output, _ = first_run
    assert _run(data, output, "--warm-start", "false") == 0
    summary = _summary(output)
    # The Trainer's inputs are the first run's (no warm start either): its model comes from the
    # cache, and the gate sees that it is the model in production already; nothing new is
    # pushed, exit 0.
    assert {name: state for name, state in summary.components.items()
            if name not in ("production_model", "RetrievalGate", "Pusher")} == {
        name: "CACHED" for name in ("CsvExampleGen", "ItemCatalogGen", "StatisticsGen",
                                    "SchemaGen", "ExampleValidator", "Transform", "Trainer")}
    assert summary.metrics["already_in_production"] and not summary.pushed
    assert len(_versions(output)) == 1


def test_next_run_warm_starts_from_production_and_is_judged_against_it(first_run):
    data, output, _ = first_run
    [first] = _versions(output)
    exit_code = _run(data, output)
    summary = _summary(output)
    assert summary.components["Transform"] == "CACHED"
    assert summary.components["Trainer"] == "COMPLETE"
    text = summary.describe()
    # Same data: every user and item carried over from the model in production.
    assert f"warm start: from version {first.name} (150 of 150 items and 600 of 600 users " \
           "carried over" in text, text
    assert summary.metrics["production"]["id"]
    assert f"vs production {first.name}" in text
    for k in summary.metrics["judged_ks"]:
        assert summary.metrics["production"][f"recall@{k}"] > 0
    # Blessed (and a second version pushed) exactly when it is no worse than production.
    assert exit_code == (0 if summary.metrics["blessed"] else 1)
    assert len(_versions(output)) == (2 if summary.metrics["blessed"] else 1)


def test_a_model_that_loses_to_popularity_is_not_pushed(first_run, capsys):
    data, output, _ = first_run
    # One epoch at a negligible learning rate leaves the embeddings near their random start
    # (from scratch: a warm start would begin at the production model's).
    versions = len(_versions(output))
    exit_code = _run(data, output, "--epochs", "1", "--learning-rate", "1e-7",
                     "--warm-start", "false")
    assert exit_code == 1
    summary = _summary(output)
    assert summary.components["Trainer"] == "COMPLETE"
    assert summary.components["Transform"] == "CACHED"
    assert not summary.metrics["blessed"] and not summary.pushed
    assert "NOT blessed" in capsys.readouterr().out
    assert len(_versions(output)) == versions


def test_tfx_cli_creates_and_runs_the_same_pipeline(first_run, tmp_path):
    data, output, _ = first_run
    config = tmp_path / "local.yaml"
    config.write_text(f"data_dir: {data}\noutput_dir: {output}\n"
                      "warm_start: false\nmodel:\n  epochs: 5\n")
    env = dict(os.environ, TOWERGRAPH_CONFIG=str(config), LOCAL_HOME=str(tmp_path / "tfx"))
    tfx = str(Path(sys.executable).parent / "tfx")
    for command in (["pipeline", "create", "--pipeline_path=pipeline/local_runner.py"],
                    ["run", "create", "--pipeline_name=towergraph"]):
        subprocess.run([tfx, *command, "--engine=local"], cwd=REPO, env=env, check=True)
    # Same data, code and settings as the first run (no warm start): everything up to the
    # Trainer comes from the cache.
    assert _summary(output).components["Trainer"] == "CACHED"


def test_run_without_prepared_data_says_how_to_make_it(tmp_path, capsys):
    assert main(["run", "--data", str(tmp_path / "nothing"), "--output", str(tmp_path)]) == 2
    assert "towergraph data prepare" in capsys.readouterr().err


def test_run_without_the_item_catalogue_says_what_is_missing(tmp_path, capsys):
    # Checked before any component runs: the catalogue is ItemCatalogGen's input.
    generate_synthetic(tmp_path / "prepared", users=20, items=10, genres=2, ratings_per_user=3)
    (tmp_path / "data" / "interactions").mkdir(parents=True)
    shutil.copy(tmp_path / "prepared" / "interactions" / "interactions.csv",
                tmp_path / "data" / "interactions")
    assert main(["run", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert f"no item catalogue at {tmp_path / 'data' / 'items.csv'}" in error
    assert "--cold-items false" in error
    assert not (tmp_path / "run" / "pipeline_root").exists()
