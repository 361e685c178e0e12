"""`towergraph graph` against the stand-in: what a user types, what lands in the file."""

import json
import socket
from pathlib import Path

import networkx as nx
import pytest

from towergraph.cli import main
from serving.standin import serve_in_process


@pytest.fixture(scope="module")
def server(tiny_model_base):
    with serve_in_process(tiny_model_base, poll_seconds=0) as running:
        yield running


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_graph_from_a_title_search_to_json(server, tmp_path, capsys, protocol):
    address = server.rest_url if protocol == "rest" else f"grpc://{server.grpc_target}"
    output = tmp_path / "graph.json"
    assert main(["graph", "--server", address, "--title", "robot chronicles 13",
                 "--depth", "2", "--fanout", "3", "--output", str(output)]) == 0
    data = json.loads(output.read_text())
    assert data["seeds"] == ["13"] and data["depth"] == 2 and data["fanout"] == 3
    assert data["stats"]["nodes_per_hop"][:2] == [1, 3]
    assert [node["cold"] for node in data["nodes"]] == [False] * len(data["nodes"])
    err = capsys.readouterr().err
    assert "seed: The Robot Chronicles 13" in err and "new (cold" not in err


def test_graph_to_graphml_and_html(server, tmp_path):
    graphml, html = tmp_path / "g.graphml", tmp_path / "g.html"
    assert main(["graph", "--server", server.rest_url, "--item", "4", "--depth", "1",
                 "--fanout", "5", "--format", "graphml", "--output", str(graphml)]) == 0
    assert nx.read_graphml(graphml).number_of_nodes() == 6
    assert main(["graph", "--server", server.rest_url, "--item", "4", "--depth", "1",
                 "--fanout", "5", "--format", "html", "--output", str(html)]) == 0
    assert "vis.Network" in html.read_text()


@pytest.mark.parametrize("flags,message", [
    (["--item", "ghost"], "unknown item id(s): 'ghost'"),
    (["--title", "zzzz"], "no title matches 'zzzz'"),
    (["--item", "4", "--depth", "9"], "depth must be between 1 and 4"),
])
def test_bad_requests_exit_1_with_a_reason(server, capsys, flags, message):
    assert main(["graph", "--server", server.rest_url, *flags]) == 1
    assert message in capsys.readouterr().err


def test_server_down_exit_1(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["graph", "--server", f"http://127.0.0.1:{port}", "--item", "4"]) == 1
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.slow
def test_a_graph_with_cold_items_says_so_in_every_format(cold_world, tmp_path,
                                                          capsys):
    """The model of tests/test_cold_start.py (items 30..39 cold), served by the stand-in."""
    base = Path(cold_world["path"]).parent
    output = {kind: tmp_path / f"g.{kind}" for kind in ("json", "graphml", "html")}
    with serve_in_process(base, poll_seconds=0) as running:
        for kind, path in output.items():
            assert main(["graph", "--server", running.rest_url, "--item", "35", "--depth", "2",
                         "--fanout", "5", "--format", kind, "--output", str(path)]) == 0
    data = json.loads(output["json"].read_text())
    flags = {node["id"]: node["cold"] for node in data["nodes"]}
    assert flags == {node: int(node) >= 30 for node in flags} and flags["35"]
    assert f"{sum(flags.values())} new (cold" in capsys.readouterr().err
    graphml = nx.read_graphml(output["graphml"])
    assert {node: attributes["cold"] for node, attributes in graphml.nodes(data=True)} == flags
    assert '"shape": "diamond"' in output["html"].read_text()
