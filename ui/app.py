"""TowerGraph explorer: items like this one, a few hops away, from a served two-tower model.

    streamlit run ui/app.py            # or: towergraph ui --server http://localhost:8501

Defaults come from TOWERGRAPH_SERVER, TOWERGRAPH_PROTOCOL (rest|grpc) and
TOWERGRAPH_MODEL_NAME. Every request goes through TowerGraphClient; over REST the app never
imports TensorFlow. Nothing is written to disk: the graph page is built in memory.

Titles are data, not markup: they are shown through dataframes, plain-text widgets, or
Markdown with every special character escaped (ui.views.escape_markdown).
"""

import os
import secrets
import sys
import time
from typing import List, NamedTuple, Optional, Tuple

# `streamlit run ui/app.py` puts ui/ on sys.path, not the project: make `ui` and `serving`
# importable from a checkout as well as from an installed package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(1, _ROOT)

import streamlit as st  # noqa: E402

from serving.client import (ModelNotFound, ServerUnavailable, ServingError,  # noqa: E402
                            UnknownItems)
from towergraph.constants import MAX_GRAPH_DEPTH as MAX_DEPTH  # noqa: E402
from towergraph.constants import MAX_GRAPH_FANOUT as MAX_FANOUT  # noqa: E402
from towergraph.constants import MAX_SEARCH_QUERY_CHARS  # noqa: E402
from ui import data, graph_view, guard, state, suggest, views  # noqa: E402
from ui.views import escape_markdown as md  # noqa: E402

CRUMBS_SHOWN = 6
# After the graph, the rest of the tab waits this long (the neighbours' graphs are made
# meanwhile): the browser renders the graph's messages alone, not together with the tables
# and metrics below it (it batches the messages that arrive within about 10 ms).
DRAW_ALONE_S = 0.03
START_POPULAR = 12
START_RANDOM = 6
CLICK_HINT = ("Click an item to re-centre the graph on it; the browser's back button goes "
              "back. Hover for details; drag to move, scroll to zoom.")


# -- cached requests ------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=8)
def client_for(server: str, protocol: str, model_name: str):
    return data.open_client(server, protocol, model_name)


def _client(conn: state.Connection):
    return client_for(conn.server, conn.protocol, conn.model_name)


@st.cache_data(show_spinner="Building the graph…", max_entries=64)
def cached_graph(key: state.GraphKey) -> data.GraphBundle:
    """Keyed by (server, protocol, model name, model version, item, depth, fanout)."""
    return data.graph_bundle(_client(key.connection), key)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_next(key: state.GraphKey) -> dict:
    """The graphs of the centre's direct neighbours as the page draws them (graph_view)."""
    graphs = data.next_graphs(_client(key.connection), cached_graph(key))
    return graph_view.next_data(key.item, graphs, data.GRAPH_HEIGHT_PX, graph_context(key))


def graph_context(key: state.GraphKey) -> str:
    """What a drawn graph depends on besides its centre: the page keeps graphs per context."""
    conn = key.connection
    return "|".join(map(str, (conn.server, conn.protocol, conn.model_name, conn.version,
                              key.depth, key.fanout)))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_start(conn: state.Connection, seed: int) -> data.StartPoints:
    return data.start_points(_client(conn), START_POPULAR, START_RANDOM, seed)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_search(conn: state.Connection, query: str):
    return data.search(_client(conn), query)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_recommend(conn: state.Connection, user_id: str, session: tuple, k: int):
    return data.recommend(_client(conn), user_id, list(session), k)


# -- connection -----------------------------------------------------------------------------------

def connect(server: str, protocol: str, model_name: str):
    """(Connection, client) or (None, a message for the reader). Nothing the server answered
    is shown: a wrong address may answer anything (ui/guard.py)."""
    try:
        server, model_name = guard.check_server(server), guard.check_model_name(model_name)
    except guard.Rejected as error:
        return None, str(error)
    try:
        client = client_for(server, protocol.lower(), model_name)
        version = client.version()
    except ModelNotFound:
        return None, not_served(client_for(server, protocol.lower(), model_name), server,
                                model_name)
    except ServerUnavailable:
        return None, f"Cannot reach the server at {server} ({protocol}). Is TF Serving " \
                     f"running there, and is the address right?"
    except ImportError as error:
        return None, f"gRPC needs TensorFlow and tensorflow-serving-api, which this " \
                     f"installation lacks ({error}). Use REST."
    except Exception as error:  # a wrong address can fail in many ways; none is a traceback
        guard.log.warning("connecting to %s failed: %r", server, error)
        return None, f"Cannot talk to the server at {server} ({protocol}): it does not " \
                     f"answer as TF Serving does ({type(error).__name__})."
    return state.connection_of(client, version), client


