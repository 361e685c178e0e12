"""Cold-start items (issue 11): id-dropout, cold catalogue rows, their serving outputs."""

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.catalog import build_catalog
from trainer.config import ConfigError, ModelConfig
from trainer.model import CandidateTower, Vocabularies


def _tower():
    vocabularies = Vocabularies(users=["u"], title_tokens=["star", "wars"], genres=["Drama"])
    tower = CandidateTower(["a", "b"], vocabularies, ModelConfig(embedding_dim=4))
    content = {"item_id": ["a", "b"], "title": ["Star Wars", "Wars"], "genres": ["", "Drama"]}
    tower.index_catalog(content)
    return tower, content


# -- id-dropout ------------------------------------------------------------------------------

def test_a_dropped_id_embeds_the_item_by_its_content_alone():
    tower, content = _tower()
    rows = tf.constant([0, 1, 1], dtype=tf.int64)
    dropped = tower.from_rows(rows, tf.constant([True, True, False])).numpy()
    unknown_id = tower({"item_id": tf.constant(["?", "?", "b"]),
                        "title": tf.constant(["Star Wars", "Wars", "Wars"]),
                        "genres": tf.constant(["", "Drama", "Drama"])}).numpy()
    np.testing.assert_allclose(dropped, unknown_id, atol=1e-6)
    kept = tower.from_rows(rows).numpy()
    np.testing.assert_allclose(dropped[2], kept[2], atol=1e-6)
    assert not np.allclose(dropped[1], kept[1])


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_id_dropout_is_a_share(value):
    with pytest.raises(ConfigError, match="id_dropout"):
        ModelConfig(id_dropout=value)


# -- cold items in the catalogue -------------------------------------------------------------

def _examples():
    rows = [("a", "A", "X"), ("c", "C1", "Y"), ("b", "B", "X"), ("c", "C2", "Z"), ("d", "D", "Y"),
            ("a", "A", "X"), ("e", "E", "Z"), ("e", "E", "Z"), ("c", "C3", "Y")]
    item, title, genres = (np.array([row[i] for row in rows]).astype(bytes) for i in range(3))
    return [{"item_id": item[:5], "title": title[:5], "genres": genres[:5]},
            {"item_id": item[5:], "title": title[5:], "genres": genres[5:]}]


def test_cold_items_follow_the_warm_ones_most_rated_first_with_content_and_counts():
    catalog = build_catalog(_examples(), ["a", "b"], max_cold_items=10)
    assert catalog.item_ids == ["a", "b", "c", "e", "d"]
    assert catalog.warm_items == 2 and catalog.warm_ids == ["a", "b"]
    assert catalog.cold.tolist() == [False, False, True, True, True]
    assert catalog.counts.tolist() == [2, 1, 3, 2, 1]
    assert catalog.titles == ["A", "B", "C1", "E", "D"]   # the first row seen
    assert catalog.genres == ["X", "X", "Y", "Z", "Y"]
    assert catalog.sampling_probability.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_the_cap_keeps_the_most_rated_cold_items_with_a_second_scan_for_their_content():
    # 'd' is met before 'e' (the first kept content), but 'e' is rated more: the second
    # scan fetches its content.
    scans = []

    def batches():
        scans.append(1)
        return _examples()

    catalog = build_catalog(batches, ["a", "b"], max_cold_items=2)
    assert catalog.item_ids == ["a", "b", "c", "e"] and catalog.titles[3] == "E"
    assert len(scans) == 2
    assert build_catalog(_examples(), ["a", "b"]).item_ids == ["a", "b"]   # no cold items


def test_catalogue_items_no_example_names_follow_as_unrated_cold_items_while_there_is_room():
    # The item catalogue (items.csv's examples): rated items already in the catalogue are
    # skipped, the others follow in the catalogue's order, with 0 interactions; a column the
    # examples have and the catalogue lacks (genres) reads ''.
    catalogue = [{"item_id": np.array(["a", "f", "c", "g"], dtype=object),
                  "title": np.array(["A", "F", "C", "G"], dtype=object)},
                 {"item_id": np.array(["h", "f"], dtype=object),
                  "title": np.array(["H", "F again"], dtype=object)}]
    catalog = build_catalog(_examples(), ["a", "b"], max_cold_items=10,
                            catalog_items=catalogue)
    assert catalog.item_ids == ["a", "b", "c", "e", "d", "f", "g", "h"]
    assert catalog.counts.tolist() == [2, 1, 3, 2, 1, 0, 0, 0]
    assert catalog.titles[5:] == ["F", "G", "H"] and catalog.genres[5:] == ["", "", ""]
    assert catalog.cold.tolist() == [False] * 2 + [True] * 6
    assert catalog.sampling_probability.tolist() == pytest.approx([2 / 3, 1 / 3])
    # max_cold_items bounds the examples' cold items and the catalogue's together.
    assert build_catalog(_examples(), ["a", "b"], max_cold_items=4,
                         catalog_items=catalogue).item_ids == ["a", "b", "c", "e", "d", "f"]
    assert build_catalog(_examples(), ["a", "b"], max_cold_items=0,
                         catalog_items=catalogue).item_ids == ["a", "b"]


