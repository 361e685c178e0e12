"""The explorer's logic without Streamlit or a server: navigation, cache keys, wording, escaping,
and the `towergraph ui` command line."""

import argparse
import html
import sys

import networkx as nx
import numpy as np
import pytest

from serving.client import Item, Recommendations
from serving.graph import SimilarityGraph, graph_stats
from serving.graph_export import COLD_TEXT, HOP_COLOURS
from ui import cli, data, graph_view, guard, state, suggest, views

HOSTILE = "<img src=x onerror=alert(1)>"


def small_graph() -> SimilarityGraph:
    """a -> b, c (hop 1); b -> d, c -> e (hop 2); d -> f (hop 3)."""
    graph = nx.Graph()
    titles = {"a": "Alpha", "b": "Beta", "c": "Gamma *bold*", "d": f"Delta {HOSTILE}",
              "e": "Epsilon", "f": "Zeta"}
    paths = {"a": ["a"], "b": ["a", "b"], "c": ["a", "c"], "d": ["a", "b", "d"],
             "e": ["a", "c", "e"], "f": ["a", "b", "d", "f"]}
    for node, path in paths.items():
        graph.add_node(node, title=titles[node], genres="Fantasy|Epic", authors="",
                       hop=len(path) - 1, path=path)
    for a, b, score in [("a", "b", 0.9), ("a", "c", 0.8), ("b", "d", 0.7), ("c", "e", 0.6),
                        ("d", "f", 0.5), ("b", "c", 0.75)]:
        graph.add_edge(a, b, score=score)
    return SimilarityGraph(graph, ["a"], depth=3, fanout=2)


# -- navigation -----------------------------------------------------------------------------------

def test_navigation_trail_and_way_back():
    store = {}
    nav = state.Navigation(store)
    assert nav.centre is None and nav.trail == []
    assert nav.go_to("1") and nav.centre == "1" and nav.trail == []
    assert not nav.go_to("1")                      # already there: nothing changes
    assert not nav.go_to("") and not nav.go_to(None)
    nav.go_to("2")
    nav.go_to("3")
    assert nav.centre == "3" and nav.trail == ["1", "2"]
    nav.back_to(0)                                 # like a browser: forget what came after
    assert nav.centre == "1" and nav.trail == []
    nav.go_to("2")
    nav.go_to("3")
    nav.back()
    assert nav.centre == "2" and nav.trail == ["1"]
    nav.go_to("1")                                 # revisiting does not repeat it in the trail
    assert nav.centre == "1" and nav.trail == ["2"]
    nav.back_to(5)                                 # out of range: ignored
    assert nav.centre == "1"
    assert store == {"centre": "1", "trail": ["2"]}


def test_navigation_trail_is_bounded_and_forget_goes_back():
    nav = state.Navigation({})
    for item in range(state.TRAIL_LENGTH + 10):
        nav.go_to(str(item))
    assert len(nav.trail) == state.TRAIL_LENGTH
    assert nav.trail[-1] == str(state.TRAIL_LENGTH + 8)
    before = nav.trail
    nav.forget()
    assert nav.centre == before[-1] and nav.trail == before[:-1]


# -- settings and cache keys ----------------------------------------------------------------------

def test_settings_from_env():
    assert state.settings_from_env({}) == ("http://localhost:8501", "REST", "towergraph", False)
    assert state.settings_from_env({"TOWERGRAPH_SERVER": "grpc://tf:8500"}).protocol == "gRPC"
    settings = state.settings_from_env({"TOWERGRAPH_SERVER": "http://tf:8501",
                                        "TOWERGRAPH_PROTOCOL": "GRPC",
                                        "TOWERGRAPH_MODEL_NAME": "books"})
    assert settings == ("http://tf:8501", "gRPC", "books", True)   # a server pins it
    assert state.settings_from_env({"TOWERGRAPH_PROTOCOL": "carrier-pigeon"}).protocol == "REST"
    with pytest.raises(ValueError):
        state.protocol_label("soap")


# -- what a browser may send (issue 14) ------------------------------------------------------------

@pytest.mark.parametrize("name", ["towergraph", "books-v2", "Model_1.5", "a" * 64])
def test_model_names_tf_serving_accepts(name):
    assert guard.check_model_name(f" {name} ") == name