def not_served(client, server: str, model_name: str) -> str:
    """Why the client found no version to serve: no such model, or none AVAILABLE yet."""
    try:
        status = client.status()
    except ServingError:
        status = {}
    if not status:
        return f"The server at {server} does not serve a model named {model_name!r}."
    states = ", ".join(f"version {v}: {s}" for v, s in sorted(status.items()))
    return f"Model {model_name!r} has no available version yet ({states})."


def connection_fields(settings: state.Settings):
    """(server, protocol, model name): fixed when the deployment pinned them, else editable."""
    if settings.pinned:
        st.caption(md(f"Model server: {settings.server} ({settings.protocol}), model "
                      f"{settings.model_name}. Set by the deployment; it cannot be changed "
                      f"here."))
        return settings.server, settings.protocol, settings.model_name
    server = st.text_input("Server", settings.server, key="server",
                           max_chars=guard.MAX_SERVER_LENGTH,
                           help="http://host:8501 for REST, grpc://host:8500 for gRPC")
    protocol = st.radio("Protocol", state.PROTOCOLS, horizontal=True, key="protocol",
                        index=state.PROTOCOLS.index(settings.protocol))
    model_name = st.text_input("Model name", settings.model_name, key="model_name",
                               max_chars=guard.MAX_MODEL_NAME)
    return server, protocol, model_name


def sidebar(settings: state.Settings):
    with st.sidebar:
        st.header("Connection")
        conn, client_or_problem = connect(*connection_fields(settings))
        with st.container(key="model_status"):
            if conn is None:
                st.error(md(client_or_problem))
            else:
                st.success(md(data.describe_client(client_or_problem, conn.version)))
        st.header("Graph")
        depth = st.slider("Depth: hops from the centre", 1, MAX_DEPTH, state.DEFAULT_DEPTH,
                          key="depth")
        fanout = st.slider("Fan-out: neighbours per item", 1, MAX_FANOUT,
                           state.DEFAULT_FANOUT, key="fanout")
    return conn, (None if conn else client_or_problem), depth, fanout


# -- the graph tab --------------------------------------------------------------------------------

def _titles() -> dict:
    return st.session_state.setdefault("titles", {})


def _labeller(item_ids, suffix=None):
    """A format_func over a snapshot of the titles known now (it may be called after the run)."""
    titles = _titles()
    labels = {item_id: views.item_label(item_id, titles.get(item_id, ""))
              + (suffix(item_id) if suffix else "") for item_id in item_ids}
    return lambda item_id: labels.get(item_id, str(item_id))


def _remember(items) -> None:
    _titles().update({item.item_id: item.title for item in items})


def _picked_suggestion(nav: state.Navigation):
    """A suggestion picked while typing: centre on it; its title becomes the query."""
    def pick(item) -> None:
        _remember([item])
        if item.title and len(item.title) <= MAX_SEARCH_QUERY_CHARS:
            st.session_state["query"] = " ".join(item.title.split())
        st.session_state["picked"] = item.item_id
        nav.go_to(item.item_id)
    return pick


class Found(NamedTuple):
    """What the search box's query gives, worked out before any search widget is drawn: the
    matches as the match list offers them and the one it shows unless another was picked
    there, or a message for the reader."""
    query: str
    ids: List[str]
    index: int = 0
    problem: Optional[Tuple[str, str]] = None      # ("error" | "info", message)


def _match_key(query: str) -> str:
    return f"match::{query}"