def test_the_item_catalogue_is_read_and_cleaned_as_transform_cleans_interactions(tmp_path):
    # CsvExampleGen infers numeric ids as int64 and leaves empty cells out; Transform makes
    # them text ("7") and '' (trainer.preprocessing.dense_strings), and so must this reader,
    # or an id would not match its own interactions.
    from trainer.dataset import read_item_catalog

    def example(item_id, title, genres=None):
        feature = {"item_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[item_id])),
                   "title": tf.train.Feature(bytes_list=tf.train.BytesList(
                       value=[title.encode("utf-8")])),
                   "num_ratings": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
        if genres is not None:
            feature["genres"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[genres.encode("utf-8")]))
        return tf.train.Example(features=tf.train.Features(feature=feature))

    path = str(tmp_path / "items.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in [example(7, " Amélie ", "Comedy|Romance"), example(10, "Ten"),
                       example(2, "Two", "Drama")]:
            writer.write(record.SerializeToString())
    batches = list(read_item_catalog([path], ("item_id", "title", "genres", "authors"),
                                     batch_size=2))
    assert [batch["item_id"].tolist() for batch in batches] == [["7", "10"], ["2"]]
    assert [batch["title"].tolist() for batch in batches] == [["Amélie", "Ten"], ["Two"]]
    assert [batch["genres"].tolist() for batch in batches] == [["Comedy|Romance", ""],
                                                                ["Drama"]]
    assert "authors" not in batches[0]   # a column the catalogue does not have


def test_a_cold_row_is_embedded_by_its_content_alone():
    vocabularies = Vocabularies(users=["u"], title_tokens=["a", "c1"], genres=["X", "Y"])
    catalog = build_catalog(_examples(), ["a", "b"], max_cold_items=10)
    tower = CandidateTower(catalog.warm_ids, vocabularies, ModelConfig(embedding_dim=4))
    tower.index_catalog(catalog.content())
    by_row = tower.from_rows(tf.constant([2, 0], dtype=tf.int64)).numpy()
    content = {"title": tf.constant(["C1", "A"]), "genres": tf.constant(["Y", "X"]),
               "authors": tf.constant(["ignored", "ignored"])}
    by_content = tower.from_content(content).numpy()
    np.testing.assert_allclose(by_row[0], by_content[0], atol=1e-6)
    assert not np.allclose(by_row[1], by_content[1])   # a warm row has its id
    assert tower.item.embedding.input_dim == 3          # the id vocabulary stays warm-only


# -- a tiny world whose ten least items are cold ---------------------------------------------

WARM = 30   # items 0..29 are in the item vocabulary (as if top_items were 30), 30..39 are cold


def build_cold_world(tiny_interactions, tmp_path_factory):
    """The tiny world trained on its warm items only; the cold ones join the catalogue (the
    session's `cold_world` fixture, tests/conftest.py, shared by every module that needs it)."""
    import dataclasses

    import tiny_world
    from trainer.catalog import build_histories
    from trainer.export import ServingModule, export_serving_model
    from trainer.model import compile_model

    data = tiny_interactions
    catalog = build_catalog(tiny_world._batches(data), [str(i) for i in range(WARM)],
                            max_cold_items=100)
    assert catalog.warm_items == WARM and len(catalog) == tiny_world.N_ITEMS
    warm = np.isin(data["item_id"], catalog.warm_ids)
    training = {name: values[warm] for name, values in data.items()}
    vocabularies = Vocabularies(users=[f"u{u}" for u in range(tiny_world.N_USERS)],
                                title_tokens=["the", "dragon", "robot", "chronicles"],
                                genres=tiny_world.GENRES)
    config = ModelConfig(embedding_dim=16, candidate_layers=(32,), batch_size=64,
                         learning_rate=0.2, epochs=15, id_dropout=0.25)
    histories = build_histories(tiny_world._batches(training), vocabularies.users,
                                catalog.warm_ids)
    model = compile_model(vocabularies, catalog, config, histories)
    dataset = tf.data.Dataset.from_tensor_slices(training).shuffle(1000, seed=1).batch(64)
    model.fit(dataset, epochs=config.epochs, verbose=0)
    path = str(tmp_path_factory.mktemp("cold") / "1")
    export_serving_model(model, path, max_k=tiny_world.MAX_K)
    model.config = dataclasses.replace(config, cold_neighbours=False)
    warm_only = ServingModule(model, max_k=tiny_world.MAX_K)
    model.config = config
    return {"catalog": catalog, "model": model, "serving": tf.saved_model.load(path),
            "warm_only": warm_only, "path": path}


