"""The two-tower model and its exported serving contract, on the tiny world (tests/tiny_world.py)."""

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from tiny_world import HOSTILE_ITEM, HOSTILE_MARKUP, N_ITEMS, N_USERS
from tiny_world import genre_of as _genre, title_of as _title
from trainer.catalog import Catalog, build_catalog
from towergraph.constants import SIGNATURES


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def catalog(tiny_catalog):
    return tiny_catalog


@pytest.fixture(scope="module")
def interactions(tiny_interactions):
    return tiny_interactions


@pytest.fixture(scope="module")
def serving(tiny_model_base):
    return tf.saved_model.load(str(tiny_model_base / "1"))


def _call(serving, signature, **inputs):
    result = serving.signatures[signature](**{name: tf.constant(value)
                                               for name, value in inputs.items()})
    return {name: value.numpy() for name, value in result.items()}


def _text(values):
    return np.vectorize(lambda value: value.decode("utf-8"), otypes=[object])(values)


# -- catalogue -------------------------------------------------------------------------------

def test_catalog_counts_interactions_and_keeps_vocabulary_order(catalog, interactions):
    assert catalog.item_ids == [str(i) for i in range(N_ITEMS)]
    assert catalog.titles[7] == _title(7)
    assert catalog.genres[7] == _genre(7)
    assert catalog.authors is None
    expected = [int((interactions["item_id"] == str(i)).sum()) for i in range(N_ITEMS)]
    assert catalog.counts.tolist() == expected
    assert catalog.sampling_probability.sum() == pytest.approx(1.0)


def test_catalog_skips_items_outside_the_vocabulary():
    batch = {"item_id": np.array([b"a", b"b", b"a"]), "title": np.array([b"A", b"B", b"A"])}
    catalog = build_catalog([batch], ["a"])
    assert catalog.item_ids == ["a"] and catalog.counts.tolist() == [2]


def test_catalog_refuses_a_vocabulary_item_missing_from_the_examples():
    batch = {"item_id": np.array([b"a"]), "title": np.array([b"A"])}
    with pytest.raises(ValueError, match="never occur"):
        build_catalog([batch], ["a", "ghost"])


def test_catalog_refuses_duplicate_ids():
    with pytest.raises(ValueError, match="not unique"):
        Catalog(["a", "a"], ["A", "A"], None, None, np.array([1, 1]))


# -- towers ----------------------------------------------------------------------------------

def test_towers_return_unit_vectors_of_the_configured_size(model, catalog):
    users = model.query_tower(tf.constant(["u1", "u2", "stranger"])).numpy()
    items = model.item_embeddings().numpy()
    assert users.shape == (3, 16) and items.shape == (N_ITEMS, 16)
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)


def test_training_path_by_row_equals_the_serving_path_by_strings(model, catalog):
    # Training gathers each item's content indices (computed once) by catalogue row; serving
    # tokenises the strings. Both must give the same vectors, or the model trained is not
    # the model served.
    rows = [7, 0, 7, N_ITEMS - 1, HOSTILE_ITEM]
    by_row = model.candidate_tower.from_rows(tf.constant(rows, dtype=tf.int64)).numpy()
    content = catalog.content()
    by_strings = model.candidate_tower(
        {name: tf.constant([column[row] for row in rows]) for name, column in content.items()}
    ).numpy()
    np.testing.assert_allclose(by_row, by_strings, atol=1e-6)


def test_an_item_without_known_words_or_genres_gets_no_content_but_its_id():
    # '' genres and a title of unknown words: no content values (zero bags), same both ways.
    from trainer.config import ModelConfig
    from trainer.model import CandidateTower, Vocabularies

    vocabularies = Vocabularies(users=["u"], title_tokens=["star", "wars"], genres=["Drama"])
    tower = CandidateTower(["a", "b"], vocabularies, ModelConfig(embedding_dim=4))
    content = {"item_id": ["a", "b"], "title": ["Star Wars", "zzz qqq"], "genres": ["", "Drama"]}
    tower.index_catalog(content)
    title_values, title_splits = tower._content_ids["title"]
    assert title_splits.numpy().tolist() == [0, 2, 2]
    genre_values, genre_splits = tower._content_ids["genres"]
    assert genre_splits.numpy().tolist() == [0, 0, 1]
    by_row = tower.from_rows(tf.constant([1, 0], dtype=tf.int64)).numpy()
    by_strings = tower({name: tf.constant(column[::-1]) for name, column in content.items()})
    np.testing.assert_allclose(by_row, by_strings.numpy(), atol=1e-6)


