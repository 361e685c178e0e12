"""The explorer's fast path without a browser: the radial layout (ui/layout.py), the graph
data with positions and where vis-network comes from (ui/graph_view.py), and the suggestion
rules (ui/suggest.py): what is searched while typing, what the list shows, what a pick may be."""

import json
import math

import networkx as nx
import pytest

from serving.client import Item
from serving.graph import SimilarityGraph
from towergraph.constants import MAX_SEARCH_QUERY_CHARS
from serving.graph import build_graph
from ui import data, graph_view, layout, state, suggest

HOSTILE = "<img src=x onerror=alert(1)>"


def tree(depth: int, fanout: int) -> SimilarityGraph:
    """A breadth-first graph as build_graph makes it: every node found once, plus a few
    links between siblings."""
    graph = nx.Graph()
    graph.add_node("0", title="centre", genres="", authors="", hop=0, path=["0"])
    frontier, count = ["0"], 1
    for hop in range(1, depth + 1):
        nxt = []
        for parent in frontier:
            for _ in range(fanout):
                node = str(count)
                count += 1
                graph.add_node(node, title=f"item {node}", genres="", authors="", hop=hop,
                               path=graph.nodes[parent]["path"] + [node])
                graph.add_edge(parent, node, score=0.5)
                nxt.append(node)
        for a, b in zip(nxt, nxt[1:]):
            graph.add_edge(a, b, score=0.3)
        frontier = nxt
    return SimilarityGraph(graph, ["0"], depth, fanout)


def test_radial_layout_rings_by_hop_and_sectors_by_parent():
    result = tree(2, 8)
    positions = layout.radial(result.graph)
    assert set(positions) == set(result.graph.nodes)
    assert positions["0"] == (0.0, 0.0)
    radius = {node: math.hypot(*positions[node]) for node in positions}
    hop = nx.get_node_attributes(result.graph, "hop")
    ring = {h: {round(radius[n]) for n in radius if hop[n] == h} for h in (1, 2)}
    assert len(ring[1]) == 1 and len(ring[2]) == 1            # one ring per hop
    assert min(ring[2]) >= min(ring[1]) + layout.RING_PX - 1
    # No two items on the same spot; each hop-2 item nearer its own parent than any other
    # hop-1 item's direction would put it.
    assert len(set(positions.values())) == len(positions)
    for node in (n for n in hop if hop[n] == 2):
        parent = result.graph.nodes[node]["path"][-2]
        angle = math.atan2(positions[node][1], positions[node][0])
        nearest = min((n for n in hop if hop[n] == 1), key=lambda n: abs(math.remainder(
            math.atan2(positions[n][1], positions[n][0]) - angle, 2 * math.pi)))
        assert nearest == parent


def test_crowded_ring_grows_and_deep_graphs_are_laid_out():
    result = tree(3, 6)                  # 258 items, 216 on the outer ring
    positions = layout.radial(result.graph)
    outer = max(math.hypot(*p) for p in positions.values())
    assert outer >= 216 * layout.NODE_GAP_PX / (2 * math.pi) - 1
    assert len(positions) == result.graph.number_of_nodes()


def test_graph_data_carries_positions_and_the_library_source():
    result = tree(1, 3)
    positions = layout.radial(result.graph)
    data = graph_view.graph_data(result, 500, positions=positions, vis_url=graph_view.VIS_URL)
    by_id = {node["id"]: node for node in data["nodes"]}
    assert all((node["x"], node["y"]) == positions[node["id"]] for node in data["nodes"])
    assert data["visUrl"] == "app/static/vis-network.min.js" and by_id["0"]["hop"] == 0
    json.dumps(data)                                               # plain JSON
    assert "x" not in graph_view.graph_data(result, 500)["nodes"][0]


def test_vis_network_is_served_as_a_file_or_carried_once():
    with open(graph_view.VIS_FILE, encoding="utf-8") as source:
        library = source.read()
    assert "vis-network" in library[:200] and len(library) > 400_000
    static_js, css = graph_view._sources(True)
    inline_js, _ = graph_view._sources(False)
    assert len(static_js) < 20_000 and "const VIS_INLINE = null;" in static_js
    assert len(inline_js) > len(library) and "<\\/" not in static_js
    assert "physics: {enabled: false}" in static_js
    assert "vis-tooltip" in css and len(css) < 5_000           # not the 220 KB vis CSS


