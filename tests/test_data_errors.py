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


# --- Issue 14, finding 5: limits and exact locations ---

def test_a_10000_digit_id_is_an_error_with_file_line_and_column(tmp_path):
    long_id = "9" * 10_000
    error = _error(tmp_path, ratings=f"user_id,item_id,rating\nu1,1,4\nu2,{long_id},3\n",
                   items=f"item_id,title\n1,Alpha\n{long_id},Beta\n")
    assert error.path.endswith("items.csv") and (error.row, error.column) == (3, "item_id")
    assert "longer than 256 characters" in str(error) and len(str(error)) < 400


def test_an_id_of_256_characters_is_accepted(tmp_path):
    data = _dataset(tmp_path / "in", ratings=f"user_id,item_id,rating\n{'u' * 256},{'7' * 256},4\n",
                    items=f"item_id,title\n{'7' * 256},Alpha\n")
    assert prepare("csv", data, tmp_path / "out")["counts"]["ratings"] == 1


def test_a_long_user_id_is_an_error(tmp_path):
    error = _error(tmp_path, ratings=f"user_id,item_id,rating\n{'u' * 257},1,4\n")
    assert (error.row, error.column) == (2, "user_id")


def test_a_field_over_the_csv_limit_names_its_line(tmp_path):
    error = _error(tmp_path, items=f"item_id,title\n1,Alpha\n2,{'x' * 200_000}\n")
    assert error.path.endswith("items.csv") and error.row == 3
    assert "longer than 131,072 characters" in str(error)


def test_a_nul_character_is_an_error(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating\nu1,1,4\nu\x002,2,3\n")
    assert (error.row, error.column) == (3, "user_id") and "NUL" in str(error)


def test_a_column_named_twice_is_an_error(tmp_path):
    error = _error(tmp_path, ratings="user_id,item_id,rating,rating\nu1,1,4,5\n")
    assert (error.row, error.column) == (1, "rating") and "2 times" in str(error)


def test_a_huge_bad_value_gives_a_short_message(tmp_path):
    error = _error(tmp_path, ratings=f"user_id,item_id,rating\nu1,1,{'x' * 100_000}\n")
    assert (error.row, error.column) == (2, "rating") and len(str(error)) < 400


ITEMS_WITH_MULTILINE_TITLES = ('item_id,title\n1,"One\nTwo\nThree"\n2,Beta\n'
                               '3,"A\r\nB"\n4,Delta\r5,"E\rF"\n6,Zeta\n')


@pytest.mark.parametrize("line", [1, 2, 5, 6, 8, 9, 11, 12])
def test_a_non_utf8_byte_is_reported_at_its_line(tmp_path, line):
    # Lines: 1 header; 2-4 a three-line title; 5 Beta; 6-7 "A\r\nB"; 8 Delta (ends in \r);
    # 9-10 "E\rF"; 11 Zeta; 12 an added last line.
    text = (ITEMS_WITH_MULTILINE_TITLES + "7,Eta\n").encode("utf-8")
    physical = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    offset = sum(len(part) + 1 for part in physical[:line - 1])
    offset += text[:offset].count(b"\r\n")  # \r\n is two bytes in the real file
    data = _dataset(tmp_path / "in")
    (data / "items.csv").write_bytes(text[:offset] + b"\xff" + text[offset:])
    with pytest.raises(DataError, match="is not UTF-8 text") as caught:
        prepare("csv", data, tmp_path / "out")
    assert caught.value.path.endswith("items.csv") and caught.value.row == line
    assert f"at byte {offset:,}" in str(caught.value)


def test_a_non_utf8_byte_far_into_a_big_file_is_reported_at_its_line(tmp_path):
    rows = "".join(f"u{row},1,4\n" for row in range(100_000))  # > 1 MiB: past the first block
    data = _dataset(tmp_path / "in")
    (data / "ratings.csv").write_bytes(
        f"user_id,item_id,rating\n{rows}".encode() + "u\u00e9,1,4\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8 text") as caught:
        prepare("csv", data, tmp_path / "out")
    assert caught.value.row == 100_002


def test_an_unreadable_file_is_an_error(tmp_path):
    data = _dataset(tmp_path / "in")
    os.chmod(data / "items.csv", 0)
    try:
        if os.access(data / "items.csv", os.R_OK):
            pytest.skip("running as a user who can read anything")
        with pytest.raises(DataError, match="cannot be read"):
            prepare("csv", data, tmp_path / "out")
    finally:
        os.chmod(data / "items.csv", 0o644)
