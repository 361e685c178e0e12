"""The synthetic catalog has the structure it promises: genres in titles, skewed popularity,
users who favour a few genres, exact sizes, and the same bytes for the same seed."""

import collections
import csv
import re

import pytest

from pipeline.data import generate_synthetic, read_item_genres

SIZE = dict(users=400, items=300, genres=5, ratings_per_user=15)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    summary = generate_synthetic(out, seed=1, **SIZE)
    with open(out / "interactions" / "interactions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "items.csv", newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    return out, summary, rows, items


def test_has_the_requested_sizes(synthetic):
    out, summary, rows, items = synthetic
    assert summary["counts"] == {"users": 400, "items": 300, "ratings": 400 * 15,
                                 "unrated_items": 0}
    assert len(rows) == 6000 and len(items) == 300
    assert len({(row["user_id"], row["item_id"]) for row in rows}) == 6000  # no repeats
    assert all(1 <= int(row["rating"]) <= 5 for row in rows)


def test_every_item_has_one_genre_named_like_genre_nn(synthetic):
    out, _, rows, items = synthetic
    genres = read_item_genres(out)
    assert len(genres) == 300 and all(len(values) == 1 for values in genres.values())
    names = {values[0] for values in genres.values()}
    assert names == {f"genre_{index:02d}" for index in range(5)}
    assert all(row["genres"] == genres[row["item_id"]][0] for row in rows)


def test_title_words_are_shared_within_a_genre_only(synthetic):
    _, _, _, items = synthetic
    words = collections.defaultdict(set)
    for item in items:
        *genre_words, own = item["title"].split()
        assert own == item["item_id"]  # an item-specific word
        words[item["genres"]].update(genre_words)
    vocabularies = list(words.values())
    assert all(len(vocabulary) <= 6 for vocabulary in vocabularies)  # shared, not unique
    assert sum(len(vocabulary) for vocabulary in vocabularies) == len(set().union(*vocabularies))


def test_popularity_is_skewed(synthetic):
    _, _, _, items = synthetic
    counts = [int(item["num_ratings"]) for item in items]  # most rated first
    assert counts == sorted(counts, reverse=True)
    tenth = len(counts) // 10
    assert sum(counts[:tenth]) > 0.35 * sum(counts)   # uniform would be 0.10
    assert sum(counts[-tenth:]) < 0.03 * sum(counts)


def test_users_favour_a_few_genres(synthetic):
    out, _, rows, _ = synthetic
    genres = read_item_genres(out)
    per_user = collections.defaultdict(collections.Counter)
    for row in rows:
        per_user[row["user_id"]][genres[row["item_id"]][0]] += 1
    # Share of each user's ratings in their 3 most-rated genres; ~0.6 if genres were random.
    shares = [sum(n for _, n in counter.most_common(3)) / sum(counter.values())
              for counter in per_user.values()]
    assert sum(shares) / len(shares) > 0.9


def test_same_seed_same_data_other_seed_other_data(tmp_path, synthetic):
    _, summary, _, _ = synthetic
    again = generate_synthetic(tmp_path / "again", seed=1, **SIZE)
    other = generate_synthetic(tmp_path / "other", seed=2, **SIZE)
    assert again["interactions_sha256"] == summary["interactions_sha256"]
    assert other["interactions_sha256"] != summary["interactions_sha256"]
    assert (tmp_path / "again" / "items.csv").read_bytes() == \
        (synthetic[0] / "items.csv").read_bytes()


def test_manifest_records_the_settings(synthetic):
    _, summary, _, _ = synthetic
    assert summary["format"] == "synthetic"
    assert summary["synthetic"]["seed"] == 1 and summary["synthetic"]["genres"] == 5
    assert re.fullmatch(r"[0-9a-f]{64}", summary["interactions_sha256"])


@pytest.mark.parametrize("bad", [dict(genres=0), dict(items=3, genres=4),
                                 dict(items=10, ratings_per_user=11)])
def test_impossible_sizes_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        generate_synthetic(tmp_path / "out", **{**SIZE, **bad})
    assert not (tmp_path / "out").exists()


def test_unrated_items_join_the_catalogue_without_changing_the_rated_part(synthetic, tmp_path):
    out, _, rows, items = synthetic
    summary = generate_synthetic(tmp_path / "data", seed=1, unrated_items=7, **SIZE)
    assert summary["counts"]["unrated_items"] == 7 and summary["counts"]["items"] == 300
    assert (tmp_path / "data" / "interactions" / "interactions.csv").read_bytes() == \
        (out / "interactions" / "interactions.csv").read_bytes()
    with open(tmp_path / "data" / "items.csv", newline="", encoding="utf-8") as handle:
        catalogue = list(csv.DictReader(handle))
    assert catalogue[:300] == items
    new = catalogue[300:]
    assert [item["item_id"] for item in new] == [str(i) for i in range(301, 308)]
    assert all(item["num_ratings"] == "0" and item["genres"].startswith("genre_")
               and item["title"].endswith(" " + item["item_id"]) for item in new)
