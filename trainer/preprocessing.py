"""Transform's preprocessing_fn: clean the raw interactions and compute the vocabularies.

The model does its own lookups from these vocabularies (so the exported SavedModel needs no
Transform graph at serving time); Transform's job is to compute them over the whole training
split with Beam, and to hand the Trainer clean string features.
"""

from typing import Any, Dict, Optional

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft

from trainer.features import (AUTHORS, GENRES, ITEM_ID, LIST_FEATURES, TITLE, USER_ID,
                              VOCABULARIES)
from trainer.text import list_values, title_tokens

# Title words seen fewer times than this (counted over interactions) stay out of the
# vocabulary: they identify single items, which the item-id embedding already does.
MIN_TITLE_TOKEN_COUNT = 2


def dense_strings(feature: Any) -> tf.Tensor:
    """A raw CSV column as a [N] string tensor: ints become strings, missing values ''.

    CsvExampleGen infers numeric ids as int64, and columns with empty cells (an item without
    genres) arrive as SparseTensors. The item catalogue's columns are cleaned by this same
    function (trainer.dataset.read_item_catalog), so its ids match the interactions'.
    """
    if isinstance(feature, tf.SparseTensor):
        default = "" if feature.dtype == tf.string else 0
        feature = tft.sparse_tensor_to_dense_with_shape(feature, [None, 1], default)
    if feature.shape.rank == 2:
        feature = tf.squeeze(feature, axis=1)
    if feature.dtype != tf.string:
        feature = tf.strings.as_string(feature)
    return tf.strings.strip(feature)


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """Cleans ids and content features and computes the vocabularies the model looks up.

    custom_config:
      top_items: keep only the N most-rated items in the item vocabulary (0 or None: all).
    """
    top_items = (custom_config or {}).get("top_items") or None
    outputs = {name: dense_strings(inputs[name]) for name in (USER_ID, ITEM_ID, TITLE)}
    for name in LIST_FEATURES:
        if name in inputs:
            outputs[name] = dense_strings(inputs[name])

    tft.vocabulary(outputs[USER_ID], vocab_filename=VOCABULARIES[USER_ID])
    # Ordered by rating count, so top_k keeps the most-rated items.
    tft.vocabulary(outputs[ITEM_ID], top_k=top_items, vocab_filename=VOCABULARIES[ITEM_ID])
    tft.vocabulary(title_tokens(outputs[TITLE]), frequency_threshold=MIN_TITLE_TOKEN_COUNT,
                   vocab_filename=VOCABULARIES[TITLE])
    for name in (GENRES, AUTHORS):
        if name in outputs:
            tft.vocabulary(list_values(outputs[name]), vocab_filename=VOCABULARIES[name])
    return outputs
