"""Reading Transform's output (gzipped TFRecords of tf.Examples) into batches for Keras."""

from typing import Dict, Iterator, List, Sequence

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.features import ITEM_ID


def read_batches(file_pattern: Sequence[str], feature_spec: Dict[str, tf.io.FixedLenFeature],
                 batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches of parsed features: {name: [B] tensor}."""
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else \
        [path for pattern in file_pattern for path in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"no examples match {file_pattern}")
    records = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP",
                                      num_parallel_reads=tf.data.AUTOTUNE)
    if shuffle:
        records = records.shuffle(100_000, seed=seed, reshuffle_each_iteration=True)
    return (records.batch(batch_size)
            .map(lambda batch: tf.io.parse_example(batch, feature_spec),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def keep_items(batches: tf.data.Dataset, item_ids: List[str]) -> tf.data.Dataset:
    """Drops interactions with items outside `item_ids` (the catalogue's warm items: beyond
    the top-N most-rated are cold items or none).

    Such an item has no embedding of its own; training on it would teach the model to
    recommend the out-of-vocabulary bucket.
    """
    known = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(item_ids),
                                            tf.ones(len(item_ids), dtype=tf.bool)),
        default_value=False)

    def mask(features):
        keep = known.lookup(features[ITEM_ID])
        return {name: tf.boolean_mask(values, keep) for name, values in features.items()}

    return batches.map(mask, num_parallel_calls=tf.data.AUTOTUNE)


def as_numpy(batches: tf.data.Dataset) -> Iterator[Dict[str, np.ndarray]]:
    for batch in batches:
        yield {name: values.numpy() for name, values in batch.items()}
