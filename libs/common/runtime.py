"""The imperative shell every service shares: stop flag and SIGTERM, loop, heartbeat, metrics.

A service is an object with ``step() -> None`` doing exactly one iteration of I/O; ``run_loop``
calls it until the stop flag is set (or ``max_iterations``), journaling every failure of a step
with reason ``STEP_FAILED`` and backing off, so no exception ends a service silently.
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

from libs.common import keys
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.logs import configure_logging
from libs.common.settings import BadSetting, BaseServiceSettings, load_settings

S = TypeVar("S", bound=BaseServiceSettings)

log = logging.getLogger(__name__)


def boot(service: str, cls: type[S]) -> S | None:
    """Start of every ``__main__``: load ``cls`` from the environment, configure logging and metrics.

    Returns None after logging one ``event BAD_SETTING PB_FIELD='value': reason`` line when a
    setting is invalid; the caller then exits with status 2.
    """
    try:
        settings = load_settings(cls)
    except BadSetting as exc:
        configure_logging(service)
        log.error("event BAD_SETTING %s", exc)
        return None
    configure_logging(service, settings.log_level)
    start_metrics(settings.metrics_port)
    return settings


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


def heartbeat(r: Redis, instance: str, service: str, clock: Clock, detail: dict[str, object] | None = None) -> None:
    """Record that ``instance`` is alive: ``pb:svc`` zset score and ``pb:svc:<instance>`` hash."""
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
        log.error("event HEARTBEAT_FAILED instance=%s err=%s", instance, exc)


def run_loop(step: Callable[[], None], stop: threading.Event, clock: Clock, interval_s: float,
             journal: Journal | None = None, max_iterations: int | None = None,
             max_backoff_s: float = 5.0, idle: Callable[[float], None] | None = None) -> int:
    """Call ``step`` every ``interval_s`` wall seconds until ``stop`` is set; returns iterations run.

    A step that raises is journaled (``STEP_FAILED``, error) and retried after an exponential
    backoff capped at ``max_backoff_s``; the loop itself never dies of it. ``idle(seconds)``, when
    given, spends the time between two successful steps instead of a plain wait (a worker reacts to
    pushed book changes there); it must return within about ``seconds`` and may raise like ``step``.
    """
    n, failures = 0, 0
    while not stop.is_set() and (max_iterations is None or n < max_iterations):
        n += 1
        try:
            step()
            failures = 0
            wait = interval_s
            if idle is not None and not stop.is_set():
                idle(wait)
                wait = 0
        except Exception as exc:  # noqa: BLE001 - journaled with a reason code, then backed off
            failures += 1
            wait = min(max_backoff_s, interval_s * (2 ** min(failures, 8)))
            if journal is not None:
                journal.record("STEP_FAILED", level="error", error=type(exc).__name__, detail=str(exc)[:300])
            log.exception("event STEP_FAILED failures=%d backoff_s=%.2f", failures, wait)
        if wait > 0:
            stop.wait(wait)
    return n