def _call(function, **inputs):
    return {name: value.numpy() for name, value in
            function(**{name: tf.constant(value) for name, value in inputs.items()}).items()}


def _ids(values):
    return np.vectorize(lambda value: value.decode("utf-8"), otypes=[object])(values)


COLD_IDS = [str(i) for i in range(WARM, 40)]


def test_cold_items_are_found_and_flagged_cold_and_warm_ones_not(cold_world):
    serving = cold_world["serving"].signatures
    ids = COLD_IDS + ["0", "29", "nope"]
    info = _call(serving["item_info"], item_ids=ids)
    assert info["found"].tolist() == [True] * 12 + [False]
    assert info["cold"].tolist() == [True] * 10 + [False] * 3
    assert (info["popularity"][:10] > 0).all()
    embedded = _call(serving["serving_default"], item_ids=ids)
    assert embedded["cold"].tolist() == info["cold"].tolist()
    np.testing.assert_allclose(np.linalg.norm(embedded["embeddings"][:12], axis=1), 1.0,
                               rtol=1e-5)
    rows = _call(serving["catalog_items"], rows=np.arange(-1, 41, dtype=np.int64))
    assert rows["cold"].tolist() == [False] + [False] * WARM + [True] * 10 + [False]
    assert _ids(rows["item_ids"][WARM + 1:-1]).tolist() == cold_world["catalog"].item_ids[WARM:]


def test_a_cold_items_neighbours_are_mostly_of_its_genre(cold_world):
    from tiny_world import genre_of

    result = _call(cold_world["serving"].signatures["similar_items"], item_ids=COLD_IDS,
                   k=np.full(10, 10, np.int32))
    assert result["found"].all()
    ids = _ids(result["item_ids"])
    same = [genre_of(int(n)) == genre_of(int(item))
            for item, row in zip(COLD_IDS, ids) for n in row]
    assert np.mean(same) >= 0.8, np.mean(same)
    assert (result["cold"] == (ids.astype(int) >= WARM)).all()
    assert result["cold"].any()   # cold items may be neighbours (cold_neighbours, the default)


def test_cold_neighbours_false_keeps_cold_items_out_of_results(cold_world):
    warm_only = cold_world["warm_only"]
    result = _call(warm_only.similar_items, item_ids=COLD_IDS + ["0"],
                   k=np.full(11, 20, np.int32))
    assert result["found"].all() and not result["cold"].any()
    assert (_ids(result["item_ids"]).astype(int) < WARM).all()
    recommended = _call(warm_only.recommend, user_id=["u1", "stranger"],
                        session_item_ids=[[COLD_IDS[0]], [""]], k=np.array([20, 20], np.int32))
    assert not recommended["cold"].any()
    assert (_ids(recommended["item_ids"]).astype(int) < WARM).all()
    everything = _call(cold_world["serving"].signatures["recommend"], user_id=["u1"],
                       session_item_ids=[[""]], k=np.array([20], np.int32))
    assert (everything["cold"] == (_ids(everything["item_ids"]).astype(int) >= WARM)).all()


def test_the_gate_ranks_the_rows_recommend_may_return(cold_world, tmp_path):
    # With cold_neighbours false recommend returns warm items only, so the gate, which ranks
    # an export's catalogue for the eval split's users, must rank only those too.
    import dataclasses

    import tiny_world
    from trainer.evaluation import load_exported
    from trainer.export import export_serving_model

    every = load_exported(cold_world["path"])
    assert every.catalog.tolist() == cold_world["catalog"].item_ids
    model = cold_world["model"]
    config = model.config
    model.config = dataclasses.replace(config, cold_neighbours=False)
    try:
        export_serving_model(model, str(tmp_path / "warm"), max_k=tiny_world.MAX_K)
    finally:
        model.config = config
    warm = load_exported(str(tmp_path / "warm"))
    assert warm.catalog.tolist() == cold_world["catalog"].warm_ids
    np.testing.assert_allclose(warm.item_vectors, every.item_vectors[:WARM])


