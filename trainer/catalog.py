"""The candidate catalog: every item the model can return, with the content it shows and scores.

The catalog travels inside the exported model (titles included), so a client needs nothing but
the model. It is built from the training examples that reach the Trainer through the pipeline's
channels, in the order of Transform's item vocabulary (most-rated first).
"""

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from trainer.features import AUTHORS, GENRES, ITEM_ID, LIST_FEATURES, TITLE, USER_ID


@dataclasses.dataclass(frozen=True)
class Catalog:
    item_ids: List[str]
    titles: List[str]
    # `|`-joined lists, '' when an item has none; a column is None when the data has no such
    # column at all (MovieLens has genres, goodbooks has authors).
    genres: Optional[List[str]]
    authors: Optional[List[str]]
    # Training interactions per item: popularity, and the in-batch sampling probability.
    counts: np.ndarray

    def __post_init__(self):
        size = len(self.item_ids)
        if size == 0:
            raise ValueError("the catalog is empty: no training interaction names a known item")
        for name in ("titles", "genres", "authors", "counts"):
            column = getattr(self, name)
            if column is not None and len(column) != size:
                raise ValueError(f"catalog column {name} has {len(column)} rows, not {size}")
        if len(set(self.item_ids)) != size:
            raise ValueError("catalog item ids are not unique")

    def __len__(self) -> int:
        return len(self.item_ids)

    def content(self) -> Dict[str, List[str]]:
        """Candidate-tower input for every item, in catalog order."""
        features = {ITEM_ID: self.item_ids, TITLE: self.titles, GENRES: self.genres,
                    AUTHORS: self.authors}
        return {name: column for name, column in features.items() if column is not None}

    @property
    def sampling_probability(self) -> np.ndarray:
        """Share of training interactions per item: how often in-batch sampling sees it."""
        return self.counts / self.counts.sum()


@dataclasses.dataclass(frozen=True)
class Histories:
    """Each user's training items as catalogue rows, ragged: user u's items are
    values[row_splits[u]:row_splits[u + 1]]. Users are in the user vocabulary's order, after one
    empty row for unknown users (StringLookup's index 0)."""

    row_splits: np.ndarray   # int64 [users + 2]
    values: np.ndarray       # int64 [interactions, deduplicated per user]

    def __post_init__(self):
        if self.row_splits[0] != 0 or self.row_splits[-1] != len(self.values) \
                or (np.diff(self.row_splits) < 0).any():
            raise ValueError("history row_splits do not partition the values")


def build_histories(batches: Iterable[Mapping[str, np.ndarray]], users: Sequence[str],
                    item_ids: Sequence[str]) -> Histories:
    """Each known user's distinct catalogue items in the examples (same batches as
    build_catalog); items outside the catalogue and unknown users are skipped."""
    user_index, item_row = pd.Index(list(users)), pd.Index(list(item_ids))
    chunks = [np.zeros((0, 2), dtype=np.int64)]
    for batch in batches:
        user = user_index.get_indexer(_texts(batch[USER_ID]))
        row = item_row.get_indexer(_texts(batch[ITEM_ID]))
        keep = (user >= 0) & (row >= 0)
        chunks.append(np.stack([user[keep] + 1, row[keep]], axis=1).astype(np.int64))
    ordered = np.unique(np.concatenate(chunks), axis=0)
    counts = np.bincount(ordered[:, 0], minlength=len(users) + 1)
    row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Histories(row_splits=row_splits, values=ordered[:, 1].copy())


def _texts(values: np.ndarray) -> np.ndarray:
    """A batch column of bytes (as tf.data hands it over) or str as a str array."""
    values = np.asarray(values)
    if values.dtype.kind == "O":
        try:
            values = values.astype(bytes)
        except UnicodeEncodeError:  # str objects, not bytes
            return values.astype(str)
    return np.char.decode(values, "utf-8") if values.dtype.kind == "S" else values


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def build_catalog(batches: Iterable[Mapping[str, np.ndarray]],
                  item_vocabulary: Sequence[str]) -> Catalog:
    """Collects each vocabulary item's content and counts its interactions.

    `batches` yields dicts of equal-length numpy arrays with at least item_id and title (as
    the Trainer reads them from Transform's output); items outside the vocabulary are skipped.
    The first row seen for an item supplies its content.
    """
    position = {item: i for i, item in enumerate(item_vocabulary)}
    counts = np.zeros(len(item_vocabulary), dtype=np.int64)
    content: Dict[str, List[Optional[str]]] = {}
    for batch in batches:
        if not content:
            content = {name: [None] * len(item_vocabulary)
                       for name in (TITLE, *LIST_FEATURES) if name in batch}
        ids = np.array([_text(item) for item in batch[ITEM_ID]], dtype=object)
        unique_ids, first_rows, unique_counts = np.unique(ids, return_index=True,
                                                          return_counts=True)
        for item, row, count in zip(unique_ids, first_rows, unique_counts):
            index = position.get(item)
            if index is None:
                continue
            counts[index] += count
            if content[TITLE][index] is None:
                for name, column in content.items():
                    column[index] = _text(batch[name][row])
    missing = [item for item, count in zip(item_vocabulary, counts) if count == 0]
    if missing:
        raise ValueError(f"{len(missing)} vocabulary items never occur in the training "
                         f"examples, e.g. {missing[:5]}: vocabulary and examples disagree")
    return Catalog(item_ids=list(item_vocabulary), titles=content[TITLE],
                   genres=content.get(GENRES), authors=content.get(AUTHORS), counts=counts)
