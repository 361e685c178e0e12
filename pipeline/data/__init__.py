"""Data ingestion: input datasets -> the prepared layout the TFX pipeline reads.

TensorFlow-free on purpose: preparing millions of ratings is stdlib csv streaming plus numpy.
The layout is described in pipeline/data/prepared.py; the CLI is pipeline/data/cli.py.
"""

from pipeline.data.download import download_goodbooks
from pipeline.data.errors import DataError
from pipeline.data.formats import FORMATS
from pipeline.data.ingest import prepare
from pipeline.data.prepared import read_item_genres
from pipeline.data.synthetic import generate_synthetic

__all__ = ["DataError", "FORMATS", "prepare", "generate_synthetic", "download_goodbooks",
           "read_item_genres"]