def search_box(conn: state.Connection) -> Found:
    """The query's matches, from the query's value in the session state (the text input's
    value, there before the widget is drawn). The match list's rules: the best match first;
    a suggestion picked by its title stays the pick, even when the search ranks it lower or
    not at all."""
    query = st.session_state.get("query")
    query = query if isinstance(query, str) else ""
    if not query.strip():
        return Found(query, [])
    try:
        matches = cached_search(conn, query)
    except ServingError as error:
        return Found(query, [], problem=("error", guard.public_message(error, "Search")))
    if not matches:
        return Found(query, [], problem=("info", f"No title matches {query.strip()!r}."))
    _remember(matches)
    ids = [item.item_id for item in matches]
    chosen = st.session_state.get("picked")
    if chosen not in ids and chosen is not None and \
            " ".join(str(_titles().get(chosen, "")).split()) == " ".join(query.split()):
        ids.insert(0, chosen)     # a suggestion picked by its title: it stays the pick
    return Found(query, ids, ids.index(chosen) if chosen in ids else 0)


def shown_match(found: Found) -> Optional[str]:
    """The match the match list will show: the one picked in it (its value in the session
    state, kept from the list's last run) or else its default; None without matches."""
    if not found.ids:
        return None
    picked = st.session_state.get(_match_key(found.query))
    return picked if picked in found.ids else found.ids[found.index]


def follow_pick(nav: state.Navigation, picked: Optional[str]) -> bool:
    """A new pick (a new query's best match, or another match) moves the centre; re-centring
    in the graph leaves the pick alone, so it does not pull the centre back."""
    if picked is None or picked == st.session_state.get("picked"):
        return False
    st.session_state["picked"] = picked
    nav.go_to(picked)
    return True


def find_item(conn: state.Connection, nav: state.Navigation, found: Found) -> None:
    """The search box, its suggestions and the match list, drawn after the graph: the centre
    they choose was followed before (search_box, shown_match)."""
    st.text_input("Find an item by title", key="query",
                  placeholder="type a few words of a title: suggestions appear; "
                              "Enter lists all matches")
    suggest.show("query", "suggest", lambda text: cached_search(conn, text),
                 _picked_suggestion(nav))
    if found.problem:
        kind, message = found.problem
        (st.error if kind == "error" else st.info)(md(message))
    if not found.ids:
        return
    picked = st.selectbox(f"Matches ({len(found.ids)}): pick one to centre the graph on",
                          found.ids, format_func=_labeller(found.ids),
                          key=_match_key(found.query), index=found.index)
    # The list shows what shown_match said; should it not, the list is right: the tab is run
    # again around its pick (once: the next run reads the pick from the list itself).
    if follow_pick(nav, picked) and not st.session_state.pop("search_rerun", False):
        st.session_state["search_rerun"] = True
        st.rerun(scope="fragment")
    st.session_state.pop("search_rerun", None)


def _recentre(nav: state.Navigation, widget_key: str) -> None:
    nav.go_to(st.session_state.get(widget_key))


def breadcrumb(nav: state.Navigation) -> None:
    trail = nav.trail
    if not trail:
        return
    st.caption("Earlier centres (click to go back):")
    label = _labeller(trail)
    with st.container(key="breadcrumb", horizontal=True):
        first = max(0, len(trail) - CRUMBS_SHOWN)
        if first:
            st.button("…", key="crumb-more", disabled=True)
        for index in range(first, len(trail)):
            st.button(md(views.shorten(label(trail[index]), 36)), key=f"crumb-{index}",
                      on_click=nav.back_to, args=(index,), icon=":material/undo:")


def _go_to_clicked(nav: state.Navigation):
    def go(item: str) -> None:
        try:
            nav.go_to(guard.check_item_id(item))
        except guard.Rejected:
            pass   # not an id the page drew: a forged message, ignored
    return go


def drawn_alone(key: state.GraphKey) -> None:
    """Spends DRAW_ALONE_S right after the graph is sent, making the neighbours' graphs
    (cached_next) first."""
    start = time.monotonic()
    try:
        cached_next(key)
    except ServingError:
        pass             # graph_tab sends none; its own call says nothing either
    time.sleep(max(0.0, DRAW_ALONE_S - (time.monotonic() - start)))