@pytest.mark.parametrize("name", ["", "  ", "a" * 65, "../admin", "x/versions/1", "x?y=1",
                                  "x#frag", "x%2F..", "two words", "tab\there", "nl\nx",
                                  "nul\x00", "del\x7f", "x:predict", ".hidden", "-flag",
                                  "caf\u00e9", "x@evil", "x\\y"])
def test_hostile_model_names_are_refused_with_a_reason(name):
    with pytest.raises(guard.Rejected) as error:
        guard.check_model_name(name)
    assert "model name" in str(error.value).lower()


@pytest.mark.parametrize("server, accepted", [
    ("http://localhost:8501", "http://localhost:8501"),
    ("https://tf.example.org/", "https://tf.example.org"),
    ("grpc://tf-serving:8500", "grpc://tf-serving:8500"),
    ("http://10.0.0.7:8501", "http://10.0.0.7:8501"),
    ("http://[::1]:8501", "http://[::1]:8501")])
def test_servers_a_local_run_may_use(server, accepted):
    assert guard.check_server(server) == accepted


@pytest.mark.parametrize("server", [
    "", "file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://host/", "localhost:8501",
    "//localhost:8501", "javascript:alert(1)", "http://", "http://user:pw@host:8501",
    "http://host:8501/v1/models/x", "http://host:8501?x=1", "http://host:8501#x",
    "http://host:notaport", "http://host:99999", "http://ho st:8501", "http://host\n:8501",
    "grpc://tf-serving", "http://" + "a" * 300, "http://evil.com%2F@internal:80"])
def test_other_servers_are_refused(server):
    with pytest.raises(guard.Rejected):
        guard.check_server(server)


def test_item_ids_from_links_are_bounded_and_printable():
    assert guard.check_item_id(" 50 ") == "50"
    for bad in ["", "x" * (guard.MAX_ITEM_ID + 1), "a\nb", "\x00"]:
        with pytest.raises(guard.Rejected):
            guard.check_item_id(bad)


def test_a_failed_call_never_shows_the_servers_answer():
    from serving.client import (ModelNotFound, RequestRejected, ServerUnavailable,
                                ServingError, UnknownItems)
    secret = "root:x:0:0 INTERNAL-METADATA-TOKEN"
    for error in [RequestRejected(f"http://x/v1/models/m:predict: {secret}"),
                  ModelNotFound(f"model 'm' at http://x: {secret}"),
                  ServerUnavailable(f"answered 503: {secret}"), ServingError(secret),
                  RuntimeError(secret), UnknownItems([secret])]:
        message = guard.public_message(error, "Search")
        assert message.startswith("Search failed: ") and "INTERNAL" not in message, message


def test_cache_key_holds_the_model_version():
    v1 = state.connection("http://tf:8501/", "REST", "towergraph", 1)
    v2 = state.connection("http://tf:8501", "rest", "towergraph", 2)
    assert v1.server == "http://tf:8501" and v1.protocol == "rest"
    key = state.graph_key(v1, "7", 2, 5)
    assert key == state.graph_key(state.connection("http://tf:8501", "REST", "towergraph", 1),
                                  7, 2, 5)
    others = {state.graph_key(v2, "7", 2, 5),                  # a new model version
              state.graph_key(v1, "8", 2, 5), state.graph_key(v1, "7", 3, 5),
              state.graph_key(v1, "7", 2, 6),
              state.graph_key(state.connection("http://tf:8501", "REST", "other", 1), "7", 2, 5),
              state.graph_key(state.connection("grpc://tf:8500", "gRPC", "towergraph", 1),
                              "7", 2, 5)}
    assert key not in others and len(others) == 6
    assert hash(key) == hash(tuple(key))                       # plain tuples: cacheable
    for depth, fanout in [(0, 5), (5, 5), (2, 0), (2, 21)]:
        with pytest.raises(ValueError):
            state.graph_key(v1, "7", depth, fanout)


def test_the_connection_is_what_the_client_reports():
    class Client:       # the three properties the explorer reads from TowerGraphClient
        address, protocol, model_name = "http://tf:8501", "REST", "books"
    assert state.connection_of(Client(), 3) == ("http://tf:8501", "rest", "books", 3)


# -- wording --------------------------------------------------------------------------------------

