"""The user tower's history pooling and the mixed negatives, on hand-made inputs with known
answers (no training)."""

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.catalog import build_catalog, build_histories
from trainer.config import ModelConfig
from trainer.model import Vocabularies, compile_model

USERS = ["ann", "bob", "cy"]
ITEMS = ["i0", "i1", "i2", "i3"]
# ann rated i0, i1, i2; bob i3 (twice); cy nothing known; "zed" is not in the vocabulary.
PAIRS = [("ann", "i0"), ("ann", "i1"), ("bob", "i3"), ("ann", "i2"), ("bob", "i3"),
         ("zed", "i1"), ("ann", "gone")]


def _batches():
    users, items = zip(*PAIRS)
    return [{"user_id": np.array([u.encode() for u in users], dtype=object),
             "item_id": np.array([i.encode() for i in items], dtype=object),
             "title": np.array([f"Title {i}".encode() for i in items], dtype=object)}]


def _model(**settings):
    config = ModelConfig(**{"embedding_dim": 4, "candidate_layers": (4,), "batch_size": 4,
                            "user_history": True, **settings})
    batches = _batches()
    keep = [i for i, item in enumerate(batches[0]["item_id"]) if item.decode() in ITEMS]
    catalog = build_catalog([{name: values[keep] for name, values in batches[0].items()}],
                            ITEMS)
    histories = build_histories(batches, USERS, ITEMS)
    vocabularies = Vocabularies(users=USERS, title_tokens=["title"])
    return compile_model(vocabularies, catalog, config, histories), histories


def test_histories_hold_each_known_users_distinct_catalogue_rows():
    histories = build_histories(_batches(), USERS, ITEMS)
    # row 0: unknown users; then ann, bob, cy in vocabulary order
    assert histories.row_splits.tolist() == [0, 0, 3, 4, 4]
    assert histories.values.tolist() == [0, 1, 2, 3]


def test_history_mean_leaves_out_the_item_being_predicted():
    model, _ = _model()
    tower = model.query_tower
    embedding = tower.item_embedding
    rows = embedding(tf.constant([1, 2, 3]))  # catalogue rows 0, 1, 2 (index 0 is unknown)
    index = tower.user.index(tf.constant(["ann", "ann", "bob", "cy"]))
    means = tower._history_mean(index, leave_out=tf.constant([0, 3, 3, 1], tf.int64)).numpy()
    np.testing.assert_allclose(means[0], tf.reduce_mean(rows[1:], axis=0), rtol=1e-5)  # -i0
    np.testing.assert_allclose(means[1], tf.reduce_mean(rows, axis=0), rtol=1e-5)  # i3 not hers
    np.testing.assert_allclose(means[2], 0.0, atol=1e-7)   # bob's only item left out: nothing
    np.testing.assert_allclose(means[3], 0.0, atol=1e-7)   # cy has no history


def test_user_history_needs_histories_and_is_optional():
    model, _ = _model()
    vocabularies = Vocabularies(users=USERS, title_tokens=["title"])
    with pytest.raises(ValueError, match="histories"):
        compile_model(vocabularies, model.catalog, model.config)
    plain = compile_model(vocabularies, model.catalog,
                          ModelConfig(embedding_dim=4, candidate_layers=(4,), user_history=False))
    assert plain.query_tower.item_embedding is None


def test_uniform_negatives_add_candidates_to_the_softmax():
    features = {"user_id": tf.constant(["ann", "bob"]), "item_id": tf.constant(["i0", "i3"]),
                "title": tf.constant(["Title i0", "Title i3"])}
    losses = []
    for extra in (0, 64):
        model, _ = _model(uniform_negatives=extra, seed=7)
        losses.append(float(model.compute_loss(features, training=True)))
    # Same seed, same weights: more negatives in the denominator can only raise the loss.
    assert losses[1] > losses[0]
