"""The Streamlit app's flows (streamlit.testing AppTest) against the TF Serving stand-in on the
tiny world's model, started in this process."""

import html
import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import tiny_world
from serving.client import TowerGraphClient
from serving.graph import build_graph
from serving.standin import serve_in_process
from serving.graph import graph_stats
from serving.graph_export import COLD_TEXT
from ui import data, state, views

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
HOSTILE_TITLE = tiny_world.title_of(tiny_world.HOSTILE_ITEM)


@pytest.fixture(scope="module")
def standin(tiny_model_base):
    with serve_in_process(tiny_model_base, tiny_world.MODEL_NAME, poll_seconds=0) as server:
        yield server


@pytest.fixture(scope="module")
def client(standin):
    with TowerGraphClient.connect(standin.rest_url, tiny_world.MODEL_NAME) as client:
        yield client


@pytest.fixture
def app(standin, monkeypatch):
    """The app, its defaults pointing at the stand-in over REST."""
    monkeypatch.setenv(state.ENV_SERVER, standin.rest_url)
    monkeypatch.delenv(state.ENV_PROTOCOL, raising=False)
    monkeypatch.delenv(state.ENV_MODEL_NAME, raising=False)
    return AppTest.from_file(APP, default_timeout=60)


@pytest.fixture
def local_app(monkeypatch):
    """A local run: no server given, so the page's connection fields are editable."""
    for name in (state.ENV_SERVER, state.ENV_PROTOCOL, state.ENV_MODEL_NAME):
        monkeypatch.delenv(name, raising=False)
    return AppTest.from_file(APP, default_timeout=60)


def page_text(at) -> str:
    """Every value, label and body the page shows, sidebar included."""
    parts = []
    for element in list(at.main) + list(at.sidebar):
        for name in ("value", "label", "body", "help", "placeholder"):
            try:
                value = getattr(element, name, None)
            except Exception:  # noqa: BLE001 - some elements compute values lazily
                value = None
            if value is not None:
                parts.append(str(value))
    return " ".join(parts).replace("\\", "")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def texts(elements):
    """Element texts with Markdown escapes removed."""
    return [element.value.replace("\\", "") for element in elements]


def shows_as_text(markdown: str, text: str) -> bool:
    """Rendered as CommonMark (raw HTML allowed), the Markdown source shows `text` literally."""
    rendered = MarkdownIt("commonmark", {"html": True}).render(markdown)
    return html.escape(text, quote=False).replace('"', "&quot;") in rendered


def metric(at, label):
    return next(int(element.value) for element in at.metric if element.label == label)


def table(at, column):
    """The dataframe with this column: neighbours (similarity), a few hops away (path),
    recommendations (rank)."""
    return next(frame.value for frame in at.dataframe
                if column in frame.value.columns)


def search(at, query):
    at.text_input(key="query").input(query).run()
    assert not at.exception, at.exception
    return at


# -- connection problems --------------------------------------------------------------------------

def test_server_down_is_a_clear_message(monkeypatch):
    monkeypatch.setenv(state.ENV_SERVER, f"http://127.0.0.1:{closed_port()}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("Cannot reach the server at http://127.0.0.1:" in message
               for message in texts(at.error))
    assert "Traceback" not in " ".join(texts(at.error))
    assert not at.tabs                       # nothing else is drawn without a server


def test_missing_model_is_a_clear_message(app, monkeypatch):
    monkeypatch.setenv(state.ENV_MODEL_NAME, "no_such_model")
    at = app.run()
    assert not at.exception
    message = " ".join(texts(at.error))
    assert "does not serve a model named" in message and "no_such_model" in message


def test_bad_address_is_a_clear_message(local_app):
    at = local_app.run()
    at.sidebar.text_input(key="server").input("http://").run()
    assert not at.exception
    assert any("must name a host" in message for message in texts(at.error))


