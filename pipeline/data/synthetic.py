"""A synthetic catalog with known structure, to check that the model learns what it should.

Each item has one genre (`genre_03`), a title made of two of its genre's words plus its own id
(`Moonlit Harbor 17`: title tokens carry the genre signal), and a Zipf-like popularity. Each
user favours 1-3 genres and takes about `favourite_share` of their ratings from them, rating
favourites higher. Users are generated and written one at a time, so 53k users x 10k items x
6M ratings take memory for the items only.
"""

import functools
from typing import Any, Dict, Iterator, Tuple

import numpy as np

from pipeline.data.prepared import Item, write_prepared

WORDS = ("Moonlit", "Harbor", "Crimson", "Echo", "Silent", "River", "Golden", "Shadow", "Iron",
         "Garden", "Winter", "Ember", "Hollow", "Star", "Velvet", "Storm", "Northern", "Lantern",
         "Paper", "Glass", "Copper", "Falcon", "Willow", "Thunder", "Amber", "Canyon", "Silver",
         "Orchard", "Midnight", "Coral", "Frost", "Meadow", "Scarlet", "Tide", "Desert", "Raven",
         "Summer", "Bridge", "Ivory", "Comet", "Marble", "Forest", "Cobalt", "Mirror", "Autumn",
         "Harvest", "Jade", "Signal")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "ha", "ju",
             "pe", "zu")
WORDS_PER_GENRE = 6


def genre_name(genre: int) -> str:
    return f"genre_{genre:02d}"


def _word(index: int) -> str:
    """The index-th distinct title word: the curated list, then made-up three-syllable words."""
    if index < len(WORDS):
        return WORDS[index]
    index -= len(WORDS)
    syllables = [SYLLABLES[(index // len(SYLLABLES) ** power) % len(SYLLABLES)]
                 for power in range(3)]
    return "".join(syllables).capitalize()


def generate_synthetic(output_dir: str, users: int = 2000, items: int = 500, genres: int = 8,
                       ratings_per_user: int = 40, seed: int = 42,
                       favourite_share: float = 0.9,
                       popularity_exponent: float = 1.0,
                       unrated_items: int = 0) -> Dict[str, Any]:
    """Writes a synthetic dataset in the prepared layout; returns the manifest (like prepare).

    Every user rates exactly `ratings_per_user` distinct items, so ratings = users x that.
    `unrated_items` more items (ids after the rated ones, genres and titles made the same way)
    are in the catalogue with no rating at all: new items, for the model to place by their
    content. Deterministic for a given seed; the rated part does not depend on unrated_items.
    """
    if min(users, items, genres, ratings_per_user) < 1:
        raise ValueError("users, items, genres and ratings_per_user must be positive")
    if unrated_items < 0:
        raise ValueError(f"unrated_items must be 0 or positive, not {unrated_items}")
    if genres > items or ratings_per_user > items:
        raise ValueError(f"need items >= genres and items >= ratings_per_user "
                         f"(items={items}, genres={genres}, ratings_per_user={ratings_per_user})")
    if not 0 <= favourite_share <= 1:
        raise ValueError(f"favourite_share must be between 0 and 1, not {favourite_share}")
    rng = np.random.default_rng(seed)
    genre_of = rng.permutation(np.arange(items) % genres)  # balanced genres, shuffled over ids
    # Zipf-like popularity: the r-th most popular item is chosen with weight r^-exponent.
    log_popularity = -popularity_exponent * np.log(rng.permutation(items) + 1.0)
    item_ids = [str(index + 1) for index in range(items)]
    catalog = {}
    for index, item_id in enumerate(item_ids):
        genre = int(genre_of[index])
        words = rng.choice(WORDS_PER_GENRE, size=2, replace=False) + genre * WORDS_PER_GENRE
        catalog[item_id] = Item(f"{_word(words[0])} {_word(words[1])} {item_id}",
                                genres=(genre_name(genre),))

    unrated_rng = np.random.default_rng([seed, 1])  # leaves the rated part's draws alone
    for index in range(items, items + unrated_items):
        genre = int(unrated_rng.integers(genres))
        words = unrated_rng.choice(WORDS_PER_GENRE, size=2, replace=False) + genre * WORDS_PER_GENRE
        catalog[str(index + 1)] = Item(f"{_word(words[0])} {_word(words[1])} {index + 1}",
                                       genres=(genre_name(genre),))

    @functools.lru_cache(maxsize=256)
    def split(favourites: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
        # Items of the favourite genres and the others; few distinct sets, so cached.
        favourite = np.isin(genre_of, favourites)
        return np.flatnonzero(favourite), np.flatnonzero(~favourite)

    def sample(candidates: np.ndarray, size: int) -> np.ndarray:
        # Popularity-weighted sampling without replacement (Gumbel top-k), O(candidates).
        if size == 0:
            return candidates[:0]
        keys = log_popularity[candidates] + rng.gumbel(size=len(candidates))
        return candidates[np.argpartition(-keys, size - 1)[:size]]

    def interactions() -> Iterator[Tuple[str, str, str]]:
        for user in range(users):
            count = int(rng.integers(1, min(3, genres) + 1))
            favourites = tuple(sorted(rng.choice(genres, size=count, replace=False).tolist()))
            liked, others = split(favourites)
            from_liked = int(rng.binomial(ratings_per_user, favourite_share))
            from_liked = min(max(from_liked, ratings_per_user - len(others)), len(liked))
            chosen_liked = sample(liked, from_liked)
            chosen_other = sample(others, ratings_per_user - from_liked)
            stars = np.concatenate([rng.normal(4.2, 0.8, len(chosen_liked)),
                                    rng.normal(2.8, 1.0, len(chosen_other))])
            stars = np.clip(np.rint(stars), 1, 5).astype(int).tolist()
            chosen = np.concatenate([chosen_liked, chosen_other]).tolist()
            user_id = str(user + 1)
            for index, star in sorted(zip(chosen, stars)):
                yield user_id, item_ids[index], str(star)

    manifest = {
        "format": "synthetic",
        "input": None,
        "top_items": 0,
        "synthetic": {"users": users, "items": items, "genres": genres,
                      "ratings_per_user": ratings_per_user, "seed": seed,
                      "unrated_items": unrated_items,
                      "favourite_share": favourite_share,
                      "popularity_exponent": popularity_exponent},
    }
    return write_prepared(output_dir, catalog, interactions(), manifest)
