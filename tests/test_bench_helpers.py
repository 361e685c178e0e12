"""The benchmarks' own helpers (bench/common.py, bench/peers.py, bench/scale.py): no training.

EASE and the peers' tuning are checked on hand-made matrices whose answers are known.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import common  # noqa: E402
import peers  # noqa: E402
import scale  # noqa: E402


def test_random_split_is_seeded_and_disjoint():
    frame = pd.DataFrame({"user_id": [str(i % 7) for i in range(100)],
                          "item_id": [str(i) for i in range(100)]})
    train, held_out = common.random_split(frame, seed=42)
    again, _ = common.random_split(frame, seed=42)
    assert len(train) == 80 and len(held_out) == 20
    assert set(train.item_id).isdisjoint(held_out.item_id)
    assert train.equals(again)


def test_temporal_split_holds_out_each_users_latest_fifth():
    frame = pd.DataFrame({"user_id": ["a"] * 10 + ["b"] * 5 + ["c"],
                          "item_id": [str(i) for i in range(16)]})
    # a's timestamps run backwards, so a's latest are its first rows
    times = np.array(list(range(10, 0, -1)) + [5, 1, 4, 2, 3] + [7])
    train, held_out = common.temporal_split(frame, times)
    assert sorted(held_out.item_id) == ["0", "1", "10"]  # a: 2 of 10, b: 1 of 5 (time 5)
    assert "15" in set(train.item_id)                   # c's only interaction stays
    assert len(train) + len(held_out) == len(frame)


def test_ease_closed_form_on_a_known_matrix():
    # Items 0 and 1 are always seen together (twice), item 2 alone: X^T X is block diagonal,
    # so B[0, 1] = a / (a + lambda) = 2 / 3 for a = 2, lambda = 1, and B[0, 2] = 0.
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    fitted = peers.ease(train, regularization=1.0)
    weights = fitted.similarity(np.arange(3))
    assert weights[0, 1] == pytest.approx(2 / 3) and weights[1, 0] == pytest.approx(2 / 3)
    assert weights[0, 2] == pytest.approx(0) and np.diag(weights).tolist() == [0, 0, 0]
    scores = fitted.scores(np.array([0]))
    assert scores[0].tolist() == pytest.approx([2 / 3, 2 / 3, 0])


def test_item_knn_keeps_only_the_nearest_neighbours():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]],
                                   dtype=np.float32))
    similarity = peers.item_knn(train, neighbours=1).similarity(np.arange(4))
    assert (similarity > 0).sum(axis=0).tolist() == [1, 1, 1, 1]
    assert similarity[1, 0] > 0 and similarity[0, 1] > 0  # items 0 and 1: cosine 1
    shrunk = peers.item_knn(train, shrinkage=10.0).similarity(np.arange(4))
    plain = peers.item_knn(train).similarity(np.arange(4))
    assert (shrunk[plain > 0] < plain[plain > 0]).all()


def test_tuning_chooses_on_validation_only():
    # Users 0-1 like items {0, 1}; the validation part says item 1 follows item 0. A fit whose
    # scores depend on its setting shows the tuner picks what validation rewards.
    train = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 0]], dtype=np.float32))
    validation = sp.csr_matrix(np.array([[0, 1, 0], [0, 1, 0]], dtype=np.float32))

    def fit(matrix, favourite):
        scores = np.zeros(3, np.float32)
        scores[favourite] = 1.0
        return peers.Fitted(lambda rows: np.tile(scores, (len(rows), 1)), None)

    tuned = peers.tune(fit, {"favourite": [2, 1]}, train, validation, ks=(1,))
    assert tuned["setting"] == {"favourite": 1}
    assert [score for _, score in tuned["validation"]] == [0.0, 1.0]
    assert peers.grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_neighbours_exclude_the_item_itself():
    similarity = np.array([[1.0, 0.2, 0.9, 0.1], [0.2, 1.0, 0.3, 0.8]])
    assert common.neighbours_by_similarity(similarity, np.array([0, 1]), k=2).tolist() == \
        [[2, 1], [3, 2]]


def test_problem_orders_the_catalogue_by_training_count():
    train = pd.DataFrame({"user_id": ["a", "b", "b"], "item_id": ["2", "1", "2"],
                          "genres": ["X", "Y|X", "X"]})
    held_out = pd.DataFrame({"user_id": ["a"], "item_id": ["9"], "genres": ["Z"]})
    problem = common.make_problem(train, held_out)
    assert problem.items.tolist() == ["2", "1", "9"] and problem.n_catalog == 2
    assert problem.genres[1] == {"X", "Y"}
    validation, = common.matrices_like(problem, held_out)
    assert validation.shape == (2, 2) and validation.nnz == 0  # item 9 is not in the catalogue


def test_growth_per_doubling():
    assert scale.growth([1, 2, 4], [10.0, 20.0, 80.0]) == ["x2.00", "x4.00"]
    assert scale.growth([1, 3], [5.0, None]) == ["n/a"]
    assert scale.parse_size("1m") == 1_000_000 and scale.parse_size("500k") == 500_000
    assert scale.users_for(6_000_000) == 53_097


@pytest.mark.parametrize("size", [1_000_000, 3_000_000])
def test_sizes_keep_the_goodbooks_shape(size):
    assert abs(scale.users_for(size) * scale.RATINGS_PER_USER - size) < scale.RATINGS_PER_USER


# --- bench/cold_start.py ----------------------------------------------------------------------

def test_cold_split_holds_out_whole_items_seeded():
    import cold_start

    frame = pd.DataFrame({"user_id": [str(i % 5) for i in range(60)],
                          "item_id": [str(i % 20) for i in range(60)]})
    train, cold, items = cold_start.cold_split(frame, seed=3)
    assert len(items) == 2 and cold_start.cold_split(frame, seed=3)[2] == items
    assert set(cold.item_id) == set(items) and len(cold) == 6  # all 3 ratings of each
    assert set(train.item_id).isdisjoint(items) and len(train) == 54


def test_popularity_by_genre_on_a_hand_made_example():
    import cold_start

    # Warm items: 0 {A}, 1 {B}, 2 {A, C}. User 0 rated 0 and 2; user 1 rated 1.
    seen = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32))
    warm = [{"A"}, {"B"}, {"A", "C"}]
    # n_u: user 0 A=2 B=0 C=1; user 1 A=0 B=1 C=0. p over 3 ratings: A=2/3 B=1/3 C=1/3.
    cold = [{"A"}, {"B", "C"}, {"Z"}]   # Z: no warm item has it
    scores = cold_start.popularity_by_genre(seen, warm, cold)
    np.testing.assert_allclose(scores, [[2 * 2 / 3, 0 + 1 / 3, 0], [0, 1 / 3, 0]])
    # p(g) from a wider population (everyone's ratings), n_u(g) from the given users only.
    everyone = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [0, 1, 0]], dtype=np.float32))
    scores = cold_start.popularity_by_genre(seen[:1], warm, cold, everyone=everyone)
    np.testing.assert_allclose(scores, [[2 * 2 / 4, 1 / 4, 0]])


def test_cold_ranking_recall_and_the_random_expectation():
    import cold_start

    scores = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]])
    ranked = cold_start.rank(scores, k=2, seed=0)
    assert ranked[0].tolist() == [1, 2] and sorted(ranked[1].tolist()) == [0, 1]
    relevant = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))
    assert cold_start.recall(ranked, relevant, (1, 2)) == {1: 1 / 3, 2: 1 / 3}
    assert cold_start.random_recall(168, (10, 100, 200)) == {10: 10 / 168, 100: 100 / 168,
                                                             200: 1.0}


def test_cold_coherence_counts_shared_genres_of_nearest_neighbours():
    import cold_start

    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    content = [{"A"}, {"A"}, {"B"}, {"A", "B"}]
    assert cold_start.nearest(vectors, np.array([0, 2]), k=1).tolist() == [[1], [3]]
    assert cold_start.coherence(vectors, content, np.array([0, 2]), k=1) == 1.0
    # Item 0's three neighbours: 1 (A), 3 (A, B), 2 (B): two of three share a genre.
    assert cold_start.coherence(vectors, content, np.array([0]), k=3) == pytest.approx(2 / 3)


def test_cold_coherence_within_a_pool_of_warm_items():
    import cold_start

    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    content = [{"A"}, {"A"}, {"B"}, {"A", "B"}]
    # Item 0 among items 2 and 3 only: 3 is nearer (shares A), then 2 (does not).
    assert cold_start.nearest(vectors, np.array([0]), k=2, pool=np.array([2, 3])).tolist() == \
        [[3, 2]]
    assert cold_start.coherence(vectors, content, np.array([0]), k=2,
                                pool=np.array([2, 3])) == 0.5


def test_a_written_subset_is_prepared_data_with_its_items_in_the_catalogue(tmp_path):
    # The pipeline's ItemCatalogGen reads items.csv: a bench's training subset must have one,
    # listing the subset's items only (an item seen only in held-out ratings stays unknown).
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "item_id": ["9", "10", "10"],
                          "rating": ["4", "5", "3"], "title": ["Nine", "Ten, The", "Ten, The"],
                          "genres": ["Drama|War", "", ""]})
    out = common.write_interactions(frame, str(tmp_path / "data"))
    pd.testing.assert_frame_equal(common.read_interactions(out), frame)
    items = pd.read_csv(Path(out) / "items.csv", dtype=str, keep_default_na=False)
    assert items.to_dict("records") == [
        {"item_id": "10", "title": "Ten, The", "genres": "", "num_ratings": "2"},
        {"item_id": "9", "title": "Nine", "genres": "Drama|War", "num_ratings": "1"}]