def test_paths_and_hop_lists():
    result = small_graph()
    rows = views.few_hops_rows(result)
    assert [row["id"] for row in rows] == ["d", "e", "f"]
    assert rows[0]["path"] == f"Alpha → Beta → Delta {HOSTILE}"
    assert rows[2] == {"hop": 3, "title": "Zeta", "genres": "Fantasy, Epic", "id": "f",
                       "path": f"Alpha → Beta → Delta {HOSTILE} → Zeta"}
    assert views.few_hops_rows(result, min_hop=3)[0]["id"] == "f"
    neighbours = views.neighbour_rows(result, "a")
    assert [(row["id"], row["similarity"]) for row in neighbours] == [("b", 0.9), ("c", 0.8)]
    assert views.neighbour_rows(result, "missing") == []
    assert views.recentre_choices(result, "a") == ["b", "c", "d", "e", "f"]
    assert views.node_titles(result)["c"] == "Gamma *bold*"


def test_stats_in_words():
    result = small_graph()
    sentences = views.describe_stats(graph_stats(result))
    text = " ".join(sentences)
    assert sentences[0] == "6 items joined by 6 similarity links."
    assert sentences[1] == ("By distance: the centre, 2 one hop away, 2 two hops away, "
                            "1 three hops away.")
    assert "Its shape is " in text
    assert "At the edge (three hops away), 100% of the items hang on a single link" in text
    assert "average similarity of 0.71" in text
    assert "cut short" not in text
    result.truncated = "stopped at max_nodes=5 during hop 3"
    assert views.describe_stats(graph_stats(result))[-1] == \
        "The graph was cut short: stopped at max_nodes=5 during hop 3."


def test_stats_of_a_lonely_item():
    graph = nx.Graph()
    graph.add_node("a", title="Alone", genres="", authors="", hop=0, path=["a"])
    sentences = views.describe_stats(graph_stats(SimilarityGraph(graph, ["a"], 1, 5)))
    assert sentences == ["1 item joined by 0 similarity links.", "By distance: the centre.",
                         "The model found no neighbours for this item."]


def test_recommendation_wording():
    items = [Item("3", "Three", "Sci-Fi|Space", "A. Writer", 0.5)]
    lines = views.describe_recommendations(Recommendations("user+session", True, [], items),
                                           "u1", ["4"])
    assert lines == ["Strategy: user+session — from the user's history, steered by the "
                     "browsing session."]
    lines = views.describe_recommendations(Recommendations("popular", False, ["zz"], []),
                                           "nobody", ["zz"])
    assert lines[0].startswith("Strategy: popular — the most popular items")
    assert "User 'nobody' is not known" in lines[1]
    assert lines[2] == "Not known to the model, left out of the session: zz."
    assert lines[3] == "The model returned no items."
    assert views.item_rows(items) == [{"rank": 1, "title": "Three", "score": 0.5,
                                       "genres": "Sci-Fi, Space", "authors": "A. Writer",
                                       "id": "3"}]


# -- titles are data ------------------------------------------------------------------------------

@pytest.mark.parametrize("title", [HOSTILE, "*Dune* [link](http://x) `code` # h1",
                                   "Tom & Jerry: $x^2$ :smile: _under_ <b>bold</b> &amp;",
                                   "back\\slash | pipe ~strike~", "1. list", "- item",
                                   "> quote", "Title **</p><script>alert(1)</script>"])
def test_escaped_titles_render_as_their_own_text(title):
    # A CommonMark renderer with raw HTML allowed (stricter than Streamlit, which drops HTML
    # without unsafe_allow_html) must give back exactly the title, as text.
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": True}).render(views.escape_markdown(title))
    assert rendered == f"<p>{html.escape(title, quote=False)}</p>\n"
    assert "<img" not in rendered and "<script" not in rendered


def test_escape_markdown_keeps_one_line_and_letters():
    assert views.escape_markdown("two\nlines") == "two lines"
    assert views.escape_markdown("Ünïcode 東京") == "Ünïcode 東京"


def test_labels_and_shortening():
    assert views.item_label("7", "Dune") == "Dune (#7)"
    assert views.item_label("7", "") == "#7"
    assert views.shorten("a  very   long title indeed", 12) == "a very long…"
    assert views.shorten("short", 12) == "short"
    assert views.list_field("a|b||c") == "a, b, c"


def test_download_names_are_safe():
    key = state.graph_key(state.connection("http://x:1", "rest", "m", 1), "../../etc 7", 2, 5)
    assert data.download_name(key, "html") == "towergraph-______etc_7-depth2-fanout5.html"


