"""The multi-hop similarity graph: from seed items, breadth first, one request per hop.

Hop h+1 is one batched `similar_items` call for every node first reached at hop h (the original
project sent one request per node and sorted the whole catalogue in the client). Nodes are
de-duplicated; each remembers its hop and the path that first reached it; edges carry cosine
scores. Caps bound the work, and a graph cut by a cap says so.

Each node also carries `cold`, the model's own flag (its `cold` output, through the client's
Item.cold): a cold item has metadata but too few ratings, and the model placed it by its
content alone (False throughout for a model exported before cold items).
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import networkx as nx

from serving.client import TowerGraphClient

from towergraph.constants import DEFAULT_GRAPH_MAX_NODES as DEFAULT_MAX_NODES
from towergraph.constants import MAX_GRAPH_DEPTH as MAX_DEPTH
from towergraph.constants import MAX_GRAPH_FANOUT as MAX_FANOUT
from towergraph.constants import MAX_GRAPH_NODES as MAX_NODES


@dataclasses.dataclass
class SimilarityGraph:
    graph: nx.Graph                 # nodes: title, genres, authors, cold, hop, path; edges: score
    seeds: List[str]
    depth: int
    fanout: int
    truncated: Optional[str] = None  # why the graph is smaller than depth and fanout ask

    def nodes_at(self, hop: int) -> List[str]:
        return [node for node, data in self.graph.nodes(data=True) if data["hop"] == hop]


def _check_limits(depth: int, fanout: int, max_nodes: int) -> None:
    problems = []
    if not 1 <= depth <= MAX_DEPTH:
        problems.append(f"depth must be between 1 and {MAX_DEPTH}, not {depth}")
    if not 1 <= fanout <= MAX_FANOUT:
        problems.append(f"fanout must be between 1 and {MAX_FANOUT}, not {fanout}")
    if not 1 <= max_nodes <= MAX_NODES:
        problems.append(f"max_nodes must be between 1 and {MAX_NODES}, not {max_nodes}")
    if problems:
        raise ValueError("; ".join(problems))


def build_graph(client: TowerGraphClient, seeds: Sequence[str], depth: int = 2,
                fanout: int = 10, max_nodes: int = DEFAULT_MAX_NODES) -> SimilarityGraph:
    """Breadth-first similarity graph around `seeds` (unknown seeds raise UnknownItems)."""
    _check_limits(depth, fanout, max_nodes)
    seeds = list(dict.fromkeys(str(seed) for seed in seeds))
    if not seeds:
        raise ValueError("give at least one seed item")
    if len(seeds) > max_nodes:
        raise ValueError(f"{len(seeds)} seeds exceed max_nodes={max_nodes}")
    graph = nx.Graph()
    for seed in client.item_info(seeds):
        graph.add_node(seed.item_id, title=seed.title, genres=seed.genres,
                       authors=seed.authors, cold=bool(seed.cold), hop=0, path=[seed.item_id])
    result = SimilarityGraph(graph, seeds, depth, fanout)

    frontier = seeds
    for hop in range(1, depth + 1):
        next_frontier: List[str] = []
        for source, neighbours in zip(frontier, client.similar_items(frontier, k=fanout)):
            for item in neighbours:
                if item.item_id not in graph:
                    if graph.number_of_nodes() >= max_nodes:
                        result.truncated = (f"stopped at max_nodes={max_nodes} "
                                            f"during hop {hop}")
                        continue
                    graph.add_node(item.item_id, title=item.title, genres=item.genres,
                                   authors=item.authors, cold=bool(item.cold), hop=hop,
                                   path=graph.nodes[source]["path"] + [item.item_id])
                    next_frontier.append(item.item_id)
                _add_edge(graph, source, item.item_id, item.score)
        frontier = next_frontier
        if not frontier:
            break
    return result


def _add_edge(graph: nx.Graph, a: str, b: str, score: float) -> None:
    # A->B and B->A may both be found; keep the edge once, with the higher score.
    if graph.has_edge(a, b):
        score = max(score, graph.edges[a, b]["score"])
    graph.add_edge(a, b, score=score)


def graph_stats(result: SimilarityGraph) -> Dict[str, object]:
    """Numbers that tell a spread-out graph from a tight one.

    cold: how many of the nodes are cold items (placed by their content alone).
    outer_single_link: share of the outermost hop's nodes with a single link. Near 1, each
    item at the edge was reached once (the graph fans out, like *Neuromancer*'s); lower, the
    edge items are shared by several neighbours (inter-networked, like *A Court of Thorns and
    Roses*').
    """
    graph = result.graph
    hops = [data["hop"] for _, data in graph.nodes(data=True)]
    outer = result.nodes_at(max(hops)) if hops else []
    single = sum(1 for node in outer if graph.degree(node) == 1)
    scores = [data["score"] for _, _, data in graph.edges(data=True)]
    stats = {
        "nodes": graph.number_of_nodes(),
        "edges": graph.number_of_edges(),
        "nodes_per_hop": [hops.count(hop) for hop in range(max(hops) + 1)] if hops else [],
        "density": nx.density(graph),
        "average_clustering": nx.average_clustering(graph) if graph.number_of_nodes() else 0.0,
        "outer_single_link": single / len(outer) if outer and max(hops) > 0 else 0.0,
        "mean_score": sum(scores) / len(scores) if scores else 0.0,
        "cold": sum(1 for _, data in graph.nodes(data=True) if data.get("cold")),
        "truncated": result.truncated,
    }
    stats["shape"] = describe_shape(stats)
    return stats


def describe_shape(stats: Dict[str, object]) -> str:
    if stats["edges"] == 0:
        return "no neighbours found"
    if stats["outer_single_link"] >= 0.8 and stats["average_clustering"] < 0.2:
        return ("spread out: almost every item at the edge is reached by one path, so each "
                "hop takes you somewhere new")
    if stats["outer_single_link"] <= 0.5 or stats["average_clustering"] >= 0.35:
        return ("tight: neighbours share their neighbours, so the graph keeps circling the "
                "same family of items")
    return "in between: partly a close family, partly branching out"
