"""Input formats as declarative presets: file names, column names and list separators.

Every format is the same generic CSV layout (a ratings table and an items table) with other
defaults, so adding a format means adding a preset here, not a reader. The one exception is
GroupLens' original ML-100K files (u.data/u.item), which are headerless and one-hot encode genres;
they are described by the same Table type, with fixed column names and a Flags entry.
"""

import csv
import dataclasses
import os
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

from pipeline.data.errors import DataError
from trainer.features import AUTHORS, GENRES, RATING, TITLE
from trainer.features import ITEM_ID as ITEM
from trainer.features import USER_ID as USER


@dataclasses.dataclass(frozen=True)
class Flags:
    """One-hot columns (0/1) that together hold a list field, named by a separate file.

    GroupLens u.item has 19 genre columns after its 5 fixed ones; u.genre lists `name|position`.
    """
    field: str
    names_file: str


@dataclasses.dataclass(frozen=True)
class Table:
    """Where one input table lives and which of its columns hold our fields."""
    file: str                          # relative to the input directory (or absolute)
    fields: Mapping[str, str]          # our field -> the file's column name
    lists: Mapping[str, str] = dataclasses.field(default_factory=dict)  # list field -> separator
    names: Tuple[str, ...] = ()        # a headerless file's column names, in order
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL  # GroupLens files are not quoted: titles contain `"`
    encoding: str = "utf-8-sig"       # -sig: tolerate a byte-order mark from spreadsheet exports
    flags: Optional[Flags] = None
    optional: FrozenSet[str] = frozenset()  # fields whose column may be absent (no values)


@dataclasses.dataclass(frozen=True)
class Layout:
    ratings: Table
    items: Table


def csv_layout(ratings_file: str = "ratings.csv", items_file: str = "items.csv",
               user_column: str = USER, item_column: str = ITEM, rating_column: str = RATING,
               items_item_column: str = "", title_column: str = TITLE,
               genres_column: str = "", genres_separator: str = "|",
               authors_column: str = "", authors_separator: str = ",") -> Layout:
    """The generic layout: two CSV files with headers. These arguments are prepare's options.

    items_item_column defaults to item_column; genres/authors are read only when their column
    is named.
    """
    item_fields = {ITEM: items_item_column or item_column, TITLE: title_column}
    lists = {}
    for field, column, separator in ((GENRES, genres_column, genres_separator),
                                     (AUTHORS, authors_column, authors_separator)):
        if column:
            if not separator:
                raise ValueError(f"the {field} separator must not be empty")
            item_fields[field] = column
            lists[field] = separator
    return Layout(
        ratings=Table(ratings_file, {USER: user_column, ITEM: item_column, RATING: rating_column}),
        items=Table(items_file, item_fields, lists=lists))


# GroupLens' original ML-100K distribution (u.data: tab-separated; u.item: `|`-separated latin-1).
GROUPLENS = Layout(
    ratings=Table("u.data", {USER: "user_id", ITEM: "item_id", RATING: "rating"},
                  names=("user_id", "item_id", "rating", "timestamp"), delimiter="\t",
                  quoting=csv.QUOTE_NONE),
    items=Table("u.item", {ITEM: "movie_id", TITLE: "movie_title"},
                names=("movie_id", "movie_title", "release_date", "video_release_date",
                       "imdb_url"),
                delimiter="|", quoting=csv.QUOTE_NONE, encoding="latin-1",
                flags=Flags(GENRES, "u.genre")))

# format name -> csv_layout() arguments, plus layouts tried when the CSV one is absent.
PRESETS: Dict[str, Dict[str, str]] = {
    "csv": {},
    "movielens": {"genres_column": "genres", "genres_separator": " "},
    "goodbooks": {"items_file": "books.csv", "item_column": "book_id", "authors_column": "authors",
                  "authors_separator": ","},
}
ALTERNATIVES: Dict[str, Tuple[Layout, ...]] = {"movielens": (GROUPLENS,)}
FORMATS = tuple(PRESETS)
LIST_OPTIONS = {GENRES: "genres_column", AUTHORS: "authors_column"}


def resolve_layout(format_name: str, input_dir: str, **options: Any) -> Layout:
    """The layout to read: the format's CSV preset with `options` on top.

    Without options, an alternative layout (GroupLens u.data) is used when the preset's ratings
    file is absent and the alternative's is present. Options describe a CSV layout, so with
    options only the CSV layout is considered.
    """
    if format_name not in PRESETS:
        raise ValueError(f"unknown format {format_name!r}; choose one of {', '.join(FORMATS)}")
    options = {name: value for name, value in options.items() if value is not None}
    settings = {**PRESETS[format_name], **options}
    try:
        layout = csv_layout(**settings)
    except TypeError as error:  # an unknown option name
        raise ValueError(f"format {format_name}: {error}") from None
    if not os.path.isdir(input_dir):
        raise DataError(input_dir, "input directory does not exist" if not os.path.exists(
            input_dir) else "input must be a directory holding the ratings and items files")
    if options or _exists(input_dir, layout.ratings):
        # A preset's content columns are optional (ML items.csv may lack genres); a column the
        # user named is required.
        optional = frozenset(field for field, option in LIST_OPTIONS.items()
                             if option not in options)
        return dataclasses.replace(layout, items=dataclasses.replace(layout.items,
                                                                     optional=optional))
    for alternative in ALTERNATIVES.get(format_name, ()):
        if _exists(input_dir, alternative.ratings):
            return alternative
    expected = " or ".join(f"{one.ratings.file} and {one.items.file}" for one in
                           (layout,) + ALTERNATIVES.get(format_name, ()))
    raise DataError(os.path.join(input_dir, layout.ratings.file),
                    f"file does not exist ({format_name} expects {expected})")


def _exists(input_dir: str, table: Table) -> bool:
    return os.path.isfile(os.path.join(input_dir, table.file))
