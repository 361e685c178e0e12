"""The explorer's requests to the served model, without Streamlit (the app caches them).

Everything here goes through TowerGraphClient; over REST nothing imports TensorFlow.
"""

import dataclasses
from typing import Dict, List, Sequence

from serving.client import Item, Recommendations, TowerGraphClient
from serving.graph import SimilarityGraph, build_graph, graph_stats
from serving.graph_export import to_graphml, to_html, to_json
from ui.state import GraphKey

GRAPH_HEIGHT_PX = 620
SEARCH_RESULTS = 20


def open_client(server: str, protocol: str, model_name: str,
                timeout: float = 10.0) -> TowerGraphClient:
    """protocol: "rest" or "grpc"."""
    return TowerGraphClient.connect(server, model_name, protocol=protocol.lower(),
                                    timeout=timeout)


@dataclasses.dataclass
class GraphBundle:
    """A graph with everything the page shows and offers for download."""
    result: SimilarityGraph
    stats: Dict[str, object]
    html: str
    json: str
    graphml: bytes

    @property
    def centre(self) -> str:
        return self.result.seeds[0]


def graph_bundle(client: TowerGraphClient, key: GraphKey) -> GraphBundle:
    result = build_graph(client, [key.item], key.depth, key.fanout)
    return GraphBundle(result, graph_stats(result), to_html(result, f"{GRAPH_HEIGHT_PX}px"),
                       to_json(result), to_graphml(result))


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
