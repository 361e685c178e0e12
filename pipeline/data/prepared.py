"""The prepared data layout that the TFX pipeline reads, and its one (atomic) writer.

    OUT/interactions/interactions.csv  user_id,item_id,rating,title[,genres][,authors]
    OUT/items.csv                       item_id,title[,genres][,authors],num_ratings
                                        (every item: rated ones first, then unrated ones)
    OUT/manifest.json                   what was prepared, counts, sha256 of interactions.csv

CsvExampleGen reads every file under interactions/, so nothing else may live there. It reads
line by line, so no value may contain a newline. List values are `|`-joined.
Both `prepare` and the synthetic generator write through write_prepared, so the contract lives
here only, and so does the test of whether a directory is prepared data (the only kind of
directory `prepare` and `synthetic` may replace; see check_output_dir).
"""

import csv
import datetime
import hashlib
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from pipeline.data.atomic import atomic_directory
from pipeline.data.errors import DataError, shorten
from trainer.features import ITEM_ID, LIST_FEATURES, LIST_SEPARATOR, RATING, TITLE, USER_ID

INTERACTIONS = os.path.join("interactions", "interactions.csv")
ITEMS = "items.csv"
MANIFEST = "manifest.json"
NUM_RATINGS = "num_ratings"


class Item(NamedTuple):
    """An item's content; field names match trainer.features.LIST_FEATURES."""
    title: str
    genres: Tuple[str, ...] = ()
    authors: Tuple[str, ...] = ()


def rating_text(value: float) -> str:
    """A rating as written: `4` rather than `4.0`, so integer ratings stay integers."""
    return str(int(value)) if value.is_integer() else repr(value)


def id_order(item_id: str) -> Tuple[int, int, str]:
    """Sort key for ids: numeric ids numerically ("9" before "10"), then the others as text."""
    if item_id.isascii() and item_id.isdigit():
        return 0, int(item_id), item_id
    return 1, 0, item_id


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()).strip()


def _joined(values: Iterable[str]) -> str:
    return LIST_SEPARATOR.join(_one_line(value).replace(LIST_SEPARATOR, "/") for value in values)


MANIFEST_KEYS = {"format": str, "counts": dict, "columns": list, "created": str,
                 "interactions_sha256": str}  # what write_prepared always writes
MANIFEST_LIMIT = 1 << 20  # bytes; ours are a few hundred
LAYOUT = {MANIFEST: "file", ITEMS: "file", os.path.dirname(INTERACTIONS): "directory"}


def _entries(directory: str) -> Dict[str, str]:
    """name -> "file", "directory" or "other" (a link, a device...); links are not followed."""
    kinds = {}
    for entry in os.scandir(directory):
        kinds[entry.name] = ("directory" if entry.is_dir(follow_symlinks=False) else
                             "file" if entry.is_file(follow_symlinks=False) else "other")
    return kinds