@pytest.mark.parametrize("value, expected", [
    ("  dragon   chron ", "dragon chron"), ("d", None), ("", None), (None, None), (42, None),
    (["dragon"], None), ({"q": "dragon"}, None), ("x" * MAX_SEARCH_QUERY_CHARS, "x" * 500),
    ("x" * (MAX_SEARCH_QUERY_CHARS + 1), None), (HOSTILE, HOSTILE)])
def test_typed_query_is_bounded_text(value, expected):
    assert suggest.typed_query(value) == expected


def test_rows_are_plain_strings_and_capped():
    items = [Item(str(i), f"Title {i} {HOSTILE}", "Fantasy|Epic", "A. Author", 1.0)
             for i in range(12)]
    items.append(Item("99", "y" * (MAX_SEARCH_QUERY_CHARS + 5), "", "", 0.0))
    rows = suggest.rows(items)
    assert len(rows) == suggest.SUGGESTIONS
    assert rows[0] == {"id": "0", "title": f"Title 0 {HOSTILE}", "query": f"Title 0 {HOSTILE}",
                       "detail": "A. Author · Fantasy, Epic"}
    long = suggest.rows(items[-1:])[0]
    assert long["query"] == "" and len(long["title"]) <= suggest.TITLE_CHARS
    assert all(isinstance(value, str) for row in rows for value in row.values())


def test_suggestion_script_shows_titles_as_text_and_caps_queries():
    js = suggest._JS.replace("__CONFIG__", suggest._config("query"))
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js
    assert "textContent = item.title" in js
    assert f'"maxQuery": {MAX_SEARCH_QUERY_CHARS}' in js
    assert f'"debounceMs": {suggest.DEBOUNCE_MS}' in js
    with pytest.raises(ValueError):
        suggest.show("query'] input, body [x='", "suggest", lambda q: [], lambda item: None,
                     store={})


class FakeClient:
    """A model of 40 items, each with its own ordered neighbours; counts the requests."""

    def __init__(self, size: int = 40):
        self.size, self.calls = size, []

    def _item(self, index: int, score: float = 1.0) -> Item:
        return Item(str(index), f"title {index} {HOSTILE}", "Drama", "", score)

    def item_info(self, item_ids):
        self.calls.append(("item_info", list(item_ids)))
        return [self._item(int(item_id)) for item_id in item_ids]

    def similar_items(self, item_ids, k=10):
        self.calls.append(("similar_items", list(item_ids)))
        answers = []
        for item_id in item_ids:
            i = int(item_id)
            near = list(dict.fromkeys((i * step + step) % self.size for step in range(1, 12)))
            near = [j for j in near if j != i][:k]
            answers.append([self._item(j, round(0.9 - rank * 0.05, 3))
                            for rank, j in enumerate(near)])
        return answers


def test_next_graphs_are_the_graphs_the_app_would_build_with_one_more_request():
    client = FakeClient()
    key = state.graph_key(state.connection("http://x:8501", "rest", "m", 1), "3", 2, 4)
    bundle = data.graph_bundle(client, key)
    sent = len(client.calls)
    ahead = data.next_graphs(client, bundle)
    assert [call[0] for call in client.calls[sent:]] == ["similar_items"]   # one, batched
    assert set(ahead) == set(bundle.result.nodes_at(1)) and ahead
    for node, (graph, positions) in ahead.items():
        built = build_graph(client, [node], 2, 4)
        assert graph.seeds == [node]
        assert graph_view.graph_data(graph, 500, True, positions, context="c") == \
            graph_view.graph_data(built, 500, True, layout.radial(built.graph), context="c")
    assert data.next_graphs(client, bundle, max_nodes=5) == {}     # a big graph: none


def test_next_data_is_what_the_graph_component_draws():
    client = FakeClient()
    key = state.graph_key(state.connection("http://x:8501", "rest", "m", 1), "3", 1, 3)
    bundle = data.graph_bundle(client, key)
    sent = graph_view.next_data("3", data.next_graphs(client, bundle), 500, "ctx")
    assert sent["centre"] == "3" and sent["context"] == "ctx"
    for node, graph in sent["graphs"].items():
        assert graph["centre"] == node and graph["history"] and graph["context"] == "ctx"
        assert {n["id"]: n["hop"] for n in graph["nodes"]}[node] == 0
    json.dumps(sent)                                                  # plain JSON
    js, _ = graph_view._sources(True)
    assert "innerHTML" not in js and "innerHTML" not in graph_view._NEXT_JS
