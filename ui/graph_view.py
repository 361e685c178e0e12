"""The similarity graph on the page: a small bidirectional Streamlit component around
vis-network (Streamlit's components v2, no build step, no CDN: the page works offline).

Why our own: no maintained Streamlit graph component on PyPI both draws in the page itself
(no iframe to reload on every rerun) and reports a clicked node back; this one does both in
about 150 lines. The vis-network script is the one pyvis ships (pyvis stays for the HTML
download), injected once per browser tab; each rerun sends only the graph's nodes and edges.

Clicking a node sends its id back (trigger "centre"); the app re-centres on it. Titles reach
vis-network as data and are shown as canvas labels and plain-text tooltips, never as markup.
"""

import functools
import json
import os
from typing import Callable, Dict, List, Optional

import pyvis

from serving.graph import SimilarityGraph
from serving.graph_export import HOP_COLOURS
from ui import views

LABEL_CHARS = 28          # canvas labels are shortened; the tooltip has the whole title
HOP_NAMES = ["centre", "1 hop", "2 hops", "3 hops", "4 hops"]

_VIS_DIR = os.path.join(os.path.dirname(pyvis.__file__), "lib", "vis-9.1.2")

_JS = r"""
const VIS_SOURCE = __VIS_SOURCE__;

function loadVis() {
  if (!window.vis || !window.vis.Network) {
    const script = document.createElement("script");
    script.textContent = VIS_SOURCE;       // a classic script: vis-network's UMD sets window.vis
    document.head.appendChild(script);
  }
  return window.vis;
}

function legend(box, entries) {
  box.replaceChildren();
  for (const entry of entries) {
    const item = document.createElement("span");
    item.className = "tg-legend-item";
    const dot = document.createElement("span");
    dot.className = "tg-legend-dot";
    dot.style.background = entry.colour;
    item.append(dot, document.createTextNode(entry.text));   // text, never markup
    box.append(item);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".tg-graph");
  const signature = JSON.stringify(data);
  if (root.__signature === signature) return;     // a rerun that changed nothing here
  root.__signature = signature;
  const canvasBox = root.querySelector(".tg-canvas");
  canvasBox.style.height = data.height + "px";
  legend(root.querySelector(".tg-legend"), data.legend);
  const vis = loadVis();
  const nodes = new vis.DataSet(data.nodes);
  const edges = new vis.DataSet(data.edges);
  const options = {
    autoResize: true,
    nodes: {shape: "dot", font: {size: 16, face: "sans-serif", strokeWidth: 4,
                                 strokeColor: "#ffffff"}, borderWidth: 1},
    edges: {color: {color: "#9aa0a6", highlight: "#d62728"}, smooth: false,
            scaling: {min: 1, max: 6}},
    interaction: {hover: true, tooltipDelay: 120, navigationButtons: false},
    physics: {solver: "barnesHut",
              barnesHut: {gravitationalConstant: -9000, springLength: 140,
                          springConstant: 0.03, avoidOverlap: 0.3},
              stabilization: {enabled: true, iterations: 150, fit: true}},
    layout: {improvedLayout: false, randomSeed: 7},
  };
  let network = root.__network;
  if (!network) {
    network = new vis.Network(canvasBox, {nodes: [], edges: []}, options);
    root.__network = network;
    network.on("click", (params) => {
      if (params.nodes.length === 1 && String(params.nodes[0]) !== root.dataset.centre) {
        setTriggerValue("centre", String(params.nodes[0]));
      }
    });
    network.on("stabilizationIterationsDone", () => network.setOptions({physics: false}));
  }
  if (data.history) {
    // The browser's back button: each centre is a history entry (?item=ID); going back
    // re-centres on the item in the address.
    root.__back = (item) => setTriggerValue("centre", item);
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
    if (url.searchParams.get("item") !== data.centre) {
      url.searchParams.set("item", data.centre);
      window.history.pushState(null, "", url);
    }
  }
  // Drawn = the first frame after this graph's layout settled (the browser tests and
  // bench/explorer.py wait for it).
  const token = {};
  root.__token = token;
  root.dataset.centre = data.centre;
  root.dataset.drawn = "";
  network.once("stabilizationIterationsDone", () => {
    network.once("afterDrawing", () => {
      if (root.__token === token) root.dataset.drawn = data.centre;
    });
    network.redraw();
  });
  network.setOptions({physics: {enabled: true}});
  network.setData({nodes, edges});
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
"""