@pytest.mark.parametrize("query_layers", [(), (8,)])
def test_an_item_tower_without_hidden_layers_trains_and_matches_the_user_vectors(
        catalog, interactions, query_layers):
    # candidate_layers: [] with title and genres: the item vector is the sum of the id and
    # content embeddings (no concatenation to project), so it has the users' size and the
    # model trains; before, a [B, 3 * dim] item vector met a [B, dim] user vector.
    import tiny_world
    from trainer.config import ModelConfig
    from trainer.model import Vocabularies, compile_model

    vocabularies = Vocabularies(users=[f"u{u}" for u in range(N_USERS)],
                                title_tokens=["the", "dragon", "robot", "chronicles"],
                                genres=tiny_world.GENRES)
    config = ModelConfig(embedding_dim=8, candidate_layers=(), query_layers=query_layers,
                         batch_size=64, epochs=1)
    model = compile_model(vocabularies, catalog, config)
    assert model.candidate_tower.projection == []
    dataset = tf.data.Dataset.from_tensor_slices(interactions).batch(64)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["mean_loss"][-1])
    items = model.item_embeddings().numpy()
    users = model.query_tower(tf.constant(["u1", "stranger"])).numpy()
    assert items.shape == (N_ITEMS, 8) and users.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    content = catalog.content()
    rows = [3, 0, HOSTILE_ITEM]
    by_strings = model.candidate_tower(
        {name: tf.constant([column[row] for row in rows]) for name, column in content.items()})
    np.testing.assert_allclose(items[rows], by_strings.numpy(), atol=1e-6)


def test_training_learns_the_genres(model):
    # Every user reads one genre: their top-10 must be (nearly) all of it.
    assert model.metrics_after_training["factorized_top_k/top_10_categorical_accuracy"] > 0.3
    users = model.query_tower(tf.constant([f"u{u}" for u in range(N_USERS)])).numpy()
    scores = users @ model.item_embeddings().numpy().T
    top = np.argsort(-scores, axis=1)[:, :10]
    same_genre = (top % 2) == (np.arange(N_USERS)[:, None] % 2)
    assert same_genre.mean() > 0.9


# -- the serving contract --------------------------------------------------------------------

def test_export_has_every_signature_of_the_contract(serving):
    assert set(serving.signatures) == set(SIGNATURES)


def test_item_embeddings_flag_unknown_ids_with_zero_vectors(serving, model):
    result = _call(serving, "serving_default", item_ids=["3", "no-such-item", ""])
    assert result["found"].tolist() == [True, False, False]
    np.testing.assert_allclose(result["embeddings"][0], model.item_embeddings().numpy()[3],
                               rtol=1e-5)
    assert not result["embeddings"][1:].any()


def test_similar_items_are_cosine_neighbours_without_the_query_item(serving, model):
    result = _call(serving, "similar_items", item_ids=["4", "5"], k=[5, 5])
    vectors = model.item_embeddings().numpy()
    for row, item in enumerate([4, 5]):
        ids = [int(i) for i in _text(result["item_ids"][row])]
        assert item not in ids
        cosine = vectors[item] @ vectors.T
        cosine[item] = -np.inf
        assert ids == np.argsort(-cosine)[:5].tolist()
        np.testing.assert_allclose(result["scores"][row], cosine[ids], rtol=1e-4)
        assert list(_text(result["titles"][row])) == [_title(i) for i in ids]
        assert list(_text(result["genres"][row])) == [_genre(i) for i in ids]
        assert sum(i % 2 == item % 2 for i in ids) >= 4  # neighbours share the genre


