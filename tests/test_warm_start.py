"""trainer/warm_start.py: a new model initialised from an earlier model's export, on models
small enough that every row's right value is known."""

import logging
import shutil
from dataclasses import replace as dataclasses_replace

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

import tiny_world
from trainer import warm_start
from trainer.catalog import Catalog
from trainer.config import ModelConfig
from trainer.export import ServingModule, export_serving_model
from trainer.model import Vocabularies, compile_model

CONFIG = ModelConfig(embedding_dim=4, candidate_layers=(8,), query_layers=(6,))


def _catalog(items):
    return Catalog(item_ids=list(items), titles=[f"the {item} story" for item in items],
                   genres=["Drama" if i % 2 else "Comedy" for i, _ in enumerate(items)],
                   authors=None, counts=np.arange(len(items), 0, -1))


def _model(items, users, config=CONFIG, tokens=("the", "story"), warm_from=None):
    """A compiled, untrained model with every weight built (warm-started from `warm_from`)."""
    vocabularies = Vocabularies(users=list(users), title_tokens=list(tokens),
                                genres=["Comedy", "Drama"])
    model = compile_model(vocabularies, _catalog(items), config)
    return model, warm_start.apply(model, warm_from)


def _table(model, name):
    return warm_start._lookups(model)[name].embedding.embeddings.numpy()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Items [a, b, c], users [u1, u2, u3], every weight set to a distinct known value (so a
    copied row cannot be mistaken for an initialised one), exported."""
    model, _ = _model("abc", ["u1", "u2", "u3"])
    for i, variable in enumerate(model.trainable_variables):
        variable.assign(100.0 * (i + 1) + np.arange(variable.shape.num_elements(), dtype=np.float32)
                        .reshape(variable.shape))
    path = str(tmp_path_factory.mktemp("base") / "model")
    export_serving_model(model, path, max_k=2)
    return model, path


def test_rows_of_shared_values_are_copied_new_ones_fresh_removed_ones_dropped(base):
    base_model, path = base
    fresh, _ = _model("bcd", ["u2", "u3", "u4"])
    warm, report = _model("bcd", ["u2", "u3", "u4"], warm_from=path)
    old, new = _table(base_model, "items"), _table(warm, "items")
    # Row i + 1 is vocabulary value i: b is row 2 of the base and row 1 now, c 3 and 2.
    np.testing.assert_array_equal(new[1], old[2])
    np.testing.assert_array_equal(new[2], old[3])
    np.testing.assert_array_equal(new[0], old[0])              # out of vocabulary
    np.testing.assert_array_equal(new[3], _table(fresh, "items")[3])   # d: initialised
    assert not any(np.array_equal(new[3], row) for row in old)
    # The items' biases follow the item vocabulary's rows.
    old_bias, new_bias = (model.candidate_tower.bias.embeddings.numpy()
                          for model in (base_model, warm))
    np.testing.assert_array_equal(new_bias[[0, 1, 2]], old_bias[[0, 2, 3]])
    np.testing.assert_array_equal(new_bias[3], fresh.candidate_tower.bias.embeddings.numpy()[3])
    users = _table(warm, "users")
    np.testing.assert_array_equal(users[1:3], _table(base_model, "users")[2:4])
    np.testing.assert_array_equal(users[3], _table(fresh, "users")[3])
    expected = {"carried": 2, "new": 1, "dropped": 1}
    assert report.as_json() == {
        "base_model": path, "items": expected, "users": expected,
        "title_tokens": {"carried": 2, "new": 0, "dropped": 0},
        "genres": {"carried": 2, "new": 0, "dropped": 0},
        "layers": {"copied": ["query_tower/user", "candidate_tower/item",
                              "candidate_tower/title", "candidate_tower/genres",
                              "candidate_tower/item_bias",
                              "query_tower/dense_0", "query_tower/dense_1",
                              "candidate_tower/dense_0", "candidate_tower/dense_1"],
                   "fresh": []}}
    for ours, theirs in zip(warm.candidate_tower.projection + warm.query_tower.projection,
                            base_model.candidate_tower.projection
                            + base_model.query_tower.projection):
        np.testing.assert_array_equal(ours.kernel.numpy(), theirs.kernel.numpy())
        np.testing.assert_array_equal(ours.bias.numpy(), theirs.bias.numpy())
    assert report.summary().startswith(
        f"from {path}: 2 of 3 items and 2 of 3 users carried over; 1 new items, 1 new users "
        "initialised fresh; dropped (no longer in the data): 1 items, 1 users")


@pytest.mark.parametrize("change, fresh_layers, tables_copied", [
    ({"embedding_dim": 5}, ["query_tower/user", "candidate_tower/item", "candidate_tower/title",
                            "candidate_tower/genres", "query_tower/dense_0",
                            "query_tower/dense_1", "candidate_tower/dense_0",
                            "candidate_tower/dense_1"], False),
    ({"candidate_layers": (7,)}, ["candidate_tower/dense_0", "candidate_tower/dense_1"], True),
    ({"query_layers": ()}, [], True),
    ({"query_layers": (6, 3)}, ["query_tower/dense_1", "query_tower/dense_2"], True),
    ({"item_bias": False}, [], True),
])
def test_layers_of_another_shape_start_fresh_and_are_reported(base, change, fresh_layers,
                                                              tables_copied):
    base_model, path = base
    config = ModelConfig(**{**{"embedding_dim": 4, "candidate_layers": (8,),
                               "query_layers": (6,)}, **change})
    vocabularies = ("abc", ["u1", "u2", "u3"])
    fresh, _ = _model(*vocabularies, config=config)
    warm, report = _model(*vocabularies, config=config, warm_from=path)
    assert report.as_json()["layers"]["fresh"] == fresh_layers
    assert set(fresh_layers).isdisjoint(report.copied)
    for name, (_, _, layer) in warm_start._dense_layers(warm).items():
        reference = warm_start._dense_layers(fresh)[name][2]
        if name in fresh_layers:
            np.testing.assert_array_equal(layer.kernel.numpy(), reference.kernel.numpy())
        else:
            assert not np.array_equal(layer.kernel.numpy(), reference.kernel.numpy())
    items = _table(warm, "items")
    if tables_copied:
        np.testing.assert_array_equal(items, _table(base_model, "items"))
        assert report.vocabularies["items"] == warm_start.Rows(3, 0, 0)
    else:
        np.testing.assert_array_equal(items, _table(fresh, "items"))
        assert report.vocabularies["items"] == warm_start.Rows(0, 3, 3)


def test_a_base_without_item_biases_leaves_them_fresh(tmp_path):
    # Models exported before item_bias existed (or with it off) are warm-started from too.
    config = ModelConfig(embedding_dim=4, candidate_layers=(8,), item_bias=False)
    unbiased, _ = _model("abc", ["u1"], config=config)
    path = str(tmp_path / "model")
    export_serving_model(unbiased, path, max_k=2)
    warm, report = _model("abc", ["u1"], config=dataclasses_replace(config, item_bias=True),
                          warm_from=path)
    assert report.fresh == ("candidate_tower/item_bias",)
    assert "candidate_tower/item" in report.copied
    assert not warm.candidate_tower.bias.embeddings.numpy().any()


def test_other_content_features_leave_the_item_towers_first_layer_fresh(base):
    # Without genres the first layer's input is narrower anyway; the check that matters is
    # that its input is made of the same features, whatever its width.
    _, path = base
    vocabularies = Vocabularies(users=["u1"], title_tokens=["the"], authors=["Le Guin", "Ada"])
    catalog = Catalog(["a", "b", "c"], ["the a", "the b", "the c"], None, ["Ada", "", ""],
                      np.array([3, 2, 1]))
    model = compile_model(vocabularies, catalog, CONFIG)
    report = warm_start.apply(model, path)
    assert "candidate_tower/dense_0" in report.fresh
    assert "candidate_tower/dense_1" in report.copied
    assert report.vocabularies["authors"] == warm_start.Rows(0, 2, 0)
    assert "genres" not in report.as_json()


def test_a_model_warm_started_from_its_own_export_computes_the_same_vectors(
        tiny_model, tiny_model_base):
    # Same vocabularies and settings: every weight the served vectors depend on is carried.
    path = str(tiny_model_base / "1")
    vocabularies = Vocabularies(users=[f"u{u}" for u in range(tiny_world.N_USERS)],
                                title_tokens=["the", "dragon", "robot", "chronicles"],
                                genres=tiny_world.GENRES)
    model = compile_model(vocabularies, tiny_model.catalog, tiny_model.config)
    report = warm_start.apply(model, path)
    assert not report.fresh
    served = tf.saved_model.load(path)
    np.testing.assert_allclose(model.item_embeddings().numpy(), served.item_vectors.numpy(),
                               atol=1e-6)
    users = tf.constant(["u3", "u40"])
    np.testing.assert_allclose(model.query_tower(users).numpy(),
                               served.signatures["user_embeddings"](user_ids=users)
                               ["embeddings"].numpy(), atol=1e-6)


# -- bases that cannot be used: from scratch, said why ---------------------------------------

@pytest.fixture(scope="module")
def old_export(tmp_path_factory):
    """An export as made before warm start existed: no warm_start state."""
    model, _ = _model("abc", ["u1"])
    module = ServingModule(model, max_k=2)
    del module.warm_start
    path = str(tmp_path_factory.mktemp("old") / "model")
    tf.saved_model.save(module, path)
    return path


def _from_scratch(path, caplog, message):
    fresh, _ = _model("bcd", ["u2"])
    with caplog.at_level(logging.WARNING):
        model, report = _model("bcd", ["u2"], warm_from=path)
    assert report == warm_start.Report() and report.as_json() == {"base_model": None}
    assert message in caplog.text and "training from scratch" in caplog.text
    for ours, theirs in zip(model.trainable_variables, fresh.trainable_variables):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_a_base_exported_before_warm_start_existed_trains_from_scratch(old_export, caplog):
    _from_scratch(old_export, caplog, "exported before warm start existed")


def test_a_missing_base_trains_from_scratch(tmp_path, caplog):
    _from_scratch(str(tmp_path / "gone"), caplog, "no SavedModel at")


def test_an_unreadable_base_trains_from_scratch(base, tmp_path, caplog):
    broken = tmp_path / "broken"
    (broken / "variables").mkdir(parents=True)
    shutil.copy(f"{base[1]}/saved_model.pb", broken)
    (broken / "variables" / "variables.index").write_bytes(b"not a checkpoint")
    _from_scratch(str(broken), caplog, "cannot read the variables of")


def test_no_base_is_no_warm_start():
    model, report = _model("ab", ["u1"])
    assert report.as_json() == {"base_model": None}
    assert report.summary() == "trained from scratch"


# -- served clients across a vocabulary change -----------------------------------------------

def test_a_grown_vocabulary_keeps_old_ids_serves_new_ones_and_drops_removed_ones(base,
                                                                                  tmp_path):
    _, path = base
    model, _ = _model("bcd", ["u2", "u3", "u4"], warm_from=path)
    export_serving_model(model, str(tmp_path / "next"), max_k=2)
    served = tf.saved_model.load(str(tmp_path / "next"))
    items = tf.constant(["b", "c", "d", "a"])    # old, old, new, removed
    for signature in ("serving_default", "item_info"):
        found = served.signatures[signature](item_ids=items)["found"].numpy()
        assert found.tolist() == [True, True, True, False]
    similar = served.signatures["similar_items"](item_ids=items, k=tf.constant([2] * 4))
    assert similar["found"].numpy().tolist() == [True, True, True, False]
    users = served.signatures["user_embeddings"](user_ids=tf.constant(["u2", "u4", "u1"]))
    assert users["found"].numpy().tolist() == [True, True, False]
    recommend = served.signatures["recommend"](
        user_id=tf.constant(["u1", "u2"]), session_item_ids=tf.constant([["a", "d"], ["a", "b"]]),
        k=tf.constant([2, 2]))
    assert recommend["user_found"].numpy().tolist() == [False, True]
    assert recommend["session_found"].numpy().tolist() == [[False, True], [False, True]]
    # The next run can warm-start from this export in turn.
    assert warm_start.read_base(str(tmp_path / "next")).vocabularies["items"] == list("bcd")


def test_the_candidate_starts_from_the_bases_candidate_or_else_its_served_model(base, tmp_path):
    from trainer.run import candidate_dir, warm_start_bases

    served = tmp_path / "model" / "Format-Serving"
    served.mkdir(parents=True)
    assert warm_start_bases(None) == (None, None)
    # A model made before the candidate moved into the Model artifact: its served model.
    assert warm_start_bases(str(served)) == (str(served), str(served))
    shutil.copytree(base[1], candidate_dir(str(tmp_path / "model")))
    assert warm_start_bases(str(served)) == (candidate_dir(str(tmp_path / "model")),
                                             str(served))