# -- a deployed explorer cannot be turned against the network (issue 14) --------------------------

def test_a_deployed_explorer_is_pinned_to_its_server(app, standin):
    at = app.run()
    assert not at.exception
    assert not at.sidebar.text_input and not at.sidebar.radio     # nothing to edit
    assert "cannot be changed here" in page_text(at)
    # A visitor's forged widget values (any websocket client can send some) change nothing.
    at.session_state["server"] = "http://169.254.169.254"
    at.session_state["model_name"] = "../../computeMetadata"
    at.run()
    assert not at.exception
    assert "towergraph version 1" in at.sidebar.success[0].value.replace("\\", "")


def test_a_local_run_refuses_other_schemes_and_hostile_model_names(local_app, standin,
                                                                    monkeypatch):
    opened = []
    real = data.open_client
    monkeypatch.setattr(data, "open_client", lambda *args, **kw: opened.append(args) or
                        real(*args, **kw))
    at = local_app.run()
    at.sidebar.text_input(key="server").input("file:///etc/passwd").run()
    assert any("must start with http://, https:// or grpc://" in message
               for message in texts(at.error))
    at.sidebar.text_input(key="server").input(standin.rest_url)
    at.sidebar.text_input(key="model_name").input("towergraph/../../x?").run()
    assert not at.exception
    assert any("A model name starts with a letter or digit" in message
               for message in texts(at.error))
    assert all(args[0] == "http://localhost:8501" for args in opened), opened
    at.sidebar.text_input(key="model_name").input(tiny_world.MODEL_NAME).run()
    assert "towergraph version 1" in at.sidebar.success[0].value.replace("\\", "")


