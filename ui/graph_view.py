"""The similarity graph on the page: a small bidirectional Streamlit component around
vis-network (Streamlit's components v2, no build step, no CDN: the page works offline).

Why our own: no maintained Streamlit graph component on PyPI both draws in the page itself
(no iframe to reload on every rerun) and reports a clicked node back; this one does both in
about 150 lines. The vis-network script is the one pyvis ships (pyvis stays for the HTML
download), loaded once per browser tab: as a static file (ui/static/, served when
server.enableStaticServing is on, as `towergraph ui` runs it), else inside the component's
script. Each rerun then sends only the graph's nodes, edges and positions (ui/layout.py); the
browser draws them with physics off, so a graph is drawn in one frame, not after a simulation.

Clicking a node sends its id back (state "centre": [id, a count]); the app re-centres on it.
Cold items (the model's `cold` flag: metadata but too few ratings, placed by their content
alone) are drawn as dashed diamonds in their hop's colour, said so in their tooltip, and get a
legend entry when the graph has any; graphs sent ahead (show_next) are made the same way.

Titles reach vis-network as data and are shown as canvas labels and plain-text tooltips,
never as markup.
"""

import functools
import json
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from serving.graph import SimilarityGraph
from serving.graph_export import COLD_TEXT, HOP_COLOURS, cold_style, node_colour
from ui import views

LABEL_CHARS = 28          # canvas labels are shortened; the tooltip has the whole title
HOP_NAMES = ["centre", "1 hop", "2 hops", "3 hops", "4 hops"]

# vis-network 9.1.2 as pyvis ships it (pyvis/lib/vis-9.1.2; Apache-2.0 or MIT, its header
# says), copied into the app's static folder so the server can hand it out as a file.
VIS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static",
                        "vis-network.min.js")
VIS_URL = "app/static/vis-network.min.js"     # relative to the page: works under a base path

