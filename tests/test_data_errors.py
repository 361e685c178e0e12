"""Each kind of bad input is one DataError that names the file, the line and the column."""

import os

import pytest

from pipeline.data import DataError, prepare

ITEMS = "item_id,title,genres\n1,Alpha,Drama\n2,Beta,Comedy\n"
RATINGS = "user_id,item_id,rating\nu1,1,4\nu2,2,3\n"


def _dataset(root, ratings=RATINGS, items=ITEMS):
    root.mkdir(exist_ok=True)
    if ratings is not None:
        (root / "ratings.csv").write_text(ratings, encoding="utf-8")
    if items is not None:
        (root / "items.csv").write_text(items, encoding="utf-8")
    return root


def _error(tmp_path, format="movielens", **files):
    data = _dataset(tmp_path / "in", **files)
    with pytest.raises(DataError) as caught:
        prepare(format, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    return caught.value


def test_message_reads_file_line_column_then_problem(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,4\nu2,2,abc\n")
    path = os.path.join(tmp_path / "in", "ratings.csv")
    assert (error.path, error.row, error.column) == (path, 3, "rating")
    assert str(error) == f"{path}, line 3, column 'rating': 'abc' is not a number"


def test_missing_ratings_file(tmp_path):
    error = _error(tmp_path, ratings=None)
    assert error.path.endswith("ratings.csv") and error.row is None
    assert "does not exist" in str(error) and "u.data" in str(error)  # names both layouts


def test_missing_items_file(tmp_path):
    error = _error(tmp_path, items=None)
    assert error.path.endswith("items.csv") and "does not exist" in str(error)


def test_missing_required_column_lists_the_header(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,stars\nu1,1,4\n")
    assert (error.row, error.column) == (1, "rating")
    assert "missing column" in str(error) and "user_id, item_id, stars" in str(error)


def test_missing_column_uses_the_formats_own_column_names(tmp_path):
    data = _dataset(tmp_path / "in", items=None)
    (data / "books.csv").write_text("book_id,title,authors\n1,Alpha,Ann\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        prepare("goodbooks", data, tmp_path / "out")
    assert caught.value.path.endswith("ratings.csv") and caught.value.column == "book_id"


def test_a_named_content_column_is_required(tmp_path):
    data = _dataset(tmp_path / "in", items="item_id,title\n1,Alpha\n2,Beta\n")
    with pytest.raises(DataError) as caught:
        prepare("csv", data, tmp_path / "out", genres_column="tags")
    assert (caught.value.row, caught.value.column) == (1, "tags")


def test_empty_file_without_header(tmp_path):
    error = _error(tmp_path, items="")
    assert error.path.endswith("items.csv") and "empty" in str(error)


def test_header_without_data_rows(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\n\n")
    assert error.path.endswith("ratings.csv") and "no data rows" in str(error)


def test_empty_rating(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,\n")
    assert (error.row, error.column) == (2, "rating") and "empty" in str(error)


def test_non_finite_rating(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,nan\n")
    assert (error.row, error.column) == (2, "rating") and "'nan'" in str(error)


def test_empty_user_id(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,4\n ,2,3\n")
    assert (error.row, error.column) == (3, "user_id") and "empty" in str(error)


def test_empty_item_id_in_items_file(tmp_path):
    error = _error(tmp_path, items="item_id,title\n1,Alpha\n,Beta\n")
    assert error.path.endswith("items.csv")
    assert (error.row, error.column) == (3, "item_id")


def test_rating_of_an_unknown_item(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,4\nu1,99,4\n")
    assert error.path.endswith("ratings.csv") and (error.row, error.column) == (3, "item_id")
    assert "'99' is not in items.csv" in str(error)


def test_duplicate_item_id_names_both_lines(tmp_path):
    error = _error(tmp_path, items="item_id,title\n1,Alpha\n2,Beta\n1,Gamma\n")
    assert error.path.endswith("items.csv") and (error.row, error.column) == (4, "item_id")
    assert "duplicate item id '1' (first on line 2)" in str(error)


def test_row_with_the_wrong_number_of_fields(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,4\nu2,2\n")
    assert (error.row, error.column) == (3, None) and "2 fields, expected 3" in str(error)


def test_line_numbers_count_physical_lines_of_multiline_titles(tmp_path):
    error = _error(tmp_path, items='item_id,title\n1,"Two\nlines"\n1,Again\n')
    assert error.row == 4  # the record starts on line 4; line 2-3 is one record


def test_id_with_a_line_break(tmp_path):
    error = _error(tmp_path, ratings='user_id,item_id,rating\n"u\n1",1,4\n')
    assert (error.row, error.column) == (2, "user_id") and "line break" in str(error)


def test_file_in_the_wrong_encoding(tmp_path):
    data = _dataset(tmp_path / "in")
    (data / "items.csv").write_bytes("item_id,title\n1,Amélie\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8 text") as caught:
        prepare("movielens", data, tmp_path / "out")
    assert caught.value.path.endswith("items.csv")


def test_input_that_is_not_a_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare("csv", tmp_path / "nowhere", tmp_path / "out")
