"""The explorer's state, without Streamlit: connection settings, the centre and its trail,
and the keys results are cached under.

What the served model is (its version, the protocol's label, the normalised address) is the
client's to say (TowerGraphClient.version(), .protocol, .address); the graph limits live in
towergraph.constants. This module only keeps the session's own state.

Everything here works on plain dicts, so it is tested without a running app; the app hands it
`st.session_state`, which behaves like one.
"""

import os
from typing import List, Mapping, MutableMapping, NamedTuple, Optional

from towergraph.constants import DEFAULT_MODEL_NAME, PROTOCOL_GRPC, PROTOCOL_REST
from towergraph.constants import MAX_GRAPH_DEPTH as MAX_DEPTH
from towergraph.constants import MAX_GRAPH_FANOUT as MAX_FANOUT

DEFAULT_SERVER = "http://localhost:8501"
PROTOCOLS = (PROTOCOL_REST, PROTOCOL_GRPC)   # the choices of a local run's protocol control
DEFAULT_DEPTH = 2
DEFAULT_FANOUT = 8
TRAIL_LENGTH = 20   # earlier centres kept for the way back

# Environment variables the app reads its defaults from (set by `towergraph ui`).
ENV_SERVER = "TOWERGRAPH_SERVER"
ENV_PROTOCOL = "TOWERGRAPH_PROTOCOL"
ENV_MODEL_NAME = "TOWERGRAPH_MODEL_NAME"


class Settings(NamedTuple):
    server: str
    protocol: str        # "REST" or "gRPC", as the protocol control shows it
    model_name: str
    # Started with a server (TOWERGRAPH_SERVER, set by `towergraph ui --server`, the image and
    # the Kubernetes manifests): the page cannot change the connection (ui/guard.py).
    pinned: bool = False


def protocol_label(protocol: Optional[str], server: str = "") -> str:
    """"rest"/"grpc" (any case) to the control's label; none given: from the address' scheme."""
    if protocol:
        for label in PROTOCOLS:
            if protocol.strip().lower() == label.lower():
                return label
        raise ValueError(f"protocol must be rest or grpc, not {protocol!r}")
    return "gRPC" if server.strip().lower().startswith("grpc://") else "REST"


def settings_from_env(environ: Mapping[str, str] = os.environ) -> Settings:
    """A set TOWERGRAPH_SERVER pins the connection; without it, a local run starts from
    DEFAULT_SERVER and may change it."""
    pinned = bool(environ.get(ENV_SERVER, "").strip())
    server = environ.get(ENV_SERVER, "").strip() or DEFAULT_SERVER
    try:
        protocol = protocol_label(environ.get(ENV_PROTOCOL, ""), server)
    except ValueError:
        protocol = protocol_label("", server)
    model_name = environ.get(ENV_MODEL_NAME, "").strip() or DEFAULT_MODEL_NAME
    return Settings(server, protocol, model_name, pinned)


class Connection(NamedTuple):
    """What identifies the model being served; part of every cache key."""
    server: str
    protocol: str        # "rest" or "grpc", as TowerGraphClient.connect takes it
    model_name: str
    version: int


def connection(server: str, protocol: str, model_name: str, version: int) -> Connection:
    return Connection(server.strip().rstrip("/"), protocol_label(protocol).lower(),
                      model_name.strip(), int(version))


def connection_of(client, version: int) -> Connection:
    """The cache identity of what a connected TowerGraphClient serves, in its own words."""
    return connection(client.address, client.protocol, client.model_name, version)


class GraphKey(NamedTuple):
    """A graph is cached per (server, protocol, model name, model version, item, depth,
    fanout): a new model version is a new key, so a newly pushed model is never answered from
    the old one's cache."""
    connection: Connection
    item: str
    depth: int
    fanout: int


def graph_key(conn: Connection, item: str, depth: int, fanout: int) -> GraphKey:
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be between 1 and {MAX_DEPTH}")
    if not 1 <= fanout <= MAX_FANOUT:
        raise ValueError(f"fan-out must be between 1 and {MAX_FANOUT}")
    return GraphKey(conn, str(item), int(depth), int(fanout))


class Navigation:
    """The current centre and the trail of earlier centres, kept in a session-state mapping.

    go_to() moves on (the old centre joins the trail); back_to(i) returns to trail[i] and
    forgets everything after it, as a browser's back button does.
    """

    CENTRE = "centre"
    TRAIL = "trail"

    def __init__(self, store: MutableMapping):
        self.store = store
        store.setdefault(self.CENTRE, None)
        store.setdefault(self.TRAIL, [])

    @property
    def centre(self) -> Optional[str]:
        return self.store[self.CENTRE]

    @property
    def trail(self) -> List[str]:
        return list(self.store[self.TRAIL])

    def go_to(self, item: Optional[str]) -> bool:
        """Centres on item; False when it already is the centre (or is empty)."""
        if not item or item == self.centre:
            return False
        trail = self.trail
        if self.centre is not None:
            trail = [entry for entry in trail if entry != self.centre] + [self.centre]
        trail = [entry for entry in trail if entry != item][-TRAIL_LENGTH:]
        self.store[self.TRAIL] = trail
        self.store[self.CENTRE] = str(item)
        return True

    def back_to(self, index: int) -> None:
        trail = self.trail
        if not -len(trail) <= index < len(trail):
            return
        index %= len(trail)
        self.store[self.CENTRE] = trail[index]
        self.store[self.TRAIL] = trail[:index]

    def back(self) -> None:
        if self.trail:
            self.back_to(-1)

    def forget(self) -> None:
        """Drops the centre (an item the model no longer knows); the trail stays."""
        trail = self.trail
        self.store[self.CENTRE] = trail[-1] if trail else None
        self.store[self.TRAIL] = trail[:-1]