@pytest.fixture
def hostile_server():
    """An HTTP server answering every request with a non-JSON body holding a secret."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 500

        def do_GET(self):  # noqa: N802 - the http.server API
            body = b"root:x:0:0 INTERNAL-SECRET <b>metadata</b>"
            self.send_response(Handler.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, Handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [500, 404, 400])
def test_no_answer_of_a_failed_call_is_shown(hostile_server, monkeypatch, status):
    server, handler = hostile_server
    handler.status = status
    monkeypatch.setenv(state.ENV_SERVER, f"http://127.0.0.1:{server.server_address[1]}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.sidebar.error, "the failure is reported"
    assert "INTERNAL-SECRET" not in page_text(at) and "root:x" not in page_text(at)


# -- the graph ------------------------------------------------------------------------------------

def test_search_draws_the_graph_for_depth_and_fanout(app, client):
    at = app.run()
    assert not at.exception
    assert "towergraph version 1" in at.sidebar.success[0].value.replace("\\", "")
    first = client.search("Dragon Chronicles 4", 20)[0]

    search(at, "Dragon Chronicles 4")
    assert at.selectbox(key="match::Dragon Chronicles 4").value == first.item_id
    assert at.subheader[0].value == first.title
    expected = build_graph(client, [first.item_id], state.DEFAULT_DEPTH, state.DEFAULT_FANOUT)
    assert metric(at, "Items") == expected.graph.number_of_nodes()

    at.sidebar.slider(key="depth").set_value(2)
    at.sidebar.slider(key="fanout").set_value(5).run()
    expected = build_graph(client, [first.item_id], 2, 5)
    assert metric(at, "Items") == expected.graph.number_of_nodes()
    assert metric(at, "Links") == expected.graph.number_of_edges()
    stats = at.get("markdown")[0].value.replace("\\", "")
    assert f"{expected.graph.number_of_nodes()} items joined by" in stats
    assert "Its shape is " in stats

    neighbours = table(at, "similarity")
    assert len(neighbours) == expected.graph.degree(first.item_id)
    assert sorted(neighbours["id"]) == sorted(expected.graph.neighbors(first.item_id))
    far = table(at, "path")
    assert len(far) == len(expected.nodes_at(2))
    for _, row in far.iterrows():
        assert row["path"].startswith(f"{first.title} → ") and row["path"].endswith(row["title"])
    assert at.query_params["item"] == [first.item_id]
    downloads = [element for element in at.main if type(element).__name__ == "DownloadButton"]
    assert [button.label for button in downloads] == ["HTML", "JSON", "GraphML"]


def test_recentre_and_go_back(app, client):
    at = search(app.run(), "Dragon Chronicles 4")
    centre = at.selectbox(key="match::Dragon Chronicles 4").value
    recentre = next(box for box in at.selectbox if box.key.startswith("recentre::"))
    target = build_graph(client, [centre], 2, state.DEFAULT_FANOUT).nodes_at(2)[0]
    recentre.set_value(target).run()          # picking re-centres (the keyboard's way to click)
    assert not at.exception
    title = client.item_info([target])[0].title
    assert at.subheader[0].value == title
    assert at.session_state["centre"] == target and at.session_state["trail"] == [centre]
    assert at.button(key="crumb-0")               # the breadcrumb holds the old centre
    assert at.query_params["item"] == [target]

    at.button(key="crumb-0").click().run()
    assert at.session_state["centre"] == centre and at.session_state["trail"] == []
    assert at.subheader[0].value.replace("\\", "") == client.item_info([centre])[0].title


def sent_order(messages):
    """What a run sent, in the order it was sent: ("graph", component key) for the graph
    components, ("Matches", label) for the match list, ("query", label) for the search box."""
    order = []
    for message in messages:
        element = message.delta.new_element if message.HasField("delta") else None
        if element is None or not element.ListFields():
            continue
        kind = element.WhichOneof("type")
        if kind == "bidi_component" and element.bidi_component.component_name.endswith("towergraph_graph"):
            order.append(("graph", element.bidi_component.id))
        elif kind == "selectbox" and element.selectbox.label.startswith("Matches"):
            order.append(("Matches", element.selectbox.label))
        elif kind == "text_input" and element.text_input.label == "Find an item by title":
            order.append(("query", element.text_input.label))
    return order


@pytest.fixture
def sent(monkeypatch):
    """The messages of each AppTest run, in the order the script sent them."""
    from streamlit.testing.v1 import local_script_runner

    runs = []
    parse = local_script_runner.parse_tree_from_messages

    def recording(messages):
        runs.append(list(messages))
        return parse(messages)

    monkeypatch.setattr(local_script_runner, "parse_tree_from_messages", recording)
    return runs


def assert_graph_sent_first(messages):
    kinds = [kind for kind, _ in sent_order(messages)]
    assert kinds[:1] == ["graph"] and "Matches" in kinds and "query" in kinds, kinds
    assert kinds.index("graph") < kinds.index("query") < kinds.index("Matches"), kinds


def test_on_an_enter_the_graph_is_sent_before_the_search(app, client, sent):
    """A new graph's messages go out before the search widgets' (the browser renders them
    first), and the centre chosen before the widgets is the one they show: the best match on
    an Enter, another match picked in the list, a suggestion picked by its title."""
    at = search(app.run(), "Robot Chronicles 1")
    found = data.search(client, "Robot Chronicles 1")
    matches = [item.item_id for item in found]
    assert len(matches) > 2
    listed = at.selectbox(key="match::Robot Chronicles 1")
    assert listed.value == matches[0] == at.session_state["centre"]
    assert list(listed.options) == [views.item_label(item.item_id, item.title)
                                    for item in found]
    assert at.subheader[0].value == client.item_info([matches[0]])[0].title
    assert_graph_sent_first(sent[-1])
    # visual order is unchanged: the search box above the graph
    kinds = [type(element).__name__ for element in at.main]
    assert kinds.index("TextInput") < kinds.index("Selectbox") < kinds.index("Subheader")

    listed.set_value(matches[2]).run()               # another match, picked in the list
    assert not at.exception
    assert at.selectbox(key="match::Robot Chronicles 1").value == matches[2]
    assert at.session_state["centre"] == matches[2]
    assert at.session_state["trail"] == [matches[0]]
    assert at.subheader[0].value == client.item_info([matches[2]])[0].title
    assert_graph_sent_first(sent[-1])

    at.run()                                          # a rerun keeps the pick and the centre
    assert at.selectbox(key="match::Robot Chronicles 1").value == matches[2]
    assert at.session_state["centre"] == matches[2]
    # With the same graph (typing: the suggestions' reruns) the search goes first, as before.
    kinds = [kind for kind, _ in sent_order(sent[-1])]
    assert kinds.index("query") < kinds.index("Matches") < kinds.index("graph"), kinds

    # A suggestion picked while typing (what its callback leaves: its title is the query, it
    # is the pick and the centre) stays the pick when the search does not list it. (In the
    # tiny world every title finds its own item first: here the picked item's title is set.)
    query = tiny_world.title_of(3)
    listed_ids = [item.item_id for item in data.search(client, query)]
    picked = next(str(item) for item in range(tiny_world.N_ITEMS)
                  if str(item) not in listed_ids)
    at.session_state["titles"] = {**at.session_state["titles"], picked: query}
    at.session_state["query"] = query
    at.session_state["picked"] = picked
    at.session_state["centre"], at.session_state["trail"] = picked, [matches[2]]
    at.run()
    assert not at.exception
    listed = at.selectbox(key=f"match::{query}")
    assert listed.value == picked and listed.options[0].endswith(f"(#{picked})")
    assert at.session_state["centre"] == picked
    assert at.subheader[0].value == tiny_world.title_of(int(picked))
    assert_graph_sent_first(sent[-1])


def test_a_link_opens_an_item_and_titles_stay_text(app):
    app.query_params["item"] = str(tiny_world.HOSTILE_ITEM)
    at = app.run()
    assert not at.exception
    assert at.session_state["centre"] == str(tiny_world.HOSTILE_ITEM)
    assert shows_as_text(at.subheader[0].value, HOSTILE_TITLE)
    # Wherever Markdown is rendered, the markup is escaped; elsewhere it is plain text.
    markdown_kinds = {"Markdown", "Subheader", "Caption", "Info", "Warning", "Error", "Success",
                      "Title", "Button"}
    for element in at.main:
        if type(element).__name__ in markdown_kinds:
            source = getattr(element, "value", None) or getattr(element, "label", "")
            assert "<img" not in source.replace("\\<", ""), (element, source)

    recentre = next(box for box in at.selectbox if box.key.startswith("recentre::"))
    recentre.set_value(recentre.options[0]).run()       # move on, then look at the breadcrumb
    crumb = at.button(key="crumb-0")
    assert shows_as_text(crumb.label, "The Robot Chronicles 39 <img src=x…")


def test_unknown_item_in_a_link_is_a_warning(app):
    app.query_params["item"] = "no-such-item"
    at = app.run()
    assert not at.exception
    assert any("is not in version 1 of the model" in message
               for message in texts(at.warning))


def test_grpc(standin, monkeypatch):
    monkeypatch.setenv(state.ENV_SERVER, f"grpc://{standin.grpc_target}")
    monkeypatch.delenv(state.ENV_PROTOCOL, raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert f"grpc://{standin.grpc_target} (gRPC)" in page_text(at)
    search(at, "Robot Chronicles 7")
    assert at.subheader[0].value == "The Robot Chronicles 7"
    assert metric(at, "Items") > 1


def test_a_new_model_version_is_not_answered_from_the_cache(tiny_model_base, tmp_path,
                                                            monkeypatch):
    base = tmp_path / tiny_world.MODEL_NAME
    shutil.copytree(tiny_model_base / "1", base / "1")
    calls = []
    real = data.graph_bundle
    monkeypatch.setattr(data, "graph_bundle", lambda client, key: calls.append(key) or
                        real(client, key))
    with serve_in_process(base, tiny_world.MODEL_NAME, grpc_port=None,
                          poll_seconds=0) as server:
        monkeypatch.setenv(state.ENV_SERVER, server.rest_url)
        at = search(AppTest.from_file(APP, default_timeout=60).run(), "Dragon Chronicles 6")
        at.sidebar.slider(key="fanout").set_value(3).run()
        at.sidebar.slider(key="fanout").set_value(state.DEFAULT_FANOUT).run()
        assert [key.connection.version for key in calls] == [1, 1]    # the third: cached

        shutil.copytree(base / "1", base / "2")
        server.repository.poll()     # seen once, unchanged the next time: loaded, as TF
        server.repository.poll()     # Serving waits for a version to be completely written
        at.run()
        assert "version 2" in at.sidebar.success[0].value
        assert [key.connection.version for key in calls] == [1, 1, 2]


def test_over_rest_the_app_never_imports_tensorflow(standin):
    # A fresh interpreter: this one has TensorFlow loaded for the stand-in.
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["TOWERGRAPH_SERVER"] = {standin.rest_url!r}
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        at.text_input(key="query").input("Dragon").run()
        assert not at.exception and at.metric, at
        at.text_input(key="rec_user").input("u1").run()
        assert not at.exception and at.dataframe, at
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in
                        ("tensorflow", "tensorflow_serving", "grpc", "tfx"))
        print("LOADED", loaded)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(APP).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout, done.stdout


# -- the start page and the comparison -----------------------------------------------------------

def test_the_start_page_offers_popular_and_random_items(app, client):
    at = app.run()
    assert not at.exception and at.session_state["centre"] is None
    start = " ".join(texts(at.get("markdown")))
    size = len(tiny_world.catalog(tiny_world.interactions()))
    assert f"towergraph, version 1: {size:,} items" in start
    popular = [button for button in at.button if button.key.startswith("start-popular-")]
    random_ = [button for button in at.button if button.key.startswith("start-random-")]
    expected = [item.title for item in data.catalog_items(client, range(len(popular)))[0]]
    assert [button.label.replace("\\", "") for button in popular] == [
        views.shorten(title, 40) for title in expected]
    assert len(popular) == 12 and len(random_) == 6
    assert not {b.label for b in random_} & {b.label for b in popular}
    random_[0].click().run()                       # one click: a graph
    assert not at.exception and at.session_state["centre"] is not None
    assert metric(at, "Items") > 1


def test_compare_two_items_side_by_side(app, client):
    at = app.run()
    at.text_input(key="cmp-a-query").input("Dragon Chronicles 4")
    at.text_input(key="cmp-b-query").input("Robot Chronicles 7").run()
    assert not at.exception
    first = client.search("Dragon Chronicles 4", 20)[0].item_id
    second = client.search("Robot Chronicles 7", 20)[0].item_id
    a = build_graph(client, [first], state.DEFAULT_DEPTH, state.DEFAULT_FANOUT)
    b = build_graph(client, [second], state.DEFAULT_DEPTH, state.DEFAULT_FANOUT)
    shapes = [m.value for m in at.metric if m.label == "Shape"]
    assert shapes == [views.shape_word(graph_stats(a)), views.shape_word(graph_stats(b))]
    shared = set(a.graph) & set(b.graph)
    assert f"In both graphs: {views.plural(len(shared), 'item')}." in " ".join(
        texts(at.get("markdown")))
    if shared:
        assert set(table(at, "hops from first")["id"]) == shared


# -- recommendations ------------------------------------------------------------------------------

def recommend(at, user="", session_query="", session=()):
    at.text_input(key="rec_user").input(user)
    at.text_input(key="rec_query").input(session_query).run()
    at.multiselect(key="rec_session").set_value(list(session)).run()
    assert not at.exception, at.exception
    result = table(at, "rank")
    return at.info[-1].value.replace("\\", ""), result


def test_recommendations_for_user_session_and_both(app, client):
    at = app.run()
    at.slider(key="rec_k").set_value(5)

    strategy, result = recommend(at, user="u1")
    assert strategy.startswith("Strategy: user — from the user's history")
    assert list(result["id"]) == [item.item_id for item in client.recommend("u1", [], 5).items]

    robots = [item.item_id for item in client.search("Robot Chronicles 1", 3)]
    assert set(at.multiselect(key="rec_session").options) == set()
    strategy, result = recommend(at, session_query="Robot Chronicles 1", session=robots[:2])
    assert strategy.startswith("Strategy: session — from the browsing session alone")
    assert len(result) == 5 and not set(result["id"]) & set(robots[:2])
    assert all(genre == "Science Fiction" for genre in result["genres"])

    strategy, result = recommend(at, user="u2", session_query="Robot Chronicles 1",
                                 session=robots[:2])
    assert strategy.startswith("Strategy: user+session")
    expected = client.recommend("u2", robots[:2], 5)
    assert list(result["id"]) == [item.item_id for item in expected.items]

    # The session is kept while another search offers other items to add.
    at.text_input(key="rec_query").input("Dragon").run()
    assert at.multiselect(key="rec_session").value == robots[:2]
    assert len(at.multiselect(key="rec_session").options) > 2

    strategy, _ = recommend(at, user="nobody", session_query="", session=())
    assert strategy.startswith("Strategy: popular")
    assert any("'nobody' is not known" in message for message in
               (warning.value.replace("\\", "") for warning in at.warning))


# -- cold items ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cold_standin(cold_world):
    """The stand-in serving tests/test_cold_start.py's model: items 30..39 are cold."""
    with serve_in_process(Path(cold_world["path"]).parent, tiny_world.MODEL_NAME,
                          poll_seconds=0) as server:
        yield server


