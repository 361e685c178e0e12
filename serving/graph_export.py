"""A SimilarityGraph as JSON, GraphML, or a self-contained pyvis HTML page that opens offline.

Every format keeps each node's `cold` flag (JSON and GraphML as a boolean attribute); the page
draws a cold item as a dashed diamond, in its hop's colour, and its tooltip says what it is.
"""

import json
import re
from io import BytesIO
from typing import Dict

import networkx as nx
from pyvis.network import Network

from serving.graph import SimilarityGraph, graph_stats

# Colour of each hop (seeds first); hops beyond the list reuse the last colour.
HOP_COLOURS = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"]
# A cold item (the model's `cold` output): metadata but too few ratings, placed by its content.
COLD_TEXT = "new — placed by its content, few ratings"
COLD_SHAPE = "diamond"                  # warm items are dots
COLD_BORDER = "#202124"                 # a dark dashed border around the hop colour
COLD_DASHES = [5, 4]


def node_colour(data: Dict):
    """vis-network's color of a node: its hop's colour; a cold item's with a dark border."""
    colour = HOP_COLOURS[min(data["hop"], len(HOP_COLOURS) - 1)]
    if not data.get("cold"):
        return colour
    return {"background": colour, "border": COLD_BORDER,
            "highlight": {"background": colour, "border": COLD_BORDER},
            "hover": {"background": colour, "border": COLD_BORDER}}


def cold_style(data: Dict) -> Dict:
    """The extra vis-network node options that mark a cold item (none for a warm one)."""
    if not data.get("cold"):
        return {}
    return {"shape": COLD_SHAPE, "borderWidth": 2, "borderWidthSelected": 3,
            "shapeProperties": {"borderDashes": COLD_DASHES}}


# pyvis' template loads Bootstrap from a CDN even when vis-network is inlined; the page does
# not need it, and it must open offline.
_CDN_TAGS = re.compile(r'<(link|script)\b[^>]*(href|src)="https?://[^"]*"[^>]*>(\s*</script>)?',
                       re.IGNORECASE)


def to_dict(result: SimilarityGraph) -> Dict:
    """Node-link JSON with the graph's parameters and statistics."""
    data = nx.node_link_data(result.graph, edges="edges")
    return {"seeds": result.seeds, "depth": result.depth, "fanout": result.fanout,
            "truncated": result.truncated, "stats": graph_stats(result), **data}


def to_json(result: SimilarityGraph) -> str:
    return json.dumps(to_dict(result), indent=2, ensure_ascii=False)


def to_graphml(result: SimilarityGraph) -> bytes:
    graph = result.graph.copy()
    for _, data in graph.nodes(data=True):
        data["path"] = " > ".join(data["path"])  # GraphML attributes are scalars
    buffer = BytesIO()
    nx.write_graphml(graph, buffer)
    return buffer.getvalue()


def _tooltip(data: Dict) -> str:
    # Plain text: vis-network shows a string title as text, so a title holding markup stays
    # inert.
    lines = [data["title"]]
    for field in ("authors", "genres"):
        if data.get(field):
            lines.append(f"{field}: {data[field].replace('|', ', ')}")
    if data.get("cold"):
        lines.append(COLD_TEXT)
    lines.append("seed" if data["hop"] == 0 else f"hop {data['hop']}")
    return "\n".join(lines)


def to_html(result: SimilarityGraph, height: str = "720px") -> str:
    """A standalone page: vis-network inlined, nodes coloured by hop and sized by degree, cold
    items drawn as dashed diamonds."""
    network = Network(height=height, width="100%", cdn_resources="in_line", heading="")
    graph = result.graph
    for node, data in graph.nodes(data=True):
        network.add_node(node, label=data["title"][:40], title=_tooltip(data),
                         color=node_colour(data), size=10 + 3 * graph.degree(node),
                         hop=data["hop"], cold=bool(data.get("cold")), **cold_style(data))
    for a, b, data in graph.edges(data=True):
        # A fixed width per score: vis would stretch "value" from the thinnest to the thickest
        # edge, and neighbour scores are often all within a few hundredths.
        network.add_edge(a, b, width=1 + 3 * max(data["score"], 0.0),
                         title=f"cosine {data['score']:.3f}")
    network.toggle_physics(True)
    page = _CDN_TAGS.sub("", network.generate_html(notebook=False))
    if re.search(r'(src|href)="https?://', page):
        raise RuntimeError("the graph page still refers to a remote resource")
    return page
