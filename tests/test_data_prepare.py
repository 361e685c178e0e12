"""prepare(): each input format round-trips to the exact prepared rows the pipeline reads."""

import csv
import json
import os
from pathlib import Path

import pytest

from pipeline.data import DataError, prepare
from pipeline.data.prepared import Item, file_sha256, write_prepared

ML_100K = Path(__file__).resolve().parents[1].parent / "shared/data/ml-100k"


def _files(root, encoding="utf-8", **files):
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name.replace("_", ".")).write_bytes(text.encode(encoding))
    return root


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _interactions(out):
    return _rows(out / "interactions" / "interactions.csv")


def _manifest(out):
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


MOVIELENS = dict(
    ratings_csv="user_id,item_id,rating,timestamp\n"
                "u1,10,4,100\nu2,2,3.5,101\nu1,2,5.0,102\nu3,10,1,103\nu1,10,2,104\n",
    items_csv='item_id,title,year,genres\n2,"Usual Suspects, The",1995,Crime Thriller\n'
              '10,"Say ""Hi""",1990,\n7,Unrated,2000,Drama\n')


def test_movielens_csv_layout(tmp_path):
    out = tmp_path / "out"
    summary = prepare("movielens", _files(tmp_path / "in", **MOVIELENS), out)
    # u1's first rating of item 10 is replaced by their later one; item 7 has no ratings.
    assert _interactions(out) == [
        ["user_id", "item_id", "rating", "title", "genres"],
        ["u2", "2", "3.5", "Usual Suspects, The", "Crime|Thriller"],
        ["u1", "2", "5", "Usual Suspects, The", "Crime|Thriller"],
        ["u3", "10", "1", 'Say "Hi"', ""],
        ["u1", "10", "2", 'Say "Hi"', ""]]
    # Equal counts: numeric ids in numeric order ("2" before "10"); item 7, which nobody
    # rated, is kept last (the model places it by its content).
    assert _rows(out / "items.csv") == [
        ["item_id", "title", "genres", "num_ratings"],
        ["2", "Usual Suspects, The", "Crime|Thriller", "2"],
        ["10", 'Say "Hi"', "", "2"],
        ["7", "Unrated", "Drama", "0"]]
    manifest = _manifest(out)
    assert manifest["counts"] == {"users": 3, "items": 2, "ratings": 4, "unrated_items": 1,
                                  "duplicate_ratings_dropped": 1,
                                  "items_dropped_by_top_items": 0,
                                  "ratings_dropped_by_top_items": 0,
                                  "unrated_items_dropped": 0}
    assert manifest["format"] == "movielens" and manifest["top_items"] == 0
    assert manifest["interactions_sha256"] == file_sha256(
        out / "interactions" / "interactions.csv")
    assert summary["output"] == str(out) and summary["counts"] == manifest["counts"]
    assert os.listdir(out / "interactions") == ["interactions.csv"]  # CsvExampleGen reads all


def test_grouplens_original_layout(tmp_path):
    data = _files(
        tmp_path / "in", encoding="latin-1",
        u_data="196\t1\t3\t881250949\n186\t2\t5\t891717742\n196\t3\t1\t878887116\n",
        u_item="1|Toy Story (1995)|01-Jan-1995||http://x/1|0|0|1|0\n"
               "2|Amélie (2001)|01-Jan-2001||http://x/2|0|0|1|1\n"
               '3|"Dr. Strangelove" (1964)|01-Jan-1964||http://x/3|1|0|0|0\n',
        u_genre="unknown|0\nAction|1\nComedy|2\nDrama|3\n\n")
    out = tmp_path / "out"
    prepare("movielens", data, out)
    assert _interactions(out) == [
        ["user_id", "item_id", "rating", "title", "genres"],
        ["196", "1", "3", "Toy Story (1995)", "Comedy"],
        ["186", "2", "5", "Amélie (2001)", "Comedy|Drama"],
        ["196", "3", "1", '"Dr. Strangelove" (1964)', "unknown"]]
    assert _manifest(out)["ratings_file"].endswith("u.data")


def test_grouplens_genre_flags_must_be_zero_or_one(tmp_path):
    data = _files(tmp_path / "in", u_data="1\t1\t3\t0\n", u_genre="Action|0\nDrama|1\n",
                  u_item="1|Heat (1995)|x||y|1|2\n")
    with pytest.raises(DataError) as caught:
        prepare("movielens", data, tmp_path / "out")
    assert caught.value.path.endswith("u.item")
    assert (caught.value.row, caught.value.column) == (1, "Drama")