_JS = r"""
const VIS_INLINE = __VIS_SOURCE__;     // null: vis-network comes from the app's static folder

// vis-network is loaded once per browser tab: from the static file (fetched once, then cached
// by the browser), or, where the server does not serve static files, from this script.
function loadVis(url) {
  if (window.vis && window.vis.Network) return Promise.resolve(window.vis);
  if (!window.__towergraphVis) {
    window.__towergraphVis = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      if (url) {
        script.src = url;
        script.onload = () => resolve(window.vis);
        script.onerror = () => { window.__towergraphVis = null;
                                 reject(new Error("cannot load " + url)); };
        document.head.appendChild(script);
      } else {
        script.textContent = VIS_INLINE;   // a classic script: vis-network's UMD sets window.vis
        document.head.appendChild(script);
        resolve(window.vis);
      }
    });
  }
  return window.__towergraphVis;
}

function legend(box, entries) {
  box.replaceChildren();
  for (const entry of entries) {
    const item = document.createElement("span");
    item.className = "tg-legend-item";
    const dot = document.createElement("span");
    dot.className = "tg-legend-dot" + (entry.shape === "cold" ? " tg-legend-cold" : "");
    dot.style.background = entry.colour;
    item.append(dot, document.createTextNode(entry.text));   // text, never markup
    box.append(item);
  }
}

const OPTIONS = {
  autoResize: true,
  nodes: {shape: "dot", font: {size: 16, face: "sans-serif", strokeWidth: 4,
                               strokeColor: "#ffffff"}, borderWidth: 1},
  edges: {color: {color: "#9aa0a6", highlight: "#d62728"}, smooth: false,
          scaling: {min: 1, max: 6}},
  interaction: {hover: true, tooltipDelay: 120, navigationButtons: false},
  // The layout comes from Python (ui/layout.py): no force simulation in the browser.
  physics: {enabled: false},
  layout: {improvedLayout: false, randomSeed: 7},
};

const SEEN = 24;       // graphs a page keeps to redraw at once when the reader goes back

function draw(vis, root, data, token) {
  let network = root.__network;
  if (!network) {
    network = new vis.Network(root.querySelector(".tg-canvas"), {nodes: [], edges: []}, OPTIONS);
    root.__network = network;
    const recentre = (params) => {
      if (params.nodes.length === 1 && String(params.nodes[0]) !== root.dataset.centre) {
        goTo(root, String(params.nodes[0]));
      }
    };
    network.on("click", recentre);
    network.on("hold", recentre);     // a slow press (or a busy machine) is not a "click"
    // Drawn while hidden (an inactive tab): fit once it has a size.
    network.on("resize", (size) => {
      if (root.__fitPending && parseFloat(size.width) > 0) {
        root.__fitPending = false;
        network.fit({animation: false});
      }
    });
  }
  // Drawn = the first frame with this graph (the browser tests and bench/explorer.py wait
  // for it).
  network.once("afterDrawing", () => {
    performance.mark("tg-drawn");
    if (root.__token === token) root.dataset.drawn = data.centre;
  });
  network.setData({nodes: new vis.DataSet(data.nodes), edges: new vis.DataSet(data.edges)});
  root.__fitPending = root.querySelector(".tg-canvas").clientWidth === 0;
  network.fit({animation: false});
  network.redraw();
}

// A graph this page already has for `item`: one the app sent ahead for each direct neighbour
// of the centre (window.__towergraphNext, from the "next graphs" component), or one drawn
// before (the way back). Made by the app for the same model version, depth and fan-out.
function known(root, item) {
  const ahead = window.__towergraphNext;
  if (ahead && ahead.centre === root.dataset.centre && ahead.context === root.__context &&
      Object.prototype.hasOwnProperty.call(ahead.graphs, item)) {
    return ahead.graphs[item];
  }
  return (root.__seen && root.__seen.get(root.__context + "\n" + item)) || null;
}

// Re-centre on `item`: drawn at once when the page has its graph, and the app is told either
// way (its rerun updates the rest of the page; the same graph is then not drawn again).
function goTo(root, item) {
  const graph = known(root, item);
  if (graph) {
    performance.mark("tg-local");
    render(root, graph, JSON.stringify(graph), true);
  }
  // A state value, not a one-shot trigger: it travels with every later rerun request too, so
  // a press while the previous rerun still runs is not lost. The count makes each press new.
  window.__towergraphPresses = (window.__towergraphPresses || 0) + 1;
  root.__state("centre", [item, Date.now() + "-" + window.__towergraphPresses]);
}

// local: drawn ahead of the app's rerun, which then moves the address (?item=ID) itself.
function render(root, data, signature, local) {
  root.__signature = signature;
  root.__context = data.context;
  if (data.history) {
    const seen = root.__seen || (root.__seen = new Map());
    const key = data.context + "\n" + data.centre;
    seen.delete(key);
    seen.set(key, data);
    if (seen.size > SEEN) seen.delete(seen.keys().next().value);
  }
  root.querySelector(".tg-canvas").style.height = data.height + "px";
  legend(root.querySelector(".tg-legend"), data.legend);
  if (data.history) {
    // The browser's back button: each centre is a history entry (?item=ID); going back
    // re-centres on the item in the address.
    root.__back = (item) => goTo(root, item);
    if (!window.__towergraphPopstate) {
      window.__towergraphPopstate = true;
      window.addEventListener("popstate", () => {
        const item = new URLSearchParams(window.location.search).get("item");
        const graph = document.querySelector(".tg-graph[data-history='1']");
        if (item && graph && graph.__back && item !== graph.dataset.centre) graph.__back(item);
      });
    }
    root.dataset.history = "1";
    const url = new URL(window.location.href);
    if (!local && url.searchParams.get("item") !== data.centre) {
      url.searchParams.set("item", data.centre);
      window.history.pushState(null, "", url);
    }
  }
  const token = {};
  root.__token = token;
  root.dataset.centre = data.centre;
  root.dataset.drawn = "";
  loadVis(data.visUrl).then((vis) => {
    if (root.__token === token) draw(vis, root, data, token);
  }).catch((error) => {
    root.querySelector(".tg-canvas").textContent = "The graph could not be drawn: " + error;
  });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".tg-graph");
  root.__state = setStateValue;
  const signature = JSON.stringify(data);
  // A rerun that changed nothing here, or the rerun after a graph drawn ahead of it.
  if (root.__signature === signature) return;
  performance.mark("tg-data");
  render(root, data, signature);
}
"""

