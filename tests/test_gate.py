"""pipeline/gate.py: the RetrievalGate component's executor, run directly (no pipeline) on the
tiny world's exported model as the candidate and train/eval splits written as TFX Examples.

A worse model, for the comparisons with production: the tiny world's model with the vectors of
items 0 (Fantasy) and 1 (Science Fiction) swapped, so each sits among the other genre; it still
beats popularity, but misses those two items where they are held out.
"""

import json
import os
import shutil

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, ModelBlessing, Model, ModelEvaluation
from tfx.utils import path_utils

import tiny_world
from pipeline.gate import METRICS_FILE, RetrievalGate
from trainer.export import export_serving_model
from trainer.features import ITEM_ID, USER_ID
from trainer.run import candidate_dir


def _write_split(examples_uri, split, pairs, shards=2):
    folder = os.path.join(examples_uri, f"Split-{split}")
    os.makedirs(folder)
    for shard in range(shards):
        path = os.path.join(folder, f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for user, item in pairs[shard::shards]:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                    ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
                })).SerializeToString())


def _model_artifact(folder, artifact_id, source=None, export=None, served_only=False):
    """A Model artifact (with an MLMD id) holding a copy of the model at `source`, or one that
    `export(path)` writes, as its candidate (or, served_only, as its Format-Serving folder)."""
    artifact = Model()
    artifact.uri = str(folder)
    artifact.id = artifact_id
    path = (path_utils.serving_model_path(artifact.uri) if served_only
            else candidate_dir(artifact.uri))
    if source is not None:
        shutil.copytree(source, path)
    else:
        export(path)
    return artifact


class _SwappedItems:
    """The tiny model with two items' vectors swapped; everything else is the model's."""

    def __init__(self, model, items):
        self._model = model
        vectors = np.array(model.item_embeddings())
        rows = [list(model.catalog.item_ids).index(item) for item in items]
        vectors[rows] = vectors[rows[::-1]]
        self._vectors = vectors

    def __getattr__(self, name):
        return getattr(self._model, name)

    def item_embeddings(self):
        return self._vectors


@pytest.fixture(scope="module")
def model_run(tiny_model_base, tmp_path_factory):
    """A Model artifact whose candidate is the tiny world's model."""
    return _model_artifact(tmp_path_factory.mktemp("model"), 2, source=tiny_model_base / "1")


@pytest.fixture(scope="module")
def good_production(tiny_model_base, tmp_path_factory):
    """An earlier Model artifact whose candidate is the same (good) model."""
    return _model_artifact(tmp_path_factory.mktemp("good"), 1, source=tiny_model_base / "1")


@pytest.fixture(scope="module")
def worse_production(tiny_model, tmp_path_factory):
    swapped = _SwappedItems(tiny_model, ["0", "1"])
    return _model_artifact(tmp_path_factory.mktemp("worse"), 1,
                           export=lambda path: export_serving_model(swapped, path, max_k=20))


@pytest.fixture(scope="module")
def worse_run(worse_production, tmp_path_factory):
    """A candidate Model artifact holding the worse model."""
    return _model_artifact(tmp_path_factory.mktemp("worse_run"), 2,
                           source=candidate_dir(worse_production.uri))


@pytest.fixture(scope="module")
def train_pairs(tiny_interactions):
    return list(zip(tiny_interactions["user_id"].astype(str),
                    tiny_interactions["item_id"].astype(str)))


def _same_genre_unread(train_pairs):
    """One unread item of their own genre per user: what a genre-aware model finds."""
    read = set(train_pairs)
    pairs = []
    for u in range(tiny_world.N_USERS):
        item = next(i for i in range(u % 2, tiny_world.N_ITEMS, 2) if (f"u{u}", str(i)) not in read)
        pairs.append((f"u{u}", str(item)))
    return pairs


def _other_genre_favourite(train_pairs):
    """The most-read item ("22", Fantasy) held out for every Science Fiction reader:
    popularity finds it first, a genre-aware model does not."""
    return [(f"u{u}", "22") for u in range(1, tiny_world.N_USERS, 2)]


