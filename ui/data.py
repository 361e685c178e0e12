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
# The graphs of a centre's direct neighbours are made ahead (next_graphs) only for a graph this
# small: at depth 2 and fan-out 8, 73 items at most.
NEXT_GRAPHS_MAX_NODES = 150


def open_client(server: str, protocol: str, model_name: str,
                timeout: float = 10.0) -> TowerGraphClient:
    """protocol: "rest" or "grpc"."""
    return TowerGraphClient.connect(server, model_name, protocol=protocol.lower(),
                                    timeout=timeout)


class _Recording:
    """A client that remembers what build_graph asked and got (item_info, similar_items)."""

    def __init__(self, client: TowerGraphClient):
        self.client = client
        self.items: Dict[str, Item] = {}
        self.neighbours: Dict[str, List[Item]] = {}

    def item_info(self, item_ids: Sequence[str]) -> List[Item]:
        items = self.client.item_info(item_ids)
        self.items.update((item.item_id, item) for item in items)
        return items

    def similar_items(self, item_ids: Sequence[str], k: int = 10) -> List[List[Item]]:
        answers = self.client.similar_items(item_ids, k)
        for item_id, items in zip(item_ids, answers):
            self.neighbours[str(item_id)] = list(items)
            self.items.update((item.item_id, item) for item in items)
        return answers


class _Recorded:
    """Answers build_graph from what a _Recording got, sending nothing; KeyError for an item
    it has no answer for."""

    def __init__(self, items: Dict[str, Item], neighbours: Dict[str, List[Item]]):
        self.items, self.neighbours = items, neighbours

    def item_info(self, item_ids: Sequence[str]) -> List[Item]:
        return [self.items[str(item_id)] for item_id in item_ids]

    def similar_items(self, item_ids: Sequence[str], k: int = 10) -> List[List[Item]]:
        return [self.neighbours[str(item_id)][:k] for item_id in item_ids]


@dataclasses.dataclass
class GraphBundle:
    """A graph, its statistics and where its items are drawn (ui/layout.py); the downloads
    are made when a reader asks for one. `answers`: the items and neighbour lists the graph
    was built from (next_graphs builds the neighbours' graphs from them)."""
    result: SimilarityGraph
    stats: Dict[str, object]
    positions: Dict[str, Tuple[float, float]] = dataclasses.field(default_factory=dict)
    answers: Tuple[Dict[str, Item], Dict[str, List[Item]]] = ({}, {})

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
    recording = _Recording(client)
    result = build_graph(recording, [key.item], key.depth, key.fanout)
    return GraphBundle(result, graph_stats(result), layout.radial(result.graph),
                       (recording.items, recording.neighbours))


def next_graphs(client: TowerGraphClient, bundle: GraphBundle,
                max_nodes: int = NEXT_GRAPHS_MAX_NODES) -> Dict[str, Tuple[SimilarityGraph,
                                                                         Dict]]:
    """{neighbour: (its graph, its positions)} for each direct neighbour of the centre, at the
    bundle's depth and fan-out: so a click on one is drawn at once, before the app reruns.

    One batched similar_items request for the graph's items whose neighbours are not known yet
    (the outermost hop); everything else comes from the answers the graph was built from, by
    build_graph itself, so each graph is the one the app would build for that centre. Empty
    for a graph over max_nodes items."""
    result = bundle.result
    if result.graph.number_of_nodes() > max_nodes or result.truncated:
        return {}
    items, neighbours = dict(bundle.answers[0]), dict(bundle.answers[1])
    missing = [node for node in result.graph if node not in neighbours]
    for item_id, found in zip(missing, client.similar_items(missing, result.fanout)
                              if missing else []):
        neighbours[item_id] = list(found)
        items.update((item.item_id, item) for item in found)
    recorded = _Recorded(items, neighbours)
    graphs = {}
    for node in result.nodes_at(1):
        try:
            graph = build_graph(recorded, [node], result.depth, result.fanout)
        except KeyError:
            continue        # an answer the graph did not need: drawn after a rerun instead
        if not graph.truncated:
            graphs[node] = (graph, layout.radial(graph.graph))
    return graphs


@dataclasses.dataclass(frozen=True)
class StartPoints:
    """The start page: the most popular items, a few random ones, and the catalogue size
    (None when the model predates the catalog_items signature)."""
    popular: List[Item]
    random: List[Item]
    catalog_size: Optional[int]


def catalog_items(client: TowerGraphClient, rows: Sequence[int]):
    """(items, catalogue size) at these catalogue positions (0 = most-rated), through the
    client's transport; positions outside the catalogue are left out. Item.cold from the
    `cold` output (cold items follow the warm ones)."""
    outputs = client.transport.predict(SIGNATURE_CATALOG_ITEMS,
                                       {"rows": np.asarray(rows, np.int64)})
    cold = (np.asarray(outputs["cold"], bool) if "cold" in outputs      # models before it:
            else np.zeros(len(rows), bool))                              # no cold items
    items = [Item(str(outputs["item_ids"][row]), str(outputs["titles"][row]),
                  str(outputs["genres"][row]), str(outputs["authors"][row]),
                  float(outputs["popularity"][row]), bool(cold[row]))
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
