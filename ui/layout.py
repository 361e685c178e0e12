"""Where each item of a similarity graph is drawn: a radial layout computed once in Python.

Why: vis-network's force simulation (physics stabilisation) took 70-330 ms of every drawn
graph in the browser, and moved the picture while it settled. A breadth-first similarity graph
is a tree of first discoveries with a few extra links, so rings by hop read well: the centre in
the middle, hop h on ring h, and each item inside the angular sector of the item it was found
from (its parent on `path`), sectors sized by how many items hang below. The positions are
cached with the graph (per model version), and the browser draws them with physics off.
"""

import math
from typing import Dict, List, Tuple

import networkx as nx

RING_PX = 230          # distance between rings
NODE_GAP_PX = 46       # at least this much arc per item on a crowded ring


def _parent(graph: nx.Graph, node: str):
    path = graph.nodes[node].get("path") or [node]
    return path[-2] if len(path) > 1 else None


def radial(graph: nx.Graph) -> Dict[str, Tuple[float, float]]:
    """{node: (x, y)} in pixels, the seeds (hop 0) around the origin."""
    children: Dict[object, List[str]] = {}
    for node in graph.nodes:
        parent = _parent(graph, node)
        if parent not in graph or graph.nodes[node].get("hop", 0) == 0:
            parent = None
        children.setdefault(parent, []).append(node)
    for siblings in children.values():
        siblings.sort(key=lambda node: (graph.nodes[node].get("hop", 0), str(node)))

    weight: Dict[object, int] = {}

    def subtree(node) -> int:
        # iterative post-order: depth is small, but ids come from a server
        stack, order = [node], []
        while stack:
            current = stack.pop()
            order.append(current)
            stack.extend(children.get(current, []))
        for current in reversed(order):
            weight[current] = 1 + sum(weight[child] for child in children.get(current, []))
        return weight[node]

    roots = children.get(None, [])
    for root in roots:
        subtree(root)

    hops: Dict[int, int] = {}
    for _, data in graph.nodes(data=True):
        hops[data.get("hop", 0)] = hops.get(data.get("hop", 0), 0) + 1
    radius = {0: 0.0}
    for hop in sorted(hops):
        if hop:
            crowded = hops[hop] * NODE_GAP_PX / (2 * math.pi)
            radius[hop] = max(radius[hop - 1] + RING_PX if hop - 1 in radius else hop * RING_PX,
                              crowded)

    positions: Dict[str, Tuple[float, float]] = {}
    # One seed: at the origin, its tree all around. Several: each seed on a small ring.
    stack = []
    total = sum(weight[root] for root in roots) or 1
    start = -math.pi / 2
    for root in roots:
        share = 2 * math.pi * weight[root] / total
        stack.append((root, start, start + share))
        start += share
    while stack:
        node, low, high = stack.pop()
        hop = graph.nodes[node].get("hop", 0)
        angle = (low + high) / 2
        ring = radius.get(hop, hop * RING_PX) if hop else (0.0 if len(roots) == 1
                                                          else RING_PX / 3)
        positions[node] = (round(ring * math.cos(angle), 1), round(ring * math.sin(angle), 1))
        kids = children.get(node, [])
        inner = sum(weight[kid] for kid in kids) or 1
        cursor = low
        for kid in kids:
            share = (high - low) * weight[kid] / inner
            stack.append((kid, cursor, cursor + share))
            cursor += share
    return positions
