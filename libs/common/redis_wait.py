"""Waiting for Redis, at start and through outages (one place for every service).

Pure core: ``Backoff`` (delay of attempt n, capped, with optional jitter) and ``Outage`` (attempts,
length, and whether this attempt opens a new log window). Small shell: ``RedisGate`` probes Redis
(``PING`` on a dedicated client with short timeouts and no client-side retries) until it answers,
logging at most one line per window::

    event REDIS_UNAVAILABLE url=redis://host:port/0 phase=start attempts=N waited_s=X next_in_s=Y error=...
    event REDIS_RECOVERED url=redis://host:port/0 phase=run attempts=N outage_s=X

The URL is shown without its password; no traceback is logged for an outage. The journal
(``pb:events``) cannot be written while Redis is down, so the outage is journaled once Redis is
back (``REDIS_OUTAGE`` with ``outage_ms``, ``attempts``, ``phase``, ``error``) by
:meth:`RedisGate.journal_outage`. ``up_since_ms`` (wall ms at which Redis last came back, or first
answered) feeds the lease takeover rule (``libs.common.leases.holder_deadline``).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from redis import Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger(__name__)

T = TypeVar("T")
# errors that mean "Redis does not answer" (BusyLoadingError, a restart replaying its AOF, is a
# ConnectionError); every other RedisError is a real failure of the command and is not waited out.
DOWN_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
WINDOW_S = 5.0
CHECK_EVERY_S = 1.0  # ``RedisGate.check``: one PING a second while Redis answers


def is_down(exc: BaseException) -> bool:
    """True when ``exc`` means Redis is unreachable or not answering (not a command error)."""
    return isinstance(exc, DOWN_ERRORS)


def safe_url(url: str) -> str:
    """``url`` without its password: ``redis://[user@]host:port/db`` (``unix://`` paths as given)."""
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return f"{parts.scheme}://{parts.path}"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    path = parts.path or "/0"
    return f"{parts.scheme}://{user}{parts.hostname}{port}{path}"