# The graphs of the centre's direct neighbours, sent after the rest of the graph tab; kept
# where the graph component looks for them (window.__towergraphNext).
_NEXT_JS = r"""
export default function (component) {
  window.__towergraphNext = component.data;
}
"""

_HTML = """<div class="tg-graph"><div class="tg-legend"></div><div class="tg-canvas"></div></div>"""

_CSS = """
.tg-graph { width: 100%; }
.tg-canvas { width: 100%; border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 0.5rem; }
.tg-legend { display: flex; flex-wrap: wrap; gap: 0.9rem; margin: 0 0 0.4rem 0;
             font-size: 0.9rem; }
.tg-legend-item { display: inline-flex; align-items: center; gap: 0.35rem; }
.tg-legend-dot { width: 0.8rem; height: 0.8rem; border-radius: 50%; display: inline-block; }
.tg-legend-cold { border-radius: 0; transform: rotate(45deg) scale(0.85);
                  border: 2px dashed #202124; box-sizing: border-box; }
.tg-graph .vis-network:focus { outline: none; }
.tg-graph div.vis-tooltip { position: absolute; visibility: hidden; pointer-events: none;
  z-index: 5; padding: 5px; white-space: pre-line; max-width: 28rem; font-size: 14px;
  font-family: sans-serif; color: #000; background: #f5f4ed; border: 1px solid #808074;
  border-radius: 3px; box-shadow: 3px 3px 10px rgba(0, 0, 0, 0.2); }
"""


def static_serving() -> bool:
    """Whether the server serves ui/static/ at app/static/ (server.enableStaticServing)."""
    import streamlit as st

    return bool(st.get_option("server.enableStaticServing")) and os.path.isfile(VIS_FILE)


@functools.lru_cache(maxsize=2)
def _sources(static: bool):
    """(js, css), made once per process. With static serving the script is a few KB and the
    browser fetches vis-network once (then caches it); without it the library travels inside
    the component's script (about 700 KB with every rerun)."""
    if static:
        vis_source = "null"
    else:
        with open(VIS_FILE, encoding="utf-8") as source:
            # json.dumps makes the library one JS string literal; "</" cannot close anything
            # here (the code is never inside a <script> tag's HTML), but escape it anyway.
            vis_source = json.dumps(source.read()).replace("</", "<\\/")
    return _JS.replace("__VIS_SOURCE__", vis_source), _CSS


def _renderer(static: bool):
    """Registered on every run: each Streamlit runtime keeps its own component registry."""
    import streamlit as st

    js, css = _sources(static)
    return st.components.v2.component("towergraph_graph", html=_HTML, css=css, js=js,
                                      isolate_styles=False)


def tooltip(data: Dict) -> str:
    lines = [str(data["title"])]
    for field in ("authors", "genres"):
        if data.get(field):
            lines.append(f"{field}: {views.list_field(data[field])}")
    if data.get("cold"):
        lines.append(COLD_TEXT)
    lines.append("centre (click another item to re-centre)" if data["hop"] == 0
                 else f"{data['hop']} hop{'s' if data['hop'] > 1 else ''} away · click to "
                      f"re-centre")
    return "\n".join(lines)


