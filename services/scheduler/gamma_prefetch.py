"""``GammaPrefetch``: Gamma lookups off the scheduler's step (issue 10), on background threads."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable

from services.scheduler.gamma import GammaError, GammaPending, GammaUnavailable, MarketMeta, MetadataSource


class GammaPrefetch:
    """A ``MetadataSource`` that never blocks the scheduler's step on Gamma for long.

    The first ask for a token queues a fetch on one of ``threads`` background threads and waits for
    it up to what is left of ``budget_s`` in the current ``window_s`` (wall, monotonic): a Gamma that
    answers in milliseconds answers within the same step, as a blocking client would, while a slow
    or hanging one costs a step at most ``budget_s`` per window whatever the burst. A fetch that did
    not end in time raises ``GammaPending``; once it ended, the next ask returns its answer (or raises
    its ``GammaError``) and forgets it, so a retry fetches afresh. Any other exception of ``source``
    becomes ``GammaUnavailable`` (retried like a timeout).

    Args:
        source: the blocking source (``GammaClient``); its ``close`` is called by ``close``.
        threads: fetches at once (>= 1).
        budget_s, window_s: wall seconds the asks may wait in all per window (0 = never wait).
        monotonic: the wall clock for the budget (injected in tests).
    """

    def __init__(self, source: MetadataSource, threads: int = 4, budget_s: float = 0.0, window_s: float = 0.5,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.source, self.budget_s, self.window_s, self._now = source, budget_s, window_s, monotonic
        self._lock = threading.Lock()
        self._asked: dict[str, Future[None]] = {}
        self._done: dict[str, tuple[MarketMeta | None, GammaError | None]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="gamma")
        self._window = (0.0, 0.0)  # (start, seconds waited in it)

    def market_for_token(self, token_id: str) -> MarketMeta | None:
        """The fetched answer for ``token_id``; see the class docstring.

        Raises:
            GammaPending: not fetched yet (the fetch is queued or running).
            GammaUnavailable, GammaBadMarket: what the fetch raised.
        """
        with self._lock:
            if token_id not in self._done and token_id not in self._asked:
                self._asked[token_id] = self._pool.submit(self._fetch, token_id)
            fut = self._asked.get(token_id)
        if fut is not None and token_id not in self._done:
            self._wait(fut)
        with self._lock:
            if token_id in self._done:
                self._asked.pop(token_id, None)
                meta, err = self._done.pop(token_id)
                if err is not None:
                    raise err
                return meta
        raise GammaPending(f"token={token_id}: Gamma fetch in progress")

    def _wait(self, fut: "Future[None]") -> None:
        now = self._now()
        start, spent = self._window if now - self._window[0] < self.window_s else (now, 0.0)
        left = self.budget_s - spent
        if left > 0:
            wait([fut], timeout=left)
            spent += self._now() - now
        self._window = (start, spent)

    def ready(self) -> int:
        """Answers fetched and not yet asked for."""
        with self._lock:
            return len(self._done)

    def _fetch(self, token_id: str) -> None:
        try:
            meta, err = self.source.market_for_token(token_id), None
        except GammaError as exc:
            meta, err = None, exc
        except Exception as exc:  # noqa: BLE001 - surfaced to the step as a retryable failure
            meta, err = None, GammaUnavailable(f"GET /markets token={token_id}: {type(exc).__name__}: {exc}")
        with self._lock:
            self._done[token_id] = (meta, err)

    def close(self) -> None:
        """Stop the fetch threads (queued fetches are dropped) and close ``source``."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