def test_similar_items_pads_short_rows_and_flags_unknown_items(serving):
    result = _call(serving, "similar_items", item_ids=["4", "ghost"], k=[2, 3])
    assert result["found"].tolist() == [True, False]
    assert result["item_ids"].shape == (2, 3)
    assert result["item_ids"][0, 2] == b"" and result["item_ids"][0, 1] != b""
    assert (result["item_ids"][1] == b"").all() and not result["scores"][1].any()


@pytest.mark.parametrize("k", [0, 21])
def test_k_outside_1_to_max_k_is_an_error_naming_the_limit(serving, k):
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be"):
        _call(serving, "similar_items", item_ids=["4"], k=[k])


def test_user_embeddings_flag_unknown_users(serving, model):
    result = _call(serving, "user_embeddings", user_ids=["u3", "nobody"])
    assert result["found"].tolist() == [True, False]
    np.testing.assert_allclose(result["embeddings"][0],
                               model.query_tower(tf.constant(["u3"])).numpy()[0], rtol=1e-5)
    assert not result["embeddings"][1].any()


def test_recommend_covers_user_session_both_and_neither(serving):
    result = _call(serving, "recommend",
                   user_id=["u0", "", "u1", "nobody"],
                   session_item_ids=[["", ""], ["1", "3"], ["5", "ghost"], ["", ""]],
                   k=[10, 10, 10, 10])
    assert _text(result["strategy"]).tolist() == ["user", "session", "user+session", "popular"]
    assert result["user_found"].tolist() == [True, False, True, False]
    assert result["session_found"].tolist() == [[False, False], [True, True],
                                                [True, False], [False, False]]
    ids = [[int(i) for i in _text(row)] for row in result["item_ids"]]
    assert sum(i % 2 == 0 for i in ids[0]) >= 9           # u0 reads even (Fantasy) items
    assert sum(i % 2 == 1 for i in ids[1]) >= 9           # a Science Fiction session
    assert not {1, 3} & set(ids[1]) and 5 not in ids[2]   # browsed items are not repeated


def test_recommend_ranks_by_cosine_plus_the_items_learned_offset(serving, model):
    # The item bias (model.item_bias, on by default) is trained, so offsets differ by item;
    # serving_default returns them; recommend adds them to the cosine; similar_items does not.
    offsets = model.score_offsets()
    assert offsets.std() > 1e-3
    items = _call(serving, "serving_default", item_ids=["3", "7", "ghost"])
    np.testing.assert_allclose(items["score_offset"], [offsets[3], offsets[7], 0.0], rtol=1e-5)
    result = _call(serving, "recommend", user_id=["u0"], session_item_ids=[[""]], k=[10])
    user = model.query_tower(tf.constant(["u0"])).numpy()[0]
    scores = model.item_embeddings().numpy() @ user + offsets
    ids = [int(i) for i in _text(result["item_ids"][0])]
    assert ids == np.argsort(-scores)[:10].tolist()
    np.testing.assert_allclose(result["scores"][0], scores[ids], rtol=1e-4, atol=1e-5)


def test_the_item_bias_adds_to_the_training_logits(model):
    # [q, temperature] . [c, bias] / temperature = q . c / temperature + bias: the identity the
    # fused loss relies on to train the bias without a second logits computation.
    rows = tf.constant([0, 5, 9], tf.int64)
    queries = model.query_tower(tf.constant(["u0", "u1"]))
    candidates = model.candidate_tower.from_rows(rows)
    temperature = model.config.temperature
    logits = (model._biased_queries(queries).numpy()
              @ model._biased_candidates(candidates, rows).numpy().T) / temperature
    bias = model.candidate_tower.bias_of_rows(rows).numpy()
    np.testing.assert_allclose(logits, queries.numpy() @ candidates.numpy().T / temperature
                               + bias[None, :], rtol=1e-5, atol=1e-6)