def test_goodbooks_maps_book_ids_and_splits_authors(tmp_path):
    data = _files(
        tmp_path / "in",
        ratings_csv="user_id,book_id,rating\n1,2,5\n1,1,3\n2,2,4\n",
        books_csv="book_id,goodreads_book_id,authors,original_title,title\n"
                  '1,2767052,Suzanne Collins,The Hunger Games,"The Hunger Games (#1)"\n'
                  '2,3,"J.K. Rowling, Mary GrandPré",HP,"Harry Potter\nand the Stone"\n'
                  '3,4,"A|B, C",X,Unread\n')
    out = tmp_path / "out"
    prepare("goodbooks", data, out)
    assert _interactions(out) == [
        ["user_id", "item_id", "rating", "title", "authors"],
        ["1", "2", "5", "Harry Potter and the Stone", "J.K. Rowling|Mary GrandPré"],
        ["1", "1", "3", "The Hunger Games (#1)", "Suzanne Collins"],
        ["2", "2", "4", "Harry Potter and the Stone", "J.K. Rowling|Mary GrandPré"]]


def test_list_separator_inside_a_value_becomes_a_slash(tmp_path):
    data = _files(tmp_path / "in", ratings_csv="user_id,book_id,rating\n1,3,4\n",
                  books_csv='book_id,title,authors\n3,Odd,"A|B, C"\n')
    prepare("goodbooks", data, tmp_path / "out")
    assert _interactions(tmp_path / "out")[1] == ["1", "3", "4", "Odd", "A/B|C"]


def test_generic_csv_with_a_column_mapping(tmp_path):
    data = _files(
        tmp_path / "in",
        r_csv="who,what,score\nann,x1,4.0\nbob,x2,0\nann,x2,-1\n",
        catalog_csv="id,name,tags,writers\nx1,First,a; b;,Kim & Lee\nx2,Second,,\n")
    out = tmp_path / "out"
    prepare("csv", data, out, ratings_file="r.csv", items_file="catalog.csv",
            user_column="who", item_column="what", rating_column="score",
            items_item_column="id", title_column="name", genres_column="tags",
            genres_separator=";", authors_column="writers", authors_separator="&")
    # Zero and negative ratings are kept: they are explicit feedback.
    assert _interactions(out) == [
        ["user_id", "item_id", "rating", "title", "genres", "authors"],
        ["ann", "x1", "4", "First", "a|b", "Kim|Lee"],
        ["bob", "x2", "0", "Second", "", ""],
        ["ann", "x2", "-1", "Second", "", ""]]
    assert _rows(out / "items.csv")[0] == ["item_id", "title", "genres", "authors",
                                           "num_ratings"]


def test_list_columns_appear_only_when_some_item_has_values(tmp_path):
    data = _files(tmp_path / "in", ratings_csv="user_id,item_id,rating\n1,1,4\n",
                  items_csv="item_id,title,genres\n1,Alpha,\n")
    prepare("movielens", data, tmp_path / "out")
    assert _interactions(tmp_path / "out")[0] == ["user_id", "item_id", "rating", "title"]


def test_movielens_items_without_a_genres_column(tmp_path):
    data = _files(tmp_path / "in", ratings_csv="user_id,item_id,rating\n1,1,4\n",
                  items_csv="item_id,title\n1,Alpha\n")
    prepare("movielens", data, tmp_path / "out")
    assert _interactions(tmp_path / "out") == [["user_id", "item_id", "rating", "title"],
                                               ["1", "1", "4", "Alpha"]]


TOP_ITEMS = dict(
    # Item 10 is rated 3 times, but u1 twice: 2 distinct ratings, tied with item 9.
    ratings_csv="user_id,item_id,rating\nu1,10,1\nu1,10,2\nu2,10,3\nu1,9,4\nu2,9,5\n"
                "u1,5,1\nu2,5,2\nu3,5,3\nu4,7,4\n",
    items_csv="item_id,title\n5,Five\n7,Seven\n9,Nine\n10,Ten\n")


