"""The imperative shell every service shares: stop flag and SIGTERM, Redis, loop, heartbeat, metrics.

A service is an object with ``step() -> None`` doing exactly one iteration of I/O; ``run_loop``
calls it until the stop flag is set (or ``max_iterations``), journaling every failure of a step
with reason ``STEP_FAILED`` and backing off, so no exception ends a service silently.

Redis outages are not step failures: ``connect_redis`` waits for Redis at start and ``run_loop``
waits out an outage met by a step (``libs.common.redis_wait.RedisGate``: one ``REDIS_UNAVAILABLE``
line per window, ``REDIS_RECOVERED`` when it answers, ``REDIS_OUTAGE`` journaled afterwards), then
calls ``on_recover`` (a worker renews its leases there) before anything else.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Callable, TypeVar

from prometheus_client import start_http_server
from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys, metrics
from libs.common.clock import Clock, clock_for_mode
from libs.common.journal import Journal
from libs.common.logs import configure_logging
from libs.common.redis_client import make_probe, make_redis
from libs.common.redis_wait import RedisGate, is_down
from libs.common.settings import BadSetting, BaseServiceSettings, load_settings

S = TypeVar("S", bound=BaseServiceSettings)

log = logging.getLogger(__name__)
_process_gate: RedisGate | None = None  # this process's gate (``connect_redis``): the default of ``heartbeat``


def boot(service: str, cls: type[S]) -> S | None:
    """Start of every ``__main__``: load ``cls`` from the environment, configure logging and metrics
    (``service``'s families of ``libs.common.metrics``, served on ``settings.metrics_port``).

    Returns None after logging one ``event BAD_SETTING PB_FIELD='value': reason`` line when a
    setting is invalid or the metrics port cannot be bound; the caller then exits with status 2.
    """
    try:
        settings = load_settings(cls)
    except BadSetting as exc:
        configure_logging(service)
        log.error("event BAD_SETTING %s", exc)
        return None
    configure_logging(service, settings.log_level)
    metrics.register(service)
    try:
        start_metrics(settings.metrics_port)
    except OSError as exc:  # the port is taken (two services on one PB_METRICS_PORT) or not ours
        log.error("event BAD_SETTING PB_METRICS_PORT=%r: cannot listen: %s", settings.metrics_port, exc)
        return None
    return settings


def connect_redis(settings: BaseServiceSettings, client_name: str,
                  stop: threading.Event) -> tuple[Redis, RedisGate] | None:
    """The service's Redis client and gate, once Redis answers (waited for, one line per window);
    None when ``stop`` was set while waiting."""
    global _process_gate
    gate = _process_gate = RedisGate(make_probe(settings), settings.redis_url, stop)
    if not gate.wait_up(phase="start"):
        return None
    r = gate.call(lambda: make_redis(settings, client_name=client_name))  # a cluster client reads the slot map now
    return None if r is None else (r, gate)


def connect(settings: BaseServiceSettings, client_name: str,
            stop: threading.Event) -> tuple[Redis, RedisGate, Clock] | None:
    """``connect_redis`` then ``wait_for_clock``: (client, gate, market clock); None when stopped meanwhile."""
    conn = connect_redis(settings, client_name, stop)
    clock = wait_for_clock(conn[0], conn[1], settings.mode, stop) if conn else None
    return None if conn is None or clock is None else (conn[0], conn[1], clock)


def wait_for_clock(r: Redis, gate: RedisGate, mode: str, stop: threading.Event) -> Clock | None:
    """The market clock (paper: the venue's replay clock, waited for, one CLOCK_WAIT line every
    10 s); Redis outages meanwhile are waited out. None when stopped meanwhile."""
    waited = 0
    while not stop.is_set():
        try:
            clock = gate.call(lambda: clock_for_mode(r, mode, wait_s=1.0), phase="start")
        except TimeoutError as exc:
            if waited % 10 == 0:
                log.warning("event CLOCK_WAIT waited_s=%d detail=%s", waited, exc)
            waited += 1
            continue
        return clock
    return None


def install_stop_handlers(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM and SIGINT (only callable from the main thread)."""
    def _handler(signum: int, _frame: object) -> None:
        log.info("stop requested signal=%s", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)


def start_metrics(port: int) -> None:
    """Expose Prometheus metrics on ``port`` (0 = disabled)."""
    if port:
        start_http_server(port)
        log.info("metrics listening port=%d", port)


def instance_name(service: str, configured: str = "") -> str:
    """``configured`` if set, else ``<service>-<hostname>-<pid>``."""
    return configured or f"{service}-{os.uname().nodename}-{os.getpid()}"


def heartbeat(r: Redis, instance: str, service: str, clock: Clock, detail: dict[str, object] | None = None,
              gate: RedisGate | None = None) -> None:
    """Record that ``instance`` is alive: ``pb:svc`` zset score and ``pb:svc:<instance>`` hash. Never
    raises. An outage is reported through ``gate`` (default: the process's, from ``connect_redis``):
    one line per window, and its end noticed there (a service whose step keeps going while Redis is
    down, like the venue or md_gateway, still logs REDIS_UNAVAILABLE / REDIS_RECOVERED and journals
    REDIS_OUTAGE through ``run_loop``)."""
    gate = gate or _process_gate
    now = clock.wall_ms()
    fields = {"service": service, "pid": os.getpid(), "last_ms": now, **(detail or {})}
    try:
        pipe = r.pipeline(transaction=False)
        pipe.zadd(keys.SERVICES, {instance: now})
        pipe.hset(keys.service(instance), mapping={k: str(v) for k, v in fields.items()})
        pipe.hsetnx(keys.service(instance), "started_ms", now)
        pipe.pexpire(keys.service(instance), 24 * 3600 * 1000)
        pipe.execute()
    except RedisError as exc:
        if gate is not None and is_down(exc):
            gate.failed(exc)
            return
        log.error("event HEARTBEAT_FAILED instance=%s err=%s", instance, exc)
        return
    if gate is not None:
        gate.answered()


def run_loop(step: Callable[[], None], stop: threading.Event, clock: Clock, interval_s: float,
             journal: Journal | None = None, max_iterations: int | None = None,
             max_backoff_s: float = 5.0, idle: Callable[[float], None] | None = None,
             gate: RedisGate | None = None, on_recover: Callable[[], None] | None = None) -> int:
    """Call ``step`` every ``interval_s`` wall seconds until ``stop`` is set; returns iterations run.

    A step that raises is journaled (``STEP_FAILED``, error) and retried after an exponential
    backoff capped at ``max_backoff_s``; the loop itself never dies of it. ``idle(seconds)``, when
    given, spends the time between two successful steps instead of a plain wait (a worker reacts to
    pushed book changes there); it must return within about ``seconds`` and may raise like ``step``.
    With ``gate``, an unreachable Redis is no step failure: the loop waits until Redis answers, then
    runs ``on_recover()`` first and journals ``REDIS_OUTAGE``, then steps again.
    """
    n, failures = 0, 0
    seen = gate.recoveries if gate is not None else 0
    while not stop.is_set() and (max_iterations is None or n < max_iterations):
        n += 1
        try:
            seen = _after_outage(gate, seen, journal, on_recover)
            step()
            failures = 0
            wait = interval_s
            if idle is not None and not stop.is_set():
                idle(wait)
                wait = 0
        except Exception as exc:  # noqa: BLE001 - journaled with a reason code, then backed off
            if gate is not None and is_down(exc):
                gate.wait_up(exc)
                continue
            failures += 1
            wait = min(max_backoff_s, interval_s * (2 ** min(failures, 8)))
            if journal is not None:
                journal.record("STEP_FAILED", level="error", error=type(exc).__name__, detail=str(exc)[:300])
            log.exception("event STEP_FAILED failures=%d backoff_s=%.2f", failures, wait)
        if wait > 0:
            stop.wait(wait)
    return n


def _after_outage(gate: RedisGate | None, seen: int, journal: Journal | None,
                  on_recover: Callable[[], None] | None) -> int:
    """After Redis came back (``gate.recoveries`` moved past ``seen``): ``on_recover()``, then the
    journal's REDIS_OUTAGE entries. Returns the recoveries handled (``seen`` again if it raised)."""
    if gate is None:
        return seen
    if gate.recoveries != seen and on_recover is not None:
        on_recover()
    if journal is not None and gate.unjournaled:
        gate.journal_outage(journal.record)
    return gate.recoveries