def test_recommend_for_nobody_known_falls_back_to_popularity(serving, catalog):
    result = _call(serving, "recommend", user_id=["nobody"], session_item_ids=[[""]], k=[5])
    ids = [int(i) for i in _text(result["item_ids"][0])]
    counts = catalog.counts[ids]
    assert (np.diff(counts) <= 0).all() and counts[0] == catalog.counts.max()


def test_search_ranks_prefix_then_phrase_then_all_words(serving):
    result = _call(serving, "search", query=["the dragon chronicles 1", "CHRONICLES 12",
                                             "12 dragon"], k=[3, 3, 3])
    titles = _text(result["titles"])
    assert titles[0][0] in {_title(10), _title(12), _title(14), _title(16), _title(18)}
    assert titles[1][0] == _title(12) and result["scores"][1][0] > 2   # phrase match
    assert titles[2][0] == _title(12) and 1 < result["scores"][2][0] < 2  # every word


def test_search_is_literal_case_insensitive_and_empty_safe(serving):
    result = _call(serving, "search", query=["dr.gon", "[", "", "ROBOT chron", r"\E.*"],
                   k=[3, 3, 3, 3, 3])
    assert (result["item_ids"][:3] == b"").all()    # '.' and '[' are not regex syntax
    assert all(t.startswith("The Robot") for t in _text(result["titles"][3]))
    assert (result["item_ids"][4] == b"").all()


def test_item_info_returns_content_and_popularity(serving, catalog):
    result = _call(serving, "item_info", item_ids=["7", "ghost"])
    assert result["found"].tolist() == [True, False]
    assert _text(result["titles"]).tolist() == [_title(7), ""]
    assert result["popularity"].tolist() == [catalog.counts[7], 0]


def test_titles_are_returned_verbatim_markup_included(serving):
    result = _call(serving, "item_info", item_ids=[str(HOSTILE_ITEM)])
    assert _text(result["titles"])[0].endswith(HOSTILE_MARKUP)


def test_catalog_items_pages_the_catalogue_by_position(serving, catalog):
    result = _call(serving, "catalog_items", rows=np.array([0, 7, -1, N_ITEMS], np.int64))
    assert result["found"].tolist() == [True, True, False, False]
    assert _text(result["item_ids"]).tolist() == [catalog.item_ids[0], catalog.item_ids[7],
                                                  "", ""]
    assert _text(result["titles"])[1] == catalog.titles[7]
    assert result["popularity"].tolist() == [catalog.counts[0], catalog.counts[7], 0, 0]
    assert result["catalog_size"].tolist() == [N_ITEMS] * 4


def test_a_huge_search_query_is_cut_not_compiled_whole(serving):
    huge = "robot " + "x" * 1_000_000
    result = _call(serving, "search", query=[huge, "robot chron"], k=[3, 3])
    assert (result["item_ids"][0] == b"").all()     # the cut query matches nothing, no error
    assert all(t.startswith("The Robot") for t in _text(result["titles"][1]))


