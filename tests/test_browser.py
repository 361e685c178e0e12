"""The explorer in a real browser: `streamlit run ui/app.py` (started as `towergraph ui` starts
it) against the TF Serving stand-in on the tiny world's model, driven by Playwright with
Debian's Chromium.

Needs /usr/bin/chromium (`make install` / `apt-get install chromium`) and the playwright package
(requirements/browser.txt). Playwright's own browser downloads are never used.

Screenshots go to the test's tmp_path; with TOWERGRAPH_SAVE_SCREENSHOT=1 one also goes to
docs/screenshot.png for the README.
"""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

import tiny_world
from serving.client import TowerGraphClient
from serving.graph import build_graph
from serving.standin import serve_in_process
from ui import cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 30_000
HOSTILE_ID = str(tiny_world.HOSTILE_ITEM)
HOSTILE_TITLE = tiny_world.title_of(tiny_world.HOSTILE_ITEM)


def _sync_playwright():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser test uses Debian's Chromium. Run "
                    f"`make install` (CI does), or `apt-get install -y chromium` as root.",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `make install`, or `.venv/bin/pip "
                    "install --no-deps -r requirements/browser.txt`", pytrace=False)
    return sync_playwright


@pytest.fixture(scope="module")
def standin(tiny_model_base):
    with serve_in_process(tiny_model_base, tiny_world.MODEL_NAME, grpc_port=None,
                          poll_seconds=0) as server:
        yield server


@pytest.fixture(scope="module")
def client(standin):
    with TowerGraphClient.connect(standin.rest_url, tiny_world.MODEL_NAME) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(standin, tmp_path_factory):
    """The explorer as `towergraph ui --server <stand-in>` runs it, on a free port."""
    port = _free_port()
    command, env = cli.streamlit_command(standin.rest_url, "rest", tiny_world.MODEL_NAME,
                                         port, "127.0.0.1")
    log_path = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path_factory.getbasetemp(),
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n"
                            f"{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    with _sync_playwright()() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1250})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


# -- driving the page -----------------------------------------------------------------------------

def expect(locator):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(locator)


def open_app(page, url):
    page.goto(url)
    expect(page.locator(".st-key-model_status")).to_contain_text("towergraph version 1",
                                                                  timeout=60_000)


def search(page, query):
    box = page.get_by_label("Find an item by title")
    box.fill(query)
    box.press("Enter")


def set_slider(page, key, value):
    """Keyboard, as a person without a mouse would: Home, then right arrows."""
    thumb = page.locator(f".st-key-{key} input[type=range]")
    thumb.focus()
    thumb.press("Home")
    for _ in range(value - 1):
        thumb.press("ArrowRight")
    expect(thumb).to_have_value(str(value))


def centre_title(page):
    return page.locator(".st-key-centre h3")


GRAPH = ".st-key-graph .tg-graph"