def test_top_items_keeps_the_most_rated_with_ties_broken_by_id(tmp_path):
    data = _files(tmp_path / "in", **TOP_ITEMS)
    out = tmp_path / "out"
    summary = prepare("csv", data, out, top_items=2)
    assert _rows(out / "items.csv")[1:] == [["5", "Five", "3"], ["9", "Nine", "2"]]
    assert [row[:3] for row in _interactions(out)[1:]] == [
        ["u1", "9", "4"], ["u2", "9", "5"], ["u1", "5", "1"], ["u2", "5", "2"],
        ["u3", "5", "3"]]
    assert summary["counts"]["items_dropped_by_top_items"] == 2
    assert summary["counts"]["ratings_dropped_by_top_items"] == 3
    assert summary["counts"]["users"] == 3  # u4 rated only a dropped item


def test_top_items_leaves_out_the_items_nobody_rated(tmp_path):
    # Without --top-items item 7 stays in the catalogue (test_movielens_csv_layout); with it,
    # the cut to the most-rated items leaves it out and says so.
    summary = prepare("movielens", _files(tmp_path / "in", **MOVIELENS), tmp_path / "out",
                      top_items=5)
    assert [row[0] for row in _rows(tmp_path / "out" / "items.csv")[1:]] == ["2", "10"]
    assert summary["counts"]["unrated_items"] == 0
    assert summary["counts"]["unrated_items_dropped"] == 1


def test_top_items_beyond_the_catalog_keeps_everything(tmp_path):
    data = _files(tmp_path / "in", **TOP_ITEMS)
    summary = prepare("csv", data, tmp_path / "out", top_items=100)
    assert summary["counts"]["items"] == 4 and summary["counts"]["ratings"] == 8


def test_failed_prepare_writes_nothing(tmp_path):
    data = _files(tmp_path / "in", ratings_csv="user_id,item_id,rating\n1,1,x\n",
                  items_csv="item_id,title\n1,A\n")
    with pytest.raises(DataError):
        prepare("csv", data, tmp_path / "parent" / "out")
    assert not (tmp_path / "parent").exists()


def test_failed_prepare_leaves_an_existing_output_untouched(tmp_path):
    out = tmp_path / "out"
    prepare("movielens", _files(tmp_path / "good", **MOVIELENS), out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    bad = _files(tmp_path / "bad", ratings_csv="user_id,item_id,rating\n1,2,4\n1,404,4\n",
                 items_csv="item_id,title\n2,Two\n")
    with pytest.raises(DataError):
        prepare("csv", bad, out)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["bad", "good", "out"]  # no temporary directories


def test_failure_while_writing_removes_the_partial_output(tmp_path):
    out = tmp_path / "out"
    prepare("movielens", _files(tmp_path / "good", **MOVIELENS), out)
    before = _interactions(out)

    def rows():
        yield "u9", "2", "1"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_prepared(out, {"2": Item("Two", genres=("Drama",))}, rows(), {"format": "test"})
    assert _interactions(out) == before
    assert sorted(os.listdir(tmp_path)) == ["good", "out"]


def test_prepare_replaces_a_previous_output(tmp_path):
    out = tmp_path / "out"
    prepare("movielens", _files(tmp_path / "a", **MOVIELENS), out)
    prepare("csv", _files(tmp_path / "b", **TOP_ITEMS), out, top_items=1)
    assert _rows(out / "items.csv")[1:] == [["5", "Five", "3"]]
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "out"]


def test_refuses_to_replace_a_directory_that_is_not_prepared_data(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to replace"):
        prepare("movielens", _files(tmp_path / "in", **MOVIELENS), tmp_path / "home")
    assert (tmp_path / "home" / "notes.txt").read_text() == "precious"


def test_unknown_option_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="ratings_column"):
        prepare("csv", _files(tmp_path / "in", **MOVIELENS), tmp_path / "out",
                ratings_column="stars")


@pytest.mark.skipif(not ML_100K.is_dir(), reason=f"{ML_100K} is absent")
def test_real_movielens_100k(tmp_path):
    summary = prepare("movielens", ML_100K, tmp_path / "out")
    counts = summary["counts"]
    assert (counts["users"], counts["items"], counts["ratings"]) == (943, 1682, 100000)
    assert summary["columns"] == ["user_id", "item_id", "rating", "title", "genres"]
    rows = _interactions(tmp_path / "out")
    assert len(rows) == 100001 and all(len(row) == 5 for row in rows)
    assert rows[1] == ["196", "242", "3", "Kolya", "Comedy"]
