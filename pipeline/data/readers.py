"""Streaming, validating readers of the input tables described in formats.py.

Items are read whole (a catalog is small: thousands to tens of thousands of rows); ratings are
streamed, one row at a time, so millions of ratings take constant memory. Every problem is a
DataError naming the file, the line (header = line 1) and the file's own column name.
"""

import csv
import math
import os
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

from pipeline.data.errors import DataError
from pipeline.data.formats import AUTHORS, GENRES, ITEM, RATING, TITLE, USER, Flags, Table
from pipeline.data.prepared import Item, rating_text


class Rating(NamedTuple):
    line: int
    user_id: str
    item_id: str
    rating: str  # normalised number text, as written to the output


def table_path(input_dir: str, table: Table) -> str:
    return os.path.join(input_dir, table.file)


def read_items(input_dir: str, table: Table) -> Dict[str, Item]:
    """item_id -> Item, in file order. Empty and duplicate ids are errors."""
    items: Dict[str, Item] = {}
    first_line: Dict[str, int] = {}
    for line, record in _records(input_dir, table):
        item_id = _id(input_dir, table, line, record, ITEM)
        if item_id in items:
            raise DataError(table_path(input_dir, table),
                            f"duplicate item id {item_id!r} (first on line {first_line[item_id]})",
                            line, table.fields[ITEM])
        first_line[item_id] = line
        items[item_id] = Item(record[TITLE], record.get(GENRES, ()), record.get(AUTHORS, ()))
    return items


def read_ratings(input_dir: str, table: Table) -> Iterator[Rating]:
    """Validated ratings in file order. Whether the item exists is the caller's check."""
    path = table_path(input_dir, table)
    column = table.fields[RATING]
    for line, record in _records(input_dir, table):
        user_id = _id(input_dir, table, line, record, USER)
        item_id = _id(input_dir, table, line, record, ITEM)
        text = record[RATING]
        if not text:
            raise DataError(path, "rating is empty", line, column)
        try:
            value = float(text)
        except ValueError:
            raise DataError(path, f"{text!r} is not a number", line, column) from None
        if not math.isfinite(value):
            raise DataError(path, f"{text!r} is not a finite number", line, column)
        yield Rating(line, user_id, item_id, rating_text(value))


def _id(input_dir: str, table: Table, line: int, record: Dict[str, Any], field: str) -> str:
    # Ids stay strings as given ("007" is not "7"). An empty id names nothing; a line break
    # would split the row for CsvExampleGen, which reads line by line.
    value = record[field]
    if not value or "\n" in value or "\r" in value:
        raise DataError(table_path(input_dir, table),
                        "id is empty" if not value else f"id {value!r} contains a line break",
                        line, table.fields[field])
    return value


def _records(input_dir: str, table: Table) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """(line where the record starts, {our field: stripped text, or a tuple for list fields})."""
    path = table_path(input_dir, table)
    if not os.path.isfile(path):
        raise DataError(path, "file does not exist")
    flag_names = _flag_names(input_dir, table) if table.flags else []
    line = 1
    rows = 0
    try:
        with open(path, newline="", encoding=table.encoding) as handle:
            reader = csv.reader(handle, delimiter=table.delimiter, quoting=table.quoting)
            if table.names:
                columns = list(table.names) + flag_names
            else:
                header = next(reader, None)
                if header is None:
                    raise DataError(path, "file is empty (no header line)")
                columns = [name.strip() for name in header]
            positions = _positions(path, table, columns)
            line = reader.line_num + 1
            for cells in reader:
                start, line = line, reader.line_num + 1
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line, typically a trailing one
                if len(cells) != len(columns):
                    raise DataError(path, f"has {len(cells)} fields, expected {len(columns)}"
                                          + ("" if table.names else " (as in the header)"),
                                    start)
                record: Dict[str, Any] = {field: cells[position].strip()
                                          for field, position in positions.items()}
                for field, separator in table.lists.items():
                    record[field] = split_list(record.get(field, ""), separator)
                if table.flags:
                    record[table.flags.field] = _flagged(
                        path, start, cells[len(table.names):], flag_names)
                rows += 1
                yield start, record
    except UnicodeDecodeError as error:
        # Decoding runs ahead of parsing, so the bad byte is somewhere at or after `line`.
        encoding = table.encoding.replace("-sig", "").upper()
        raise DataError(path, f"is not {encoding} text ({error.reason}) at or after line "
                              f"{line}") from None
    except csv.Error as error:
        raise DataError(path, f"malformed CSV: {error}", line) from None
    if not rows:
        raise DataError(path, "has no data rows" + ("" if table.names else " after the header"))


def _positions(path: str, table: Table, columns: List[str]) -> Dict[str, int]:
    positions = {}
    for field, column in table.fields.items():
        if column not in columns and field in table.optional:
            continue
        if column not in columns:
            raise DataError(path, f"missing column (the header has: {', '.join(columns)})",
                            1, column)
        positions[field] = columns.index(column)
    return positions


def split_list(text: str, separator: str) -> Tuple[str, ...]:
    """Non-empty, stripped, distinct values of a separated cell, in order."""
    values = (value.strip() for value in text.split(separator))
    return tuple(dict.fromkeys(value for value in values if value))


def _flag_names(input_dir: str, table: Table) -> List[str]:
    """The one-hot columns' names, ordered by position (GroupLens u.genre: `name|position`)."""
    flags: Flags = table.flags
    names_table = Table(flags.names_file, {"name": "name", "position": "position"},
                        names=("name", "position"), delimiter=table.delimiter,
                        quoting=table.quoting, encoding=table.encoding)
    path = table_path(input_dir, names_table)
    named = {}
    for line, record in _records(input_dir, names_table):
        if not record["position"].isdigit():
            raise DataError(path, f"{record['position']!r} is not a column position", line,
                            "position")
        if int(record["position"]) in named:
            raise DataError(path, f"position {record['position']} appears twice", line,
                            "position")
        named[int(record["position"])] = record["name"]
    if sorted(named) != list(range(len(named))):
        raise DataError(path, f"positions must be 0..{len(named) - 1} without gaps")
    return [named[position] for position in range(len(named))]


def _flagged(path: str, line: int, cells: List[str], names: List[str]) -> Tuple[str, ...]:
    chosen = []
    for name, cell in zip(names, cells):
        flag = cell.strip()
        if flag not in ("0", "1"):
            raise DataError(path, f"flag must be 0 or 1, not {flag!r}", line, name)
        if flag == "1":
            chosen.append(name)
    return tuple(chosen)
