"""uvicorn's HTTP/1.1 protocol (h11) with the stand-in's connection limits enforced.

Adds what uvicorn lacks: a deadline for the request line and headers (from connect, and from
the end of the previous answer on a keep-alive connection, so a client trickling one byte at a
time is cut off too), a cap on open connections, and a limit on the size of the request line
and headers (h11 checks only headers still incomplete; a complete 20 MB header is caught
here). Each rejection is answered in TF Serving's shape, {"error": "..."} with an HTTP status
(408, 431, 503), and the connection is closed. The body deadline is the REST app's (rest.py),
as only it reads bodies.
"""

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.standin.limits import ConnectionLimits

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}


def guarded_protocol(limits: ConnectionLimits) -> type:
    """An H11Protocol class enforcing `limits` (uvicorn.Config(http=...) takes a class)."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer = None
            if len(self.connections) > limits.max_connections:
                self._reject(503, f"Too many connections: this server takes at most "
                                  f"{limits.max_connections} at once; try again later")
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(
                limits.header_timeout, self._reject, 408,
                f"Request headers not received within {limits.header_timeout:g} s")

        def _cancel_header_timer(self) -> None:
            if getattr(self, "_header_timer", None) is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            waiting_for_headers = self.conn.their_state is h11.IDLE
            if waiting_for_headers:  # h11 checks the size only of headers still incomplete
                pending = self.conn.trailing_data[0] + data  # at most the limit + one chunk
                end = pending.find(b"\r\n\r\n")
                if (len(pending) if end < 0 else end + 4) > limits.max_header_bytes:
                    self._reject_large_headers()
                    return
            super().data_received(data)
            if waiting_for_headers and self.conn.their_state is not h11.IDLE:
                self._cancel_header_timer()  # headers complete: the body has its own deadline

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()  # the next request's headers (idle timer runs too)

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to anything h11 refuses, headers over the limit included
            (uvicorn.Config(h11_max_incomplete_event_size=max_header_bytes))."""
            if len(self.conn.trailing_data[0]) > limits.max_header_bytes:
                self._reject_large_headers()
            else:
                self._reject(400, f"Malformed HTTP request: {msg}")

        def _reject_large_headers(self) -> None:
            self._reject(431, f"Request line and headers are larger than the limit of "
                              f"{limits.max_header_bytes} bytes of this server")

        def _reject(self, status: int, message: str) -> None:
            """TF Serving's error shape, then close (written raw: h11's state may not allow a
            response here, and the connection ends anyway)."""
            self._cancel_header_timer()
            if self.transport.is_closing():
                return
            body = json.dumps({"error": message}).encode("utf-8")
            reason = _REASONS.get(status, b"Bad Request")
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))
            self.transport.close()

    return GuardedH11Protocol
