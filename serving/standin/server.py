"""The stand-in server: loads the model, serves REST (uvicorn thread) and gRPC (grpcio thread
pool), and polls for new versions, until stop().

    with serve_in_process("work/serving", rest_port=0, grpc_port=0) as server:
        requests.get(f"{server.rest_url}/v1/models/towergraph")
        grpc.insecure_channel(server.grpc_target)
"""

import contextlib
import logging
import socket
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Iterator, Mapping, Optional

from serving.errors import StartupError
from towergraph.constants import DEFAULT_MODEL_NAME
from serving.standin.layout import find_model_base_path
from serving.standin.limits import DEFAULT_CONNECTION_LIMITS, ConnectionLimits
from serving.standin.repository import ModelRepository, VersionWatcher
from serving.standin.service import (DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_REQUEST_BYTES, Limits,
                                     ServingCore)

LOG = logging.getLogger("serving.standin")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_POLL_SECONDS = 2.0
_STARTUP_TIMEOUT = 30.0


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, or asyncio does not set TCP_NODELAY on accepted connections
        # (and every response then waits ~40 ms for a delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        raise StartupError(f"cannot listen for REST on {host}:{port}: {error}") from None
    return sock


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class StandinServer:
    """TF Serving's REST and gRPC APIs over the versions under one model base path.

    `model_dir` is a serving dir (holding `<model_name>/<version>/`) or the model base path.
    Ports 0 pick free ones (read them back from rest_port / grpc_port after start());
    None leaves that API off. `connection_limits` bound slow, large and numerous clients
    (serving/standin/limits.py: header and body deadlines, idle timeout, header size, open REST
    connections, concurrent gRPC calls); a client that goes away mid-request is logged at DEBUG.
    """

    def __init__(self, model_dir, model_name: str = DEFAULT_MODEL_NAME, *,
                 host: str = DEFAULT_HOST, rest_port: Optional[int] = DEFAULT_REST_PORT,
                 grpc_port: Optional[int] = DEFAULT_GRPC_PORT,
                 poll_seconds: float = DEFAULT_POLL_SECONDS,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 labels: Optional[Mapping[str, int]] = None, num_versions: int = 1,
                 grpc_workers: int = 8,
                 connection_limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS):
        self.model_name = model_name
        self.model_base_path: Path = find_model_base_path(model_dir, model_name)
        self.host = host
        self.rest_port, self.grpc_port = rest_port, grpc_port
        self.poll_seconds = poll_seconds
        self.limits = Limits(max_batch_size=max_batch_size, max_request_bytes=max_request_bytes)
        self.connection_limits = connection_limits
        self.repository = ModelRepository(model_name, self.model_base_path,
                                          num_versions=num_versions, labels=labels)
        self.core = ServingCore({model_name: self.repository}, self.limits)
        self._grpc_workers = grpc_workers
        self._watcher = VersionWatcher([self.repository], poll_seconds)
        self._grpc_server = None
        self._uvicorn = None
        self._rest_thread: Optional[threading.Thread] = None
        self._rest_socket: Optional[socket.socket] = None
        self._started = False

    # -- addresses ------------------------------------------------------------------------------

    @property
    def rest_url(self) -> Optional[str]:
        if self.rest_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.rest_port}"

    @property
    def grpc_target(self) -> Optional[str]:
        return None if self.grpc_port is None else _grpc_address(self.host, self.grpc_port)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "StandinServer":
        if self._started:
            return self
        self.repository.poll(initial=True)
        if not self.repository.loaded_versions():
            problems = "; ".join(f"version {version}: {status.error_message}"
                                 for version, status in self.repository.statuses()
                                 if status.error_message)
            raise StartupError(f"no version of {self.model_name} under {self.model_base_path} "
                               f"could be loaded" + (f" ({problems})" if problems else
                                                     " (no saved_model.pb in any version)"))
        try:
            if self.grpc_port is not None:
                self._start_grpc()
            if self.rest_port is not None:
                self._start_rest()
        except BaseException:
            self.stop()
            raise
        self._watcher.start()
        self._started = True
        return self

    def _start_grpc(self) -> None:
        import grpc
        from serving.standin.grpc_service import add_services

        limits = self.connection_limits
        options = [("grpc.max_receive_message_length", self.limits.max_request_bytes),
                   ("grpc.max_send_message_length", -1),
                   ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
                   ("grpc.max_metadata_size", limits.max_header_bytes),
                   ("grpc.server_handshake_timeout_ms", int(limits.header_timeout * 1000)),
                   ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000))]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._grpc_workers,
                                                        thread_name_prefix="standin-grpc"),
                             options=options, maximum_concurrent_rpcs=limits.max_grpc_rpcs)
        add_services(server, self.core)
        address = _grpc_address(self.host, self.grpc_port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise StartupError(f"cannot listen for gRPC on {address}: {error}") from None
        if not port:
            raise StartupError(f"cannot listen for gRPC on {address}")
        server.start()
        self._grpc_server, self.grpc_port = server, port

    def _start_rest(self) -> None:
        import uvicorn
        from serving.standin.http_guard import guarded_protocol
        from serving.standin.rest import create_app

        self._rest_socket = _bind(self.host, self.rest_port)
        self.rest_port = self._rest_socket.getsockname()[1]
        limits = self.connection_limits
        config = uvicorn.Config(create_app(self.core, limits.body_timeout), log_level="warning",
                                access_log=False, http=guarded_protocol(limits),
                                lifespan="off", server_header=False,
                                timeout_keep_alive=limits.idle_timeout,
                                h11_max_incomplete_event_size=limits.max_header_bytes,
                                timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._rest_thread = threading.Thread(target=self._uvicorn.run,
                                             kwargs={"sockets": [self._rest_socket]},
                                             name="standin-rest", daemon=True)
        self._rest_thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not self._uvicorn.started:
            if not self._rest_thread.is_alive() or time.monotonic() > deadline:
                raise StartupError(f"the REST server on {self.rest_url} did not start")
            time.sleep(0.01)

    def stop(self, grace: float = 2.0) -> None:
        """Stops accepting requests, lets running ones finish (up to `grace` s), unloads.
        A server starts once: make a new one to serve again."""
        self._watcher.stop()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
            self._grpc_server = None
        if self._rest_thread is not None:
            self._rest_thread.join(timeout=grace + 5)
            self._rest_thread = self._uvicorn = None
        if self._rest_socket is not None:
            self._rest_socket.close()
            self._rest_socket = None
        self.repository.unload_all()
        self._started = False

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def serve_in_process(model_dir, model_name: str = DEFAULT_MODEL_NAME, *,
                     host: str = DEFAULT_HOST, rest_port: Optional[int] = 0,
                     grpc_port: Optional[int] = 0, poll_seconds: float = DEFAULT_POLL_SECONDS,
                     max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                     max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                     labels: Optional[Mapping[str, int]] = None,
                     num_versions: int = 1,
                     connection_limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
                     ) -> Iterator[StandinServer]:
    """A started StandinServer on free ports (by default), stopped on exit."""
    server = StandinServer(model_dir, model_name, host=host, rest_port=rest_port,
                           grpc_port=grpc_port, poll_seconds=poll_seconds,
                           max_batch_size=max_batch_size, max_request_bytes=max_request_bytes,
                           labels=labels, num_versions=num_versions,
                           connection_limits=connection_limits)
    with server:
        yield server
