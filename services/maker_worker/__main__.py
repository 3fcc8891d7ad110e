"""``python -m services.maker_worker``: settings -> logging -> Redis -> clock -> journal -> worker loop.

SIGTERM/SIGINT stop the loop; the worker then cancels its open orders and releases its leases.
"""
from __future__ import annotations

import logging
import sys
import threading

from redis import Redis

from libs.common import runtime
from libs.common.clock import Clock, clock_for_mode
from libs.common.journal import Journal
from libs.common.redis_client import make_redis
from libs.common.venue import VenueClient
from services.maker_worker.config import WorkerSettings
from services.maker_worker.service import Worker

log = logging.getLogger("services.maker_worker")


def wait_for_clock(r: Redis, mode: str, stop: threading.Event) -> Clock | None:
    """The market clock (paper: the venue's replay clock, waited for); None when stopped meanwhile."""
    while not stop.is_set():
        try:
            return clock_for_mode(r, mode, wait_s=1.0)
        except TimeoutError as exc:
            log.warning("event CLOCK_WAIT detail=%s", exc)
    return None


def main() -> int:
    """Run one worker until SIGTERM; exit status 2 on a bad setting."""
    settings = runtime.boot("maker_worker", WorkerSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    runtime.install_stop_handlers(stop)
    r = make_redis(settings, client_name="maker_worker")
    clock = wait_for_clock(r, settings.mode, stop)
    if clock is None:
        return 0
    worker_id = runtime.instance_name("maker_worker", settings.worker_id or settings.instance_id)
    journal = Journal(r, "maker_worker", clock)
    try:
        venue = VenueClient.from_settings(settings, settings.clob_url, settings.http_timeout_s)
    except ValueError as exc:  # key / wallet type / wallet that do not fit (never contains the key)
        log.error("event BAD_SETTING %s", exc)
        return 2
    worker = Worker(r, venue, settings, clock, journal, worker_id)
    log.info("maker_worker start worker_id=%s clob_url=%s mode=%s", worker_id, settings.clob_url, settings.mode)
    try:
        runtime.run_loop(worker.step, stop, clock, settings.step_interval_s, journal,
                         idle=lambda seconds: worker.idle(seconds, stop))
    finally:
        worker.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
