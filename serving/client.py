"""TowerGraphClient: the model's serving signatures as plain Python, over REST or gRPC.

The same client serves the UI, the notebook, the CLI and the graph builder:

    with TowerGraphClient.connect("http://localhost:8501") as client:
        client.search("hobbit")
        client.similar_items(["50"], k=10)
"""

import dataclasses
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from serving.errors import (Code, ModelNotFound, RequestRejected, ServerFailed,  # noqa: F401
                            ServerUnavailable, ServingError)
from serving.transport import Transport, open_transport
from serving.errors import echo
from towergraph.constants import (DEFAULT_MODEL_NAME, MAX_SEARCH_QUERY_CHARS, SIGNATURE_EMBEDDINGS,
                                  SIGNATURE_ITEM_INFO, SIGNATURE_RECOMMEND, SIGNATURE_SEARCH,
                                  SIGNATURE_SIMILAR_ITEMS)

# Rows per request: larger inputs are split, so a caller never trips the server's batch cap.
DEFAULT_BATCH_SIZE = 100


class UnknownItems(ServingError):
    """Item ids the model does not know (its `found` output said so)."""

    default_code = Code.NOT_FOUND

    def __init__(self, item_ids: Sequence[str]):
        self.item_ids = list(item_ids)
        super().__init__(f"unknown item id(s): {', '.join(map(repr, self.item_ids[:10]))}"
                         + (" ..." if len(self.item_ids) > 10 else ""))


@dataclasses.dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    genres: str = ""      # `|`-joined, '' when the data has none
    authors: str = ""
    score: float = 0.0    # cosine similarity, or the search / recommendation score
    cold: bool = False    # a cold item: embedded from its content alone (models before it: False)


@dataclasses.dataclass(frozen=True)
class Recommendations:
    strategy: str                       # user, session, user+session or popular
    user_found: bool
    unknown_session_items: List[str]
    items: List[Item]


def _items(outputs: Dict[str, np.ndarray], row: int) -> List[Item]:
    # Scores are float32 in the model; JSON hands them over as float64 text. Rounding both
    # to float32 makes REST and gRPC answers identical.
    scores = np.asarray(outputs["scores"][row], np.float32)
    cold = _cold(outputs, np.shape(outputs["item_ids"]))[row]
    return [Item(str(item_id), str(outputs["titles"][row][col]),
                 str(outputs["genres"][row][col]), str(outputs["authors"][row][col]),
                 float(scores[col]), bool(cold[col]))
            for col, item_id in enumerate(outputs["item_ids"][row]) if item_id]


def _cold(outputs: Dict[str, np.ndarray], shape) -> np.ndarray:
    """The `cold` output, or all False from a model exported before cold items."""
    return np.asarray(outputs["cold"], bool) if "cold" in outputs else np.zeros(shape, bool)


