"""Standing robustness suite: generated malformed CSV thrown at `prepare` (issue 14).

Each example starts from a valid dataset and applies a few damages (bad quoting, a missing or
duplicated column, wrong types, huge fields and ids, NUL bytes, byte-order marks, mixed line
endings, undecodable bytes, blank or missing lines, random text). Whatever comes out,
`prepare` must either succeed with a valid prepared layout, or raise DataError naming an input
file and (unless the whole file is the problem) a line within it; never another exception,
never a temporary folder left behind, and the previous good output byte for byte intact.
Good data must still prepare afterwards. Bounded: small files, max_examples per test.
"""

import csv
import io
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.data import DataError, prepare
from pipeline.data.prepared import INTERACTIONS, ITEMS, not_prepared_because
from pipeline.data.readers import FIELD_LIMIT, ID_LIMIT

GOOD_RATINGS = "user_id,item_id,rating\nu1,1,4\nu2,2,3\nu1,2,5\n"
GOOD_ITEMS = "item_id,title,genres\n1,Alpha,Drama\n2,\"Beta, The\",Comedy Drama\n"
WHOLE_FILE_PROBLEMS = ("file is empty", "has no data rows")

CELLS = st.one_of(
    st.sampled_from(["1", "2", "3", "4.5", "", " ", "nan", "inf", "-1", "1e400", "0x10", "abc",
                     '"', '""', 'a"b', "a,b", "x\ny", "\r", "\x00", "\ufeff", "Amélie", "2 ",
                     "9" * 5000, "u" * (ID_LIMIT + 1), "x" * (FIELD_LIMIT + 1)]),
    st.text(max_size=12))
RATING_ROWS = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "007"]),
                                 st.sampled_from(["1", "2", "3"]),
                                 st.sampled_from(["1", "2.5", "5", "4.0"])),
                       min_size=1, max_size=8)


@st.composite
def damaged_csv(draw, header, rows):
    """A CSV file's bytes: rows under header, then a few random damages."""
    table = [list(header)] + [list(row) for row in draw(rows)]
    # sampled_from rather than integers: hypothesis favours small integers, and undamaged
    # files must be common enough that the success branch is exercised too.
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        if not table:
            break
        row = draw(st.integers(0, len(table) - 1))
        kind = draw(st.sampled_from(["cell", "drop", "extra", "duplicate", "blank", "delete"]))
        if kind == "cell" and table[row]:
            table[row][draw(st.integers(0, len(table[row]) - 1))] = draw(CELLS)
        elif kind == "drop" and table[row]:
            del table[row][draw(st.integers(0, len(table[row]) - 1))]
        elif kind == "extra":
            table[row].append(draw(CELLS))
        elif kind == "duplicate" and table[row]:
            table[row].append(table[row][0])
        elif kind == "blank":
            table.insert(row, [])
        elif kind == "delete":
            del table[row]
    buffer = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_MINIMAL,
                                    csv.QUOTE_NONE]))
    writer = csv.writer(buffer, quoting=quoting, escapechar="\\", lineterminator="\n")
    endings = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=3))
    lines = []
    for number, row in enumerate(table):
        try:
            writer.writerow(row)
        except csv.Error:  # QUOTE_NONE with no way to escape: write the cells raw
            buffer.write(",".join(row) + "\n")
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        lines.append(text[:-1] + endings[number % len(endings)])
    data = "".join(lines).encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data  # a byte-order mark
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        position = draw(st.integers(0, len(data)))
        insert = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b'"', b"\xef\xbb\xbf",
                                       b"\r", b",", b"\n\n"]))
        data = data[:position] + insert + data[position:]
    if draw(st.sampled_from([False] * 15 + [True])):
        data = data[:draw(st.integers(0, len(data)))]  # truncated, possibly to nothing
    return data


def _snapshot(folder):
    return {os.path.relpath(os.path.join(root, name), folder):
            open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(folder) for name in names}


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)


def _check_valid_layout(out, summary):
    assert not_prepared_because(out) is None
    with open(os.path.join(out, INTERACTIONS), "rb") as handle:
        raw = handle.read()
    lines = raw.decode("utf-8").split("\n")
    assert lines[-1] == "" and "\r" not in raw.decode("utf-8")  # CsvExampleGen reads lines
    rows = [next(csv.reader([line])) for line in lines[:-1]]
    assert rows[0] == summary["columns"]
    assert all(len(row) == len(rows[0]) and row[0] and row[1] for row in rows[1:])
    assert len(rows) - 1 == summary["counts"]["ratings"]
    with open(os.path.join(out, ITEMS), newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    assert sum(int(item["num_ratings"]) for item in items) == summary["counts"]["ratings"]
    # items.csv: the rated items, then those nobody rated (kept for the model to place by
    # their content), each once.
    rated = [item["item_id"] for item in items if int(item["num_ratings"]) > 0]
    assert {row[1] for row in rows[1:]} == set(rated)
    assert items[:len(rated)] == [item for item in items if int(item["num_ratings"]) > 0]
    assert len(items) - len(rated) == summary["counts"]["unrated_items"]
    assert len({item["item_id"] for item in items}) == len(items)


def _check(format, files, options):
    with tempfile.TemporaryDirectory() as root:
        good, bad, out = (os.path.join(root, name) for name in ("good", "bad", "out"))
        _write(good, {"ratings.csv": GOOD_RATINGS.encode(), "items.csv": GOOD_ITEMS.encode()})
        prepare("movielens", good, out)
        before = _snapshot(out)
        _write(bad, files)
        try:
            summary = prepare(format, bad, out, **options)
        except DataError as error:
            assert error.path in {os.path.join(bad, name) for name in files}, error
            if not any(problem in error.problem for problem in WHOLE_FILE_PROBLEMS):
                lines = files[os.path.basename(error.path)].count(b"\n") + \
                    files[os.path.basename(error.path)].count(b"\r") + 1
                assert error.row is not None and 1 <= error.row <= lines, error
            assert len(str(error)) < 1000 + len(error.path)
            assert _snapshot(out) == before
        else:
            _check_valid_layout(out, summary)
        assert sorted(os.listdir(root)) == ["bad", "good", "out"]  # no temporary folders
        prepare("movielens", good, out)  # good data still prepares afterwards
        _check_valid_layout(out, {"columns": ["user_id", "item_id", "rating", "title",
                                              "genres"],
                                  "counts": {"ratings": 3, "unrated_items": 0}})


SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(ratings=damaged_csv(("user_id", "item_id", "rating"), RATING_ROWS),
       items=damaged_csv(("item_id", "title", "genres"),
                         st.just([("1", "Alpha", "Drama"), ("2", "Beta, The", "Comedy Drama"),
                                  ("3", "Gamma", "")])),
       top_items=st.sampled_from([0, 1]))
def test_damaged_csv_prepares_or_raises_a_located_data_error(ratings, items, top_items):
    _check("movielens", {"ratings.csv": ratings, "items.csv": items},
           {"top_items": top_items})


@SETTINGS
@given(ratings=damaged_csv(("who", "what", "stars"), RATING_ROWS),
       items=damaged_csv(("what", "name", "by"),
                         st.tuples(*(st.tuples(st.just(item), CELLS, CELLS)
                                     for item in ("1", "2", "3")))))
def test_damaged_csv_with_a_column_mapping(ratings, items):
    _check("csv", {"scores.csv": ratings, "things.csv": items},
           {"ratings_file": "scores.csv", "items_file": "things.csv", "user_column": "who",
            "item_column": "what", "rating_column": "stars", "title_column": "name",
            "authors_column": "by", "authors_separator": ";"})