@functools.lru_cache(maxsize=1)
def _sources():
    """(js, css), read once per process."""
    with open(os.path.join(_VIS_DIR, "vis-network.min.js"), encoding="utf-8") as source:
        vis_source = source.read()
    with open(os.path.join(_VIS_DIR, "vis-network.css"), encoding="utf-8") as style:
        vis_css = style.read()
    # json.dumps makes the library one JS string literal; "</" cannot close anything here
    # (the code is never inside a <script> tag's HTML), but escape it anyway.
    js = _JS.replace("__VIS_SOURCE__", json.dumps(vis_source).replace("</", "<\\/"))
    return js, vis_css + _CSS


def _renderer():
    """Registered on every run: each Streamlit runtime keeps its own component registry."""
    import streamlit as st

    js, css = _sources()
    return st.components.v2.component("towergraph_graph", html=_HTML, css=css, js=js,
                                      isolate_styles=False)


def tooltip(data: Dict) -> str:
    lines = [str(data["title"])]
    for field in ("authors", "genres"):
        if data.get(field):
            lines.append(f"{field}: {views.list_field(data[field])}")
    lines.append("centre (click another item to re-centre)" if data["hop"] == 0
                 else f"{data['hop']} hop{'s' if data['hop'] > 1 else ''} away · click to "
                      f"re-centre")
    return "\n".join(lines)


def graph_data(result: SimilarityGraph, height: int, history: bool = False) -> Dict:
    """What the component draws: plain JSON, titles as data."""
    graph = result.graph
    hops = sorted({data["hop"] for _, data in graph.nodes(data=True)})
    nodes: List[Dict] = []
    for node, data in graph.nodes(data=True):
        colour = HOP_COLOURS[min(data["hop"], len(HOP_COLOURS) - 1)]
        nodes.append({"id": node, "label": views.shorten(data["title"] or node, LABEL_CHARS),
                      "title": tooltip(data), "fullTitle": str(data["title"]), "hop": data["hop"],
                      "color": colour,
                      "size": 12 + 2 * min(graph.degree(node), 12) + (8 if data["hop"] == 0
                                                                       else 0),
                      "font": {"size": 20 if data["hop"] == 0 else 15}})
    edges = [{"from": a, "to": b, "value": float(data["score"]),
              "title": f"similarity {float(data['score']):.3f}"}
             for a, b, data in graph.edges(data=True)]
    legend = [{"colour": HOP_COLOURS[min(hop, len(HOP_COLOURS) - 1)],
               "text": HOP_NAMES[hop] if hop < len(HOP_NAMES) else f"{hop} hops"}
              for hop in hops]
    legend.append({"colour": "#9aa0a6", "text": "links: thicker = more similar; "
                                                "bigger dot = more links"})
    return {"nodes": nodes, "edges": edges, "centre": result.seeds[0], "height": height,
            "legend": legend, "history": history}


def show(result: SimilarityGraph, key: str, height: int,
         on_centre: Optional[Callable[[str], None]] = None, history: bool = False) -> None:
    """Draws the graph; a click on a node (or, with history, the browser's back button)
    calls on_centre(node id) before the next run."""
    import streamlit as st

    def clicked() -> None:
        value = st.session_state[key].get("centre")
        if value and on_centre is not None:
            on_centre(str(value))

    _renderer()(key=key, data=graph_data(result, height, history), height="content",
                on_centre_change=clicked)
