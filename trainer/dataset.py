"""Reading Transform's output (gzipped TFRecords of tf.Examples) into batches for Keras, and
the item catalogue's raw examples (an ExampleGen's output) into string columns."""

from typing import Dict, Iterator, List, Sequence, Union

import numpy as np
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.features import ITEM_ID
from trainer.preprocessing import dense_strings


def _files(file_pattern: Union[str, Sequence[str]]) -> List[str]:
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else \
        [path for pattern in file_pattern for path in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"no examples match {file_pattern}")
    return sorted(files)


def read_batches(file_pattern: Sequence[str], feature_spec: Dict[str, tf.io.FixedLenFeature],
                 batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches of parsed features: {name: [B] tensor}.

    The files are read one after the other (with shuffle, in a new order each iteration,
    then through a 100,000-record shuffle buffer). Not with num_parallel_reads: its
    interleave hands on every record on its own, and reading 800,000 transformed
    interactions took 15.6 s that way against 0.9 s (one file, 2 cores, this project's 1M
    synthetic set): the parallel reader cost more than the gunzip it parallelised.
    """
    names = _files(file_pattern)
    files = tf.data.Dataset.from_tensor_slices(names)
    if shuffle:
        files = files.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if shuffle:
        records = records.shuffle(100_000, seed=seed, reshuffle_each_iteration=True)
    return (records.batch(batch_size)
            .map(lambda batch: tf.io.parse_example(batch, feature_spec),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def in_memory(batches: tf.data.Dataset) -> Dict[str, tf.Tensor]:
    """Every batch's columns concatenated: {name: [N] tensor}."""
    parts: Dict[str, List[tf.Tensor]] = {}
    for batch in batches:
        for name, values in batch.items():
            parts.setdefault(name, []).append(values)
    return {name: tf.concat(values, axis=0) for name, values in parts.items()}


def shuffled_batches(columns: Dict[str, tf.Tensor], batch_size: int,
                     seed: int) -> tf.data.Dataset:
    """Batches of in-memory columns in a new random order each epoch (each iteration of the
    dataset, or each repetition), the same order sequence for the same seed.

    The order is one permutation of all rows per epoch, drawn at once, and a batch is a
    gather of its rows: nothing per row passes through tf.data (a shuffle buffer or unbatch
    costs microseconds per row), and no file is read or parsed after the first scan.
    """
    rows = int(next(iter(columns.values())).shape[0])
    steps = -(-rows // batch_size)

    def epoch(draw):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(rows, dtype=tf.int64), seed=tf.stack([draw, tf.constant(seed, tf.int64)]))

        def batch(step):
            taken = order[step * batch_size:(step + 1) * batch_size]
            return {name: tf.gather(values, taken) for name, values in columns.items()}

        return tf.data.Dataset.range(steps).map(batch)

    return (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
            .flat_map(epoch))


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


_KINDS = {"bytes_list": tf.string, "int64_list": tf.int64, "float_list": tf.float32}


def read_item_catalog(file_pattern: Union[str, Sequence[str]], names: Sequence[str],
                      batch_size: int = 65_536) -> Iterator[Dict[str, np.ndarray]]:
    """The item catalogue's raw examples (CsvExampleGen over items.csv), in file order, as
    batches of {name: [B] str array} for the columns of `names` the examples have.

    Each column is cleaned by Transform's own function (trainer.preprocessing.dense_strings:
    numbers as text, spaces stripped, a missing value ''), so an id reads exactly as it does
    in the transformed interactions. A column's type is CsvExampleGen's inference, one per
    column, read from the first batch's examples.
    """
    records = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")
    spec = None
    for serialized in records.batch(batch_size):
        if spec is None:
            spec = _column_types(serialized.numpy(), names)
        if not spec:
            return
        columns = tf.io.parse_example(serialized, spec)
        yield {name: np.char.decode(dense_strings(values).numpy().astype(bytes), "utf-8")
               .astype(object) for name, values in columns.items()}


def _column_types(serialized: Sequence[bytes], names: Sequence[str]
                  ) -> Dict[str, tf.io.VarLenFeature]:
    kinds: Dict[str, str] = {}
    for record in serialized:
        features = tf.train.Example.FromString(record).features.feature
        for name in names:
            if name not in kinds and name in features:
                kind = features[name].WhichOneof("kind")
                if kind and len(getattr(features[name], kind).value):
                    kinds[name] = kind
        if len(kinds) == len(names):
            break
    return {name: tf.io.VarLenFeature(_KINDS[kinds[name]]) for name in names if name in kinds}
