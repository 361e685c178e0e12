"""The benchmarks' own helpers (bench/quality.py, bench/scale.py, bench/common.py): no training."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Appended, not prepended: bench/serving.py must not shadow the `serving` package.
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))

import common  # noqa: E402
import quality  # noqa: E402
import scale  # noqa: E402


def test_random_split_is_seeded_and_disjoint():
    frame = pd.DataFrame({"user_id": [str(i % 7) for i in range(100)],
                          "item_id": [str(i) for i in range(100)]})
    train, held_out = common.random_split(frame, seed=42)
    again, _ = common.random_split(frame, seed=42)
    assert len(train) == 80 and len(held_out) == 20
    assert set(train.item_id).isdisjoint(held_out.item_id)
    assert train.equals(again)


def test_transform_vocabularies_count_tokens_over_interactions():
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["1", "2", "1"],
                          "title": ["Star Wars", "Lone Star", "Star Wars"],
                          "genres": ["Sci-Fi|Action", "Drama", "Sci-Fi|Action"]})
    vocabularies, items = common.transform_vocabularies(frame)
    assert items == ["1", "2"]  # most rated first
    assert vocabularies.users == ["a", "b"]
    # star: 3 interactions, wars: 2, lone: 1 (< MIN_TITLE_TOKEN_COUNT)
    assert vocabularies.title_tokens == ["star", "wars"]
    assert vocabularies.genres == ["Action", "Sci-Fi", "Drama"]


def test_settings_and_sweep_parsing():
    assert quality.parse_settings(["temperature=0.2", "epochs=5", "candidate_layers=256,128",
                                   "query_layers=", "logq_correction=false"]) == {
        "temperature": 0.2, "epochs": 5, "candidate_layers": (256, 128), "query_layers": (),
        "logq_correction": False}
    grid = quality.parse_sweep(["temperature=0.1|0.2", "candidate_layers=128|256,128"])
    assert grid == [{"temperature": 0.1, "candidate_layers": (128,)},
                    {"temperature": 0.1, "candidate_layers": (256, 128)},
                    {"temperature": 0.2, "candidate_layers": (128,)},
                    {"temperature": 0.2, "candidate_layers": (256, 128)}]


def test_neighbours_exclude_the_item_itself():
    similarity = np.array([[1.0, 0.2, 0.9, 0.1], [0.2, 1.0, 0.3, 0.8]])
    assert quality.neighbours_by_similarity(similarity, k=2).tolist() == [[2, 1], [3, 2]]


def test_growth_per_doubling():
    assert scale.growth([1, 2, 4], [10.0, 20.0, 80.0]) == ["x2.00", "x4.00"]
    assert scale.growth([1, 3], [5.0, None]) == ["n/a"]
    assert scale.parse_size("1m") == 1_000_000 and scale.parse_size("500k") == 500_000
    assert scale.users_for(6_000_000) == 53_097


@pytest.mark.parametrize("size", [1_000_000, 3_000_000])
def test_sizes_keep_the_goodbooks_shape(size):
    assert abs(scale.users_for(size) * scale.RATINGS_PER_USER - size) < scale.RATINGS_PER_USER
