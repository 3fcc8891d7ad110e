"""REST ``GET {clob_url}/book?token_id=`` on worker threads, so a slow request never stalls the feed.

Answers go to the service's ``inbound`` queue as ``("rest", token_id, http_status, body, wall_ms, 0)``;
a transport failure has status 0 and the error text as body. The service parses and applies them in
order with the WS frames. Polymarket allows 1500 ``/book`` requests per 10 s
(``reference/polymarket-api.md``, rate limits); ``threads`` requests at a time stay well below it.
"""
from __future__ import annotations

import itertools
import queue
import threading

import httpx

from libs.common.clock import Clock


class RestBooks:
    """A small pool of threads fetching REST books.

    Args:
        base_url: CLOB REST base (``PB_CLOB_URL``).
        inbound: the service's queue.
        clock: wall time stamped on each answer.
        threads: concurrent requests.
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str, inbound: "queue.SimpleQueue[tuple]", clock: Clock, threads: int = 2,
                 timeout_s: float = 5.0) -> None:
        self.base_url, self.inbound, self.clock = base_url.rstrip("/"), inbound, clock
        self.threads, self.timeout_s = threads, timeout_s
        self.requests: "queue.PriorityQueue[tuple[int, int, str | None]]" = queue.PriorityQueue()
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"md-rest-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def request(self, token_id: str, urgent: bool = False) -> None:
        """Queue one ``/book`` request (the core makes sure a token has one in flight at most).
        ``urgent`` (a snapshot for a book in resync) goes ahead of every queued verify."""
        self.requests.put((0 if urgent else 1, next(self._order), token_id))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the workers finish their current request and exit."""
        for _ in self._workers:
            self.requests.put((-1, next(self._order), None))
        for t in self._workers:
            t.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while True:
                _, _, token = self.requests.get()
                if token is None:
                    return
                self.inbound.put(self._fetch(client, token))

    def _fetch(self, client: httpx.Client, token: str) -> tuple:
        try:
            resp = client.get("/book", params={"token_id": token})
            return ("rest", token, resp.status_code, resp.content, self.clock.wall_ms(), 0)
        except httpx.HTTPError as exc:
            return ("rest", token, 0, f"{type(exc).__name__}: {exc}".encode(), self.clock.wall_ms(), 0)
