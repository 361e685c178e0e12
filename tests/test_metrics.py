"""The metric code on hand-made rankings whose recall and coherence are known."""

import numpy as np
import pytest

from trainer.metrics import (genre_coherence, interaction_matrix, recall_at_k, split_values,
                             top_k_items)


def test_recall_is_micro_averaged_over_held_out_interactions():
    # user 0 holds out items 2 and 3, user 1 holds out item 1: three interactions in all.
    held_out = interaction_matrix(np.array([0, 0, 1]), np.array([2, 3, 1]), (2, 5))
    ranked = np.array([[2, 0, 3],
                       [0, 4, 1]])
    recall = recall_at_k(ranked, np.array([0, 1]), held_out, ks=[1, 2, 3])
    assert recall == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 1.0})


def test_recall_counts_a_repeated_interaction_once():
    held_out = interaction_matrix(np.array([0, 0]), np.array([4, 4]), (1, 5))
    assert recall_at_k(np.array([[4]]), np.array([0]), held_out, ks=[1]) == {1: 1.0}


def test_recall_without_held_out_interactions_is_an_error():
    empty = interaction_matrix(np.array([], dtype=int), np.array([], dtype=int), (1, 3))
    with pytest.raises(ValueError, match="no held-out"):
        recall_at_k(np.array([[0]]), np.array([0]), empty, ks=[1])


def test_top_k_ranks_best_first_and_skips_excluded_items():
    scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.3],
                       [0.9, 0.8, 0.7, 0.6, 0.5]])
    exclude = interaction_matrix(np.array([0, 1, 1]), np.array([1, 0, 2]), (2, 5))
    ranked = top_k_items(lambda rows: scores[rows], np.array([0, 1]), exclude, k=3)
    np.testing.assert_array_equal(ranked, [[3, 2, 4], [1, 3, 4]])


def test_top_k_works_in_chunks_of_users():
    users = np.arange(3000)
    scores = np.tile(np.arange(4.0), (3000, 1))
    exclude = interaction_matrix(users, np.full(3000, 3), (3000, 4))
    ranked = top_k_items(lambda rows: scores[rows], users, exclude, k=2)
    assert ranked.shape == (3000, 2)
    assert (ranked == [2, 1]).all()


def test_genre_coherence_is_the_share_of_neighbours_sharing_a_genre():
    genres = split_values(["Fantasy|Adventure", "Fantasy", "Horror", "Adventure|Horror"])
    neighbours = np.array([[1, 2],    # item 0: shares with 1, not with 2
                           [0, 3]])   # item 1: shares with 0, not with 3
    assert genre_coherence(neighbours, np.array([0, 1]), genres) == 0.5


def test_split_values_ignores_empty_values():
    assert split_values(["a|b", "", "c||"]) == [{"a", "b"}, set(), {"c"}]