class TowerGraphClient:
    def __init__(self, transport: Transport, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.transport = transport
        self.batch_size = batch_size

    @classmethod
    def connect(cls, server: str, model_name: str = DEFAULT_MODEL_NAME,
                protocol: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE,
                **transport_options) -> "TowerGraphClient":
        """server: `http://host:8501` or `https://...` for REST, `grpc://host:8500` for gRPC
        (any other scheme: AddressError, a ValueError).

        transport_options:
          timeout  the deadline of one client call in seconds, retries and batches included
                   (default 10); past it the call raises ServerUnavailable
          retries  extra attempts after a failed connection or 503 / UNAVAILABLE (default 3);
                   a request the server accepted is never sent twice
          backoff  seconds before the first retry, doubled at each one (default 0.2)
        """
        return cls(open_transport(server, model_name, protocol, **transport_options),
                   batch_size)

    def __enter__(self) -> "TowerGraphClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- what it talks to -----------------------------------------------------------------

    @property
    def protocol(self) -> str:
        """"REST", "gRPC" or "SavedModel" (towergraph.constants.PROTOCOL_*), for display."""
        return self.transport.protocol

    @property
    def address(self) -> str:
        """The server it talks to, normalised: http(s)://host:port, grpc://host:port, or the
        SavedModel directory."""
        return self.transport.address

    @property
    def model_name(self) -> str:
        return self.transport.model_name

    # -- model status ---------------------------------------------------------------------

    def version(self) -> int:
        """The version being served (the newest AVAILABLE one)."""
        available = [version for version, state in self.transport.versions()
                     if state == "AVAILABLE"]
        if not available:
            raise ModelNotFound(f"model {self.transport.model_name!r} has no available "
                                f"version yet")
        return available[0]

    def status(self) -> Dict[int, str]:
        return dict(self.transport.versions())

    # -- signatures -------------------------------------------------------------------------

    def _predict(self, signature: str, rows: int, inputs: Dict[str, np.ndarray]):
        """Runs a signature in chunks of batch_size rows, all within one deadline (the
        transport's timeout); outputs concatenated by row."""
        deadline = time.monotonic() + self.transport.timeout
        parts = [self.transport.predict(signature, {name: value[start:start + self.batch_size]
                                                    for name, value in inputs.items()}, deadline)
                 for start in range(0, rows, self.batch_size)]
        return {name: _concat([part[name] for part in parts]) for name in parts[0]}

    def _known(self, item_ids: Sequence[str], found: np.ndarray) -> None:
        unknown = [item_id for item_id, ok in zip(item_ids, found) if not ok]
        if unknown:
            raise UnknownItems(unknown)

    def item_embeddings(self, item_ids: Sequence[str]) -> np.ndarray:
        ids = _ids(item_ids)
        if not ids.size:
            return np.zeros((0, 0), np.float32)
        outputs = self._predict(SIGNATURE_EMBEDDINGS, len(ids), {"item_ids": ids})
        self._known(ids, outputs["found"])
        return np.asarray(outputs["embeddings"], dtype=np.float32).reshape(len(ids), -1)

    def similar_items(self, item_ids: Sequence[str], k: int = 10) -> List[List[Item]]:
        """The k nearest items (cosine) of each item, itself excluded, best first."""
        ids = _ids(item_ids)
        if not ids.size:
            return []
        outputs = self._predict(SIGNATURE_SIMILAR_ITEMS, len(ids),
                                {"item_ids": ids, "k": np.full(len(ids), k, np.int32)})
        self._known(ids, outputs["found"])
        return [_items(outputs, row) for row in range(len(ids))]

    def recommend(self, user_id: str = "", session: Iterable[str] = (),
                  k: int = 10) -> Recommendations:
        """For a known user, a browsing session (cold start), both, or neither (popular)."""
        session = list(session) or [""]
        outputs = self.transport.predict(SIGNATURE_RECOMMEND, {
            "user_id": np.array([user_id or ""], dtype=object),
            "session_item_ids": np.array([session], dtype=object),
            "k": np.array([k], np.int32)})
        unknown = [item for item, ok in zip(session, outputs["session_found"][0])
                   if item and not ok]
        return Recommendations(str(outputs["strategy"][0]), bool(outputs["user_found"][0]),
                               unknown, _items(outputs, 0))

    def search(self, query: str, k: int = 10) -> List[Item]:
        """Items whose titles match: starts with the query, contains it, or all its words.
        A query over MAX_SEARCH_QUERY_CHARS is RequestRejected before anything is sent."""
        if len(query) > MAX_SEARCH_QUERY_CHARS:
            raise RequestRejected(f"search query {echo(query)} is longer than "
                                  f"{MAX_SEARCH_QUERY_CHARS} characters")
        outputs = self.transport.predict(SIGNATURE_SEARCH,
                                         {"query": np.array([query], dtype=object),
                                          "k": np.array([k], np.int32)})
        return _items(outputs, 0)

    def item_info(self, item_ids: Sequence[str]) -> List[Item]:
        """Title, genres and authors of each item; score holds its rating count."""
        ids = _ids(item_ids)
        if not ids.size:
            return []
        outputs = self._predict(SIGNATURE_ITEM_INFO, len(ids), {"item_ids": ids})
        self._known(ids, outputs["found"])
        cold = _cold(outputs, ids.shape)
        return [Item(item_id, str(outputs["titles"][row]), str(outputs["genres"][row]),
                     str(outputs["authors"][row]), float(outputs["popularity"][row]),
                     bool(cold[row]))
                for row, item_id in enumerate(ids)]


def _ids(item_ids: Sequence[str]) -> np.ndarray:
    if isinstance(item_ids, str):
        raise TypeError("pass a list of item ids, not a single string")
    return np.array([str(item_id) for item_id in item_ids], dtype=object)


def _concat(arrays: List[np.ndarray]) -> np.ndarray:
    """Concatenates along rows, padding ragged [N, K] string/score blocks to the widest K."""
    arrays = [np.asarray(array) for array in arrays]
    if arrays[0].ndim < 2:
        return np.concatenate(arrays)
    width = max(array.shape[1] for array in arrays)
    blank = "" if arrays[0].dtype == object else 0
    padded = [np.pad(array, ((0, 0), (0, width - array.shape[1])), constant_values=blank)
              for array in arrays]
    return np.concatenate(padded)