def graph_eval(page, expression, expected=None, timeout=TIMEOUT_MS / 1000, where=GRAPH):
    """Evaluates with `network` bound to the drawn vis-network, waiting while it is redrawn."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = page.evaluate(
                f"() => {{ const root = document.querySelector({where!r});"
                f" const network = root && root.__network;"
                f" if (!network || !root.dataset.drawn) return null; return ({expression}); }}")
            if value is not None and (expected is None or value == expected):
                return value
        except Exception:  # noqa: BLE001 - the page is being rerun
            value = None
        if time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def settle_graph(page, where=GRAPH):
    graph_eval(page, "(network.stopSimulation(), network.fit(), true)", where=where)


def node_point(page, node, where=GRAPH):
    """Where a node is on the screen (the graph scrolled into view first)."""
    return graph_eval(page, "(() => {"
                            "  network.body.container.scrollIntoView({block: 'center'});"
                            f" const p = network.getPositions(['{node}'])['{node}'];"
                            "  const dom = network.canvasToDOM(p);"
                            "  const box = network.body.container.getBoundingClientRect();"
                            "  return {x: box.left + dom.x, y: box.top + dom.y};"
                            "})()", where=where)


def recentre_on_hop(page, hop):
    """Clicks the first item (by id) `hop` hops away in the drawn graph: (id, title)."""
    graph_eval(page, "true")
    target = graph_eval(page, f"network.body.data.nodes.get({{filter: n => n.hop === {hop}}})"
                              f".map(n => n.id).sort()[0]")
    title = graph_eval(page, f"network.body.data.nodes.get('{target}').fullTitle")
    # The harness reads the node's position, then moves the mouse there: a rerun that redraws
    # the graph in between (the layout is not the same twice) leaves the click on empty
    # canvas, which a person would simply repeat. So it clicks again, at most twice, from a
    # fresh position; the page must then draw the clicked node's graph.
    for attempt in range(3):
        settle_graph(page)
        point = node_point(page, target)
        page.mouse.click(point["x"], point["y"])
        try:
            expect(page.locator(GRAPH)).to_have_attribute("data-drawn", target,
                                                           timeout=5000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    return target, title


def screenshot(page, path):
    page.screenshot(path=str(path))
    return path


# -- the tests ------------------------------------------------------------------------------------

def test_search_depth_fanout_and_recentre(page, app_url, client, tmp_path):
    open_app(page, app_url)
    first = client.search("Dragon Chronicles 4", 20)[0]
    search(page, "Dragon Chronicles 4")
    expect(centre_title(page)).to_have_text(first.title)

    set_slider(page, "depth", 2)
    set_slider(page, "fanout", 5)
    expected = build_graph(client, [first.item_id], depth=2, fanout=5)
    nodes = expected.graph.number_of_nodes()
    stats = page.locator(".st-key-stats")
    expect(stats.get_by_test_id("stMetricValue").first).to_have_text(str(nodes))
    expect(stats).to_contain_text(f"{nodes} items joined by {expected.graph.number_of_edges()} "
                                  f"similarity links")
    assert graph_eval(page, "network.body.data.nodes.length", nodes) == nodes
    assert graph_eval(page, "network.body.data.edges.length") == expected.graph.number_of_edges()
    assert graph_eval(page, f"network.body.data.nodes.get('{first.item_id}').hop") == 0
    expect(page.locator(".st-key-graph .tg-legend")).to_contain_text("1 hop")
    settle_graph(page)
    time.sleep(0.5)
    good = screenshot(page, tmp_path / "graph.png")
    if os.environ.get("TOWERGRAPH_SAVE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(good, ROOT / "docs" / "screenshot.png")

    # Re-centre on an item two hops away: the graph is redrawn around it.
    target, title = recentre_on_hop(page, 2)
    expect(centre_title(page)).to_have_text(title)
    assert graph_eval(page, f"network.body.data.nodes.get('{target}')?.hop", 0) == 0
    assert graph_eval(page, f"network.body.data.nodes.get('{first.item_id}')?.hop ?? -1") != 0
    crumbs = page.locator(".st-key-breadcrumb button")
    expect(crumbs).to_have_count(1)
    expect(crumbs.first).to_contain_text(first.title)
    expect(page).to_have_url(re.compile(rf"[?&]item={target}$"))

    second, second_title = recentre_on_hop(page, 1)
    expect(centre_title(page)).to_have_text(second_title)
    expect(crumbs).to_have_count(2)
    screenshot(page, tmp_path / "recentred.png")

    crumbs.first.click()                                   # back to where we started
    expect(centre_title(page)).to_have_text(first.title)
    expect(page.locator(".st-key-breadcrumb")).to_have_count(0)
    assert graph_eval(page, f"network.body.data.nodes.get('{first.item_id}')?.hop", 0) == 0
    assert page.dialogs == []


def test_hostile_title_is_text(page, app_url, tmp_path):
    open_app(page, app_url)
    search(page, "Robot Chronicles 39")
    expect(centre_title(page)).to_have_text(HOSTILE_TITLE)        # the markup, as text
    expect(page.get_by_role("combobox", name=re.compile("^Matches"))).to_have_value(
        f"{HOSTILE_TITLE} (#{HOSTILE_ID})")
    assert graph_eval(page, f"network.body.data.nodes.get('{HOSTILE_ID}').hop") == 0

    # Hover the hostile node: vis-network's tooltip shows the title as text.
    settle_graph(page)
    point = node_point(page, HOSTILE_ID)
    page.mouse.move(point["x"], point["y"])
    tooltip = page.locator(".vis-tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(HOSTILE_TITLE)
    screenshot(page, tmp_path / "hostile.png")

    # Re-centre away, so the title also sits in the breadcrumb (a Markdown button label).
    recentre_on_hop(page, 1)
    expect(page.locator(".st-key-breadcrumb button").first).to_contain_text(
        "The Robot Chronicles 39 <img src=x")

    # Nowhere did the markup become an element, and no script ran.
    assert page.locator("img[src='x']").count() == 0
    assert page.locator(".st-key-graph img").count() == 0
    assert page.evaluate("document.querySelectorAll('img[onerror]').length") == 0
    time.sleep(0.5)
    assert page.dialogs == []


def test_click_to_recentre_and_back_button(page, app_url, client):
    open_app(page, app_url)
    first = client.search("Dragon Chronicles 4", 20)[0]
    search(page, "Dragon Chronicles 4")
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", first.item_id)
    target, title = recentre_on_hop(page, 1)                 # a click on the node
    expect(centre_title(page)).to_have_text(title)
    expect(page).to_have_url(re.compile(rf"[?&]item={target}$"))
    page.go_back()                                            # the browser's back button
    expect(centre_title(page)).to_have_text(first.title)
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", first.item_id)
    assert page.dialogs == []


def marks(page, name):
    return page.evaluate(f"performance.getEntriesByName({name!r}).length")


def next_graphs_for(page, centre):
    """Waits until the page holds the graphs of `centre`'s direct neighbours (the app sends
    them last, after the rest of the graph tab)."""
    page.wait_for_function("(c) => window.__towergraphNext && window.__towergraphNext.centre"
                           " === c", arg=centre)


def test_a_neighbour_is_drawn_before_the_rerun_and_the_page_follows(page, app_url, client):
    """A click on a direct neighbour draws its graph from what the page holds (mark tg-local),
    without waiting for the app; the app's rerun then moves the title, the breadcrumb and the
    address, and sends the same graph (the page stays on it). The back button goes back to the
    first graph (drawn from the graph the page kept when that is quicker than the rerun; which
    one wins is a race, so only the outcome is checked), and the app follows it too."""
    open_app(page, app_url)
    first = client.search("Dragon Chronicles 4", 20)[0]
    search(page, "Dragon Chronicles 4")
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", first.item_id)
    next_graphs_for(page, first.item_id)
    local = marks(page, "tg-local")

    target, title = recentre_on_hop(page, 1)
    assert marks(page, "tg-local") == local + 1
    expected = build_graph(client, [target], depth=2, fanout=8)
    drawn = graph_eval(page, "network.body.data.nodes.get().map(n => [n.id, n.hop])")
    assert {node: hop for node, hop in drawn} == dict(expected.graph.nodes(data="hop"))
    assert graph_eval(page, "network.body.data.edges.length") == \
        expected.graph.number_of_edges()
    expect(centre_title(page)).to_have_text(title)
    crumbs = page.locator(".st-key-breadcrumb button")
    expect(crumbs).to_have_count(1)
    expect(crumbs.first).to_contain_text(first.title)
    expect(page).to_have_url(re.compile(rf"[?&]item={target}$"))
    next_graphs_for(page, target)                     # the rerun has finished
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", target)
    assert graph_eval(page, f"network.body.data.nodes.get('{target}').hop") == 0

    page.go_back()             # drawn from the graph the page kept, or by the app's rerun
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", first.item_id)
    expect(centre_title(page)).to_have_text(first.title)
    expect(page).to_have_url(re.compile(rf"[?&]item={first.item_id}$"))
    assert page.dialogs == []


def test_start_page_and_compare(page, app_url, client, tmp_path):
    open_app(page, app_url)
    start = page.locator(".st-key-start")
    expect(start).to_contain_text("items. Search a title above")
    popular = page.locator(".st-key-start-popular button")
    expect(popular).to_have_count(12)
    expect(page.locator(".st-key-start-random button")).to_have_count(6)
    label = popular.first.inner_text().strip()
    popular.first.click()                                     # one click: a graph
    expect(centre_title(page)).to_have_text(re.compile(re.escape(label.rstrip("…"))))
    graph_eval(page, "true")
    settle_graph(page)
    time.sleep(0.5)
    explorer = screenshot(page, tmp_path / "explorer.png")

    page.get_by_role("tab", name="Compare two items").click()
    for key, query in (("cmp-a-query", "Robot Chronicles 39"), ("cmp-b-query", "Dragon Chronicles 4")):
        box = page.locator(f".st-key-{key} input")
        box.fill(query)
        box.press("Enter")
    for panel in ("cmp-a", "cmp-b"):
        expect(page.locator(f".st-key-{panel}-panel .tg-graph")).to_have_attribute(
            "data-drawn", re.compile(".+"))
        settle_graph(page, where=f".st-key-{panel}-panel .tg-graph")
    expect(page.locator(".st-key-cmp-a-panel h3")).to_have_text(HOSTILE_TITLE)   # as text
    expect(page.locator(".st-key-cmp-shared")).to_contain_text("In both graphs")
    assert page.locator("img[src='x']").count() == 0
    time.sleep(0.5)
    compare = screenshot(page, tmp_path / "compare.png")
    if os.environ.get("TOWERGRAPH_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(explorer, ROOT / "docs" / "explorer.png")
        shutil.copyfile(compare, ROOT / "docs" / "compare.png")
    assert page.dialogs == []


def suggestions(page):
    return page.locator(".tg-suggest-item")


def test_search_as_you_type(page, app_url, client):
    open_app(page, app_url)
    # The graph's library is a static file, fetched once; the component's script is small.
    assert page.request.get(f"{app_url}/app/static/vis-network.min.js").ok
    box = page.get_by_label("Find an item by title")
    box.press_sequentially("Dragon Chr", delay=40)              # no Enter
    expect(suggestions(page).first).to_be_visible()
    titles = [text.strip() for text in page.locator(".tg-suggest-title").all_text_contents()]
    expected = [item.title for item in client.search("Dragon Chr", len(titles))]
    assert titles == expected and all("Dragon Chronicles" in title for title in titles)
    expect(box).to_have_value("Dragon Chr")                     # typing survived the reruns
    expect(page.locator(".st-key-centre")).to_have_count(0)     # nothing centred yet

    box.press("ArrowDown")
    box.press("ArrowDown")                                      # the second suggestion
    expect(suggestions(page).nth(1)).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(centre_title(page)).to_have_text(titles[1])
    expect(box).to_have_value(titles[1])
    expect(page.locator(".tg-suggest-list")).to_be_hidden()
    second = client.search(titles[1], 1)[0].item_id
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", second)

    # Escape closes the list; Enter without a highlighted suggestion searches, as before.
    box.fill("")
    box.press_sequentially("Robot Chronicles 1", delay=40)
    expect(suggestions(page).first).to_be_visible()
    box.press("Escape")
    expect(page.locator(".tg-suggest-list")).to_be_hidden()
    box.press("Enter")
    expect(page.get_by_role("combobox", name=re.compile("^Matches"))).to_be_visible()
    expect(centre_title(page)).to_contain_text("Robot Chronicles 1")
    assert page.dialogs == []


def test_hostile_title_in_suggestions_is_text(page, app_url):
    open_app(page, app_url)
    box = page.get_by_label("Find an item by title")
    box.press_sequentially("Robot Chronicles 39", delay=40)
    hostile = suggestions(page).filter(has_text="onerror")
    expect(hostile.first).to_be_visible()
    expect(hostile.first.locator(".tg-suggest-title")).to_have_text(HOSTILE_TITLE)
    assert page.locator(".tg-suggest img").count() == 0
    hostile.first.click()                                       # a click picks it
    expect(centre_title(page)).to_have_text(HOSTILE_TITLE)
    expect(page.locator(GRAPH)).to_have_attribute("data-drawn", HOSTILE_ID)
    assert page.locator("img[src='x']").count() == 0
    time.sleep(0.5)
    assert page.dialogs == []


def test_forged_pick_is_ignored(page, app_url):
    """A pick that was never offered (sent by a page script) centres nothing."""
    open_app(page, app_url)
    box = page.get_by_label("Find an item by title")
    box.press_sequentially("Dragon Chr", delay=40)
    expect(suggestions(page).first).to_be_visible()
    page.evaluate("document.querySelector('.tg-suggest').__trigger('pick', '"
                  + HOSTILE_ID + "')")
    time.sleep(1.5)
    expect(page.locator(".st-key-centre")).to_have_count(0)
