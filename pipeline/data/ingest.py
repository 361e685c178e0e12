"""`prepare`: validate an input dataset completely, then write the prepared layout atomically.

Two passes over the ratings. The first validates every row and records one int64 key per
rating (user index * items + item index), 8 bytes a rating, from which duplicates and per-item
counts follow; the second streams the kept ratings into the writer. Nothing is written until
the first pass has found no problem.
"""

import array
import os
from typing import Any, Dict, Iterator, List, Mapping, Set, Tuple

import numpy as np

from pipeline.data.errors import DataError
from pipeline.data.formats import ITEM, Layout, resolve_layout
from pipeline.data.prepared import Item, check_output_dir, id_order, write_prepared
from pipeline.data.readers import read_items, read_ratings, table_path


def prepare(format: str, input_path: str, output_dir: str, top_items: int = 0,
            **options: Any) -> Dict[str, Any]:
    """Prepares `input_path` (a directory) in `format` into `output_dir`; returns the manifest.

    options (formats.csv_layout's arguments) override the format's file and column names.
    top_items=N keeps the N most-rated items (ties: lower id first) and only their ratings;
    without it every item is kept, those nobody rated too (items.csv, num_ratings 0).
    Raises DataError for any problem in the input, before anything is written.
    """
    if top_items < 0:
        raise ValueError(f"top_items must be 0 (all) or positive, not {top_items}")
    check_output_dir(output_dir)  # fail fast, before a long validation pass
    layout = resolve_layout(format, input_path, **options)
    items = read_items(input_path, layout.items)
    item_ids = list(items)
    superseded, counts = _superseded_and_counts(
        _validated_keys(input_path, layout, items), len(item_ids))
    rated = sorted((index for index, count in enumerate(counts) if count),
                   key=lambda index: (-counts[index], id_order(item_ids[index])))
    unrated = [index for index, count in enumerate(counts) if not count]
    # Items nobody rated stay in the catalogue (items.csv), for the model to place by their
    # content; --top-items is a cut to the most-rated, which leaves them out.
    kept = rated[:top_items] if top_items else rated
    catalog = {item_ids[index]: items[item_ids[index]]
               for index in kept + ([] if top_items else unrated)}

    manifest = {
        "format": format,
        "input": os.path.abspath(input_path),
        "ratings_file": table_path(os.path.abspath(input_path), layout.ratings),
        "items_file": table_path(os.path.abspath(input_path), layout.items),
        "top_items": top_items,
        "counts": {"duplicate_ratings_dropped": len(superseded),
                   "items_dropped_by_top_items": len(rated) - len(kept),
                   "ratings_dropped_by_top_items": sum(counts[index]
                                                       for index in rated[len(kept):]),
                   "unrated_items_dropped": len(unrated) if top_items else 0},
    }
    rows = _kept_ratings(input_path, layout, catalog, set(superseded))
    return write_prepared(output_dir, catalog, rows, manifest)


def _validated_keys(input_path: str, layout: Layout, items: Mapping[str, Item]) -> np.ndarray:
    """Pass 1: one key per rating row, in file order. Raises on the first bad row."""
    item_index = {item_id: index for index, item_id in enumerate(items)}
    user_index: Dict[str, int] = {}
    keys = array.array("q")
    path = table_path(input_path, layout.ratings)
    items_file = layout.items.file
    for rating in read_ratings(input_path, layout.ratings):
        index = item_index.get(rating.item_id)
        if index is None:
            raise DataError(path, f"item {rating.item_id!r} is not in {items_file}", rating.line,
                            layout.ratings.fields[ITEM])
        user = user_index.setdefault(rating.user_id, len(user_index))
        keys.append(user * len(item_index) + index)
    return np.frombuffer(keys, dtype=np.int64)


def _superseded_and_counts(keys: np.ndarray, n_items: int) -> Tuple[List[int], List[int]]:
    """(positions of ratings a later row repeats, ratings per item index without them).

    After a stable sort equal keys keep file order, so an element followed by an equal one is
    an earlier duplicate: the last rating of a (user, item) pair wins.
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    superseded = order[:-1][sorted_keys[:-1] == sorted_keys[1:]]
    del order, sorted_keys  # 16 bytes a rating; free them before the next temporaries
    counts = (np.bincount(keys % n_items, minlength=n_items) -
              np.bincount(keys[superseded] % n_items, minlength=n_items))
    return superseded.tolist(), counts.tolist()


def _kept_ratings(input_path: str, layout: Layout, catalog: Mapping[str, Item],
                  superseded: Set[int]) -> Iterator[Tuple[str, str, str]]:
    """Pass 2: (user_id, item_id, rating) of the last rating per pair, for kept items only."""
    for position, rating in enumerate(read_ratings(input_path, layout.ratings)):
        if position not in superseded and rating.item_id in catalog:
            yield rating.user_id, rating.item_id, rating.rating