def graph_panel(bundle: data.GraphBundle, key: state.GraphKey, nav: state.Navigation) -> None:
    result, stats, centre = bundle.result, bundle.stats, bundle.centre
    info = result.graph.nodes[centre]
    with st.container(key="centre"):
        st.subheader(md(info["title"]))
        details = [views.list_field(info.get(field, "")) for field in ("authors", "genres")]
        details.append(views.cold_note(bool(info.get("cold"))))
        st.caption(md(" · ".join([f"item {centre}"] + [part for part in details if part])))
    breadcrumb(nav)
    with st.container(key="graph"):
        graph_view.show(result, "graph-view", data.GRAPH_HEIGHT_PX, _go_to_clicked(nav),
                        history=True, positions=bundle.positions, context=graph_context(key))
    drawn_alone(key)
    st.caption(CLICK_HINT)

    left, right = st.columns([3, 2], gap="medium")
    with left:
        with st.container(key="stats"):
            items, links, similarity = st.columns(3)
            items.metric("Items", stats["nodes"])
            links.metric("Links", stats["edges"])
            similarity.metric("Mean similarity", f"{stats['mean_score']:.2f}")
            st.markdown("\n".join(f"- {md(sentence)}"
                                  for sentence in views.describe_stats(stats)))
    with right:
        choices = views.recentre_choices(result, centre)
        if choices:
            hops = {node: result.graph.nodes[node]["hop"] for node in choices}
            pick_key = f"recentre::{key.item}::{key.depth}::{key.fanout}"
            with st.container(key="recentre"):
                st.selectbox("Or re-centre on (keyboard)", choices, key=pick_key, index=None,
                             placeholder="pick an item of the graph",
                             format_func=_labeller(choices, lambda node: f" · hop {hops[node]}"),
                             on_change=_recentre, args=(nav, pick_key))
        st.caption("Download this graph:")
        html_col, json_col, graphml_col = st.columns(3)
        html_col.download_button("HTML", bundle.html, data.download_name(key, "html"),
                                 "text/html", key="download-html", on_click="ignore")
        json_col.download_button("JSON", bundle.json, data.download_name(key, "json"),
                                 "application/json", key="download-json", on_click="ignore")
        graphml_col.download_button("GraphML", bundle.graphml,
                                    data.download_name(key, "graphml"),
                                    "application/graphml+xml", key="download-graphml",
                                    on_click="ignore")

    neighbours, far = st.columns(2, gap="medium")
    with neighbours:
        st.markdown("**Direct neighbours**")
        rows = views.neighbour_rows(result, centre)
        if rows:
            st.dataframe(rows, hide_index=True, key="neighbours", column_config={
                "similarity": st.column_config.ProgressColumn(
                    "similarity", format="%.3f", min_value=0.0, max_value=1.0)})
        else:
            st.text("The model found no neighbours.")
    with far:
        st.markdown("**A few hops away**")
        rows = views.few_hops_rows(result)
        if rows:
            st.dataframe(rows, hide_index=True, key="few-hops")
        else:
            st.text("Nothing two or more hops away: raise the depth to see further.")


def start_page(conn: state.Connection, nav: state.Navigation) -> None:
    """Where to begin without guessing a title: popular items and a few random ones."""
    seed = st.session_state.setdefault("start_seed", secrets.randbelow(2 ** 31))
    try:
        start = cached_start(conn, seed)
    except ServingError as error:
        st.info("Search for a title above: the graph of items like it appears here.")
        st.error(md(guard.public_message(error, "Loading the start page")))
        return
    _remember(start.popular + start.random)
    with st.container(key="start"):
        size = (f"{start.catalog_size:,} items" if start.catalog_size is not None
                else "an unknown number of items")
        st.markdown(md(f"Model {conn.model_name}, version {conn.version}: {size}. "
                       f"Search a title above, or start from one of these."))
        for heading, items, prefix in (("Most popular", start.popular, "start-popular"),
                                       ("A few at random", start.random, "start-random")):
            if not items:
                continue
            st.markdown(f"**{heading}**")
            with st.container(key=prefix, horizontal=True):
                for index, item in enumerate(items):
                    st.button(md(views.shorten(item.title or item.item_id, 40)),
                              key=f"{prefix}-{index}", on_click=nav.go_to,
                              args=(item.item_id,),
                              icon=":material/fiber_new:" if item.cold else None,
                              help=md(views.cold_note(item.cold)) or None)
        if start.random:
            st.button("Other random items", key="start-reshuffle", icon=":material/shuffle:",
                      on_click=st.session_state.pop, args=("start_seed",))


