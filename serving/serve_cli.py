"""`towergraph serve`: TF Serving for the pushed model, on this machine.

Runs tensorflow_model_server when it is on PATH (with the equivalent flags) and --host asks for
every interface; otherwise the stand-in (serving.standin), which speaks TF Serving's REST and
gRPC APIs from Python. tensorflow_model_server cannot listen on one address: its gRPC port is
always bound to 0.0.0.0 and its REST port to :: (model_servers/server.cc, net_http's
evhttp_server.cc; it has no host flag). So with the default --host 127.0.0.1 the stand-in runs,
and the machine's other interfaces never see the model.

    towergraph serve --model-dir work/run/serving       # <dir>/towergraph/<version>/
    towergraph serve --model-dir work/run/serving/towergraph --rest-port 8501 --grpc-port 8500
"""

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from typing import Dict, List, Optional

from serving.errors import StartupError
from towergraph.constants import (DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES,
                                  DEFAULT_MODEL_NAME)
from serving.standin.layout import LayoutError, find_model_base_path
from serving.standin.limits import DEFAULT_CONNECTION_LIMITS

TF_MODEL_SERVER = "tensorflow_model_server"
# The --host values tensorflow_model_server honours: it always listens on every interface.
ALL_INTERFACES = ("0.0.0.0", "::", "[::]")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 picks a free one), not {port}")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return value


def _label(text: str):
    name, _, version = text.partition("=")
    if not name or not version.isdigit():
        raise argparse.ArgumentTypeError(f"expected LABEL=VERSION, e.g. stable=3, not {text!r}")
    return name, int(version)


def add_serve_command(subparsers) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve", help="serve the pushed model with TF Serving's REST and gRPC APIs",
        description="Serves the newest version under --model-dir and picks up new ones as the "
                    "Pusher writes them. Runs tensorflow_model_server if it is on PATH and "
                    "--host is 0.0.0.0 (it cannot listen on one address only), else the Python "
                    "stand-in with the same APIs, on --host only.",
        epilog=f"Request limits (stand-in): --max-batch-size rows and --max-request-bytes "
               f"per request. {DEFAULT_CONNECTION_LIMITS.describe()}")
    serve.add_argument("--model-dir", required=True,
                       help="serving dir holding <model-name>/<version>/, or the model base "
                            "path holding <version>/ directly")
    serve.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                       help=f"model name in URLs and requests (default {DEFAULT_MODEL_NAME})")
    serve.add_argument("--rest-port", type=_port, default=8501,
                       help="REST port (default 8501; 0 picks a free one)")
    serve.add_argument("--grpc-port", type=_port, default=8500,
                       help="gRPC port (default 8500; 0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                            f"interface, the only one {TF_MODEL_SERVER} can honour)")
    serve.add_argument("--poll-seconds", type=_seconds, default=2.0,
                       help="how often to look for new versions (default 2, like "
                            "--file_system_poll_wait_seconds; 0 looks once at startup)")
    serve.add_argument("--max-batch-size", type=_positive_int, default=DEFAULT_MAX_BATCH_SIZE,
                       help=f"rows per request, larger is refused (stand-in; default "
                            f"{DEFAULT_MAX_BATCH_SIZE})")
    serve.add_argument("--max-request-bytes", type=_positive_int,
                       default=DEFAULT_MAX_REQUEST_BYTES,
                       help=f"REST body / gRPC message size, larger is refused (stand-in; "
                            f"default {DEFAULT_MAX_REQUEST_BYTES})")
    serve.add_argument("--label", action="append", type=_label, default=[],
                       metavar="LABEL=VERSION",
                       help="version label for /labels/LABEL URLs (repeatable)")
    serve.add_argument("--standin", action="store_true",
                       help=f"use the stand-in even if {TF_MODEL_SERVER} is on PATH")
    serve.set_defaults(func=run_serve)
    return serve


def run_serve(args: argparse.Namespace) -> int:
    try:
        base_path = find_model_base_path(args.model_dir, args.model_name)
    except LayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    labels = dict(args.label)
    binary = None if args.standin else shutil.which(TF_MODEL_SERVER)
    if binary and args.host in ALL_INTERFACES:
        return _exec_model_server(binary, args, str(base_path), labels)
    if binary:
        print(f"{TF_MODEL_SERVER} is on PATH but always listens on every interface; "
              f"--host {args.host} asks for one, so the stand-in runs instead "
              f"(--host 0.0.0.0 runs {TF_MODEL_SERVER}).", file=sys.stderr, flush=True)
    return _run_standin(args, labels)


def model_server_command(binary: str, args: argparse.Namespace, base_path: str,
                         labels: Dict[str, int]) -> List[str]:
    """tensorflow_model_server's flags for the same model, ports and polling."""
    command = [binary, f"--port={args.grpc_port}", f"--rest_api_port={args.rest_port}",
               f"--file_system_poll_wait_seconds={math.ceil(args.poll_seconds)}"]
    if labels:
        # Labels need a model config file; it replaces --model_name/--model_base_path.
        entries = "".join(f'    version_labels {{ key: "{name}" value: {version} }}\n'
                          for name, version in labels.items())
        config = (f'model_config_list {{\n  config {{\n    name: "{args.model_name}"\n'
                  f'    base_path: "{base_path}"\n    model_platform: "tensorflow"\n'
                  f'{entries}  }}\n}}\n')
        handle, path = tempfile.mkstemp(prefix="towergraph-models-", suffix=".config")
        with os.fdopen(handle, "w") as stream:
            stream.write(config)
        command += [f"--model_config_file={path}",
                    "--allow_version_labels_for_unavailable_models=true"]
    else:
        command += [f"--model_name={args.model_name}", f"--model_base_path={base_path}"]
    return command


def _exec_model_server(binary: str, args, base_path: str, labels: Dict[str, int]) -> int:
    command = model_server_command(binary, args, base_path, labels)
    print(f"Running {TF_MODEL_SERVER} ({binary}); REST on port {args.rest_port}, gRPC on port "
          f"{args.grpc_port}, on every interface. It has no batch or body limits of ours "
          f"(--max-batch-size and --max-request-bytes are the stand-in's).", flush=True)
    print(" ".join(command), flush=True)
    try:
        os.execv(binary, command)
    except OSError as error:
        print(f"error: cannot run {binary}: {error}", file=sys.stderr)
        return 1
    return 0  # not reached


def _run_standin(args: argparse.Namespace, labels: Dict[str, int]) -> int:
    import logging

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        # TensorFlow is imported here, so `towergraph --help` and the exec path stay fast.
        from serving.standin.server import StandinServer

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        server = StandinServer(args.model_dir, args.model_name, host=args.host,
                               rest_port=args.rest_port, grpc_port=args.grpc_port,
                               poll_seconds=args.poll_seconds,
                               max_batch_size=args.max_batch_size,
                               max_request_bytes=args.max_request_bytes, labels=labels)
        server.start()
        versions = ", ".join(map(str, server.repository.loaded_versions()))
        polling = (f"polled every {args.poll_seconds:g} s" if args.poll_seconds > 0
                   else "not polled")
        print("Running the TF Serving stand-in", flush=True)
        print(f"  model {args.model_name} version {versions} from {server.model_base_path} "
              f"({polling})", flush=True)
        print(f"  REST  {server.rest_url}/v1/models/{args.model_name}", flush=True)
        print(f"  gRPC  {server.grpc_target}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
        print("Stopping.", flush=True)
        return 0
    except (StartupError, LayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m serving.serve_cli serve ...` (the same command as `towergraph serve`)."""
    parser = argparse.ArgumentParser(prog="towergraph")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