def test_embed_content_gives_the_catalogues_cold_vector_for_the_same_content(cold_world):
    catalog = cold_world["catalog"]
    serving = cold_world["serving"].signatures
    rows = [WARM, WARM + 5, 0]
    vectors = _call(serving["embed_content"], titles=[catalog.titles[r] for r in rows],
                    genres=[catalog.genres[r] for r in rows], authors=["", "", ""])
    stored = _call(serving["serving_default"], item_ids=[catalog.item_ids[r] for r in rows])
    np.testing.assert_allclose(vectors["embeddings"][:2], stored["embeddings"][:2], atol=1e-5)
    assert not np.allclose(vectors["embeddings"][2], stored["embeddings"][2], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(vectors["embeddings"], axis=1), 1.0, rtol=1e-5)
    # A brand-new item's content lands among its genre's items.
    new = _call(serving["embed_content"], titles=["The Robot Chronicles 99"],
                genres=["Science Fiction"], authors=["Someone"])["embeddings"][0]
    scores = cold_world["model"].item_embeddings().numpy() @ new
    top = np.argsort(-scores)[:10]
    assert np.mean(top % 2 == 1) >= 0.8


def test_embed_content_reads_a_bounded_prefix_of_each_string(cold_world):
    """A hostile or broken client's megabyte title costs no more than MAX_CONTENT_CHARS."""
    from towergraph.constants import MAX_CONTENT_CHARS

    embed = cold_world["serving"].signatures["embed_content"]
    title = "The Robot Chronicles 99 "
    padded = title + "x" * (MAX_CONTENT_CHARS - len(title))
    huge = _call(embed, titles=[padded + " dragon" * 200_000], genres=["Science Fiction"],
                 authors=[""])["embeddings"]
    cut = _call(embed, titles=[padded], genres=["Science Fiction"], authors=[""])["embeddings"]
    np.testing.assert_allclose(huge, cut, atol=1e-6)


def test_search_flags_cold_items(cold_world):
    result = _call(cold_world["serving"].signatures["search"], query=["chronicles 3"],
                   k=np.array([20], np.int32))
    ids = _ids(result["item_ids"][0])
    ids, cold = ids[ids != ""], result["cold"][0][ids != ""]
    assert str(WARM) in ids.tolist()
    assert (cold == (ids.astype(int) >= WARM)).all()


def test_the_client_reports_cold_items(cold_world):
    from serving.client import TowerGraphClient
    from serving.transport import SavedModelTransport

    client = TowerGraphClient(SavedModelTransport(cold_world["path"]))
    info = client.item_info([COLD_IDS[0], "0"])
    assert [item.cold for item in info] == [True, False]
    neighbours = client.similar_items([COLD_IDS[0], "0"], k=20)
    for row in neighbours:
        assert row and all(item.cold == (int(item.item_id) >= WARM) for item in row)
    assert any(item.cold for row in neighbours for item in row)


@pytest.mark.slow   # a tf.Transform Beam run
def test_training_through_transform_with_top_items_serves_the_cut_items_cold(
        tiny_interactions, tmp_path):
    import tensorflow_transform as tft

    from test_trainer_preprocessing import transform
    from test_trainer_run import _rows, _write
    from trainer.export import export_serving_model
    from trainer.train import train

    (tmp_path / "transform").mkdir()
    rows, _ = transform(_rows(tiny_interactions), {"top_items": WARM},
                        str(tmp_path / "transform"))
    _write(tmp_path / "train.gz", rows)
    config = ModelConfig(embedding_dim=8, candidate_layers=(16,), batch_size=64, epochs=2,
                         id_dropout=0.2)
    model = train(tft.TFTransformOutput(str(tmp_path / "transform")),
                  [str(tmp_path / "train.gz")], config)
    catalog = model.catalog
    assert (catalog.warm_items, len(catalog)) == (WARM, 40)
    assert int(catalog.counts.sum()) == len(rows)   # every interaction counted, cold ones too
    assert list(catalog.counts[WARM:]) == sorted(catalog.counts[WARM:], reverse=True)
    assert model.candidate_tower.item.embedding.input_dim == WARM + 1
    export_serving_model(model, str(tmp_path / "model"), max_k=5)
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    info = _call(loaded.signatures["item_info"], item_ids=catalog.item_ids)
    assert info["found"].all() and info["cold"].tolist() == catalog.cold.tolist()
    assert loaded.warm_start.vocabularies["items"].numpy().size == WARM

    no_cold = train(tft.TFTransformOutput(str(tmp_path / "transform")),
                    [str(tmp_path / "train.gz")], ModelConfig(
                        embedding_dim=8, candidate_layers=(16,), batch_size=64, epochs=1,
                        cold_items=False))
    assert len(no_cold.catalog) == WARM
