"""``python -m services.md_gateway``: settings -> logging -> Redis -> clock -> journal -> service.

Exit status 2 on a bad setting (one ``event BAD_SETTING`` line naming ``PB_FIELD='value'``).
``kill -USR1 <pid>`` writes every thread's stack to stderr (the log), for a gateway that looks stuck.
"""
from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading

from libs.common import runtime
from libs.common.journal import Journal
from libs.common.runtime import install_stop_handlers, instance_name, run_loop
from services.md_gateway.config import GatewaySettings
from services.md_gateway.service import SERVICE, STEP_PAUSE_S, SWITCH_INTERVAL_S, GatewayService

log = logging.getLogger(SERVICE)


def main() -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit status."""
    settings = runtime.boot(SERVICE, GatewaySettings)
    if settings is None:
        return 2
    stop = threading.Event()
    install_stop_handlers(stop)
    conn = runtime.connect(settings, SERVICE, stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    journal = Journal(r, SERVICE, clock)
    instance = instance_name(SERVICE, settings.instance_id)
    service = gate.call(lambda: GatewayService(settings, r, clock, journal, instance))
    if service is None:
        return 0
    journal.record("SERVICE_STARTED", instance=instance, ws_market_url=settings.ws_market_url,
                   clob_url=settings.clob_url, max_assets_per_connection=settings.max_assets_per_connection,
                   verify_interval_s=settings.verify_interval_s)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    service.start()
    gate.watch()  # the step keeps the links going through an outage (its Redis calls fail and go on)
    try:
        run_loop(service.step, stop, clock, STEP_PAUSE_S, journal, gate=gate)
    finally:
        service.stop()
        journal.record("SERVICE_STOPPED", instance=instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