def graph_data(result: SimilarityGraph, height: int, history: bool = False,
               positions: Optional[Mapping[str, Tuple[float, float]]] = None,
               vis_url: Optional[str] = None, context: str = "") -> Dict:
    """What the component draws: plain JSON, titles as data. Nodes with a position are drawn
    there (ui/layout.py); vis_url: where the browser loads vis-network from (None: the
    component's script carries it); context: what else the graph depends on (model version,
    depth, fan-out): a graph the page keeps is drawn again only in the same context."""
    graph = result.graph
    positions = positions or {}
    hops = sorted({data["hop"] for _, data in graph.nodes(data=True)})
    nodes: List[Dict] = []
    for node, data in graph.nodes(data=True):
        nodes.append({"id": node, "label": views.shorten(data["title"] or node, LABEL_CHARS),
                      "title": tooltip(data), "fullTitle": str(data["title"]), "hop": data["hop"],
                      "cold": bool(data.get("cold")), "color": node_colour(data),
                      "size": 12 + 2 * min(graph.degree(node), 12) + (8 if data["hop"] == 0
                                                                       else 0),
                      "font": {"size": 20 if data["hop"] == 0 else 15}, **cold_style(data)})
        if node in positions:
            nodes[-1]["x"], nodes[-1]["y"] = positions[node]
    edges = [{"from": a, "to": b, "value": round(float(data["score"]), 4),
              "title": f"similarity {float(data['score']):.3f}"}
             for a, b, data in graph.edges(data=True)]
    legend = [{"colour": HOP_COLOURS[min(hop, len(HOP_COLOURS) - 1)],
               "text": HOP_NAMES[hop] if hop < len(HOP_NAMES) else f"{hop} hops"}
              for hop in hops]
    if any(data.get("cold") for _, data in graph.nodes(data=True)):
        legend.append({"colour": "#ffffff", "shape": "cold",
                       "text": f"dashed diamond: {COLD_TEXT}"})
    legend.append({"colour": "#9aa0a6", "text": "links: thicker = more similar; "
                                                "bigger dot = more links"})
    return {"nodes": nodes, "edges": edges, "centre": result.seeds[0], "height": height,
            "legend": legend, "history": history, "visUrl": vis_url, "context": context}


def show(result: SimilarityGraph, key: str, height: int,
         on_centre: Optional[Callable[[str], None]] = None, history: bool = False,
         positions: Optional[Mapping[str, Tuple[float, float]]] = None,
         context: str = "") -> None:
    """Draws the graph (at `positions` where given); a click on a node (or, with history, the
    browser's back button) calls on_centre(node id) before the next run. A node whose graph
    the page already has (show_next, or drawn before in the same context) is drawn at once,
    before that run."""
    import streamlit as st

    def clicked() -> None:
        value = (st.session_state.get(key) or {}).get("centre")
        # [item id, a count that makes each press new]; anything else is not from this page
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) \
                and value[0] and on_centre is not None:
            on_centre(value[0])

    _renderer(static_serving())(key=key, data=graph_data(result, height, history, positions,
                                                         vis_url(), context),
                                height="content", on_centre_change=clicked)


def vis_url() -> Optional[str]:
    return VIS_URL if static_serving() else None


def next_data(centre: str, graphs: Mapping[str, Tuple[SimilarityGraph, Mapping]], height: int,
              context: str) -> Dict:
    """What show_next sends: each graph as show(..., history=True) would send it."""
    url = vis_url()
    return {"centre": centre, "context": context,
            "graphs": {node: graph_data(graph, height, True, positions, url, context)
                       for node, (graph, positions) in graphs.items()}}


def show_next(key: str, data: Dict) -> None:
    """Hands the page the graphs of the centre's direct neighbours (next_data), for show's
    graph to draw at once when one is clicked. Draws nothing; call it last."""
    import streamlit as st

    st.components.v2.component("towergraph_next", html="<span hidden></span>", js=_NEXT_JS,
                               isolate_styles=False)(key=key, data=data, height="content")
