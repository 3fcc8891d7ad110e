"""``python -m services.signal_ingest``: settings -> logging -> Redis -> clock -> journal -> service.

Exit status 2 on a bad setting (one ``event BAD_SETTING`` line naming ``PB_FIELD='value'``).
"""
from __future__ import annotations

import logging
import sys
import threading

from libs.common import key_migration, runtime
from libs.common.journal import Journal
from libs.common.runtime import install_stop_handlers, instance_name, run_loop
from services.signal_ingest.config import IngestSettings
from services.signal_ingest.data_api import DataApi
from services.signal_ingest.service import SERVICE, SignalIngest

log = logging.getLogger(SERVICE)


def main() -> int:
    """Run signal_ingest until SIGTERM/SIGINT; returns the process exit status."""
    settings = runtime.boot(SERVICE, IngestSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    install_stop_handlers(stop)
    conn = runtime.connect(settings, SERVICE, stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    journal = Journal(r, SERVICE, clock)
    migrated = gate.call(lambda: key_migration.migrate(r))  # keys renamed since the last release
    if migrated is None:
        return 0
    key_migration.journal_migration(journal, migrated)
    instance = instance_name(SERVICE, settings.instance_id)
    api = DataApi(settings.data_api_url, settings.http_timeout_s)
    service = gate.call(lambda: SignalIngest(r, settings, clock, journal, api, instance))
    if service is None:
        return 0
    leaders = ",".join(f"{t.account}>={t.min_size}" for t in settings.enabled_leaders())
    journal.record("SERVICE_STARTED", instance=instance, leaders=leaders, data_api_url=settings.data_api_url,
                   data_api_version=settings.data_api_version,
                   poll_interval_s=settings.poll_interval_s)
    try:
        run_loop(service.step, stop, clock, min(1.0, settings.poll_interval_s), journal, gate=gate)
    finally:
        api.close()
        journal.record("SERVICE_STOPPED", instance=instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
