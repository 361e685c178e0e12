"""download_goodbooks without the network: _fetch (or requests) is replaced."""

import hashlib

import pytest
import requests

from pipeline.data import DataError, download_goodbooks
from pipeline.data import download

BOOKS = b"book_id,title,authors\n1,A,B\n"
RATINGS = b"user_id,book_id,rating\n1,1,5\n2,1,4\n3,1,3\n"


def _sha(content):
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def served(monkeypatch):
    """Serves BOOKS and RATINGS (books.csv's pinned hash made theirs); records fetched names."""
    contents = {"books.csv": BOOKS, "ratings.csv": RATINGS}
    fetched = []

    def fetch(url, path):
        name = url.rsplit("/", 1)[-1]
        fetched.append(name)
        with open(path, "wb") as handle:
            handle.write(contents[name])
        return _sha(contents[name])

    monkeypatch.setattr(download, "_fetch", fetch)
    monkeypatch.setattr(download, "BOOKS_SHA256", _sha(BOOKS))
    return contents, fetched


def test_downloads_verifies_and_reports_the_ratings_hash(tmp_path, served):
    result = download_goodbooks(tmp_path, min_ratings=3)
    assert (tmp_path / "books.csv").read_bytes() == BOOKS
    assert (tmp_path / "ratings.csv").read_bytes() == RATINGS
    assert result["ratings_sha256"] == _sha(RATINGS) and result["ratings"] == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["books.csv", "ratings.csv"]


def test_files_with_known_hashes_are_not_fetched_again(tmp_path, served):
    _, fetched = served
    download_goodbooks(tmp_path, min_ratings=3)
    download_goodbooks(tmp_path, ratings_sha256=_sha(RATINGS), min_ratings=3)
    assert fetched == ["books.csv", "ratings.csv"]


def test_checksum_mismatch_keeps_no_file(tmp_path, served):
    contents, _ = served
    contents["books.csv"] = b"tampered"
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_goodbooks(tmp_path, min_ratings=3)
    assert list(tmp_path.iterdir()) == []


def test_ratings_hash_given_by_the_user_is_checked(tmp_path, served):
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_goodbooks(tmp_path, ratings_sha256="0" * 64, min_ratings=3)
    assert not (tmp_path / "ratings.csv").exists()


def test_truncated_or_foreign_ratings_file_is_refused(tmp_path, served):
    with pytest.raises(DataError, match="only 3 ratings"):
        download_goodbooks(tmp_path)  # the real minimum: millions
    contents, _ = served
    contents["ratings.csv"] = b"<html>rate limited</html>\n"
    with pytest.raises(DataError, match="header"):
        download_goodbooks(tmp_path, min_ratings=0)
    assert not (tmp_path / "ratings.csv").exists()


def test_network_failure_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("no route to host")

    monkeypatch.setattr(requests, "get", offline)
    with pytest.raises(DataError, match="download failed.*no route to host"):
        download_goodbooks(tmp_path)
    assert list(tmp_path.iterdir()) == []
