"""The multi-hop graph builder and its exports, on the tiny world's model (no server needed)."""

import io
import json
from xml.etree import ElementTree

import networkx as nx
import numpy as np
import pytest

from serving.client import TowerGraphClient, UnknownItems
from serving.graph import MAX_DEPTH, MAX_FANOUT, build_graph, graph_stats
from serving.graph_export import COLD_SHAPE, COLD_TEXT, to_dict, to_graphml, to_html
from tiny_world import HOSTILE_ITEM, HOSTILE_MARKUP, genre_of


class CountingClient(TowerGraphClient):
    """Counts similar_items requests: the builder must send one per hop."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.similar_calls = []

    def similar_items(self, item_ids, k=10):
        self.similar_calls.append(list(item_ids))
        return super().similar_items(item_ids, k)


@pytest.fixture
def client(tiny_model_base):
    return CountingClient.connect(str(tiny_model_base / "1"), protocol="saved_model")


def test_hops_dedup_and_paths(client):
    result = build_graph(client, ["4"], depth=2, fanout=3)
    graph = result.graph
    assert len(client.similar_calls) == 2                    # one batched request per hop
    assert client.similar_calls[0] == ["4"]
    assert client.similar_calls[1] == result.nodes_at(1)     # hop 2 asks for all of hop 1
    assert graph.nodes["4"]["hop"] == 0 and len(result.nodes_at(1)) == 3
    assert 1 <= len(result.nodes_at(2)) <= 9                 # shared neighbours counted once
    for node, data in graph.nodes(data=True):
        path = data["path"]
        assert path[0] == "4" and path[-1] == node and len(path) == data["hop"] + 1
        assert all(graph.has_edge(a, b) for a, b in zip(path, path[1:]))
    assert all(0 < data["score"] <= 1.0001 for _, _, data in graph.edges(data=True))
    assert result.truncated is None


def test_neighbourhood_stays_in_the_genre(client):
    graph = build_graph(client, ["4"], depth=2, fanout=5).graph
    same = [genre_of(int(node)) == genre_of(4) for node in graph]
    assert sum(same) / len(same) >= 0.9


def test_graph_is_deterministic(client):
    first = build_graph(client, ["4", "7"], depth=3, fanout=4)
    second = build_graph(client, ["4", "7"], depth=3, fanout=4)
    assert to_dict(first) == to_dict(second)


def test_node_cap_cuts_the_graph_and_says_so(client):
    result = build_graph(client, ["4"], depth=3, fanout=10, max_nodes=12)
    assert result.graph.number_of_nodes() == 12
    assert "max_nodes=12" in result.truncated
    assert graph_stats(result)["truncated"] == result.truncated


@pytest.mark.parametrize("depth,fanout", [(0, 5), (MAX_DEPTH + 1, 5), (2, 0),
                                          (2, MAX_FANOUT + 1)])
def test_depth_and_fanout_limits_are_enforced(client, depth, fanout):
    with pytest.raises(ValueError, match="depth must be|fanout must be"):
        build_graph(client, ["4"], depth=depth, fanout=fanout)


def test_unknown_seed_is_named(client):
    with pytest.raises(UnknownItems, match="'nope'"):
        build_graph(client, ["4", "nope"], depth=1, fanout=3)


def test_stats_tell_a_tight_graph_from_a_spread_out_one():
    # A fan: every outer node hangs off one parent. A clique: everything knows everything.
    from serving.graph import SimilarityGraph
    fan = nx.Graph()
    fan.add_node("s", hop=0, path=["s"])
    for i in range(3):
        fan.add_node(f"a{i}", hop=1, path=["s", f"a{i}"])
        fan.add_edge("s", f"a{i}", score=0.9)
        for j in range(3):
            fan.add_node(f"b{i}{j}", hop=2, path=["s", f"a{i}", f"b{i}{j}"])
            fan.add_edge(f"a{i}", f"b{i}{j}", score=0.8)
    clique = nx.complete_graph(["s", "a", "b", "c"])
    nx.set_node_attributes(clique, {"s": 0, "a": 1, "b": 1, "c": 1}, "hop")
    nx.set_edge_attributes(clique, 0.9, "score")
    spread = graph_stats(SimilarityGraph(fan, ["s"], 2, 3))
    tight = graph_stats(SimilarityGraph(clique, ["s"], 1, 3))
    assert spread["outer_single_link"] == 1.0 and spread["average_clustering"] == 0.0
    assert spread["shape"].startswith("spread out")
    assert tight["outer_single_link"] == 0.0 and tight["average_clustering"] == 1.0
    assert tight["shape"].startswith("tight")
    assert spread["nodes_per_hop"] == [1, 3, 9]


def test_exports_carry_nodes_edges_and_keep_titles_as_text(client):
    result = build_graph(client, [str(HOSTILE_ITEM)], depth=2, fanout=3)
    data = json.loads(json.dumps(to_dict(result)))
    assert {node["id"] for node in data["nodes"]} == set(result.graph)
    assert len(data["edges"]) == result.graph.number_of_edges()
    assert data["stats"]["nodes"] == result.graph.number_of_nodes()

    root = ElementTree.fromstring(to_graphml(result))
    assert HOSTILE_MARKUP in ElementTree.tostring(root, encoding="unicode").replace(
        "&lt;", "<").replace("&gt;", ">")
    assert nx.read_graphml(__import__("io").BytesIO(to_graphml(result))).number_of_nodes() \
        == result.graph.number_of_nodes()

    page = to_html(result)
    assert "vis.Network" in page
    assert 'src="http' not in page and 'href="http' not in page
    assert HOSTILE_MARKUP not in page       # only ever JSON-escaped inside the script


# -- cold items: the model's flag on every node, in every export -----------------------------

class ColdTransport:
    """The tiny model's own transport, with its `cold` output set for the items in `cold`, as
    a model with cold items answers (the tiny model has none: its `cold` output is all False)."""

    def __init__(self, inner, cold):
        self.inner, self.cold = inner, set(cold)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, signature, inputs, deadline=None):
        outputs = self.inner.predict(signature, inputs, deadline)
        assert "cold" in outputs               # the model has the output; only its values change
        ids = outputs.get("item_ids", inputs.get("item_ids"))
        outputs["cold"] = np.vectorize(lambda item: str(item) in self.cold, otypes=[bool])(ids)
        return outputs


def third(node) -> bool:      # every third item: both genres have some (genre_of: parity)
    return int(node) % 3 == 0


@pytest.fixture
def cold_client(client):
    return TowerGraphClient(ColdTransport(client.transport, [str(i) for i in range(0, 40, 3)]))


def test_nodes_of_a_model_without_cold_items_are_warm(client):
    graph = build_graph(client, ["4"], depth=2, fanout=3).graph
    assert [data["cold"] for _, data in graph.nodes(data=True)] == [False] * len(graph)
    assert graph_stats(build_graph(client, ["4"], depth=1, fanout=3))["cold"] == 0


def test_a_nodes_cold_flag_is_the_models_cold_output(cold_client):
    result = build_graph(cold_client, ["6", "4"], depth=2, fanout=4)
    graph = result.graph
    flags = {node: data["cold"] for node, data in graph.nodes(data=True)}
    assert flags["6"] is True and flags["4"] is False          # seeds: from item_info
    assert flags == {node: third(node) for node in graph}       # the others: from similar_items
    assert any(flags[node] for node in result.nodes_at(1) + result.nodes_at(2))
    assert graph_stats(result)["cold"] == sum(flags.values())


def test_exports_carry_the_cold_flag(cold_client):
    result = build_graph(cold_client, ["4"], depth=2, fanout=4)
    cold = {node for node, data in result.graph.nodes(data=True) if data["cold"]}
    assert cold and cold != set(result.graph)

    data = json.loads(json.dumps(to_dict(result)))
    assert {node["id"]: node["cold"] for node in data["nodes"]} == \
        {node: node in cold for node in result.graph}
    assert data["stats"]["cold"] == len(cold)

    read = nx.read_graphml(io.BytesIO(to_graphml(result)))
    assert {node: attributes["cold"] for node, attributes in read.nodes(data=True)} == \
        {node: node in cold for node in result.graph}          # a GraphML boolean

    page = to_html(result)
    drawn = {node["id"]: node for node in html_nodes(page)}
    assert set(drawn) == set(result.graph)
    for node, options in drawn.items():
        assert options["cold"] is (node in cold)
        if node in cold:
            assert options["shape"] == COLD_SHAPE
            assert options["shapeProperties"]["borderDashes"]
            assert COLD_TEXT in options["title"]
        else:
            assert options["shape"] == "dot" and COLD_TEXT not in options["title"]


def html_nodes(page: str):
    """The nodes pyvis writes into the page (`nodes = new vis.DataSet([...])`)."""
    start = page.index("nodes = new vis.DataSet(") + len("nodes = new vis.DataSet(")
    return json.JSONDecoder().raw_decode(page[start:])[0]


@pytest.mark.slow
def test_a_real_cold_model_flags_its_cold_nodes(cold_world):
    """The exported model of tests/test_cold_start.py (items 30..39 cold), end to end."""
    client = TowerGraphClient.connect(cold_world["path"], protocol="saved_model")
    result = build_graph(client, ["35", "3"], depth=2, fanout=6)
    flags = {node: data["cold"] for node, data in result.graph.nodes(data=True)}
    assert flags == {node: int(node) >= 30 for node in result.graph}
    assert flags["35"] and not flags["3"] and sum(flags.values()) > 1
