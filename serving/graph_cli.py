"""`towergraph graph`: a similarity graph around an item, from a running TF Serving."""

import argparse
import os
import sys

from towergraph.constants import DEFAULT_GRAPH_MAX_NODES as DEFAULT_MAX_NODES
from towergraph.constants import DEFAULT_MODEL_NAME
from towergraph.constants import MAX_GRAPH_DEPTH as MAX_DEPTH
from towergraph.constants import MAX_GRAPH_FANOUT as MAX_FANOUT


def add_graph_command(subparsers) -> None:
    graph = subparsers.add_parser(
        "graph", help="build a multi-hop similarity graph around an item",
        description="Breadth first from the seed item(s): one batched similar_items request "
                    "per hop.")
    graph.add_argument("--server", default="http://localhost:8501",
                       help="http://host:8501 (REST) or grpc://host:8500 (gRPC)")
    graph.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    seeds = graph.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--title", help="seed: the best title match of this search")
    seeds.add_argument("--item", action="append", dest="items", help="seed item id "
                       "(repeatable)")
    graph.add_argument("--depth", type=int, default=2, help=f"hops, 1..{MAX_DEPTH} (default 2)")
    graph.add_argument("--fanout", type=int, default=10,
                       help=f"neighbours per node, 1..{MAX_FANOUT} (default 10)")
    graph.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES,
                       help=f"stop adding nodes beyond this (default {DEFAULT_MAX_NODES})")
    graph.add_argument("--format", choices=("json", "graphml", "html"), default="json")
    graph.add_argument("--output", help="file to write (default: standard output); its folder "
                       "must exist (checked before the graph is built)")
    graph.set_defaults(func=_graph)


def _graph(args: argparse.Namespace) -> int:
    # Imported when the command runs: requests, networkx and pyvis are not needed to parse flags.
    from serving.client import ServingError, TowerGraphClient
    from serving.errors import echo
    from serving.graph import build_graph, graph_stats
    from serving.graph_export import to_graphml, to_html, to_json
    from serving.transport import AddressError

    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            print(f"error: --output {echo(args.output)}: folder {echo(folder)} does not exist",
                  file=sys.stderr)
            return 2
        if os.path.isdir(args.output):
            print(f"error: --output {echo(args.output)} is a folder, not a file", file=sys.stderr)
            return 2
    try:
        client = TowerGraphClient.connect(args.server, args.model_name)
    except AddressError as error:
        print(f"error: --server: {error}", file=sys.stderr)
        return 2
    try:
        with client:
            seeds = args.items
            if args.title is not None:
                matches = client.search(args.title, k=1)
                if not matches:
                    print(f"error: no title matches {echo(args.title)}", file=sys.stderr)
                    return 1
                print(f"seed: {matches[0].title} (item {matches[0].item_id})", file=sys.stderr)
                seeds = [matches[0].item_id]
            result = build_graph(client, seeds, args.depth, args.fanout, args.max_nodes)
    except (ServingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    stats = graph_stats(result)
    cold = f", {stats['cold']} new (cold: placed by content alone)" if stats["cold"] else ""
    print(f"{stats['nodes']} nodes{cold}, {stats['edges']} edges, per hop "
          f"{stats['nodes_per_hop']}; {stats['shape']}", file=sys.stderr)
    if result.truncated:
        print(f"note: graph cut short: {result.truncated}", file=sys.stderr)
    content = {"json": lambda: to_json(result).encode("utf-8"),
               "graphml": lambda: to_graphml(result),
               "html": lambda: to_html(result).encode("utf-8")}[args.format]()
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(content)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(content)
    return 0
