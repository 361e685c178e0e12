"""The one error type of data ingestion: a problem in an input file, located precisely."""

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
