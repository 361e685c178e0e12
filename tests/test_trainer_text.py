"""trainer/text.py: title tokenisation and `|`-list splitting, shared by Transform and the model."""

import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

from trainer.text import list_values, title_tokens


def _tokens(titles):
    return [[t.decode("utf-8") for t in row] for row in title_tokens(tf.constant(titles)).to_list()]


def _values(joined):
    return [[v.decode("utf-8") for v in row] for row in list_values(tf.constant(joined)).to_list()]


def test_title_tokens_lower_case_and_split_on_punctuation():
    assert _tokens(["The Lord of the Rings", "Sci-Fi: 2001, A Space Odyssey!"]) == [
        ["the", "lord", "of", "the", "rings"],
        ["sci", "fi", "2001", "a", "space", "odyssey"],
    ]


def test_title_tokens_unicode_letters_are_kept_and_lowered():
    assert _tokens(["ÉCOLE Ümlaut—Straße", "東京 物語"]) == [
        ["école", "ümlaut", "straße"], ["東京", "物語"]]


def test_title_tokens_empty_and_punctuation_only_titles_have_no_tokens():
    tokens = title_tokens(tf.constant(["", "  ", "!!! --- ???", "ok"]))
    assert tokens.shape[0] == 4
    assert _tokens(["", "  ", "!!! --- ???", "ok"]) == [[], [], [], ["ok"]]


def test_title_tokens_markup_is_just_words():
    assert _tokens(["<img src=x onerror=alert(1)>"]) == [["img", "src", "x", "onerror", "alert", "1"]]


def test_list_values_split_on_separator_and_strip_spaces():
    assert _values(["Fantasy|Science Fiction", " Drama | Comedy "]) == [
        ["Fantasy", "Science Fiction"], ["Drama", "Comedy"]]


def test_list_values_empty_cell_has_no_values():
    assert _values(["", "   ", "Horror"]) == [[], [], ["Horror"]]


def test_list_values_repeated_and_edge_separators_leave_no_empty_values():
    assert _values(["a||b", "|a|", "||", " | "]) == [["a", "b"], ["a"], [], []]


def test_list_values_keep_case_and_duplicates():
    # Vocabularies are case-sensitive for lists: only the model's title tokens are lowered.
    assert _values(["Drama|drama|Drama"]) == [["Drama", "drama", "Drama"]]