def same_version(conn: state.Connection) -> bool:
    """In a rerun of the graph tab alone: is the version the page was built for still the one
    served? If not, the whole page is rerun (status line, cache keys); this run stops. Asked
    at the end of the tab's run, after the graph is on its way to the browser: a version
    pushed during the run is found then, as it would be at the start of the next."""
    try:
        version = _client(conn).version()
    except ServingError:
        return True        # the graph's own requests say what is wrong
    if version != conn.version:
        st.rerun(scope="app")
    return True


@st.fragment
def graph_tab(conn: state.Connection, depth: int, fanout: int, nav: state.Navigation) -> None:
    """A fragment: a search, a click or a back step reruns this tab only, not the sidebar and
    the other tabs (a shorter path from Enter to the drawn graph)."""
    graph_tab_content(conn, depth, fanout, nav)
    same_version(conn)


def graph_tab_content(conn: state.Connection, depth: int, fanout: int,
                      nav: state.Navigation) -> None:
    """The search above the graph on the page, but a new graph's messages are sent first: the
    browser renders it without waiting for the search widgets (on an Enter, the match list
    and the rest of the search arrive after the graph; the browser renders the messages that
    arrive within about 10 ms together). The centre is chosen from the query before any
    search widget is drawn (search_box, shown_match), by the same rules."""
    found = search_box(conn)
    follow_pick(nav, shown_match(found))
    bundle = key = problem = None
    if nav.centre is not None:
        key = state.graph_key(conn, nav.centre, depth, fanout)
        try:
            bundle = cached_graph(key)
        except UnknownItems:
            same_version(conn)        # a newer model may know it: the whole page reruns
            problem = ("warning", f"Item {nav.centre!r} is not in version {conn.version} "
                                  f"of the model; going back.")
            nav.forget()
        except ServingError as error:
            problem = ("error", guard.public_message(error, "Building the graph"))
    # Made once the graph is at hand, in the page's order. Filled graph first when the graph
    # changes (an Enter, a pick, a click, a back step); else (typing: the suggestions, or
    # the match list's reruns) the search first, the graph being the same as before.
    search, graph = st.container(), st.container()
    graph_first = st.session_state.get("drawn_graph") != (key, problem)
    st.session_state["drawn_graph"] = (key, problem)

    def fill_graph() -> None:
        with graph:
            if problem:
                kind, message = problem
                (st.warning if kind == "warning" else st.error)(md(message))
            elif bundle is None:
                start_page(conn, nav)
            else:
                _titles().update(views.node_titles(bundle.result))
                if st.query_params.get("item") != nav.centre:
                    st.query_params["item"] = nav.centre  # a link to this centre: ?item=ID
                graph_panel(bundle, key, nav)

    def fill_search() -> None:
        with search:
            find_item(conn, nav, found)

    for fill in ((fill_graph, fill_search) if graph_first else (fill_search, fill_graph)):
        fill()
    if bundle is None:
        return
    try:
        ahead = cached_next(key)
    except ServingError:
        ahead = graph_view.next_data(key.item, {}, data.GRAPH_HEIGHT_PX, graph_context(key))
    with graph:
        graph_view.show_next("graph-next", ahead)  # last: the graph above is drawn first


# -- the compare tab ------------------------------------------------------------------------------

def pick_item(conn: state.Connection, label: str, key: str):
    """A title search and its best match (or another of the matches): an item id or None."""
    query = st.text_input(label, key=f"{key}-query", placeholder="a few words of a title")
    if not query.strip():
        return None
    try:
        matches = cached_search(conn, query)
    except ServingError as error:
        st.error(md(guard.public_message(error, "Search")))
        return None
    if not matches:
        st.info(md(f"No title matches {query.strip()!r}."))
        return None
    _remember(matches)
    ids = [item.item_id for item in matches]
    return st.selectbox("Match", ids, format_func=_labeller(ids), key=f"{key}-match::{query}")


