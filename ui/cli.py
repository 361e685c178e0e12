"""`towergraph ui`: the Streamlit graph explorer (ui/app.py) for a served model.

    towergraph ui --server http://localhost:8501 [--protocol rest|grpc] [--model-name towergraph]
                  [--port 8502] [--address 127.0.0.1]

Runs `streamlit run ui/app.py`; the connection settings reach the app as TOWERGRAPH_SERVER,
TOWERGRAPH_PROTOCOL and TOWERGRAPH_MODEL_NAME. A server (flag or environment) pins the app to
it; without one the page's connection fields are editable (a local run; ui/guard.py).
"""

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Tuple

from towergraph.constants import DEFAULT_MODEL_NAME
from ui import guard, state

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")
DEFAULT_PORT = 8502
DEFAULT_ADDRESS = "127.0.0.1"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {port}")
    return port


def add_ui_command(subparsers) -> None:
    ui = subparsers.add_parser(
        "ui", help="explore a served model's similarity graph in the browser (Streamlit)",
        description="Runs the Streamlit graph explorer (ui/app.py) against a TF Serving "
                    "server: search a title, draw the items like it a few hops away, "
                    "re-centre, download the graph, try recommendations.")
    ui.add_argument("--server", default=os.environ.get(state.ENV_SERVER) or None,
                    help="http://host:8501 (REST) or grpc://host:8500 (gRPC); pins the "
                         "explorer to it (the page cannot change it). Default "
                         f"${state.ENV_SERVER}; with neither, a local run that starts at "
                         f"{state.DEFAULT_SERVER} and lets the page change the server")
    ui.add_argument("--protocol", choices=("rest", "grpc"), type=str.lower,
                    help="default: gRPC for a grpc:// address, REST otherwise")
    ui.add_argument("--model-name", default=DEFAULT_MODEL_NAME,
                    help=f"the served model's name (default {DEFAULT_MODEL_NAME})")
    ui.add_argument("--port", type=_port, default=DEFAULT_PORT,
                    help=f"port the explorer listens on (default {DEFAULT_PORT})")
    ui.add_argument("--address", default=DEFAULT_ADDRESS,
                    help=f"address the explorer listens on (default {DEFAULT_ADDRESS}; "
                         f"0.0.0.0 for every interface)")
    ui.set_defaults(func=run_ui)


def streamlit_command(server: Optional[str], protocol: Optional[str] = None,
                      model_name: str = DEFAULT_MODEL_NAME, port: int = DEFAULT_PORT,
                      address: str = DEFAULT_ADDRESS, python: str = sys.executable,
                      environ: Mapping[str, str] = os.environ
                      ) -> Tuple[List[str], Dict[str, str]]:
    """The `streamlit run` command line and its environment. A server pins the explorer to
    it (TOWERGRAPH_SERVER); None leaves the connection to the page (a local run)."""
    command = [python, "-m", "streamlit", "run", APP,
               "--server.port", str(port), "--server.address", address,
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               # No file watcher: nothing to reload in use, and none to start in a container.
               "--server.fileWatcherType", "none",
               # ui/static/ at app/static/: the browser fetches vis-network once, not with
               # every rerun (ui/graph_view.py).
               "--server.enableStaticServing", "true",
               # A reader's toolbar: no deploy button or developer menu.
               "--client.toolbarMode", "viewer"]
    env = dict(environ)
    env.pop(state.ENV_SERVER, None)
    if server is not None:
        env[state.ENV_SERVER] = server
    env.update({state.ENV_PROTOCOL: state.protocol_label(protocol, server or "").lower(),
                state.ENV_MODEL_NAME: model_name})
    return command, env


def run_ui(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        print("error: the explorer needs streamlit (pip install streamlit)", file=sys.stderr)
        return 1
    try:
        server = None if args.server is None else guard.check_server(args.server)
        model_name = guard.check_model_name(args.model_name)
    except guard.Rejected as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command, env = streamlit_command(server, args.protocol, model_name, args.port,
                                     args.address)
    where = f"at {server}" if server else "chosen on the page (local run)"
    print(f"TowerGraph explorer: http://{args.address}:{args.port}  (model "
          f"{model_name!r} {where}; Ctrl-C stops it)", file=sys.stderr)
    return run_child(command, env)


def run_child(command: List[str], env: Mapping[str, str], grace: float = 10.0) -> int:
    """Runs Streamlit and stops it with us: SIGTERM or SIGINT to `towergraph ui` is passed on
    to the child, which gets `grace` seconds before it is killed (no orphaned server)."""
    child = subprocess.Popen(command, env=dict(env))
    received = []

    def forward(signum, _frame):
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = child.wait(timeout=grace if received else None)
                break
            except subprocess.TimeoutExpired:
                child.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0] if received else code
