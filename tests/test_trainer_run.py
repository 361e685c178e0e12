"""trainer/run.py and trainer/train.py: the Trainer's run_fn on a real Transform output of the
tiny world (preprocessing_fn run with tf.Transform's Beam implementation), exporting the
candidate and the served model with every serving signature, and warm-starting a second run
from the first one's Model artifact."""

import json
import logging
import re
import types

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

import tiny_world
from test_trainer_preprocessing import transform
from towergraph.constants import SIGNATURES
from trainer.run import CANDIDATE_DIR, WARM_START_FILE, candidate_dir, model_uri, run_fn
from trainer.train import item_vocabulary, load_vocabularies

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


def _transformed(rows, root):
    """Transform output dir and train/eval files (every 5th interaction is eval)."""
    (root / "transform").mkdir()
    rows, _ = transform(rows, {"top_items": 0}, str(root / "transform"))
    _write(root / "train.gz", [row for i, row in enumerate(rows) if i % 5])
    _write(root / "eval.gz", rows[::5])
    return root


@pytest.fixture(scope="module")
def transformed(tiny_interactions, tmp_path_factory):
    return _transformed(_rows(tiny_interactions), tmp_path_factory.mktemp("run_fn"))


@pytest.fixture(scope="module")
def grown(tiny_interactions, tmp_path_factory):
    """The tiny world a while later: user 0 and item 39 gone, user 80 and item 40 new."""
    rows = [row for row in _rows(tiny_interactions)
            if row["user_id"] != 0 and row["item_id"] != str(tiny_world.HOSTILE_ITEM)]
    rows += [{"user_id": 80, "item_id": item, "title": tiny_world.title_of(int(item)),
              "genres": [tiny_world.genre_of(int(item))], "authors": []}
             for item in ("40", "2", "4", "6", "40")]
    return _transformed(rows, tmp_path_factory.mktemp("run_fn_grown"))


def _fn_args(root, tmp_path, refit_on_all, base_model=None, refit_epochs=1):
    return types.SimpleNamespace(
        train_files=[str(root / "train.gz")], eval_files=[str(root / "eval.gz")],
        transform_output=str(root / "transform"), base_model=base_model,
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"), model_run_dir=str(tmp_path / "model_run"),
        custom_config={"max_k": 5, "model": {
            "embedding_dim": 8, "candidate_layers": [16], "batch_size": 128, "epochs": 1,
            "refit_on_all": refit_on_all, "refit_epochs": refit_epochs}})


def _warm_start_json(args):
    with open(f"{model_uri(args.serving_model_dir)}/{WARM_START_FILE}") as text:
        return json.load(text)


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


@pytest.mark.parametrize("refit_epochs", [1, 0])
def test_run_fn_refits_the_served_model_on_train_and_eval(transformed, tmp_path, caplog,
                                                         refit_epochs):
    args = _fn_args(transformed, tmp_path, refit_on_all=True, refit_epochs=refit_epochs)
    with caplog.at_level(logging.INFO):
        run_fn(args)
    candidate_path = candidate_dir(model_uri(args.serving_model_dir))
    candidate = tf.saved_model.load(candidate_path)
    served = _check_exported(args.serving_model_dir)
    assert not np.allclose(candidate.item_vectors.numpy(), served.item_vectors.numpy())
    if refit_epochs:
        # The candidate trained on: every item, user and layer carried over from its export.
        assert (f"served model, continues the candidate: from {candidate_path}: 40 of 40 "
                "items and 80 of 80 users carried over") in caplog.text
        assert re.search(r"continues the candidate: .*; (\d+) of \1 layers copied", caplog.text)
    else:
        assert "served model, warm start: trained from scratch" in caplog.text
    # A first run: nothing came from a production model, whichever way the served model began.
    assert _warm_start_json(args) == {"base_model": None}
    # The served model's popularity counts every interaction, train and eval.
    info = served.signatures["catalog_items"](rows=tf.constant([0], tf.int64))
    counts = tiny_world.interactions()["item_id"]
    assert int(info["popularity"].numpy()[0]) == max(np.unique(counts, return_counts=True)[1])


def _vocabularies(root):
    output = tft.TFTransformOutput(str(root / "transform"))
    return item_vocabulary(output), load_vocabularies(output)


def _rows_of(old, new):
    both = len(set(old) & set(new))
    return {"carried": both, "new": len(new) - both, "dropped": len(old) - both}


def test_run_fn_warm_starts_from_the_base_model_and_says_what_it_carried(
        transformed, grown, tmp_path, caplog):
    first = _fn_args(transformed, tmp_path / "first", refit_on_all=True)
    run_fn(first)
    assert _warm_start_json(first) == {"base_model": None}
    # refit_epochs 0: the served model, trained again, starts from the base's served model.
    second = _fn_args(grown, tmp_path / "second", refit_on_all=True,
                      base_model=first.serving_model_dir, refit_epochs=0)
    with caplog.at_level(logging.INFO):
        run_fn(second)
    report = _warm_start_json(second)
    (old_items, old_vocabularies), (new_items, new_vocabularies) = map(_vocabularies,
                                                                        (transformed, grown))
    assert report["base_model"] == first.serving_model_dir
    assert report["items"] == {"carried": 39, "new": 1, "dropped": 1}
    assert report["items"] == _rows_of(old_items, new_items)
    assert report["users"] == {"carried": 79, "new": 1, "dropped": 1}
    for name in ("title_tokens", "genres", "authors"):
        assert report[name] == _rows_of(getattr(old_vocabularies, name),
                                        getattr(new_vocabularies, name)), name
    assert report["title_tokens"]["dropped"] > 0   # the hostile title's words went with it
    assert report["layers"]["fresh"] == []
    assert "candidate_tower/dense_0" in report["layers"]["copied"]
    # The candidate starts from the base's candidate, the served model from its served model.
    base_candidate = candidate_dir(model_uri(first.serving_model_dir))
    assert f"candidate's warm start: from {base_candidate}: 39 of 40 items" in caplog.text
    assert f"served model, warm start: from {first.serving_model_dir}: 39 of 40 items" \
        in caplog.text
    _check_exported(second.serving_model_dir)
