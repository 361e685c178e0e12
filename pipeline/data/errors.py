"""The one error type of data ingestion: a problem in an input file, located precisely.

Messages quote input values through shorten(), so a 100,000-character cell makes a one-line
message, not a 100,000-character one.
"""

from typing import Optional


class DataError(Exception):
    """A problem with input data: which file, which line (header = line 1) and which column.

    str(error) reads like `data/ratings.csv, line 17, column 'rating': 'abc' is not a number`,
    so the CLI can print it as is and the user can go straight to the cell.
    """

    def __init__(self, path: str, problem: str, row: Optional[int] = None,
                 column: Optional[str] = None):
        self.path = str(path)
        self.row = row
        self.column = column
        self.problem = problem
        where = [self.path]
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


def shorten(value: str, limit: int = 60) -> str:
    """repr(value), cut to about `limit` characters with the full length noted."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"
