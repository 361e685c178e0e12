"""trainer/preprocessing.py: preprocessing_fn run for real with tf.Transform's Beam implementation
(in-memory DirectRunner) on a tiny dataset whose cleaned features and vocabularies are known.

`transform` is also used by tests/test_trainer_run.py to produce a Transform output for run_fn.
"""

import os
import tempfile

import pytest
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from trainer.features import AUTHORS, GENRES, ITEM_ID, TITLE, USER_ID, VOCABULARIES
from trainer.preprocessing import MIN_TITLE_TOKEN_COUNT, preprocessing_fn

# As CsvExampleGen infers them: numeric ids as int64, columns with empty cells as VarLen.
RAW_SPEC = {
    USER_ID: tf.io.FixedLenFeature([], tf.int64),
    ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    TITLE: tf.io.FixedLenFeature([], tf.string),
    GENRES: tf.io.VarLenFeature(tf.string),
    AUTHORS: tf.io.VarLenFeature(tf.string),
}

# Item " z1 " is rated 3 times, "b2" twice, "m3" once: not alphabetical order.
# Title words over interactions: dragon 5, robot 2, lonely 1, word 1.
_ITEMS = {
    " z1 ": ("Dragon", ["Fantasy|Adventure"], ["Ann Author"]),
    "b2": ("Dragon-Robot", ["Science Fiction"], []),
    "m3": ("LONELY word", [], [" Bob | Ann Author "]),
}
_RATINGS = [(1, " z1 "), (2, " z1 "), (3, " z1 "), (1, "b2"), (2, "b2"), (1, "m3")]
ROWS = [{USER_ID: user, ITEM_ID: item, TITLE: _ITEMS[item][0], GENRES: _ITEMS[item][1],
         AUTHORS: _ITEMS[item][2]} for user, item in _RATINGS]


def transform(rows, custom_config, output_dir):
    """Runs preprocessing_fn over `rows` (instance dicts of RAW_SPEC); writes the transform_fn
    to output_dir; returns (transformed rows, tft.TFTransformOutput(output_dir))."""
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(RAW_SPEC)
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=output_dir), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, custom_config))
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return transformed, tft.TFTransformOutput(output_dir)


def _vocabulary(output, feature):
    return [token.decode("utf-8") for token in output.vocabulary_by_name(VOCABULARIES[feature])]


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def top_two(tmp_path_factory):
    """One Beam run (about 10 s on a busy 2-core machine), shared by the tests below."""
    return transform(ROWS, {"top_items": 2}, str(tmp_path_factory.mktemp("transform")))


def test_ids_become_stripped_strings(top_two):
    rows, _ = top_two
    assert [_text(row[USER_ID]) for row in rows] == ["1", "2", "3", "1", "2", "1"]
    assert [_text(row[ITEM_ID]) for row in rows] == ["z1", "z1", "z1", "b2", "b2", "m3"]


def test_titles_pass_through_and_missing_list_cells_become_empty(top_two):
    rows, _ = top_two
    assert [_text(row[TITLE]) for row in rows][2:] == ["Dragon"] + ["Dragon-Robot"] * 2 + [
        "LONELY word"]
    assert [_text(row[GENRES]) for row in rows] == [
        "Fantasy|Adventure"] * 3 + ["Science Fiction"] * 2 + [""]
    assert [_text(row[AUTHORS]) for row in rows] == ["Ann Author"] * 3 + [""] * 2 + [
        "Bob | Ann Author"]


def test_transformed_features_are_dense_strings(top_two):
    _, output = top_two
    spec = output.transformed_feature_spec()
    assert sorted(spec) == sorted([USER_ID, ITEM_ID, TITLE, GENRES, AUTHORS])
    for name, feature in spec.items():
        assert feature == tf.io.FixedLenFeature([], tf.string), name


def test_item_vocabulary_is_ordered_by_rating_count_and_cut_by_top_items(top_two):
    rows, output = top_two
    assert _vocabulary(output, ITEM_ID) == ["z1", "b2"]
    # The examples themselves are not filtered: the Trainer drops the others (keep_items).
    assert {_text(row[ITEM_ID]) for row in rows} == {"z1", "b2", "m3"}


def test_user_vocabulary_has_every_user_most_active_first(top_two):
    _, output = top_two
    assert _vocabulary(output, USER_ID) == ["1", "2", "3"]


def test_rare_title_words_stay_out_of_the_vocabulary(top_two):
    _, output = top_two
    assert MIN_TITLE_TOKEN_COUNT == 2
    # Lower-cased, most frequent first; "robot" (seen exactly twice) is in.
    assert _vocabulary(output, TITLE) == ["dragon", "robot"]
    assert not {"lonely", "word"} & set(_vocabulary(output, TITLE))


def test_genre_and_author_vocabularies_are_split_stripped_values(top_two):
    _, output = top_two
    assert sorted(_vocabulary(output, GENRES)) == ["Adventure", "Fantasy", "Science Fiction"]
    assert _vocabulary(output, GENRES)[-1] == "Science Fiction"  # 2 ratings against 3
    assert _vocabulary(output, AUTHORS) == ["Ann Author", "Bob"]
    assert "" not in _vocabulary(output, GENRES) + _vocabulary(output, AUTHORS)


def test_written_transform_fn_has_the_vocabulary_files(top_two):
    _, output = top_two
    assets = os.listdir(os.path.join(output.transform_savedmodel_dir, "assets"))
    assert set(VOCABULARIES.values()) <= set(assets)