@pytest.mark.parametrize("extra, logq", [(0, True), (5, True), (0, False)])
def test_fused_training_loss_equals_the_tfrs_retrieval_loss(extra, logq):
    import tensorflow_recommenders as tfrs
    from trainer.model import sampled_softmax_loss

    rng = np.random.default_rng(3)
    batch, dim = 12, 8
    queries = tf.math.l2_normalize(tf.constant(rng.normal(size=(batch, dim)), tf.float32), -1)
    candidates = tf.math.l2_normalize(
        tf.constant(rng.normal(size=(batch + extra, dim)), tf.float32), -1)
    # Rows with repeats: accidental hits (the same item twice in a batch) must be removed.
    rows = tf.constant(rng.integers(0, 6, size=batch + extra), tf.int64)
    probability = tf.constant(rng.uniform(1e-7, 0.3, size=batch + extra), tf.float32)
    task = tfrs.tasks.Retrieval(temperature=0.2, remove_accidental_hits=True)
    expected = task(queries, candidates, candidate_ids=rows, compute_metrics=False,
                    candidate_sampling_probability=probability if logq else None)
    fused = sampled_softmax_loss(queries, candidates, rows,
                                 probability if logq else tf.ones_like(probability), 0.2)
    assert float(fused) == pytest.approx(float(expected), rel=1e-5)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([queries, candidates])
        a = task(queries, candidates, candidate_ids=rows, compute_metrics=False,
                 candidate_sampling_probability=probability if logq else None)
        b = sampled_softmax_loss(queries, candidates, rows,
                                 probability if logq else tf.ones_like(probability), 0.2)
    for want, got in zip(tape.gradient(a, [queries, candidates]),
                         tape.gradient(b, [queries, candidates])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra", [0, 4])
def test_fused_loss_with_a_positive_offset_splits_the_global_batch_exactly(extra):
    """Under several replicas each one's queries meet the gathered global batch's candidates
    with their positives at the replica's offset: the replicas' losses and gradients add up to
    the one-process loss of the whole batch (uneven replica batches included)."""
    from trainer.model import sampled_softmax_loss

    rng = np.random.default_rng(5)
    batch, dim, first = 11, 8, 6          # replica 0: queries 0..5, replica 1: 6..10
    queries = tf.math.l2_normalize(tf.constant(rng.normal(size=(batch, dim)), tf.float32), -1)
    candidates = tf.math.l2_normalize(
        tf.constant(rng.normal(size=(batch + extra, dim)), tf.float32), -1)
    rows = tf.constant(rng.integers(0, 5, size=batch + extra), tf.int64)
    probability = tf.constant(rng.uniform(1e-3, 0.3, size=batch + extra), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([queries, candidates])
        whole = sampled_softmax_loss(queries, candidates, rows, probability, 0.2)
        parts = [sampled_softmax_loss(queries[start:stop], candidates, rows, probability, 0.2,
                                      positive_offset=tf.constant(start))
                 for start, stop in ((0, first), (first, batch))]
        split = parts[0] + parts[1]
    assert float(split) == pytest.approx(float(whole), rel=1e-5)
    # The second replica's loss alone is not the first's: the offset moves the positives.
    assert float(parts[1]) != pytest.approx(float(sampled_softmax_loss(
        queries[first:], candidates, rows, probability, 0.2)), rel=1e-3)
    for want, got in zip(tape.gradient(whole, [queries, candidates]),
                         tape.gradient(split, [queries, candidates])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_bfloat16_loss_products_stay_close_to_float32():
    """model.loss_precision bfloat16 rounds the products' inputs, nothing else: the loss and
    its gradients stay within a fraction of a percent of float32's (and do differ from
    them, so the bfloat16 path is the one that ran: at the default batch and width, as XLA
    computes small products in float32 whatever they ask for)."""
    from trainer.model import sampled_softmax_loss

    rng = np.random.default_rng(7)
    batch, dim = 1024, 129
    queries = tf.math.l2_normalize(tf.constant(rng.normal(size=(batch, dim)), tf.float32), -1)
    candidates = tf.math.l2_normalize(tf.constant(rng.normal(size=(batch, dim)), tf.float32), -1)
    rows = tf.constant(rng.integers(0, 2000, size=batch), tf.int64)
    probability = tf.constant(rng.uniform(1e-5, 1e-3, size=batch), tf.float32)
    results = {}
    for precision in ("float32", "bfloat16"):
        with tf.GradientTape() as tape:
            tape.watch([queries, candidates])
            loss = sampled_softmax_loss(queries, candidates, rows, probability, 0.3,
                                        precision=precision)
        results[precision] = [loss.numpy()] + [g.numpy() for g in
                                               tape.gradient(loss, [queries, candidates])]
    exact, rounded = results["float32"], results["bfloat16"]
    assert rounded[0] == pytest.approx(exact[0], rel=1e-3)
    for want, got in zip(exact[1:], rounded[1:]):
        error = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert 0 < error < 0.01
