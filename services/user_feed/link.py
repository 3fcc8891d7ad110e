"""The user-channel socket: md_gateway's sans-I/O :class:`~services.md_gateway.ws.Link` (one socket,
one reader thread, frames on a shared queue) with the user channel's authenticated first message.

First message, exactly as the SDK sends it for "all markets of the account"
(``polymarket/_internal/streams/clob/user_protocol.py`` ``build_initial_frame``):
``{"type": "user", "auth": {"apiKey", "secret", "passphrase"}}`` -- no ``markets`` key (the SDK adds
``markets`` only to narrow the subscription; an empty list means the same on the paper venue). The
frame holds the API secret: it is never logged.
"""
from __future__ import annotations

import orjson

from services.md_gateway.ws import Link


def auth_frame(api_key: str, secret: str, passphrase: str, markets: list[str] | None = None) -> str:
    """The subscribe message (module doc); ``markets`` None = every market of the account."""
    frame: dict[str, object] = {"type": "user", "auth": {"apiKey": api_key, "secret": secret, "passphrase": passphrase}}
    if markets:
        frame["markets"] = markets
    return orjson.dumps(frame).decode()


class UserLink(Link):
    """One user-channel connection. ``initial`` is the auth frame sent once the socket is open; the
    queue gets ``("open"|"frame"|"closed", conn_id, gen, data, wall_ms, perf_ns)`` like a market link."""

    def __init__(self, conn_id: int, gen: int, url: str, initial: str, inbound, clock,  # type: ignore[no-untyped-def]
                 connect_timeout_s: float) -> None:
        super().__init__(conn_id, gen, url, [], inbound, clock, connect_timeout_s, hard_limit=16 * 1024 * 1024)
        self.initial = initial

    def opening(self) -> str:
        """The auth frame (holds the API secret: never logged)."""
        return self.initial
