"""trainer/dataset.py: reading gzipped TFRecords of tf.Examples into batches, dropping items
outside the catalogue, holding them in memory and reshuffling them every epoch, and handing
batches over as numpy."""

import numpy as np
import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.dataset import as_numpy, in_memory, keep_items, read_batches, shuffled_batches
from trainer.features import ITEM_ID, USER_ID

SPEC = {USER_ID: tf.io.FixedLenFeature([], tf.string),
        ITEM_ID: tf.io.FixedLenFeature([], tf.string)}


def _example(user, item):
    return tf.train.Example(features=tf.train.Features(feature={
        USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
        ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
    })).SerializeToString()


def _write(path, pairs):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for user, item in pairs:
            writer.write(_example(user, item))


@pytest.fixture
def shards(tmp_path):
    """Two gzipped shards: 7 interactions in part-0, 3 in part-1 (10 in all)."""
    _write(tmp_path / "part-0.gz", [(f"u{i}", f"i{i % 4}") for i in range(7)])
    _write(tmp_path / "part-1.gz", [(f"u{i}", f"i{i % 4}") for i in range(7, 10)])
    return tmp_path


def _users(batches):
    return [user.decode() for batch in as_numpy(batches) for user in batch[USER_ID]]


def _by_number(users):
    return sorted(users, key=lambda user: int(user[1:]))


def test_batches_every_record_once(shards):
    batches = list(as_numpy(read_batches(str(shards / "part-*"), SPEC, batch_size=4)))
    assert [len(batch[USER_ID]) for batch in batches] == [4, 4, 2]
    # Files are read in parallel, so only the order within one file is promised.
    assert _by_number(_users(read_batches(str(shards / "part-*"), SPEC, 4))) == [
        f"u{i}" for i in range(10)]
    assert _users(read_batches(str(shards / "part-0.gz"), SPEC, 4)) == [f"u{i}" for i in range(7)]


def test_a_list_of_patterns_reads_them_all(shards):
    users = _users(read_batches([str(shards / "part-1.gz"), str(shards / "part-0.gz")], SPEC, 3))
    assert _by_number(users) == [f"u{i}" for i in range(10)]


def test_as_numpy_gives_numpy_bytes_arrays(shards):
    batch = next(as_numpy(read_batches(str(shards / "part-0.gz"), SPEC, 100)))
    assert set(batch) == {USER_ID, ITEM_ID}
    assert isinstance(batch[ITEM_ID], np.ndarray)
    assert batch[ITEM_ID].tolist() == [b"i0", b"i1", b"i2", b"i3", b"i0", b"i1", b"i2"]


def test_shuffle_with_a_seed_is_deterministic_and_keeps_every_record(shards):
    pattern = str(shards / "part-*")
    first = _users(read_batches(pattern, SPEC, 4, shuffle=True, seed=7))
    again = _users(read_batches(pattern, SPEC, 4, shuffle=True, seed=7))
    assert first == again
    assert sorted(first) == sorted(f"u{i}" for i in range(10))
    orders = {tuple(_users(read_batches(pattern, SPEC, 4, shuffle=True, seed=seed)))
              for seed in range(5)}
    assert len(orders) > 1  # the seed matters: it does shuffle


def test_a_pattern_matching_nothing_raises_naming_it(tmp_path):
    pattern = str(tmp_path / "nothing-*.gz")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        read_batches(pattern, SPEC, 4)
    with pytest.raises(FileNotFoundError, match="nothing-"):
        read_batches([pattern], SPEC, 4)


def test_keep_items_drops_interactions_outside_the_catalogue(shards):
    batches = keep_items(read_batches(str(shards / "part-*"), SPEC, 4), ["i1", "i3", "not-seen"])
    kept = list(as_numpy(batches))
    items = [item.decode() for batch in kept for item in batch[ITEM_ID]]
    users = [user.decode() for batch in kept for user in batch[USER_ID]]
    # Rows stay aligned across features: user u<n> read item i<n % 4>.
    assert sorted(zip(users, items)) == [("u1", "i1"), ("u3", "i3"), ("u5", "i1"),
                                         ("u7", "i3"), ("u9", "i1")]


def test_keep_items_with_no_known_item_leaves_empty_batches(shards):
    kept = list(as_numpy(keep_items(read_batches(str(shards / "part-*"), SPEC, 4), ["zzz"])))
    assert [len(batch[ITEM_ID]) for batch in kept] == [0, 0, 0]


def test_in_memory_holds_every_record_with_its_columns_aligned(shards):
    columns = in_memory(read_batches(str(shards / "part-*"), SPEC, 4))
    users = [user.decode() for user in columns[USER_ID].numpy()]
    items = [item.decode() for item in columns[ITEM_ID].numpy()]
    assert _by_number(users) == [f"u{i}" for i in range(10)]
    assert all(item == f"i{int(user[1:]) % 4}" for user, item in zip(users, items))


def _epochs(batches, epochs):
    """Each pass over `batches` (a new iterator each, as Keras makes per epoch) as its
    batches' user lists."""
    return [[[user.decode() for user in batch[USER_ID]] for batch in as_numpy(batches)]
            for _ in range(epochs)]


def test_shuffled_batches_take_every_row_once_per_epoch_in_a_new_order(shards):
    columns = in_memory(read_batches(str(shards / "part-*"), SPEC, 4))
    epochs = _epochs(shuffled_batches(columns, 4, seed=7), 6)
    for epoch in epochs:
        assert [len(batch) for batch in epoch] == [4, 4, 2]
        assert _by_number(sum(epoch, [])) == [f"u{i}" for i in range(10)]
    orders = {tuple(sum(epoch, [])) for epoch in epochs}
    assert len(orders) > 1  # reshuffled every epoch, not one order for all
    # Rows keep their columns together.
    batch = next(as_numpy(shuffled_batches(columns, 10, seed=7)))
    assert all(int(user[1:]) % 4 == int(item[1:])
               for user, item in zip(batch[USER_ID].astype(str), batch[ITEM_ID].astype(str)))


def test_shuffled_batches_repeat_the_same_sequence_for_a_seed(shards):
    columns = in_memory(read_batches(str(shards / "part-*"), SPEC, 4))
    assert _epochs(shuffled_batches(columns, 4, seed=7), 3) == \
        _epochs(shuffled_batches(columns, 4, seed=7), 3)
    assert _epochs(shuffled_batches(columns, 4, seed=7), 3) != \
        _epochs(shuffled_batches(columns, 4, seed=8), 3)
    # Repeated (as the multi-worker input repeats it), each repetition is a new order too.
    repeated = [user.decode() for batch in as_numpy(shuffled_batches(columns, 10, seed=7)
                                                     .repeat(4)) for user in batch[USER_ID]]
    assert len({tuple(repeated[start:start + 10]) for start in range(0, 40, 10)}) > 1
