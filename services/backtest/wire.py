"""The back-test's in-process wires: every byte a service would send over the network goes to the
paper venue's own code in the same thread, so the services run unchanged and nothing waits.

* HTTP: :func:`in_process_http` makes every ``httpx.Client`` created meanwhile (the official SDK's
  transports, the data-api and Gamma clients) use ``httpx.WSGITransport`` on the venue's Flask app.
* WebSockets: :class:`SimMarketLink` / :class:`SimUserLink` replace md_gateway's and user_feed's
  links (both services take a ``link_factory``). A link attaches a connection to the venue's hub
  without a writer thread; :class:`Wires.deliver` moves what the hub queued for it onto the
  service's ``inbound`` queue as ``("frame", conn_id, gen, bytes, wall_ms, 0)``, exactly what a
  socket thread would have put there.
* REST books for md_gateway: :class:`SimRestBooks` answers ``/book`` through the same app at once.
"""
from __future__ import annotations

import contextlib
import queue
from typing import Any, Callable, Iterator

import httpx

from libs.common.clock import Clock
from services.md_gateway.ws import Link, LinkClosed
from services.user_feed.link import UserLink
from services.venue_sim.controls import Conn, Hub
from services.venue_sim.ws_market import MarketHub, handle_market_text


@contextlib.contextmanager
def in_process_http(app: Any) -> Iterator[None]:
    """While active, an ``httpx.Client`` built without a transport gets one on ``app`` (WSGI)."""
    original = httpx.Client.__init__

    def init(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            kwargs["transport"] = httpx.WSGITransport(app=app)
        original(self, *args, **kwargs)

    httpx.Client.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        httpx.Client.__init__ = original  # type: ignore[method-assign]


class _Socket:
    """What ``Conn.close`` needs of a WebSocket: the back-test's connections close in memory."""

    def __init__(self, on_close: Callable[[], None]) -> None:
        self.on_close = on_close

    def close(self, *_args: Any, **_kwargs: Any) -> None:
        self.on_close()


class _SimLinkMixin:
    """A link whose far end is a hub connection in this process (see module doc)."""

    conn_id: int
    gen: int
    inbound: "queue.SimpleQueue[tuple]"
    clock: Clock
    wires: "Wires"
    hub: Hub
    conn: Conn | None = None

    def _attach(self) -> None:
        self.conn = self.hub.attach(_Socket(self._lost), start_writer=False)
        self.wires.links.append(self)
        self.inbound.put(("open", self.conn_id, self.gen, None, self.clock.wall_ms(), 0))

    def _lost(self) -> None:
        if self.conn is not None:
            self.conn = None
            self.inbound.put(("closed", self.conn_id, self.gen, "closed by the venue", self.clock.wall_ms(), 0))

    def _send(self, text: str, on_text: Callable[[Conn, str], None]) -> None:
        if self.conn is None:
            raise LinkClosed("link is not open")
        if text.strip() == "PING":
            self.conn.offer("PONG")
        else:
            on_text(self.conn, text)

    def abort(self) -> None:
        """Close the link: the hub forgets it and the service hears ``closed``."""
        conn = self.conn
        if conn is not None:
            self.hub.detach(conn)
            self._lost()

    def drain(self) -> int:
        """Move the frames the hub queued for this link onto the service's queue; returns how many."""
        conn, n = self.conn, 0
        if conn is None:
            return 0
        while len(conn.outbox):
            text = conn.outbox.take(0)
            if text is None:
                break
            self.inbound.put(("frame", self.conn_id, self.gen, text.encode(), self.clock.wall_ms(), 0))
            n += 1
        return n


class SimMarketLink(_SimLinkMixin, Link):
    """md_gateway's market-channel link to the venue's MarketHub (same arguments as ``ws.Link``)."""

    def __init__(self, wires: "Wires", *args: Any, **kwargs: Any) -> None:
        Link.__init__(self, *args, **kwargs)
        self.wires, self.hub = wires, wires.market

    def start(self) -> None:
        """Connect and send the subscribe, as the real link does once its socket is open."""
        self._attach()
        self.send(self.opening())

    def send(self, text: str) -> None:
        """``PING`` is answered ``PONG``; anything else goes to the market channel's handler."""
        self._send(text, lambda conn, t: handle_market_text(self.wires.market, conn, t))


class SimUserLink(_SimLinkMixin, UserLink):
    """user_feed's user-channel link to the venue's UserHub (same arguments as ``UserLink``)."""

    def __init__(self, wires: "Wires", *args: Any, **kwargs: Any) -> None:
        UserLink.__init__(self, *args, **kwargs)
        self.wires, self.hub = wires, wires.user

    def start(self) -> None:
        """Connect and send the auth frame."""
        self._attach()
        self.send(self.opening())

    def send(self, text: str) -> None:
        """``PING`` is answered ``PONG``; anything else goes to the user channel's handler."""
        self._send(text, self.wires.user.handle_text)


class SimRestBooks:
    """md_gateway's REST book fetcher, answered at once through the venue's app (``rest.RestBooks``'
    interface: ``start``, ``request``, ``stop``; answers go to ``inbound`` in request order)."""

    def __init__(self, http: httpx.Client, clock: Clock) -> None:
        self.http, self.clock = http, clock
        self.inbound: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()  # the gateway's queue, set by the harness
        self.requests = 0

    def start(self) -> None:
        return None

    def stop(self, timeout_s: float = 0.0) -> None:  # noqa: ARG002 - nothing runs in the background
        return None

    def request(self, token_id: str, urgent: bool = False) -> None:  # noqa: ARG002 - answered in order
        """Fetch ``/book?token_id=`` now and queue the answer for the next ``pump``."""
        self.requests += 1
        resp = self.http.get("/book", params={"token_id": token_id})
        self.inbound.put(("rest", token_id, resp.status_code, resp.content, self.clock.wall_ms(), 0))


class Wires:
    """The venue's two hubs and every in-process link to them."""

    def __init__(self, market: MarketHub, user: Hub) -> None:
        self.market, self.user = market, user
        self.links: list[_SimLinkMixin] = []

    def market_link_factory(self) -> Callable[..., SimMarketLink]:
        """A ``link_factory`` for GatewayService."""
        return lambda *args, **kwargs: SimMarketLink(self, *args, **kwargs)

    def user_link_factory(self) -> Callable[..., SimUserLink]:
        """A ``link_factory`` for UserFeed."""
        return lambda *args, **kwargs: SimUserLink(self, *args, **kwargs)

    def deliver(self) -> int:
        """Dispatch what the market hub queued, then move every link's frames to its service."""
        self.market.pump()
        self.links = [link for link in self.links if link.conn is not None]
        return sum(link.drain() for link in self.links)