def _run_gate(tmp_path, model_run, train_pairs, eval_pairs, recall_ks, baseline=None,
              tolerance=None):
    examples = Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    _write_split(examples.uri, "train", train_pairs)
    _write_split(examples.uri, "eval", eval_pairs)
    blessing, evaluation = ModelBlessing(), ModelEvaluation()
    blessing.uri, evaluation.uri = str(tmp_path / "blessing"), str(tmp_path / "evaluation")
    executor = RetrievalGate.EXECUTOR_SPEC.executor_class()
    inputs = {"model": [model_run], "examples": [examples]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    parameters = {"recall_ks": recall_ks, "code_version": "test"}
    if tolerance is not None:
        parameters["tolerance"] = tolerance
    executor.Do(inputs, {"blessing": [blessing], "evaluation": [evaluation]}, parameters)
    with open(os.path.join(evaluation.uri, METRICS_FILE)) as handle:
        return blessing, evaluation, json.load(handle)


def test_a_first_model_that_beats_popularity_is_blessed(tmp_path, model_run, train_pairs):
    blessing, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                              _same_genre_unread(train_pairs), "10")
    assert metrics["blessed"] is True
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == model_run.id
    assert metrics["model"]["recall@10"] > 0.9 > metrics["popularity"]["recall@10"]
    assert metrics["users"] == metrics["held_out_interactions"] == tiny_world.N_USERS
    assert evaluation.get_float_custom_property("model_recall@10") == pytest.approx(
        metrics["model"]["recall@10"])
    assert evaluation.get_float_custom_property("popularity_recall@10") == pytest.approx(
        metrics["popularity"]["recall@10"])
    # No production model yet: judged against popularity only, and it says so.
    assert "production" not in metrics and metrics["already_in_production"] is False
    assert "production_model_id" not in evaluation.mlmd_artifact.custom_properties
    assert metrics["gate"] == ("candidate recall@k > popularity at k in [10] "
                               "(no production model yet) -> blessed")


def test_a_k_near_the_catalogue_size_is_capped_and_does_not_block_a_good_model(
        tmp_path, model_run, train_pairs):
    # 40 items, 10 read per user: at k=30 or more every unread item is ranked, by the model and
    # by popularity alike (recall 1.0, no strict win possible). Judged at 20 instead.
    blessing, _, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                     _same_genre_unread(train_pairs), "10,30,100")
    assert metrics["judged_ks"] == [10, 20]
    assert [(k["configured"], k["judged"]) for k in metrics["ks"]] == [(10, 10), (30, 20),
                                                                        (100, 20)]
    assert "why" not in metrics["ks"][0]
    assert "40 items" in metrics["ks"][2]["why"]
    assert sorted(metrics["model"]) == sorted(metrics["popularity"]) == ["recall@10", "recall@20"]
    assert metrics["popularity"]["recall@20"] < 1.0
    assert metrics["blessed"] is True
    assert blessing.get_int_custom_property("blessed") == 1


def test_a_model_that_loses_to_popularity_is_not_blessed(tmp_path, model_run, train_pairs):
    blessing, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                              _other_genre_favourite(train_pairs), "1,10")
    assert metrics["popularity"] == {"recall@1": 1.0, "recall@10": 1.0}
    assert metrics["model"]["recall@10"] < 0.1
    assert metrics["blessed"] is False
    assert blessing.get_int_custom_property("blessed") == 0
    assert evaluation.get_float_custom_property("popularity_recall@1") == 1.0
    assert "recall@10 0.000 does not beat popularity 1.000" in metrics["reasons"]
    assert "-> NOT blessed: " in metrics["gate"]


