"""From Enter (or a click) to a drawn graph in a real browser: today's explorer against the one
before the issue-13 rework, in the same run, on the same served model.

    python bench/explorer.py --model-dir work/bench/run/serving   # ML-100K model
    python bench/explorer.py --quick                               # the tests' tiny model

Both apps run as `towergraph ui` runs them (Streamlit, headless) against the TF Serving stand-in,
driven by Playwright with Debian's Chromium (/usr/bin/chromium). For each of N items (the most
popular ones, found by title), the clock starts when Enter is pressed in the search box and
stops at the first frame after the graph's layout settled: for the old app, when the new pyvis
iframe's network reports physics.ready with the item at the centre; for the new one, when the
graph component marks that frame (data-drawn). Depth 2, fan-out 8 (the defaults). The new app
is also timed from a click on a node to its drawn graph. Before each press the bench waits until
the app's previous rerun has finished (Streamlit's script-run state in the page), as a reader
looks at a graph before the next search or click. p50 and p95 are reported; with --out the
table is also written as JSON.

The old app comes from a git worktree of --before (default: the commit before the rework),
removed afterwards. A --before that already has the graph component (ui/graph_view.py) is timed
as the new one is, clicks included: `--before HEAD` compares a change with the commit it
starts from.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "tests"))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
BEFORE = "9902745"      # main just before the explorer's issue-13/14/15 commits
MODEL_NAME = "towergraph"
TIMEOUT_MS = 30_000

OLD_DRAWN = """(id) => { const f = document.querySelector('iframe');
  if (!f || !f.contentWindow || typeof f.contentWindow.network === 'undefined') return false;
  const n = f.contentWindow.network; const node = n.body.data.nodes.get(id);
  return !!node && node.hop === 0 && n.physics.ready === true && performance.now(); }"""
NEW_DRAWN = """(id) => { const g = document.querySelector('.st-key-graph .tg-graph');
  return !!g && g.dataset.drawn === id && performance.now(); }"""
# Both clocks are the page's own: the start when the browser sees the key or the button go down
# (not when Playwright was asked to press it), the end on the first animation frame at which
# the graph is drawn (the predicate above, polled every frame, returns that frame's time).
START_CLOCK = """window.addEventListener("keydown", (e) => { if (e.key === "Enter")
  window.__benchStart = performance.now(); }, true);
window.addEventListener("pointerdown", () => { window.__benchStart = performance.now(); }, true);"""


# Streamlit marks each change of its script-run state in the page (performance marks named
# after the state): the app is idle when the last of them is "notRunning".
IDLE = """() => { const states = ["running", "notRunning", "rerunRequested", "stopRequested"];
  const marks = performance.getEntriesByType("mark").filter((m) => states.includes(m.name));
  return marks.length > 0 && marks[marks.length - 1].name === "notRunning"; }"""


def settle(page):
    """Waits until the app's last rerun has finished (the rest of the page is there too), as a
    reader looks at a graph before the next search or click: a press is never timed while the
    previous press's rerun still runs."""
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS, polling=50)


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.add_init_script(START_CLOCK)
    return page


def drawn_after_start(page, drawn_js, item_id):
    """ms from the key or button press to the first frame with the graph drawn."""
    end = page.wait_for_function(drawn_js, arg=item_id, timeout=TIMEOUT_MS,
                                 polling="raf").json_value()
    return end - page.evaluate("window.__benchStart")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(tree: Path, server: str, log_dir: Path):
    import requests

    port = free_port()
    env = {**os.environ, "TOWERGRAPH_SERVER": server, "TOWERGRAPH_PROTOCOL": "rest",
           "TOWERGRAPH_MODEL_NAME": MODEL_NAME, "PYTHONPATH": str(tree)}
    log = open(log_dir / f"streamlit-{tree.name}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(tree / "ui" / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.enableStaticServing", "true"],
        env=env, cwd=log_dir, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                return process, url
        except requests.RequestException:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"streamlit in {tree} did not start")


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def data_arrived(page):
    """ms from the press to the graph component's last "tg-data" mark (the rerun's data is in
    the browser; the rest is drawing), or None (the old app has no such mark)."""
    return page.evaluate("""() => { const marks = performance.getEntriesByName('tg-data');
        return marks.length && window.__benchStart !== undefined
            ? marks[marks.length - 1].startTime - window.__benchStart : null; }""")


def time_searches(page, url, targets, drawn_js, phases=None):
    """[(item id, ms from Enter to drawn)] for each (title, expected centre id); with a list
    as `phases`, the ms to the graph's data arriving is appended to it."""
    page.goto(url)
    page.get_by_label("Find an item by title").wait_for(timeout=60_000)
    times = []
    for title, item_id in targets:
        box = page.get_by_label("Find an item by title")
        box.fill(title)
        settle(page)
        box.press("Enter")
        times.append((item_id, drawn_after_start(page, drawn_js, item_id)))
        if phases is not None:
            phases.append(data_arrived(page))
    return times


