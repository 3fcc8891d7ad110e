"""``python -m services.maker_worker``: settings -> logging -> Redis -> clock -> journal -> worker loop.

SIGTERM/SIGINT stop the loop; the worker then cancels its open orders and releases its leases.
"""
from __future__ import annotations

import logging
import sys
import threading

from libs.common import runtime
from libs.common.journal import Journal
from libs.common.venue import VenueClient
from services.maker_worker.config import WorkerSettings
from services.maker_worker.service import Worker

log = logging.getLogger("services.maker_worker")


def main() -> int:
    """Run one worker until SIGTERM; exit status 2 on a bad setting."""
    settings = runtime.boot("maker_worker", WorkerSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    runtime.install_stop_handlers(stop)
    conn = runtime.connect(settings, "maker_worker", stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    worker_id = runtime.instance_name("maker_worker", settings.worker_id or settings.instance_id)
    journal = Journal(r, "maker_worker", clock)
    try:
        venue = VenueClient.from_settings(settings, settings.clob_url, settings.http_timeout_s)
    except ValueError as exc:  # key / wallet type / wallet that do not fit (never contains the key)
        log.error("event BAD_SETTING %s", exc)
        return 2
    worker = Worker(r, venue, settings, clock, journal, worker_id)
    worker.redis_up_since = lambda: gate.up_since_ms  # lease takeover rule (docs/contracts.md "Leases")
    log.info("maker_worker start worker_id=%s clob_url=%s mode=%s", worker_id, settings.clob_url, settings.mode)
    try:
        runtime.run_loop(worker.step, stop, clock, settings.step_interval_s, journal,
                         idle=lambda seconds: worker.idle(seconds, stop), gate=gate, on_recover=worker.renew_due)
    finally:
        worker.shutdown()
        journal.record("SERVICE_STOPPED", instance=worker_id)  # stopped on purpose: not "down" (alerter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