def test_a_candidate_worse_than_production_is_refused(tmp_path, worse_run, good_production,
                                                      train_pairs):
    blessing, evaluation, metrics = _run_gate(tmp_path, worse_run, train_pairs,
                                              _same_genre_unread(train_pairs), "10",
                                              baseline=good_production)
    model, production = metrics["model"]["recall@10"], metrics["production"]["recall@10"]
    assert model > metrics["popularity"]["recall@10"]       # popularity alone would bless it
    assert production - model > 0.005
    assert metrics["blessed"] is False and metrics["already_in_production"] is False
    assert blessing.get_int_custom_property("blessed") == 0
    assert metrics["reasons"] == [f"recall@10 {model:.3f} is more than 0.005 below production "
                                  f"{production:.3f}"]
    assert metrics["tolerance"] == 0.005
    assert {key: metrics["production"][key] for key in ("id", "uri", "evaluated", "path")} == {
        "id": 1, "uri": good_production.uri, "evaluated": "candidate",
        "path": candidate_dir(good_production.uri)}
    assert "note" not in metrics["production"]
    assert metrics["gate"].startswith("candidate recall@k > popularity and >= production model "
                                      "1 - 0.005 at k in [10] -> NOT blessed: ")
    assert evaluation.get_float_custom_property("production_recall@10") == pytest.approx(
        production)
    assert evaluation.get_int_custom_property("production_model_id") == 1
    assert evaluation.get_string_custom_property("production_model_uri") == good_production.uri


def test_a_candidate_better_than_production_is_blessed(tmp_path, model_run, worse_production,
                                                       train_pairs):
    blessing, _, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                     _same_genre_unread(train_pairs), "10,20",
                                     baseline=worse_production)
    for k in (10, 20):
        assert metrics["model"][f"recall@{k}"] >= metrics["production"][f"recall@{k}"]
    assert metrics["model"]["recall@10"] > metrics["production"]["recall@10"]
    assert metrics["blessed"] is True and metrics["reasons"] == []
    assert blessing.get_int_custom_property("blessed") == 1
    assert metrics["gate"] == ("candidate recall@k > popularity and >= production model 1 - "
                               "0.005 at k in [10, 20] -> blessed")


def test_a_candidate_within_the_tolerance_of_production_is_blessed(
        tmp_path, worse_run, good_production, train_pairs):
    blessing, _, metrics = _run_gate(tmp_path, worse_run, train_pairs,
                                     _same_genre_unread(train_pairs), "10,20",
                                     baseline=good_production, tolerance=0.6)
    gap = max(metrics["production"][f"recall@{k}"] - metrics["model"][f"recall@{k}"]
              for k in (10, 20))
    assert 0.005 < gap <= 0.6
    assert metrics["blessed"] is True and metrics["tolerance"] == 0.6
    assert blessing.get_int_custom_property("blessed") == 1


def test_a_candidate_equal_to_production_is_blessed(tmp_path, model_run, good_production,
                                                    train_pairs):
    # Another artifact with the same model (e.g. retrained on the same data): no worse.
    _, _, metrics = _run_gate(tmp_path, model_run, train_pairs,
                              _same_genre_unread(train_pairs), "10", baseline=good_production,
                              tolerance=0.0)
    assert metrics["model"] == {name: value for name, value in metrics["production"].items()
                                if name.startswith("recall@")}
    assert metrics["blessed"] is True


def test_a_production_model_without_a_candidate_is_judged_by_its_served_model(
        tmp_path, tiny_model_base, model_run, train_pairs):
    served_only = _model_artifact(tmp_path / "old", 1, source=tiny_model_base / "1",
                                  served_only=True)
    assert not os.path.exists(candidate_dir(served_only.uri))
    _, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                       _same_genre_unread(train_pairs), "10",
                                       baseline=served_only)
    assert metrics["production"]["evaluated"] == "served"
    assert metrics["production"]["path"] == path_utils.serving_model_path(served_only.uri)
    assert "may have seen this eval split" in metrics["production"]["note"]
    assert metrics["production"]["recall@10"] == metrics["model"]["recall@10"]
    assert evaluation.get_string_custom_property("production_evaluated") == "served"


def test_the_model_already_in_production_is_not_blessed_again(tmp_path, model_run,
                                                              train_pairs):
    # The Trainer came from the cache: its model is the production model itself.
    blessing, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                              _same_genre_unread(train_pairs), "10",
                                              baseline=model_run)
    assert metrics["already_in_production"] is True
    assert metrics["blessed"] is False
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_int_custom_property("current_model_id") == model_run.id
    assert metrics["model"]["recall@10"] > 0.9    # still measured, and shown
    assert metrics["production"]["id"] == model_run.id
    assert metrics["production"]["recall@10"] == metrics["model"]["recall@10"]
    assert "already in production" in metrics["gate"]
    assert evaluation.get_int_custom_property("already_in_production") == 1
