"""Hostile and unlucky clients against the stand-in, and the client against hung servers
(issue 14): every rejection in TF Serving's error shape, bounded time, good requests unharmed."""

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.client import RequestRejected, ServerUnavailable, TowerGraphClient
from serving.standin import serve_in_process
from serving.standin.limits import ConnectionLimits
from serving.tensors import to_tensor_proto
from serving.transport import AddressError
from towergraph.cli import main

LIMITS = ConnectionLimits(header_timeout=0.5, body_timeout=0.5, idle_timeout=5,
                          max_header_bytes=8 * 1024, max_connections=6, max_grpc_rpcs=8)


@pytest.fixture(scope="module")
def server(tiny_model_base):
    with serve_in_process(tiny_model_base, poll_seconds=0, connection_limits=LIMITS) as running:
        yield running


def _raw(server, data: bytes, wait: float = 5.0) -> bytes:
    """Sends raw bytes, returns all the server answers before it closes (or `wait` passes)."""
    host, port = server.host, server.rest_port
    with socket.create_connection((host, port), timeout=wait) as sock:
        if data:
            sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


def _status_and_error(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def _good(server):
    with TowerGraphClient.connect(server.rest_url) as client:
        assert len(client.similar_items(["4"], k=3)[0]) == 3


def test_a_huge_version_number_is_a_400_not_a_500(server):
    answer = requests.get(f"{server.rest_url}/v1/models/towergraph/versions/{'5' * 5000}",
                          timeout=10)
    assert answer.status_code == 400 and "Failed to convert version" in answer.json()["error"]
    assert len(answer.json()["error"]) < 200


def test_inputs_with_different_row_counts_are_invalid_argument(server):
    body = {"signature_name": "similar_items", "inputs": {"item_ids": ["1", "2"], "k": [3]}}
    answer = requests.post(f"{server.rest_url}/v1/models/towergraph:predict", json=body,
                           timeout=10)
    assert answer.status_code == 400 and "same number of rows" in answer.json()["error"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "towergraph", "similar_items"
    request.inputs["item_ids"].CopyFrom(to_tensor_proto(np.array(["1", "2"], dtype=object)))
    request.inputs["k"].CopyFrom(to_tensor_proto(np.array([3], np.int32)))
    with grpc.insecure_channel(server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "same number of rows" in caught.value.details()


def test_oversized_headers_get_431_in_tf_serving_shape(server):
    answer = _raw(server, b"GET /v1/models/towergraph HTTP/1.1\r\nHost: x\r\nX-Big: "
                  + b"a" * 100_000 + b"\r\n\r\n")
    status, error = _status_and_error(answer)
    assert status == 431 and "8192 bytes" in error
    _good(server)


def test_silent_and_slow_clients_are_cut_off(server):
    started = time.monotonic()
    status, error = _status_and_error(_raw(server, b""))                   # says nothing
    assert status == 408 and "headers" in error and time.monotonic() - started < 3
    status, error = _status_and_error(_raw(server, b"POST /v1/models/towergraph:predict "
                                       b"HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
    assert status == 408 and "body" in error                                # body never ends
    _good(server)


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(server):
    idle = [socket.create_connection((server.host, server.rest_port)) for _ in range(6)]
    try:
        status, error = _status_and_error(_raw(server, b""))
        assert status == 503 and "Too many connections" in error
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    _good(server)


def test_a_client_that_disconnects_leaves_no_traceback(server, caplog):
    caplog.set_level(logging.DEBUG, logger="serving.standin")
    with socket.create_connection((server.host, server.rest_port)) as sock:
        sock.sendall(b"POST /v1/models/towergraph:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"inputs\":")
        time.sleep(0.2)
    time.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    _good(server)


def test_a_long_query_is_not_sent_nor_echoed_back_whole(server):
    with TowerGraphClient.connect(server.rest_url) as client:
        with pytest.raises(RequestRejected) as caught:
            client.search("x" * 1_000_000)
    assert len(str(caught.value)) < 300 and "1000000 characters" in str(caught.value)
    body = {"signature_name": "search", "inputs": {"query": ["(" * 200_000], "k": [3]}}
    answer = requests.post(f"{server.rest_url}/v1/models/towergraph:predict", json=body,
                           timeout=30)
    assert len(answer.text) < 2000
    _good(server)


@pytest.fixture
def hung_server():
    """Accepts connections and never answers (a stuck process)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_hung_server_costs_one_deadline_not_one_per_retry(hung_server, scheme):
    with TowerGraphClient.connect(f"{scheme}://127.0.0.1:{hung_server}", timeout=1.5,
                                  retries=3) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable):
            client.similar_items([str(i) for i in range(30)], k=3)
        assert time.monotonic() - started < 2.5


class _Counting(BaseHTTPRequestHandler):
    statuses: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses[min(len(self.seen), len(self.statuses) - 1)]
        self.seen.append(status)
        body = json.dumps({"error": "busy"} if status != 200 else
                          {"outputs": {"x": [1]}}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("statuses, sent, outcome", [
    ([503, 503, 200], 3, None), ([400], 1, RequestRejected), ([500], 1, Exception)])
def test_only_503_is_retried(statuses, sent, outcome):
    handler = type("Handler", (_Counting,), {"statuses": statuses, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with TowerGraphClient.connect(f"http://127.0.0.1:{httpd.server_port}", backoff=0.01,
                                      retries=3) as client:
            if outcome is None:
                assert client.transport.predict("s", {"a": np.array([1])})["x"].tolist() == [1]
            else:
                with pytest.raises(outcome):
                    client.transport.predict("s", {"a": np.array([1])})
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(handler.seen) == sent


@pytest.mark.parametrize("address", ["ftp://host:8501", "file:///etc/passwd", "grpc://host",
                                     "http://host:99999", "gopher://x:1"])
def test_unsupported_addresses_are_refused(address):
    with pytest.raises(AddressError):
        TowerGraphClient.connect(address)


def test_graph_cli_refuses_a_bad_address_and_a_missing_folder_before_any_work(tmp_path, capsys):
    assert main(["graph", "--server", "ftp://127.0.0.1:1", "--item", "4"]) == 2
    assert "scheme 'ftp' is not supported" in capsys.readouterr().err
    missing = tmp_path / "nope" / "graph.json"
    # The server does not exist either: the folder is checked first (exit 2, not 1).
    assert main(["graph", "--server", "http://127.0.0.1:1", "--item", "4",
                 "--output", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err and not missing.parent.exists()


class _Recording(BaseHTTPRequestHandler):
    """Answers every request with a non-TF-Serving HTML page holding a secret."""
    paths: list = []

    def _answer(self):
        self.paths.append(self.path)
        body = b"<html>internal admin page: SECRET-TOKEN-123</html>"
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def log_message(self, *args):
        pass


def test_model_name_is_url_quoted_and_a_foreign_answer_is_not_echoed():
    handler = type("Handler", (_Recording,), {"paths": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with TowerGraphClient.connect(f"http://127.0.0.1:{httpd.server_port}",
                                      model_name="../admin?x=1#y", retries=0) as client:
            with pytest.raises(Exception) as caught:
                client.transport.predict("s", {"a": np.array([1])})
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert handler.paths == ["/v1/models/..%2Fadmin%3Fx%3D1%23y:predict"]
    assert "SECRET" not in str(caught.value) and "not a TF Serving error" in str(caught.value)