def time_clicks(page, count):
    """ms from a click on a one-hop node to its drawn graph, `count` times."""
    times = []
    for _ in range(count):
        settle(page)
        point = page.evaluate("""() => {
            const g = document.querySelector('.st-key-graph .tg-graph');
            const n = g.__network; const centre = g.dataset.centre;
            g.scrollIntoView({block: 'center'});     // the breadcrumb may push it down
            const box = n.body.container.getBoundingClientRect();
            // the first neighbour that a click on its dot reaches (not another's label)
            for (const id of n.getConnectedNodes(centre)) {
              const dom = n.canvasToDOM(n.getPositions([id])[id]);
              const y = box.top + dom.y;
              if (String(n.getNodeAt(dom)) === String(id) && y > 0 && y < window.innerHeight)
                return {id: String(id), x: box.left + dom.x, y: box.top + dom.y};
            }
            return null; }""")
        page.mouse.click(point["x"], point["y"])
        try:
            times.append(drawn_after_start(page, NEW_DRAWN, point["id"]))
        except Exception as error:
            state = page.evaluate("""() => { const g = document.querySelector(
                '.st-key-graph .tg-graph'); return [g.dataset.centre, g.dataset.drawn,
                window.scrollY, window.innerHeight]; }""")
            page.screenshot(path="/tmp/bench-click-failed.png")
            raise RuntimeError(f"click {len(times)} at {point}: centre, drawn, scroll, "
                               f"height = {state}") from error
    return times


def summary(values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return {"n": len(values), "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(p95, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", help="<serving dir>/towergraph with numbered versions, "
                                            "or the serving dir holding it")
    source.add_argument("--quick", action="store_true", help="the tests' tiny model")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--before", default=BEFORE, help="commit of the old explorer")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from serving.client import TowerGraphClient
    from serving.standin import serve_in_process

    work = Path(tempfile.mkdtemp(prefix="explorer-bench-"))
    if args.quick:
        import tiny_world
        data = tiny_world.interactions()
        base = work / MODEL_NAME
        tiny_world.export(tiny_world.train(data, tiny_world.catalog(data)), base, version=1)
        dataset = "tiny world (tests/tiny_world.py)"
    else:
        base = Path(args.model_dir)
        if (base / MODEL_NAME).is_dir():
            base = base / MODEL_NAME
        dataset = f"model at {base}"
    before = work / "explorer-before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before],
                   cwd=ROOT, check=True, capture_output=True)
    results = {"dataset": dataset, "depth": 2, "fanout": 8, "before_commit": args.before}
    processes = []
    try:
        with serve_in_process(base, MODEL_NAME, grpc_port=None, poll_seconds=0) as server, \
                TowerGraphClient.connect(server.rest_url, MODEL_NAME) as client:
            popular = client.recommend("", [], args.items).items
            targets = []
            for item in popular:
                match = client.search(item.title, 1)
                if match:
                    targets.append((item.title, match[0].item_id))
            old, old_url = start_app(before, server.rest_url, work)
            new, new_url = start_app(ROOT, server.rest_url, work)
            processes = [old, new]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                     args=CHROMIUM_ARGS)
                component = (before / "ui" / "graph_view.py").is_file()
                for name, url, drawn in (("before", old_url,
                                          NEW_DRAWN if component else OLD_DRAWN),
                                         ("after", new_url, NEW_DRAWN)):
                    page = new_page(browser)
                    time_searches(page, url, targets[:2], drawn)          # warm caches
                    page.close()
                    page = new_page(browser)
                    # Each item once more, uncached in the browser, cached or not on the server
                    # as a reader's second visit would be: the first pass warmed neither app.
                    phases = []
                    timed = time_searches(page, url, targets, drawn, phases)
                    results[f"{name}_enter_to_graph"] = summary([ms for _, ms in timed])
                    if drawn == NEW_DRAWN and None not in phases:
                        results[f"{name}_enter_to_data"] = summary(phases)
                    if drawn == NEW_DRAWN:
                        try:
                            clicks = time_clicks(page, args.items)
                        except RuntimeError as error:
                            raise RuntimeError(f"{name} ({url}): {error}") from error
                        results[f"{name}_click_to_graph"] = summary(clicks)
                    page.close()
                browser.close()
    finally:
        for process in processes:
            stop(process)
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT,
                       capture_output=True)
    print(f"Explorer latency, {dataset}, depth 2, fan-out 8, {len(targets)} items, "
          f"Chromium headless")
    print("| measure | p50 (ms) | p95 (ms) |\n| --- | --- | --- |")
    for key, label in (("before_enter_to_graph", f"before ({args.before}): Enter → graph"),
                       ("before_enter_to_data",
                        f"before ({args.before}): Enter → graph data in the page (rerun)"),
                       ("before_click_to_graph", f"before ({args.before}): click a node → its "
                                                 f"graph"),
                       ("after_enter_to_graph", "now: Enter → graph"),
                       ("after_enter_to_data", "now: Enter → graph data in the page (rerun)"),
                       ("after_click_to_graph", "now: click a node → its graph")):
        if key in results:
            print(f"| {label} | {results[key]['p50_ms']} | {results[key]['p95_ms']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
