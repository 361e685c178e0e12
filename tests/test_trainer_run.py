"""trainer/run.py and trainer/train.py: the Trainer's run_fn on a real Transform output of the
tiny world (preprocessing_fn run with tf.Transform's Beam implementation), exporting the
candidate and the served model with every serving signature."""

import types

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

import tiny_world
from test_trainer_preprocessing import transform
from towergraph.constants import SIGNATURES
from trainer.run import CANDIDATE_DIR, candidate_dir, model_uri, run_fn

pytestmark = pytest.mark.slow  # a Beam run and two to three trainings and exports


def _rows(interactions):
    return [{"user_id": int(user[1:]), "item_id": item, "title": title, "genres": [genre],
             "authors": []}
            for user, item, title, genre in zip(interactions["user_id"], interactions["item_id"],
                                                interactions["title"], interactions["genres"])]


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                for name, value in row.items()})).SerializeToString())


@pytest.fixture(scope="module")
def transformed(tiny_interactions, tmp_path_factory):
    """Transform output dir and train/eval files (every 5th interaction is eval)."""
    root = tmp_path_factory.mktemp("run_fn")
    (root / "transform").mkdir()
    rows, _ = transform(_rows(tiny_interactions), {"top_items": 0}, str(root / "transform"))
    _write(root / "train.gz", [row for i, row in enumerate(rows) if i % 5])
    _write(root / "eval.gz", rows[::5])
    return root


def _fn_args(root, tmp_path, refit_on_all):
    return types.SimpleNamespace(
        train_files=[str(root / "train.gz")], eval_files=[str(root / "eval.gz")],
        transform_output=str(root / "transform"),
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"), model_run_dir=str(tmp_path / "model_run"),
        custom_config={"max_k": 5, "model": {
            "embedding_dim": 8, "candidate_layers": [16], "batch_size": 128, "epochs": 1,
            "refit_on_all": refit_on_all}})


def _check_exported(path):
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == set(SIGNATURES)
    similar = loaded.signatures["similar_items"](item_ids=tf.constant(["0", "nope"]),
                                                 k=tf.constant([3, 3]))
    assert similar["found"].numpy().tolist() == [True, False]
    ids = [i.decode() for i in similar["item_ids"].numpy()[0]]
    assert len(ids) == 3 and "0" not in ids and "" not in ids
    return loaded


def test_run_fn_exports_candidate_and_served_model(transformed, tmp_path):
    args = _fn_args(transformed, tmp_path, refit_on_all=False)
    run_fn(args)
    assert candidate_dir(model_uri(args.serving_model_dir)).endswith(CANDIDATE_DIR)
    candidate = _check_exported(candidate_dir(model_uri(args.serving_model_dir)))
    served = _check_exported(args.serving_model_dir)
    catalog = sorted(i.decode() for i in candidate.item_ids.numpy())
    assert catalog == sorted(str(i) for i in range(tiny_world.N_ITEMS))  # top_items 0: all
    assert candidate.item_vectors.shape == (tiny_world.N_ITEMS, 8)
    # Without refit_on_all the candidate itself is served.
    np.testing.assert_array_equal(candidate.item_vectors.numpy(), served.item_vectors.numpy())
    np.testing.assert_array_equal(candidate.item_ids.numpy(), served.item_ids.numpy())
    assert tf.io.gfile.glob(f"{args.model_run_dir}/*/events.out.tfevents.*")  # TensorBoard


def test_run_fn_refits_the_served_model_on_train_and_eval(transformed, tmp_path):
    args = _fn_args(transformed, tmp_path, refit_on_all=True)
    run_fn(args)
    candidate = tf.saved_model.load(candidate_dir(model_uri(args.serving_model_dir)))
    served = _check_exported(args.serving_model_dir)
    assert not np.allclose(candidate.item_vectors.numpy(), served.item_vectors.numpy())
    # The served model's popularity counts every interaction, train and eval.
    info = served.signatures["catalog_items"](rows=tf.constant([0], tf.int64))
    counts = tiny_world.interactions()["item_id"]
    assert int(info["popularity"].numpy()[0]) == max(np.unique(counts, return_counts=True)[1])