def test_a_cold_item_is_drawn_and_labelled_as_new(cold_standin, monkeypatch, sent):
    monkeypatch.setenv(state.ENV_SERVER, cold_standin.rest_url)
    monkeypatch.delenv(state.ENV_PROTOCOL, raising=False)
    monkeypatch.delenv(state.ENV_MODEL_NAME, raising=False)
    with TowerGraphClient.connect(cold_standin.rest_url, tiny_world.MODEL_NAME) as client:
        query = tiny_world.title_of(35)
        centre = client.search(query, 5)[0]
        assert centre.cold                               # the model says it is cold
        at = search(AppTest.from_file(APP, default_timeout=60).run(), query)
    assert at.session_state["centre"] == centre.item_id
    assert COLD_TEXT in " ".join(texts(at.caption))   # the centre's card

    drawn = None
    for message in sent[-1]:
        element = message.delta.new_element if message.HasField("delta") else None
        if element is not None and element.WhichOneof("type") == "bidi_component" and \
                element.bidi_component.component_name.endswith("towergraph_graph"):
            drawn = json.loads(element.bidi_component.json)
    nodes = {node["id"]: node for node in drawn["nodes"]}
    assert {node: options["cold"] for node, options in nodes.items()} == \
        {node: int(node) >= 30 for node in nodes}
    for options in nodes.values():
        assert (options.get("shape") == "diamond") is options["cold"]
        assert (COLD_TEXT in options["title"]) is options["cold"]
    assert any(entry.get("shape") == "cold" and COLD_TEXT in entry["text"]
               for entry in drawn["legend"])

    neighbours = table(at, "similarity")
    assert {row["id"]: row["new"] == COLD_TEXT for _, row in neighbours.iterrows()} == \
        {row["id"]: int(row["id"]) >= 30 for _, row in neighbours.iterrows()}
    assert "new: placed by content alone" in " ".join(texts(at.get("markdown")))
