"""The candidate catalog: every item the model can return, with the content it shows and scores.

The catalog travels inside the exported model (titles included), so a client needs nothing but
the model. It is built from the training examples that reach the Trainer through the pipeline's
channels, in the order of Transform's item vocabulary (most-rated first): the warm items, which
the item tower has an id embedding for. After them come the cold items: items of the examples
outside that vocabulary (cut by `top_items`), most-rated first, then the items of the item
catalogue (the prepared items.csv, its own channel) that no example names: items nobody has
rated yet. The model embeds cold items from their content alone (the out-of-vocabulary id row)
and does not train on them.
"""

import dataclasses
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

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
    # Interactions per item in the examples: popularity, and (warm items) the in-batch
    # sampling probability.
    counts: np.ndarray
    # Rows [0, warm_items) are warm (the item tower's id vocabulary, trained on), the rest cold
    # (content alone); None: every row is warm.
    warm_items: Optional[int] = None

    def __post_init__(self):
        size = len(self.item_ids)
        if self.warm_items is None:
            object.__setattr__(self, "warm_items", size)
        if not 0 < self.warm_items <= size:
            raise ValueError("the catalog is empty: no training interaction names a known item"
                             if size == 0 or self.warm_items == 0 else
                             f"warm_items is {self.warm_items}, the catalog has {size} rows")
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
    def warm_ids(self) -> List[str]:
        """The warm items' ids: the item tower's id vocabulary, the items trained on."""
        return self.item_ids[:self.warm_items]

    @property
    def cold(self) -> np.ndarray:
        """[len] bool: which rows are cold items (embedded from their content alone)."""
        return np.arange(len(self)) >= self.warm_items

    @property
    def warm_counts(self) -> np.ndarray:
        """Training interactions per warm item (cold items' interactions are not trained on)."""
        return self.counts[:self.warm_items]

    def composition(self) -> Dict[str, int]:
        """How many items the catalogue holds, of which trained on (warm), cold with
        interactions in the examples (outside the item vocabulary: cut by top_items, or not in
        Transform's train split) and cold with none (nobody rated them)."""
        cold = self.counts[self.warm_items:]
        return {"items": len(self), "warm": int(self.warm_items),
                "cold_rated": int((cold > 0).sum()), "cold_unrated": int((cold == 0).sum())}

    @property
    def sampling_probability(self) -> np.ndarray:
        """Share of training interactions per warm item: how often in-batch sampling sees it."""
        return self.warm_counts / self.warm_counts.sum()


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


Batches = Iterable[Mapping[str, np.ndarray]]


def build_catalog(batches: Union[Batches, Callable[[], Batches]],
                  item_vocabulary: Sequence[str], max_cold_items: int = 0,
                  catalog_items: Optional[Batches] = None) -> Catalog:
    """Collects each vocabulary item's content and counts its interactions, then appends up
    to `max_cold_items` cold items with theirs: the most-rated items of the examples outside
    the vocabulary (ties by id), then, while there is room, the items of `catalog_items` that
    no example names, in its order, with 0 interactions.

    `batches` yields dicts of equal-length numpy arrays with at least item_id and title (as
    the Trainer reads them from Transform's output); or is a function returning a fresh such
    iterable, for a second scan. The first row seen for an item supplies its content.

    Memory: one id and count per distinct item of the examples (as Transform's vocabulary
    computation holds), content for the vocabulary and for at most max_cold_items cold items.
    The scan keeps the content of the first max_cold_items cold items it meets; when more
    distinct cold items than that occur, a second scan collects the content of the chosen
    ones it did not keep (so a plain iterable must then be re-iterable, e.g. a list).

    `catalog_items` yields batches of the item catalogue's columns ({name: [B] str array},
    trainer.dataset.read_item_catalog): item_id, title, and the list columns it has; a content
    column the examples have and it lacks reads ''. It is read once, until the room is full.
    """
    scan = batches if callable(batches) else (lambda: batches)
    position = {item: i for i, item in enumerate(item_vocabulary)}
    counts = np.zeros(len(item_vocabulary), dtype=np.int64)
    content: Dict[str, List[Optional[str]]] = {}
    cold_counts: Dict[str, int] = {}
    cold_content: Dict[str, Tuple[str, ...]] = {}
    for batch in scan():
        if not content:
            content = {name: [None] * len(item_vocabulary)
                       for name in (TITLE, *LIST_FEATURES) if name in batch}
        for item, row, count in _unique_items(batch):
            index = position.get(item)
            if index is None:
                if max_cold_items > 0:
                    cold_counts[item] = cold_counts.get(item, 0) + count
                    if item not in cold_content and len(cold_content) < max_cold_items:
                        cold_content[item] = _row_content(batch, content, row)
                continue
            counts[index] += count
            if content[TITLE][index] is None:
                for name, column in content.items():
                    column[index] = _text(batch[name][row])
    missing = [item for item, count in zip(item_vocabulary, counts) if count == 0]
    if missing:
        raise ValueError(f"{len(missing)} vocabulary items never occur in the training "
                         f"examples, e.g. {missing[:5]}: vocabulary and examples disagree")
    cold = sorted(cold_counts, key=lambda item: (-cold_counts[item], item))[:max_cold_items]
    unseen = {item for item in cold if item not in cold_content}
    if unseen:
        for batch in scan():
            for item, row, _ in _unique_items(batch):
                if item in unseen:
                    cold_content[item] = _row_content(batch, content, row)
                    unseen.discard(item)
    if catalog_items is not None and len(cold) < max_cold_items:
        unrated = _unrated_items(catalog_items, content, set(position) | set(cold_counts),
                                 max_cold_items - len(cold))
        cold_content.update(unrated)
        cold += list(unrated)
    for i, name in enumerate(content):
        content[name] = content[name] + [cold_content[item][i] for item in cold]
    return Catalog(item_ids=list(item_vocabulary) + cold, titles=content[TITLE],
                   genres=content.get(GENRES), authors=content.get(AUTHORS),
                   counts=np.concatenate([counts, [cold_counts.get(item, 0) for item in cold]]
                                         ).astype(np.int64),
                   warm_items=len(item_vocabulary))


def _unrated_items(catalog_items: Batches, content: Mapping[str, list], known: set,
                   room: int) -> Dict[str, Tuple[str, ...]]:
    """Up to `room` items of the catalogue outside `known`, in its order, with the content
    columns of `content` (in that order; '' where the catalogue has no such column)."""
    found: Dict[str, Tuple[str, ...]] = {}
    for batch in catalog_items:
        blank = np.full(len(batch[ITEM_ID]), "", dtype=object)
        columns = [batch.get(name, blank) for name in content]
        for row, item in enumerate(batch[ITEM_ID]):
            item = _text(item)
            if item and item not in known and item not in found:
                found[item] = tuple(_text(column[row]) for column in columns)
                if len(found) == room:
                    return found
    return found


def _unique_items(batch: Mapping[str, np.ndarray]):
    """(item id, first row, rows) of each distinct item of a batch."""
    ids = np.array([_text(item) for item in batch[ITEM_ID]], dtype=object)
    unique_ids, first_rows, unique_counts = np.unique(ids, return_index=True,
                                                      return_counts=True)
    return zip(unique_ids, first_rows, unique_counts.tolist())


def _row_content(batch: Mapping[str, np.ndarray], content: Mapping[str, list],
                 row: int) -> Tuple[str, ...]:
    """One row's content columns, in the order of `content`."""
    return tuple(_text(batch[name][row]) for name in content)
