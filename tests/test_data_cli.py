"""`data prepare|synthetic|download` through argparse, as the towergraph CLI wires them."""

import argparse
import json

import pytest

from pipeline.data import DataError
from pipeline.data import download
from pipeline.data.cli import add_data_commands


def _run(*argv):
    parser = argparse.ArgumentParser(prog="towergraph")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *argv])
    return args.func(args)


@pytest.fixture
def dataset(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "ratings.csv").write_text("user_id,item_id,rating\n1,1,4\n2,1,5\n2,2,3\n")
    (data / "items.csv").write_text("item_id,title,genres\n1,One,Drama\n2,Two,Comedy Drama\n")
    return data


def test_prepare_prints_a_summary_and_returns_0(tmp_path, dataset, capsys):
    out = tmp_path / "out"
    assert _run("prepare", "--format", "movielens", "--input", str(dataset),
                "--output", str(out), "--top-items", "1") == 0
    printed = capsys.readouterr().out
    assert "2 ratings by 2 users of 1 items" in printed and str(out) in printed
    assert json.loads((out / "manifest.json").read_text())["top_items"] == 1


def test_prepare_bad_input_prints_error_and_returns_2(tmp_path, dataset, capsys):
    (dataset / "ratings.csv").write_text("user_id,item_id,rating\n1,1,four\n")
    assert _run("prepare", "--format", "movielens", "--input", str(dataset),
                "--output", str(tmp_path / "out")) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.out == ""
    assert "ratings.csv, line 2, column 'rating': 'four' is not a number" in captured.err
    assert not (tmp_path / "out").exists()


def test_prepare_passes_the_column_mapping(tmp_path, dataset, capsys):
    (dataset / "scores.csv").write_text("who,item_id,stars\na,1,2\n")
    assert _run("prepare", "--format", "csv", "--input", str(dataset), "--output",
                str(tmp_path / "out"), "--ratings-file", "scores.csv", "--user-column", "who",
                "--rating-column", "stars", "--genres-column", "genres",
                "--genres-separator", " ") == 0
    lines = (tmp_path / "out" / "interactions" / "interactions.csv").read_text().splitlines()
    assert lines == ["user_id,item_id,rating,title,genres", "a,1,2,One,Drama"]


def test_synthetic_returns_0(tmp_path, capsys):
    assert _run("synthetic", "--output", str(tmp_path / "syn"), "--users", "20", "--items",
                "30", "--genres", "3", "--ratings-per-user", "5", "--seed", "3") == 0
    assert "100 ratings by 20 users" in capsys.readouterr().out
    assert (tmp_path / "syn" / "items.csv").exists()


def test_synthetic_impossible_sizes_print_error(tmp_path, capsys):
    assert _run("synthetic", "--output", str(tmp_path / "syn"), "--items", "2",
                "--genres", "3") == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_download_failure_prints_error(tmp_path, monkeypatch, capsys):
    def fail(url, path):
        raise DataError(url, "download failed (offline)")

    monkeypatch.setattr(download, "_fetch", fail)
    assert _run("download", "--output", str(tmp_path / "gb")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "books.csv: download failed (offline)" in err


def test_prepare_help_documents_the_limits_and_the_output_rule(capsys):
    with pytest.raises(SystemExit):
        _run("prepare", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for limit in ("131,072 characters", "an id at most 256 characters", "no NUL",
                  "replaced only if it is empty or holds exactly what an earlier"):
        assert limit in text
