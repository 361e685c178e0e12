"""Text handling that must be identical in Transform (vocabularies) and in the model (lookups)."""

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.features import LIST_SEPARATOR

# Anything that is not a letter or a digit separates title tokens ("Sci-Fi" -> "sci", "fi").
_TOKEN_SEPARATORS = r"[^\p{L}\p{N}]+"


def title_tokens(titles: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased word tokens of each title: [N] strings -> [N, None] ragged strings."""
    lowered = tf.strings.lower(titles, encoding="utf-8")
    spaced = tf.strings.regex_replace(lowered, _TOKEN_SEPARATORS, " ")
    return tf.strings.split(tf.strings.strip(spaced))


def list_values(joined: tf.Tensor) -> tf.RaggedTensor:
    """Values of a `|`-joined multi-valued column: [N] strings -> [N, None] ragged strings.

    An empty string has no values (not one empty value).
    """
    values = tf.strings.split(joined, sep=LIST_SEPARATOR)
    values = tf.ragged.map_flat_values(tf.strings.strip, values)
    return tf.ragged.boolean_mask(values, tf.strings.length(values) > 0)
