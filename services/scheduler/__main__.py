"""``python -m services.scheduler``: settings -> logging -> Redis -> clock -> journal -> service -> loop.

Exit status 2 on a bad setting (one ``event BAD_SETTING`` line naming the variable and value).
"""
from __future__ import annotations

import logging
import sys
import threading

from libs.common import key_migration, runtime
from libs.common.journal import Journal
from services.scheduler.config import SchedulerSettings
from services.scheduler.gamma import GammaClient
from services.scheduler.gamma_prefetch import GammaPrefetch
from services.scheduler.heartbeat import ExchangeHeartbeat
from services.scheduler.service import QUIET_REREAD_MS, Scheduler

log = logging.getLogger("services.scheduler")


def _exchange_heartbeat(settings: SchedulerSettings, journal: Journal) -> ExchangeHeartbeat:
    from libs.common.venue import VenueClient  # live only: the one adapter over polymarket-client

    client = VenueClient.from_settings(settings, settings.clob_url, min(settings.heartbeat_interval_s, settings.http_timeout_s))
    return ExchangeHeartbeat(client, journal, int(settings.heartbeat_interval_s * 1000))


def main() -> int:
    """Run the scheduler until SIGTERM/SIGINT; returns the process exit status."""
    settings = runtime.boot("scheduler", SchedulerSettings)
    if settings is None:
        return 2
    instance = runtime.instance_name("scheduler", settings.instance_id)
    stop = threading.Event()
    runtime.install_stop_handlers(stop)
    conn = runtime.connect(settings, instance, stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    journal = Journal(r, "scheduler", clock)
    migrated = gate.call(lambda: key_migration.migrate(r))  # keys renamed since the last release
    if migrated is None:
        return 0
    key_migration.journal_migration(journal, migrated)
    # off the step: a fast Gamma still answers within it (up to 0.1 s waited per 0.5 s), a slow one costs no more
    gamma = GammaPrefetch(GammaClient(settings.gamma_url, settings.gamma_timeout_s), budget_s=0.1, window_s=0.5)
    service = gate.call(lambda: Scheduler(r, clock, journal, settings, gamma, instance))
    if service is None:
        return 0
    service.store.redis_up_since = lambda: gate.up_since_ms  # lease takeover rule (docs/contracts.md "Leases")
    service.quiet_reread_ms = QUIET_REREAD_MS  # quiet finished tokens: not re-read at every step
    if settings.mode == "live":
        try:
            beat = _exchange_heartbeat(settings, journal)
        except ValueError as exc:  # key / wallet type / wallet that do not fit (never contains the key)
            log.error("event BAD_SETTING %s", exc)
            return 2
        threading.Thread(target=beat.run, args=(stop, clock), name="exchange-heartbeat", daemon=True).start()
    log.info("scheduler started instance=%s mode=%s max_active=%d gamma=%s", instance, settings.mode,
             settings.max_active_tokens, settings.gamma_url)
    try:
        runtime.run_loop(service.step, stop, clock, settings.step_interval_s, journal, gate=gate)
    finally:
        gamma.close()
        journal.record("SERVICE_STOPPED", instance=instance)  # stopped on purpose: not "down" (alerter)
        log.info("scheduler stopped instance=%s", instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
