"""The client against the stand-in server, over REST and gRPC alike (tiny world model)."""

import shutil
import socket
import time

import numpy as np
import pytest

from serving.client import (ModelNotFound, RequestRejected, ServerUnavailable,
                            TowerGraphClient, UnknownItems)
from serving.standin import serve_in_process
from tiny_world import HOSTILE_ITEM, HOSTILE_MARKUP, title_of

PROTOCOLS = ["rest", "grpc"]


@pytest.fixture(scope="module")
def server(tiny_model_base, tmp_path_factory):
    base = tmp_path_factory.mktemp("client") / "towergraph"
    shutil.copytree(tiny_model_base, base)
    with serve_in_process(base, poll_seconds=0.2, max_batch_size=50) as running:
        running.base = base
        yield running


def _address(server, protocol):
    return server.rest_url if protocol == "rest" else f"grpc://{server.grpc_target}"


@pytest.fixture(params=PROTOCOLS)
def client(request, server):
    with TowerGraphClient.connect(_address(server, request.param)) as connected:
        yield connected


def test_similar_items_returns_titles_scores_and_never_the_query(client):
    [neighbours] = client.similar_items(["4"], k=5)
    assert len(neighbours) == 5 and "4" not in [item.item_id for item in neighbours]
    assert all(item.title == title_of(int(item.item_id)) for item in neighbours)
    scores = [item.score for item in neighbours]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001


def test_both_protocols_give_the_same_answers(server):
    answers = []
    for protocol in PROTOCOLS:
        with TowerGraphClient.connect(_address(server, protocol)) as client:
            answers.append((client.similar_items(["4", "7"], k=3), client.search("robot 3"),
                            client.recommend("u1", ["5"], k=4),
                            client.item_embeddings(["4"]).round(5).tolist()))
    assert answers[0] == answers[1]


def test_unknown_items_are_named(client):
    with pytest.raises(UnknownItems, match="'ghost'"):
        client.similar_items(["4", "ghost"], k=3)
    with pytest.raises(UnknownItems):
        client.item_embeddings(["ghost"])


def test_recommend_user_session_and_stranger(client):
    assert client.recommend("u0", k=5).strategy == "user"
    session = client.recommend("", ["1", "3", "nope"], k=5)
    assert session.strategy == "session" and session.unknown_session_items == ["nope"]
    assert {"1", "3"}.isdisjoint(item.item_id for item in session.items)
    assert client.recommend("stranger", k=5).strategy == "popular"


def test_search_keeps_titles_as_data(client):
    [match] = client.search(f"chronicles {HOSTILE_ITEM}", k=1)
    assert match.item_id == str(HOSTILE_ITEM) and HOSTILE_MARKUP in match.title


def test_large_inputs_are_split_under_the_server_batch_cap(server, client):
    ids = [str(i % 40) for i in range(120)]     # server cap: 50 rows per request
    client.batch_size = 50
    assert len(client.similar_items(ids, k=2)) == 120
    client.batch_size = 100
    with pytest.raises(RequestRejected, match="50"):
        client.similar_items(ids, k=2)


def test_k_beyond_the_model_limit_is_rejected(client):
    with pytest.raises(RequestRejected, match="k must be"):
        client.similar_items(["4"], k=1000)


def test_missing_model_is_reported(server):
    for protocol in PROTOCOLS:
        with TowerGraphClient.connect(_address(server, protocol), model_name="nope") as client:
            with pytest.raises(ModelNotFound, match="nope"):
                client.version()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_down_is_a_clear_error_after_retries(protocol):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"http://127.0.0.1:{port}" if protocol == "rest" else f"grpc://127.0.0.1:{port}"
    with TowerGraphClient.connect(address, retries=2, backoff=0.01, timeout=2) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable, match="unreachable"):
            client.similar_items(["4"], k=3)
        assert time.monotonic() - started < 10


def test_a_new_version_is_picked_up(server):
    rest = TowerGraphClient.connect(server.rest_url)
    grpc = TowerGraphClient.connect(f"grpc://{server.grpc_target}")
    assert rest.version() == grpc.version() == 1
    shutil.copytree(server.base / "1", server.base / "2")
    deadline = time.monotonic() + 60
    while rest.version() != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rest.version() == 2 and grpc.version() == 2
    assert np.isfinite(rest.item_embeddings(["4"])).all()


def test_the_client_says_what_it_talks_to(server):
    """What the explorer shows: protocol label, normalised address, served version."""
    with TowerGraphClient.connect(server.rest_url + "/") as rest, \
            TowerGraphClient.connect(f"grpc://{server.grpc_target}") as grpc:
        assert (rest.protocol, rest.address) == ("REST", server.rest_url)
        assert (grpc.protocol, grpc.address) == ("gRPC", f"grpc://{server.grpc_target}")
        assert rest.model_name == grpc.model_name == "towergraph"
        assert rest.version() == grpc.version() >= 1