@dataclass(frozen=True)
class Backoff:
    """Delay before probe ``attempt`` (1-based): ``min(cap_s, base_s * 2**(attempt-1))``, then
    scaled by ``1 - jitter * u`` for a uniform ``u`` in [0, 1) supplied by the caller."""

    base_s: float = 0.1
    cap_s: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, u: float = 0.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (pure)."""
        raw = min(self.cap_s, self.base_s * (2 ** min(max(attempt, 1) - 1, 30)))
        return raw * (1.0 - self.jitter * min(max(u, 0.0), 1.0))


@dataclass
class Outage:
    """One outage as seen by one process (monotonic seconds). Pure: every method takes ``now_s``.

    Attributes:
        started_s: when the first failure was seen.
        phase: ``start`` (before the service ran) or ``run``.
        attempts: failed attempts so far (the failure that opened the outage is the first).
        error: the last error, ``Type: message`` (one line, at most 200 chars).
        logged_s: when the last REDIS_UNAVAILABLE line was written (None: never).
        length_s: the outage's length, set when Redis answered again.
    """

    started_s: float
    phase: str = "run"
    attempts: int = 0
    error: str = ""
    logged_s: float | None = None
    length_s: float = 0.0

    def failed(self, now_s: float, exc: BaseException, window_s: float = WINDOW_S) -> bool:
        """Count one failed attempt; True when it opens a new log window (log one line now)."""
        self.attempts += 1
        self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        if self.logged_s is None or now_s - self.logged_s >= window_s:
            self.logged_s = now_s
            return True
        return False

    def waited_s(self, now_s: float) -> float:
        """Seconds since the outage began."""
        return max(0.0, now_s - self.started_s)


class Probe(Protocol):
    """Anything whose ``ping()`` raises a DOWN error while Redis does not answer."""

    def ping(self) -> object: ...


@dataclass
class RedisGate:
    """Waits for Redis (see the module docstring). One per process, shared by boot and ``run_loop``.

    Args:
        probe: a client used only to PING (``probe_client``); tests pass a fake.
        url: shown in log lines (the password is removed).
        stop: the service's stop flag; waiting ends early when it is set.
        backoff, window_s: the probe schedule and the log window.
        monotonic, wall_ms, wait, rand: injected time and randomness (``wait(s)`` returns early on stop).

    Attributes:
        up_since_ms: wall ms since which Redis has been answering (after the last outage, or first).
        recoveries: outages ended so far (``run_loop`` runs ``on_recover`` when it moves).
        outage: the outage in progress, None while Redis answers.
        unjournaled: ended outages not yet journaled.
    """

    probe: Probe
    url: str
    stop: threading.Event
    backoff: Backoff = Backoff()
    window_s: float = WINDOW_S
    monotonic: Callable[[], float] = time.monotonic
    wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
    wait: Callable[[float], object] | None = None
    rand: Callable[[], float] = random.random
    up_since_ms: int = 0
    recoveries: int = 0
    outage: Outage | None = None
    unjournaled: list[Outage] = field(default_factory=list)
    next_check_s: float = 0.0
    _lock: AbstractContextManager[bool] = field(default_factory=threading.RLock, repr=False)  # heartbeat, loop, watcher

    def failed(self, exc: BaseException, phase: str = "run") -> float:
        """Record one failed attempt (logging one line per window); returns the delay before the next."""
        with self._lock:
            return self._failed(exc, phase)

    def _failed(self, exc: BaseException, phase: str) -> float:
        now = self.monotonic()
        if self.outage is None:
            self.outage = Outage(now, phase)
        o = self.outage
        delay = self.backoff.delay(o.attempts + 1, self.rand())
        if o.failed(now, exc, self.window_s):
            log.warning("event REDIS_UNAVAILABLE url=%s phase=%s attempts=%d waited_s=%.1f next_in_s=%.2f error=%s",
                        safe_url(self.url), o.phase, o.attempts, o.waited_s(now), delay, o.error)
        return delay

    def answered(self) -> Outage | None:
        """Redis answered: close the current outage (REDIS_RECOVERED line) and return it, else None."""
        with self._lock:
            return self._answered()

    def _answered(self) -> Outage | None:
        o, self.outage = self.outage, None
        if o is None:
            if not self.up_since_ms:
                self.up_since_ms = self.wall_ms()
            return None
        self.up_since_ms = self.wall_ms()
        self.recoveries += 1
        o.length_s = o.waited_s(self.monotonic())
        log.warning("event REDIS_RECOVERED url=%s phase=%s attempts=%d outage_s=%.1f",
                    safe_url(self.url), o.phase, o.attempts, o.length_s)
        self.unjournaled.append(o)
        return o

    def wait_up(self, first: BaseException | None = None, phase: str = "run") -> bool:
        """Block until Redis answers a PING (True) or ``stop`` is set (False). ``first``: the error
        that revealed the outage (counted as attempt 1, without probing again at once)."""
        pause = self.wait or self.stop.wait
        if first is not None:
            pause(self.failed(first, phase))
        while not self.stop.is_set():
            try:
                self.probe.ping()
            except DOWN_ERRORS as exc:
                pause(self.failed(exc, phase))
                continue
            self.answered()
            return True
        return False

    def check(self) -> bool:
        """Non-blocking liveness probe for a service whose loop must keep going while Redis is down
        (see ``watch``): at most one PING per backoff delay (each bounded by the
        probe's timeout); an outage is logged and closed as in ``wait_up``. True when Redis answered."""
        now = self.monotonic()
        if now < self.next_check_s:
            return self.outage is None
        try:
            self.probe.ping()
        except DOWN_ERRORS as exc:
            self.next_check_s = self.monotonic() + self.failed(exc)
            return False
        self.next_check_s = now + CHECK_EVERY_S
        self.answered()
        return True

    def watch(self, every_s: float = 0.2) -> threading.Thread:
        """Run ``check`` on a daemon thread until ``stop``: for a service whose own loop may sit in a
        Redis call for a whole outage (md_gateway), so the outage is still seen and journaled."""
        def loop() -> None:
            while not self.stop.wait(every_s):
                self.check()
        thread = threading.Thread(target=loop, name="redis-gate-watch", daemon=True)
        thread.start()
        return thread

    def call(self, fn: Callable[[], T], phase: str = "start") -> T | None:
        """``fn()`` retried across Redis outages; None when ``stop`` was set before it succeeded."""
        while not self.stop.is_set():
            try:
                result = fn()
            except DOWN_ERRORS as exc:
                if not self.wait_up(exc, phase):
                    return None
                continue
            self.answered()
            return result
        return None

    def journal_outage(self, record: Callable[..., None]) -> int:
        """Journal every outage seen since the last call (``record`` is ``Journal.record``); how many."""
        n = 0
        while self.unjournaled:
            o = self.unjournaled[0]
            record("REDIS_OUTAGE", level="warn", outage_ms=int(o.length_s * 1000), attempts=o.attempts,
                   phase=o.phase, url=safe_url(self.url), error=o.error)
            self.unjournaled.pop(0)
            n += 1
        return n


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_seed(url: str) -> str | None:
    """For a Redis Cluster URL, ``redis+cluster://[user:pass@]host:port`` (``rediss+cluster://`` for
    TLS), the plain URL of its seed node that redis-py's ``RedisCluster.from_url`` takes (the other
    nodes are discovered from it); None for any other URL (a single Redis: ``redis://``, ``rediss://``,
    ``unix://``). A path (``/0``) is dropped: a cluster has only database 0.

    Raises:
        ValueError: a cluster URL without a host (names the URL without its password).
    """
    parts = urlsplit(url)
    plain = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if plain is None:
        return None
    if not parts.hostname:
        raise ValueError(f"PB_REDIS_URL={safe_url(url)!r}: a cluster URL needs host:port")
    return parts._replace(scheme=plain, path="").geturl()


class ClusterProbe:
    """``Probe`` of a Redis Cluster: PINGs through a ``RedisCluster`` built on first use (building it
    needs a node that answers, so it is retried at each ``ping`` until one does). Any failure to reach
    the cluster (``RedisClusterException``: no node answers, slots not covered) raises
    ``redis.exceptions.ConnectionError``, which ``RedisGate`` waits out."""

    def __init__(self, seed_url: str, kwargs: dict[str, object]) -> None:
        self.seed_url, self.kwargs = seed_url, kwargs
        self.client: RedisCluster | None = None

    def ping(self) -> object:
        """PING one cluster node (one quick attempt).

        Raises:
            redis.exceptions.ConnectionError / TimeoutError: the cluster does not answer.
        """
        try:
            if self.client is None:
                self.client = RedisCluster.from_url(self.seed_url, retry=Retry(NoBackoff(), 0), **self.kwargs)
            return self.client.ping()
        except RedisClusterException as exc:
            self.client = None
            raise RedisConnectionError(f"cluster unreachable: {exc}") from None


def probe_client(url: str, password: str | None = None, timeout_s: float = 1.0) -> Redis | ClusterProbe:
    """A client for PING only: short timeouts and no retries, so each probe is one quick attempt.
    A cluster URL (:func:`cluster_seed`) gives a :class:`ClusterProbe`."""
    kwargs: dict[str, object] = {"password": password} if password is not None else {}
    kwargs.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s, client_name="polyband-probe")
    seed = cluster_seed(url)
    if seed is not None:
        return ClusterProbe(seed, kwargs)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), **kwargs)
