"""Streaming, validating readers of the input tables described in formats.py.

Items are read whole (a catalog is small: thousands to tens of thousands of rows); ratings are
streamed, one row at a time, so millions of ratings take constant memory. Every problem is a
DataError naming the file, the line (header = line 1; lines are physical lines, so a quoted
value spanning lines counts each) and the file's own column name.

Limits, enforced and documented in `data prepare --help` (LIMITS):
- a field (cell) holds at most 131,072 characters (FIELD_LIMIT, the csv module's own limit);
- a user or item id holds at most 256 characters (ID_LIMIT), no line break and no NUL;
- no field we read may contain a NUL character (a sign of a binary or UTF-16 file);
- a column we read may appear only once in the header;
- text must be valid in the format's encoding (UTF-8, optionally with a byte-order mark; the
  GroupLens files: Latin-1); the first undecodable byte is reported with its exact line;
- no limit on file size: ratings are streamed (memory: about 8 bytes a rating, plus the items).
"""

import codecs
import csv
import math
import os
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

from pipeline.data.errors import DataError, shorten
from pipeline.data.formats import AUTHORS, GENRES, ITEM, RATING, TITLE, USER, Flags, Table
from pipeline.data.prepared import Item, rating_text


FIELD_LIMIT = csv.field_size_limit()  # 131,072 unless a program changed it; we never do
ID_LIMIT = 256
LIMITS = (f"a field holds at most {FIELD_LIMIT:,} characters; an id at most {ID_LIMIT} "
          f"characters, with no line break; no NUL characters; each column we read appears "
          f"once in the header; text is UTF-8 (a byte-order mark is allowed; GroupLens "
          f"u.item: Latin-1); files of any size (ratings are streamed).")


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
            raise DataError(path, f"{shorten(text)} is not a number", line, column) from None
        if not math.isfinite(value):
            raise DataError(path, f"{shorten(text)} is not a finite number", line, column)
        yield Rating(line, user_id, item_id, rating_text(value))


def _id(input_dir: str, table: Table, line: int, record: Dict[str, Any], field: str) -> str:
    # Ids stay strings as given ("007" is not "7"). An empty id names nothing; a line break
    # would split the row for CsvExampleGen, which reads line by line; a bounded length keeps
    # ids usable as ids (and numeric ones sortable: int() refuses over 4,300 digits).
    value = record[field]
    problem = ("id is empty" if not value else
               f"id {shorten(value)} contains a line break" if "\n" in value or "\r" in value
               else f"id {shorten(value)} is longer than {ID_LIMIT} characters"
               if len(value) > ID_LIMIT else None)
    if problem:
        raise DataError(table_path(input_dir, table), problem, line, table.fields[field])
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
        handle = open(path, newline="", encoding=table.encoding)
    except OSError as error:
        raise DataError(path, f"cannot be read ({error.strerror})") from None
    try:
        with handle:
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
                for field, value in record.items():
                    if "\0" in value:
                        raise DataError(path, "contains a NUL character (is this a binary or "
                                              "UTF-16 file?)", start, table.fields[field])
                for field, separator in table.lists.items():
                    record[field] = split_list(record.get(field, ""), separator)
                if table.flags:
                    record[table.flags.field] = _flagged(
                        path, start, cells[len(table.names):], flag_names)
                rows += 1
                yield start, record
    except UnicodeDecodeError as error:
        # Decoding runs ahead of parsing (in blocks), so where the reader stood says little:
        # find the byte itself.
        bad_line, offset = undecodable_byte(path, table.encoding)
        encoding = table.encoding.replace("-sig", "").upper()
        raise DataError(path, f"is not {encoding} text: {error.reason} at byte {offset:,} "
                              f"of the file", bad_line) from None
    except csv.Error as error:
        problem = (f"a field is longer than {FIELD_LIMIT:,} characters (the limit)"
                   if "field limit" in str(error) else f"malformed CSV: {error}")
        raise DataError(path, problem, line) from None
    if not rows:
        raise DataError(path, "has no data rows" + ("" if table.names else " after the header"))


def _positions(path: str, table: Table, columns: List[str]) -> Dict[str, int]:
    positions = {}
    for field, column in table.fields.items():
        if column not in columns and field in table.optional:
            continue
        if column not in columns:
            shown = ", ".join(name if len(name) <= 40 else name[:40] + "..."
                              for name in columns[:30])
            raise DataError(path, f"missing column (the header has: {shown}"
                                  f"{', ...' if len(columns) > 30 else ''})", 1, column)
        if columns.count(column) > 1:
            raise DataError(path, f"the header names this column {columns.count(column)} "
                                  f"times; which one holds the {field}?", 1, column)
        positions[field] = columns.index(column)
    return positions


def undecodable_byte(path: str, encoding: str) -> Tuple[int, int]:
    """(line, byte offset) of the first byte sequence of `path` that `encoding` cannot decode.

    Lines are counted as the csv reader counts them (\n, \r\n and a lone \r each end one).
    Asked after a UnicodeDecodeError, so a bad byte exists; if none is found (the file changed
    meanwhile) the end of the file is returned.
    """
    name = codecs.lookup(encoding).name
    decoder = codecs.getincrementaldecoder("utf-8" if name == "utf-8-sig" else name)()
    offset, breaks, after_cr = 0, 0, False
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                bad = offset - pending + error.start
                return breaks + _breaks(block[:max(0, bad - offset)], after_cr) + 1, bad
            breaks += _breaks(block, after_cr)
            after_cr = block.endswith(b"\r")
            offset += len(block)
    # A multi-byte sequence cut short by the end of the file starts `pending` bytes before it.
    return breaks + 1, offset - len(decoder.getstate()[0])


def _breaks(data: bytes, after_cr: bool) -> int:
    count = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return count - 1 if after_cr and data.startswith(b"\n") else count


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
            raise DataError(path, f"{shorten(record['position'])} is not a column position", line,
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
            raise DataError(path, f"flag must be 0 or 1, not {shorten(flag)}", line, name)
        if flag == "1":
            chosen.append(name)
    return tuple(chosen)