def compare_tab(conn: state.Connection, depth: int, fanout: int) -> None:
    st.markdown("Two items' graphs side by side: does one fan out into ever new items while "
                "the other stays among the same, inter-linked ones?")
    first_col, second_col = st.columns(2, gap="medium")
    picked, bundles = [], []
    for column, label, key in ((first_col, "First item", "cmp-a"),
                               (second_col, "Second item", "cmp-b")):
        with column:
            item = pick_item(conn, label, key)
            picked.append(item)
            if item is None:
                bundles.append(None)
                continue
            try:
                bundle = cached_graph(state.graph_key(conn, item, depth, fanout))
            except ServingError as error:
                st.error(md(guard.public_message(error, "Building the graph")))
                bundles.append(None)
                continue
            bundles.append(bundle)
            with st.container(key=f"{key}-panel"):
                st.subheader(md(bundle.result.graph.nodes[item]["title"]))
                graph_view.show(bundle.result, f"{key}-graph", data.COMPARE_HEIGHT_PX,
                                positions=bundle.positions)
                stats = bundle.stats
                shape, single, clustering = st.columns(3)
                shape.metric("Shape", views.shape_word(stats))
                single.metric("Edge items on one link",
                              views.percent(float(stats.get("outer_single_link", 0))))
                clustering.metric("Clustering",
                                  f"{float(stats.get('average_clustering', 0)):.2f}")
                st.markdown("\n".join(f"- {md(sentence)}"
                                      for sentence in views.describe_stats(stats)))
    if all(bundles):
        rows = data.shared_items(bundles[0].result, bundles[1].result)
        with st.container(key="cmp-shared"):
            st.markdown(md(f"In both graphs: {views.plural(len(rows), 'item')}."))
            if rows:
                st.dataframe(rows, hide_index=True, key="cmp-shared-table")


# -- the recommendations tab ----------------------------------------------------------------------

def recommendations_tab(conn: state.Connection) -> None:
    st.markdown("Recommendations for a known user, for a browsing session (a cold start), "
                "or for both. With neither, the model falls back to popular items.")
    user_col, session_col = st.columns([1, 2], gap="medium")
    with user_col:
        user_id = st.text_input("User id", key="rec_user",
                                placeholder="an id from the training data")
        k = st.slider("How many", 1, 20, 10, key="rec_k")
    with session_col:
        query = st.text_input("Find browsed items by title", key="rec_query",
                              placeholder="a few words of a title, then Enter")
        selected = list(st.session_state.get("rec_session", []))
        options = list(selected)
        if query.strip():
            try:
                matches = cached_search(conn, query)
            except ServingError as error:
                st.error(md(guard.public_message(error, "Search")))
                matches = []
            _remember(matches)
            options += [item.item_id for item in matches if item.item_id not in options]
            if not matches:
                st.caption(md(f"No title matches {query.strip()!r}."))
        session = st.multiselect("Session: items browsed", options,
                                 format_func=_labeller(options),
                                 key="rec_session", max_selections=50,
                                 placeholder="search above, then pick items")
    try:
        recs = cached_recommend(conn, user_id.strip(), tuple(session), k)
    except ServingError as error:
        st.error(md(guard.public_message(error, "Recommendations")))
        return
    _remember(recs.items)
    with st.container(key="rec-result"):
        lines = views.describe_recommendations(recs, user_id.strip(), session)
        st.info(md(lines[0]))
        for line in lines[1:]:
            st.warning(md(line))
        if recs.items:
            st.dataframe(views.item_rows(recs.items), hide_index=True, key="recommendations")


# -- the page -------------------------------------------------------------------------------------

def main() -> None:
    st.set_page_config(page_title="TowerGraph explorer", page_icon=":material/hub:",
                       layout="wide")
    nav = state.Navigation(st.session_state)
    if not st.session_state.get("started"):
        st.session_state["started"] = True
        link = st.query_params.get("item")  # a shared link: ?item=ID
        if link:
            try:
                nav.go_to(guard.check_item_id(link))
            except guard.Rejected as error:
                st.warning(md(f"The link's item is ignored: {error}"))
    conn, problem, depth, fanout = sidebar(state.settings_from_env())
    st.title("TowerGraph explorer")
    if conn is None:
        st.error(md(problem))
        return
    graph, compare, recommendations = st.tabs(["Similarity graph", "Compare two items",
                                               "Recommendations"])
    with graph:
        graph_tab(conn, depth, fanout, nav)
    with compare:
        compare_tab(conn, depth, fanout)
    with recommendations:
        recommendations_tab(conn)


main()
