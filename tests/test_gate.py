"""pipeline/gate.py: the RetrievalGate component's executor, run directly (no pipeline) on the
tiny world's exported model as the candidate and train/eval splits written as TFX Examples."""

import json
import os
import shutil

import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, ModelBlessing, Model, ModelEvaluation

import tiny_world
from pipeline.gate import METRICS_FILE, RetrievalGate
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


@pytest.fixture(scope="module")
def model_run(tiny_model_base, tmp_path_factory):
    """A Model artifact whose candidate is the tiny world's model."""
    artifact = Model()
    artifact.uri = str(tmp_path_factory.mktemp("model"))
    shutil.copytree(tiny_model_base / "1", candidate_dir(artifact.uri))
    return artifact


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


def _run_gate(tmp_path, model_run, train_pairs, eval_pairs, recall_ks):
    examples = Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    _write_split(examples.uri, "train", train_pairs)
    _write_split(examples.uri, "eval", eval_pairs)
    blessing, evaluation = ModelBlessing(), ModelEvaluation()
    blessing.uri, evaluation.uri = str(tmp_path / "blessing"), str(tmp_path / "evaluation")
    executor = RetrievalGate.EXECUTOR_SPEC.executor_class()
    executor.Do({"model": [model_run], "examples": [examples]},
                {"blessing": [blessing], "evaluation": [evaluation]},
                {"recall_ks": recall_ks, "code_version": "test"})
    with open(os.path.join(evaluation.uri, METRICS_FILE)) as handle:
        return blessing, evaluation, json.load(handle)


def test_a_model_that_beats_popularity_is_blessed(tmp_path, model_run, train_pairs):
    blessing, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                              _same_genre_unread(train_pairs), "10")
    assert metrics["blessed"] is True
    assert blessing.get_int_custom_property("blessed") == 1
    assert metrics["model"]["recall@10"] > 0.9 > metrics["popularity"]["recall@10"]
    assert metrics["users"] == metrics["held_out_interactions"] == tiny_world.N_USERS
    assert evaluation.get_float_custom_property("model_recall@10") == pytest.approx(
        metrics["model"]["recall@10"])
    assert evaluation.get_float_custom_property("popularity_recall@10") == pytest.approx(
        metrics["popularity"]["recall@10"])
    assert metrics["gate"] == "model recall@k > popularity recall@k for k in [10]"


def test_a_tie_on_one_k_is_not_a_blessing(tmp_path, model_run, train_pairs):
    # At k=30 every unread item is ranked, by the model and by popularity alike.
    blessing, _, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                     _same_genre_unread(train_pairs), "10,30")
    assert metrics["model"]["recall@10"] > metrics["popularity"]["recall@10"]
    assert metrics["model"]["recall@30"] == metrics["popularity"]["recall@30"] == 1.0
    assert metrics["blessed"] is False
    assert blessing.get_int_custom_property("blessed") == 0


def test_a_model_that_loses_to_popularity_is_not_blessed(tmp_path, model_run, train_pairs):
    blessing, evaluation, metrics = _run_gate(tmp_path, model_run, train_pairs,
                                              _other_genre_favourite(train_pairs), "1,10")
    assert metrics["popularity"] == {"recall@1": 1.0, "recall@10": 1.0}
    assert metrics["model"]["recall@10"] < 0.1
    assert metrics["blessed"] is False
    assert blessing.get_int_custom_property("blessed") == 0
    assert evaluation.get_float_custom_property("popularity_recall@1") == 1.0
