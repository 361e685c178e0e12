"""The explorer's requests to the served model, without Streamlit (the app caches them).

Everything here goes through TowerGraphClient; over REST nothing imports TensorFlow.
"""

import dataclasses
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from serving.client import (Item, ModelNotFound, Recommendations, RequestRejected,
                            TowerGraphClient)
from serving.graph import SimilarityGraph, build_graph, graph_stats
from serving.graph_export import to_graphml, to_html, to_json
from towergraph.constants import SIGNATURE_CATALOG_ITEMS
from ui import layout
from ui.state import GraphKey

GRAPH_HEIGHT_PX = 640
COMPARE_HEIGHT_PX = 520
SEARCH_RESULTS = 20


def open_client(server: str, protocol: str, model_name: str,
                timeout: float = 10.0) -> TowerGraphClient:
    """protocol: "rest" or "grpc"."""
    return TowerGraphClient.connect(server, model_name, protocol=protocol.lower(),
                                    timeout=timeout)


@dataclasses.dataclass
class GraphBundle:
    """A graph, its statistics and where its items are drawn (ui/layout.py); the downloads
    are made when a reader asks for one."""
    result: SimilarityGraph
    stats: Dict[str, object]
    positions: Dict[str, Tuple[float, float]] = dataclasses.field(default_factory=dict)

    @property
    def centre(self) -> str:
        return self.result.seeds[0]

    def html(self) -> str:
        return to_html(self.result, f"{GRAPH_HEIGHT_PX}px")

    def json(self) -> str:
        return to_json(self.result)

    def graphml(self) -> bytes:
        return to_graphml(self.result)


def graph_bundle(client: TowerGraphClient, key: GraphKey) -> GraphBundle:
    result = build_graph(client, [key.item], key.depth, key.fanout)
    return GraphBundle(result, graph_stats(result), layout.radial(result.graph))


@dataclasses.dataclass(frozen=True)
class StartPoints:
    """The start page: the most popular items, a few random ones, and the catalogue size
    (None when the model predates the catalog_items signature)."""
    popular: List[Item]
    random: List[Item]
    catalog_size: Optional[int]


def catalog_items(client: TowerGraphClient, rows: Sequence[int]):
    """(items, catalogue size) at these catalogue positions (0 = most-rated), through the
    client's transport; positions outside the catalogue are left out."""
    outputs = client.transport.predict(SIGNATURE_CATALOG_ITEMS,
                                       {"rows": np.asarray(rows, np.int64)})
    items = [Item(str(outputs["item_ids"][row]), str(outputs["titles"][row]),
                  str(outputs["genres"][row]), str(outputs["authors"][row]),
                  float(outputs["popularity"][row]))
             for row in range(len(rows)) if bool(outputs["found"][row])]
    size = int(np.asarray(outputs["catalog_size"]).reshape(-1)[0]) if len(rows) else 0
    return items, size


def start_points(client: TowerGraphClient, popular: int, sample: int,
                 seed: int) -> StartPoints:
    try:
        top, size = catalog_items(client, list(range(popular)))
    except (RequestRejected, ModelNotFound):   # a model exported before catalog_items
        return StartPoints(client.recommend("", [], popular).items, [], None)
    rest = range(len(top), size)
    rows = sorted(random.Random(seed).sample(rest, min(sample, len(rest))))
    picked, _ = catalog_items(client, rows) if rows else ([], size)
    return StartPoints(top, picked, size)


def shared_items(a: SimilarityGraph, b: SimilarityGraph) -> List[Dict[str, object]]:
    """Items in both graphs, nearest to the two centres together first."""
    common = set(a.graph) & set(b.graph)
    rows = [{"title": a.graph.nodes[node]["title"], "hops from first": a.graph.nodes[node]["hop"],
             "hops from second": b.graph.nodes[node]["hop"], "id": node} for node in common]
    return sorted(rows, key=lambda row: (row["hops from first"] + row["hops from second"],
                                         row["title"]))


def search(client: TowerGraphClient, query: str, k: int = SEARCH_RESULTS) -> List[Item]:
    query = " ".join(query.split())
    return client.search(query, k) if query else []


def recommend(client: TowerGraphClient, user_id: str, session: Sequence[str],
              k: int) -> Recommendations:
    return client.recommend(user_id.strip(), [str(item) for item in session], k)


def download_name(key: GraphKey, extension: str) -> str:
    safe = "".join(char if char.isalnum() or char in "-_" else "_" for char in key.item)
    return f"towergraph-{safe}-depth{key.depth}-fanout{key.fanout}.{extension}"


def describe_client(client: TowerGraphClient, version: int) -> str:
    """The model being explored, as the client reports it."""
    return f"{client.model_name} version {version} over {client.protocol}"
