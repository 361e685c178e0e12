"""Cold-start items (issue 11): id-dropout, cold catalogue rows, their serving outputs."""

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

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
