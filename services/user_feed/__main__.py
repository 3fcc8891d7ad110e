"""``python -m services.user_feed``: settings -> logging -> Redis -> clock -> journal -> venue client ->
feed -> loop. Exit status 2 on a bad setting (one ``event BAD_SETTING`` line naming the variable)."""
from __future__ import annotations

import logging
import sys
import threading

from libs.common import runtime
from libs.common.journal import Journal
from services.user_feed.config import UserFeedSettings
from services.user_feed.service import UserFeed

log = logging.getLogger("services.user_feed")
STEP_PAUSE_S = 0.001  # run_loop's pause between slices (each slice waits up to 0.1 s for a frame)


def main() -> int:
    """Run the feed until SIGTERM/SIGINT; returns the process exit status."""
    settings = runtime.boot("user_feed", UserFeedSettings)
    if settings is None:
        return 2
    stop = threading.Event()
    runtime.install_stop_handlers(stop)
    instance = runtime.instance_name("user_feed", settings.instance_id)
    conn = runtime.connect(settings, instance, stop)  # waits for Redis (one line per window), then the clock
    if conn is None:
        return 0
    r, gate, clock = conn
    journal = Journal(r, "user_feed", clock)
    from libs.common.venue import VenueClient  # the one adapter over the venue SDK

    venue = VenueClient.from_settings(settings, settings.clob_url, settings.http_timeout_s)
    feed = gate.call(lambda: UserFeed(settings, r, clock, journal, instance, venue))
    if feed is None:
        return 0
    log.info("user_feed started instance=%s url=%s mode=%s", instance, settings.ws_user_url, settings.mode)
    try:
        runtime.run_loop(feed.step, stop, clock, STEP_PAUSE_S, journal, gate=gate)
    finally:
        feed.close()
        journal.record("SERVICE_STOPPED", instance=instance)  # stopped on purpose: not "down" (alerter)
        log.info("user_feed stopped instance=%s", instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
