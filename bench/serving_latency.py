"""Serving latency over REST and gRPC, and graph building: batched per hop vs one call per node.

    .venv/bin/python bench/serving_latency.py [--model-dir work/run/serving] [--requests 200]

Starts `towergraph serve` (the stand-in, or tensorflow_model_server when installed) as a
separate process on free ports, then measures from this process:
  1. p50/p99 latency of `similar_items` (k=10) at batch sizes 1, 10 and 100, REST and gRPC;
  2. the time to build a depth-3, fan-out-10 graph from the same seeds with the graph builder
     (one batched similar_items request per hop) and with the original project's approach
     (one REST request per node for its embedding, then cosine against every item and a full
     sort in the client), and their ratio. Both build the same breadth-first graph.
"""

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from serving.client import TowerGraphClient
from serving.graph import build_graph

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(model_dir: str, rest: int, grpc: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "towergraph"), "serve", "--model-dir",
               model_dir, "--rest-port", str(rest), "--grpc-port", str(grpc)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = TowerGraphClient.connect(f"http://127.0.0.1:{rest}", retries=0)
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            client.version()
            return process
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not come up in 180 s")


def _catalogue(model_dir: str) -> list:
    """Every item id of the newest version (read from the SavedModel, not from the server)."""
    import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
    import tensorflow as tf
    base = Path(model_dir)
    versions = sorted((p for p in base.rglob("saved_model.pb")), key=lambda p: p.parent.name)
    return [i.decode() for i in tf.saved_model.load(str(versions[-1].parent)).item_ids.numpy()]


def latency(client: TowerGraphClient, items: list, batch: int, requests: int, rng) -> dict:
    times = []
    for _ in range(requests):
        ids = list(rng.choice(items, batch, replace=False))
        started = time.perf_counter()
        client.similar_items(ids, k=10)
        times.append(time.perf_counter() - started)
    times_ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(times_ms, 50)),
            "p99_ms": float(np.percentile(times_ms, 99))}


def naive_graph(client: TowerGraphClient, all_vectors: np.ndarray, all_ids: list,
                seeds: list, depth: int, fanout: int) -> set:
    """The original project's way: per node, fetch its embedding, score and sort everything."""
    index = {item: row for row, item in enumerate(all_ids)}
    seen, frontier = set(seeds), list(seeds)
    for _ in range(depth):
        next_frontier = []
        for node in frontier:
            vector = client.item_embeddings([node])[0]          # one request per node
            cosine = all_vectors @ vector
            cosine[index[node]] = -np.inf
            for row in np.argsort(-cosine)[:fanout]:              # full sort in the client
                neighbour = all_ids[row]
                if neighbour not in seen:
                    seen.add(neighbour)
                    next_frontier.append(neighbour)
        frontier = next_frontier
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(REPO / "work" / "run" / "serving"))
    parser.add_argument("--requests", type=int, default=200, help="per batch size and protocol")
    parser.add_argument("--seeds", type=int, default=3, help="graphs built per approach")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not list(Path(args.model_dir).rglob("saved_model.pb")):
        sys.exit(f"no SavedModel under {args.model_dir}: run `make demo` first")

    items = _catalogue(args.model_dir)
    rest_port, grpc_port = _free_port(), _free_port()
    server = _start_server(args.model_dir, rest_port, grpc_port)
    results = {"catalogue_items": len(items), "latency": {}, "graph": {}}
    try:
        clients = {"rest": TowerGraphClient.connect(f"http://127.0.0.1:{rest_port}"),
                   "grpc": TowerGraphClient.connect(f"grpc://127.0.0.1:{grpc_port}")}
        rng = np.random.default_rng(0)
        for protocol, client in clients.items():
            client.similar_items(items[:10], k=10)  # warm up (connections, first call)
            for batch in (1, 10, 100):
                requests = max(20, args.requests // (1 if batch < 100 else 4))
                results["latency"][f"{protocol} batch {batch}"] = latency(
                    client, items, min(batch, len(items)), requests, rng)

        rest = clients["rest"]
        all_vectors = rest.item_embeddings(items)   # what the original kept in a pickle
        seeds = [str(s) for s in rng.choice(items, args.seeds, replace=False)]
        batched = naive = 0.0
        for seed in seeds:
            started = time.perf_counter()
            graph = build_graph(rest, [seed], depth=3, fanout=10)
            batched += time.perf_counter() - started
            started = time.perf_counter()
            naive_nodes = naive_graph(rest, all_vectors, items, [seed], depth=3, fanout=10)
            naive += time.perf_counter() - started
            results["graph"].setdefault("nodes", []).append(graph.graph.number_of_nodes())
            results["graph"].setdefault("same_nodes", []).append(
                len(naive_nodes & set(graph.graph)) / len(naive_nodes))
        results["graph"].update(batched_s=batched / len(seeds), naive_s=naive / len(seeds),
                                speedup=naive / batched)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"model: {args.model_dir} ({len(items)} items); server: `towergraph serve`, "
          f"client in another process")
    print(f"{'similar_items k=10':<22}{'p50 ms':>10}{'p99 ms':>10}")
    for name, numbers in results["latency"].items():
        print(f"{name:<22}{numbers['p50_ms']:>10.1f}{numbers['p99_ms']:>10.1f}")
    graph = results["graph"]
    print(f"graph depth 3, fan-out 10 ({len(seeds)} seeds, mean {np.mean(graph['nodes']):.0f} "
          f"nodes, node overlap {np.mean(graph['same_nodes']):.2f}):")
    print(f"  batched per hop (graph builder): {graph['batched_s']:.2f} s")
    print(f"  one request per node + client-side sort (original): {graph['naive_s']:.2f} s")
    print(f"  ratio original / builder: {graph['speedup']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
