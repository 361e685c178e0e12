"""Downloads goodbooks-10k (ratings.csv, books.csv) from the dataset's GitHub repository.

Each file is streamed to `<name>.part`, checked, then renamed, so a failed or corrupt download
never leaves a file that looks complete. books.csv has a known sha256. ratings.csv's is not
pinned here: pass one to verify it; otherwise its header and size are checked and the computed
hash is returned so it can be pinned next time.
"""

import hashlib
import os
from typing import Any, Callable, Dict, Optional, Tuple

from pipeline.data.errors import DataError
from pipeline.data.prepared import file_sha256

BASE_URL = "https://raw.githubusercontent.com/zygmuntz/goodbooks-10k/master/"
BOOKS_SHA256 = "4d21d0e0433128657c752e3a3d0405ac0ec11675d6c70c64cb0abf4ab1acb76a"
RATINGS_HEADER = "user_id,book_id,rating"
MIN_RATINGS = 5_000_000  # the dataset has about six million; far fewer means a truncated file
TIMEOUT_SECONDS = 60


def download_goodbooks(output_dir: str, ratings_sha256: Optional[str] = None,
                       min_ratings: int = MIN_RATINGS) -> Dict[str, Any]:
    """Downloads books.csv and ratings.csv into output_dir (ready for `prepare("goodbooks")`).

    Returns {"books_sha256", "ratings_sha256", "ratings"} (ratings: data rows in ratings.csv).
    A file already present with the expected hash is not downloaded again.
    """
    os.makedirs(output_dir, exist_ok=True)
    books, _ = _download("books.csv", output_dir, BOOKS_SHA256)
    ratings, rows = _download("ratings.csv", output_dir, ratings_sha256,
                              check=lambda path, url: _count_ratings(path, url, min_ratings))
    return {"output": os.path.abspath(output_dir), "books_sha256": books,
            "ratings_sha256": ratings, "ratings": rows}


def _download(name: str, output_dir: str, expected: Optional[str],
              check: Optional[Callable[[str, str], Any]] = None) -> Tuple[str, Any]:
    """(sha256, what check(file, url) returned) of output_dir/name, downloaded if needed."""
    path = os.path.join(output_dir, name)
    url = BASE_URL + name
    if expected and os.path.isfile(path) and file_sha256(path) == expected.lower():
        return expected.lower(), check(path, url) if check else None
    part = path + ".part"
    try:
        digest = _fetch(url, part)
        if expected and digest != expected.lower():
            raise DataError(url, f"sha256 mismatch: expected {expected.lower()}, got {digest} "
                                 f"(a corrupt download, or the file changed upstream)")
        checked = check(part, url) if check else None
        os.replace(part, path)
        return digest, checked
    finally:
        if os.path.exists(part):
            os.remove(part)


def _fetch(url: str, path: str) -> str:
    """Streams url into path; returns the sha256 of what was written."""
    import requests  # only the download needs it; keeps `import pipeline.data` light

    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT_SECONDS) as response:
            response.raise_for_status()
            with open(path, "wb") as handle:
                for block in response.iter_content(chunk_size=1 << 20):
                    handle.write(block)
                    digest.update(block)
    except requests.RequestException as error:
        raise DataError(url, f"download failed ({error}); check the network connection or "
                             f"download the file by hand") from None
    return digest.hexdigest()


def _count_ratings(path: str, name: str, minimum: int) -> int:
    """Data rows of a goodbooks ratings.csv, after checking its header and size."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().strip()
        if header != RATINGS_HEADER:
            raise DataError(name, f"header is {header!r}, expected {RATINGS_HEADER!r}", 1)
        rows = sum(1 for line in handle if line.strip())
    if rows < minimum:
        raise DataError(name, f"only {rows} ratings, expected at least {minimum} "
                              f"(a truncated download?)")
    return rows
