"""The stand-in's connection limits: how long a client may take and how much it may hold.

TF Serving's own HTTP server has a request timeout (--rest_api_timeout_in_ms); a Python
server left to uvicorn's defaults has no header or body read timeout, no header-size limit and
no connection cap, so a few slow or half-open clients could hold it. Standard library only:
`towergraph serve --help` shows these without importing the server.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0     # s from connect (or the previous answer) to complete headers
    body_timeout: float = 30.0       # s to receive a whole request body
    idle_timeout: float = 30.0       # s a keep-alive connection may sit idle between requests
    max_header_bytes: int = 64 * 1024  # request line + headers
    max_connections: int = 256       # open REST connections; more get 503 and are closed
    max_grpc_rpcs: int = 64          # gRPC calls at once; more get RESOURCE_EXHAUSTED

    def describe(self) -> str:
        return (f"Connection limits (stand-in): headers within {self.header_timeout:g} s of "
                f"connecting and at most {self.max_header_bytes // 1024} KiB (else 408 / 431), "
                f"a body within {self.body_timeout:g} s (408), idle keep-alive connections "
                f"closed after {self.idle_timeout:g} s, at most {self.max_connections} REST "
                f"connections (503) and {self.max_grpc_rpcs} gRPC calls at once "
                f"(RESOURCE_EXHAUSTED). Every rejection is TF Serving's {{\"error\": ...}} "
                f"shape or a gRPC status.")


DEFAULT_CONNECTION_LIMITS = ConnectionLimits()
