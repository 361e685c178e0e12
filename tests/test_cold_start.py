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
