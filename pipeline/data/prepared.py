"""The prepared data layout that the TFX pipeline reads, and its one (atomic) writer.

    OUT/interactions/interactions.csv  user_id,item_id,rating,title[,genres][,authors]
    OUT/items.csv                       item_id,title[,genres][,authors],num_ratings
    OUT/manifest.json                   what was prepared, counts, sha256 of interactions.csv

CsvExampleGen reads every file under interactions/, so nothing else may live there. It reads
line by line, so no value may contain a newline. List values are `|`-joined.
Both `prepare` and the synthetic generator write through write_prepared, so the contract lives
here only.
"""

import contextlib
import csv
import datetime
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Tuple

from pipeline.data.errors import DataError
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


def check_output_dir(path: str) -> None:
    """Refuses to replace anything but an empty or previously prepared directory.

    Replacing is a delete; a mistyped --output (`.`, a home directory) must not cost data.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise DataError(path, "output exists and is not a directory")
    if os.path.isdir(path) and os.listdir(path) and \
            not os.path.isfile(os.path.join(path, MANIFEST)):
        raise DataError(path, f"output directory is not empty and holds no {MANIFEST}, so it "
                              f"is not prepared data; refusing to replace it")


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yields a temporary directory beside `path` that replaces `path` only on success.

    On any error the temporary directory is removed and an existing `path` is untouched. The
    swap is two renames on the same filesystem (a directory cannot be atomically replaced).
    """
    path = os.path.abspath(path)
    check_output_dir(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    temporary = os.path.join(parent, f".{name}.tmp-{tag}")
    os.mkdir(temporary)  # not tempfile.mkdtemp: its 0700 mode would survive the rename
    try:
        yield temporary
        if os.path.exists(path):
            old = os.path.join(parent, f".{name}.old-{tag}")
            os.rename(path, old)
            try:
                os.rename(temporary, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, path)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def write_prepared(output_dir: str, items: Mapping[str, Item],
                   interactions: Iterable[Tuple[str, str, str]],
                   manifest: Dict[str, Any]) -> Dict[str, Any]:
    """Streams (user_id, item_id, rating_text) rows into the prepared layout, atomically.

    `items` is the catalog the rows may name; items.csv lists those that got ratings.
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
    with atomic_directory(output_dir) as temporary:
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
        with open(os.path.join(temporary, ITEMS), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([ITEM_ID, TITLE] + lists + [NUM_RATINGS])
            writer.writerows((item_id,) + cells[item_id] + (counts[item_id],)
                             for item_id in rated)
        manifest = dict(manifest)
        manifest["counts"] = {"users": len(users), "items": len(rated),
                              "ratings": sum(counts.values()), **manifest.get("counts", {})}
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