# -- the command line -----------------------------------------------------------------------------

def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_ui_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["ui", *argv])


def test_ui_command_line(monkeypatch):
    args = parse("--server", "grpc://tf:8500", "--model-name", "books", "--port", "9000",
                 "--address", "0.0.0.0")
    assert args.func is cli.run_ui
    command, env = cli.streamlit_command(args.server, args.protocol, args.model_name,
                                         args.port, args.address, environ={"PATH": "/bin"})
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", cli.APP]
    assert cli.APP.endswith("ui/app.py")
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags["--server.port"] == "9000" and flags["--server.address"] == "0.0.0.0"
    assert flags["--server.headless"] == "true"
    assert env == {"PATH": "/bin", "TOWERGRAPH_SERVER": "grpc://tf:8500",
                   "TOWERGRAPH_PROTOCOL": "grpc", "TOWERGRAPH_MODEL_NAME": "books"}

    defaults = parse()
    assert (defaults.port, defaults.address, defaults.protocol) == (8502, "127.0.0.1", None)
    assert parse("--protocol", "GRPC").protocol == "grpc"
    with pytest.raises(SystemExit):
        parse("--port", "70000")

    calls = []
    monkeypatch.setattr(cli, "run_child", lambda command, env: calls.append((command, env)) or 0)
    assert cli.run_ui(parse("--server", "http://tf:8501")) == 0
    assert calls[0][1]["TOWERGRAPH_PROTOCOL"] == "rest"
    assert cli.run_ui(parse("--server", " ")) == 2
    assert cli.run_ui(parse("--server", "file:///etc/passwd")) == 2
    assert cli.run_ui(parse("--server", "http://tf:8501", "--model-name", "x/../y")) == 2

    # No server anywhere: a local run, whose page may change the connection.
    monkeypatch.delenv("TOWERGRAPH_SERVER", raising=False)
    _, env = cli.streamlit_command(parse().server, environ={"TOWERGRAPH_SERVER": "stale"})
    assert "TOWERGRAPH_SERVER" not in env
    assert state.settings_from_env(env).pinned is False


def test_stopping_towergraph_ui_stops_its_streamlit(tmp_path):
    """A real `towergraph ui` process: SIGTERM to it leaves no Streamlit child running."""
    import os
    import signal
    import subprocess
    import time

    import socket

    import psutil

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from towergraph.cli import main; sys.exit(main())",
         "ui", "--port", str(port), "--server", "http://127.0.0.1:9"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        children = []
        while not children and time.monotonic() < deadline:
            children = [child for child in psutil.Process(process.pid).children(recursive=True)
                        if "streamlit" in " ".join(child.cmdline())]
            time.sleep(0.2)
        assert children, "towergraph ui started no streamlit"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"streamlit still running after SIGTERM: {alive}"
    finally:
        if process.poll() is None:
            process.kill()


# -- cold items: drawn differently, labelled ------------------------------------------------------

def cold_graph() -> SimilarityGraph:
    """small_graph() where c (hop 1) and f (hop 3) are cold items."""
    result = small_graph()
    for node in result.graph:
        result.graph.nodes[node]["cold"] = node in ("c", "f")
    return result


def test_a_cold_item_is_drawn_as_a_dashed_diamond_in_its_hop_colour_and_labelled():
    drawn = {node["id"]: node for node in graph_view.graph_data(cold_graph(), 500)["nodes"]}
    for node in ("c", "f"):
        assert drawn[node]["cold"] is True
        assert drawn[node]["shape"] == "diamond"
        assert drawn[node]["shapeProperties"]["borderDashes"]
        hop_colour = HOP_COLOURS[drawn[node]["hop"]]
        assert drawn[node]["color"]["background"] == hop_colour      # the hop scheme stays
        assert drawn[node]["color"]["border"] != hop_colour          # a visible dashed edge
        assert COLD_TEXT in drawn[node]["title"]                     # the tooltip says it
    for node in ("a", "b", "d", "e"):                                # warm: dots as before
        assert drawn[node]["cold"] is False and "shape" not in drawn[node]
        assert drawn[node]["color"] == HOP_COLOURS[drawn[node]["hop"]]
        assert COLD_TEXT not in drawn[node]["title"]
    assert COLD_TEXT == "new — placed by its content, few ratings"