def _listed(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(shorten(name) for name in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _layout_problem(path: str, expected: Mapping[str, str]) -> Optional[str]:
    found = _entries(path)
    if set(found) - set(expected):
        return f"it holds {_listed(set(found) - set(expected))}, which prepared data does not"
    if set(expected) - set(found):
        return f"it lacks {_listed(set(expected) - set(found))}"
    for name, kind in expected.items():
        if found[name] != kind:
            return f"{name!r} is not a plain {kind}"
    return None


def not_prepared_because(path: str) -> Optional[str]:
    """Why the non-empty directory `path` is not prepared data written here, or None.

    Prepared data is recognised by all of it: exactly the layout above (no other file, no
    links), a manifest.json that is a JSON object with write_prepared's keys, and an
    interactions.csv whose sha256 is the manifest's. A file name alone proves nothing: web
    apps and browser extensions have a manifest.json too.
    """
    problem = (_layout_problem(path, LAYOUT) or
               _layout_problem(os.path.join(path, os.path.dirname(INTERACTIONS)),
                               {os.path.basename(INTERACTIONS): "file"}))
    if problem:
        return problem
    with open(os.path.join(path, MANIFEST), "rb") as handle:
        text = handle.read(MANIFEST_LIMIT + 1)
    try:
        manifest = json.loads(text) if len(text) <= MANIFEST_LIMIT else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        return f"its {MANIFEST} is not a JSON object of at most {MANIFEST_LIMIT} bytes"
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            return f"its {MANIFEST} has no {key!r} {kind.__name__}"
    if manifest["interactions_sha256"] != file_sha256(os.path.join(path, INTERACTIONS)):
        return (f"{INTERACTIONS} does not match the sha256 in its {MANIFEST} (edited since "
                f"it was prepared?)")
    return None


def check_output_dir(path: str) -> None:
    """Refuses to replace anything but a missing, an empty or a prepared-data directory.

    Replacing is a delete; a mistyped --output (`.`, a home directory, a web app) must not
    cost data. Raises DataError saying why; nothing is deleted.
    """
    if os.path.islink(path):
        raise DataError(path, "output is a symbolic link; refusing to replace it (nothing was "
                              "deleted): give the directory it points to, or a new one")
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise DataError(path, "output exists and is not a directory; refusing to replace it "
                              "(nothing was deleted)")
    try:
        problem = not_prepared_because(path) if os.listdir(path) else None
    except OSError as error:
        problem = f"it cannot be read ({error.strerror})"
    if problem:
        raise DataError(path, f"refusing to replace this output directory: {problem}, so it "
                              f"is not prepared data written by towergraph; nothing was "
                              f"deleted. Choose a new or empty --output, or empty it yourself")


def write_prepared(output_dir: str, items: Mapping[str, Item],
                   interactions: Iterable[Tuple[str, str, str]],
                   manifest: Dict[str, Any]) -> Dict[str, Any]:
    """Streams (user_id, item_id, rating_text) rows into the prepared layout, atomically.

    `items` is the catalog the rows may name; items.csv lists every one of them: those that
    got ratings, most-rated first, then those nobody rated (num_ratings 0, in id order), which
    the pipeline's model places by their content alone (cold items).
    `manifest` holds the caller's entries (format, input, extra counts); users/items/ratings
    counts, columns, time and checksum are added here. Returns the manifest plus `output`.
    """
    lists = [name for name in LIST_FEATURES if any(getattr(item, name) for item in items.values())]
    # Each item's output cells, formatted once rather than once per rating.
    cells = {item_id: (_one_line(item.title),) + tuple(_joined(getattr(item, name))
                                                        for name in lists)
             for item_id, item in items.items()}
    counts = dict.fromkeys(items, 0)
    users = set()
    with atomic_directory(output_dir, check_output_dir) as temporary:
        interactions_path = os.path.join(temporary, INTERACTIONS)
        os.mkdir(os.path.dirname(interactions_path))
        columns = [USER_ID, ITEM_ID, RATING, TITLE] + lists
        with open(interactions_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for user_id, item_id, rating in interactions:
                writer.writerow((user_id, item_id, rating) + cells[item_id])
                counts[item_id] += 1
                users.add(user_id)
        rated = sorted((item_id for item_id, count in counts.items() if count),
                       key=lambda item_id: (-counts[item_id], id_order(item_id)))
        unrated = sorted((item_id for item_id, count in counts.items() if not count),
                         key=id_order)
        with open(os.path.join(temporary, ITEMS), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([ITEM_ID, TITLE] + lists + [NUM_RATINGS])
            writer.writerows((item_id,) + cells[item_id] + (counts[item_id],)
                             for item_id in rated + unrated)
        manifest = dict(manifest)
        manifest["counts"] = {"users": len(users), "items": len(rated),
                              "ratings": sum(counts.values()), "unrated_items": len(unrated),
                              **manifest.get("counts", {})}
        manifest.update(
            columns=columns,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            interactions_sha256=file_sha256(interactions_path))
        with open(os.path.join(temporary, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
            handle.write("\n")
    return {**manifest, "output": os.path.abspath(output_dir)}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_item_genres(prepared_dir: str) -> Dict[str, List[str]]:
    """item_id -> genres from a prepared items.csv (for synthetic data: the ground truth)."""
    with open(os.path.join(prepared_dir, ITEMS), newline="", encoding="utf-8") as handle:
        return {row[ITEM_ID]: [genre for genre in row.get("genres", "").split(LIST_SEPARATOR)
                               if genre]
                for row in csv.DictReader(handle)}
