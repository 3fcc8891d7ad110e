"""``python -m services.alerter``: settings -> logging -> Redis -> clock -> journal -> webhook -> loop.

Exit status 2 on a bad setting (one ``event BAD_SETTING`` line; the webhook URL is never shown).
"""
from __future__ import annotations

import logging
import sys
import threading

from libs.common import runtime
from libs.common.journal import Journal
from services.alerter.config import AlerterSettings
from services.alerter.core import SERVICE
from services.alerter.service import Alerter
from services.alerter.webhook import WebhookSender

log = logging.getLogger("services.alerter")


def main() -> int:
    """Run the alerter until SIGTERM/SIGINT; returns the process exit status."""
    settings = runtime.boot(SERVICE, AlerterSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    runtime.install_stop_handlers(stop)
    instance = runtime.instance_name(SERVICE, settings.instance_id)
    conn = runtime.connect(settings, instance, stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    journal = Journal(r, SERVICE, clock)
    url = settings.webhook_url()
    sender = WebhookSender(url, settings.alert_timeout_s) if url else None
    service = gate.call(lambda: Alerter(r, settings, clock, journal, instance, sender))
    if service is None:
        return 0
    host = sender.host if sender else ""
    journal.record("SERVICE_STARTED", instance=instance, webhook_host=host or "none (log only)",
                   min_interval_s=settings.alert_min_interval_s, max_per_hour=settings.alert_max_per_hour,
                   service_down_s=settings.alert_service_down_s)
    try:
        runtime.run_loop(service.step, stop, clock, settings.alert_step_interval_s, journal, gate=gate)
    finally:
        if sender is not None:
            sender.close()
        journal.record("SERVICE_STOPPED", instance=instance)
        log.info("alerter stopped instance=%s", instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