def test_the_legend_explains_cold_items_only_when_the_graph_has_some():
    legend = graph_view.graph_data(cold_graph(), 500)["legend"]
    cold = [entry for entry in legend if entry.get("shape") == "cold"]
    assert len(cold) == 1 and COLD_TEXT in cold[0]["text"] and "diamond" in cold[0]["text"]
    assert [entry["text"] for entry in legend[:4]] == graph_view.HOP_NAMES[:4]
    plain = graph_view.graph_data(small_graph(), 500)["legend"]
    assert not [entry for entry in plain if entry.get("shape")]
    js, css = graph_view._sources(True)
    assert 'entry.shape === "cold"' in js and ".tg-legend-cold" in css and "dashed" in css


def test_cold_items_are_labelled_in_lists_stats_and_suggestions():
    result = cold_graph()
    neighbours = views.neighbour_rows(result, "a")
    assert [(row["id"], row["new"]) for row in neighbours] == [("b", ""), ("c", COLD_TEXT)]
    assert list(neighbours[0])[-2:] == ["new", "id"]
    far = {row["id"]: row["new"] for row in views.few_hops_rows(result)}
    assert far == {"d": "", "e": "", "f": COLD_TEXT}
    assert "new" not in views.neighbour_rows(small_graph(), "a")[0]   # no cold: as before
    sentences = views.describe_stats(graph_stats(result))
    assert "2 items are new: placed by content alone" in " ".join(sentences)
    assert not any("new:" in sentence for sentence in views.describe_stats(
        graph_stats(small_graph())))
    items = [Item("3", "Three", "Drama", "", 0.5, cold=True), Item("4", "Four", "Drama", "", 0.4)]
    assert [row["new"] for row in views.item_rows(items)] == [COLD_TEXT, ""]
    assert [row["detail"] for row in suggest.rows(items)] == ["new · Drama", "Drama"]
    assert views.cold_note(True) == COLD_TEXT and views.cold_note(False) == ""


class ColdFakeClient:
    """Every third item is cold; item i's neighbours: i+1 .. i+k (mod 40)."""

    def _item(self, index: int, score: float = 1.0) -> Item:
        return Item(str(index), f"title {index}", "Drama", "", score, cold=index % 3 == 0)

    def item_info(self, item_ids):
        return [self._item(int(item_id)) for item_id in item_ids]

    def similar_items(self, item_ids, k=10):
        return [[self._item((int(item_id) + step) % 40, 0.9 - 0.01 * step)
                 for step in range(1, k + 1)] for item_id in item_ids]


def test_graphs_sent_ahead_keep_the_cold_flag():
    client = ColdFakeClient()
    key = state.graph_key(state.connection("http://x:8501", "rest", "m", 1), "1", 2, 3)
    bundle = data.graph_bundle(client, key)
    assert {node: d["cold"] for node, d in bundle.result.graph.nodes(data=True)} == \
        {node: int(node) % 3 == 0 for node in bundle.result.graph}
    sent = graph_view.next_data("1", data.next_graphs(client, bundle), 500, "ctx")
    assert set(sent["graphs"]) == {"2", "3", "4"}
    for graph in sent["graphs"].values():
        for node in graph["nodes"]:
            assert node["cold"] is (int(node["id"]) % 3 == 0)
            assert (node.get("shape") == "diamond") is node["cold"]
        assert any(entry.get("shape") == "cold" for entry in graph["legend"])


def test_the_start_page_reads_the_cold_output_of_catalog_items():
    class Transport:
        def predict(self, signature, inputs):
            rows = len(inputs["rows"])
            outputs = {"item_ids": np.array(["1", "2", "3"][:rows], object),
                       "titles": np.array(["One", "Two", "Three"][:rows], object),
                       "genres": np.array([""] * rows, object),
                       "authors": np.array([""] * rows, object),
                       "popularity": np.array([3.0, 2.0, 0.0][:rows]),
                       "found": np.ones(rows, bool), "catalog_size": np.array([3])}
            if self.cold:
                outputs["cold"] = np.array([False, False, True][:rows])
            return outputs

    class Client:
        transport = Transport()

    Client.transport.cold = True
    items, size = data.catalog_items(Client(), [0, 1, 2])
    assert [item.cold for item in items] == [False, False, True] and size == 3
    Client.transport.cold = False              # a model exported before cold items
    assert [item.cold for item in data.catalog_items(Client(), [0, 1, 2])[0]] == [False] * 3
