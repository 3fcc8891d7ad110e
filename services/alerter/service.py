"""alerter service shell: observe Redis, ``core.decide``, persist, deliver.

``step()``: heartbeat; read the ``pb:events`` entries after the cursor (XREAD, up to
``BATCH x MAX_BATCHES`` per step), ``pb:halt`` and ``pb:svc``; decide (pure); append the alerts to the
outbox (at most ``OUTBOX_MAX``: the oldest is dropped, ``ALERT_DROPPED``); save cursor, state and
outbox in ``pb:alert:state`` in one HSET; deliver the outbox in order; save again. A restart therefore
neither repeats nor skips events (at worst an alert delivered just before a crash is sent again).

Delivery: ``ALERT_SENT`` per alert; a failure (non-2xx, timeout, refused) is journaled
``ALERT_SEND_FAILED`` (error: ``status``, ``error``, ``host``) and the outbox waits: retried at the
next step, then after 2, 4, ... up to ``RETRY_MAX_MS`` wall ms while it keeps failing. Without a
webhook URL every alert is logged (``event ALERT_NOT_SENT``) and ``ALERT_SKIPPED_NO_URL`` journaled once.
The first start (no cursor yet) begins at the end of ``pb:events``: history is not alerted on.
"""
from __future__ import annotations

import logging
from typing import Protocol

from redis import Redis

from libs.common import keys
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.runtime import heartbeat
from services.alerter.codec import dump_outbox, dump_state, load_outbox, load_state
from services.alerter.config import AlerterSettings
from services.alerter.core import SERVICE, Event, Inputs, Rules, State, decide, render
from services.alerter.limiter import Alert, Limits
from services.alerter.webhook import SendResult

log = logging.getLogger(__name__)

BATCH = 1000  # pb:events entries per XREAD
MAX_BATCHES = 5  # XREADs per step (the rest waits for the next step)
OUTBOX_MAX = 100  # alerts waiting for delivery
RETRY_MAX_MS = 60_000  # longest wait between two delivery attempts (wall ms)


class Sender(Protocol):
    """What delivers one alert (``webhook.WebhookSender``); ``host`` is the loggable part of its URL."""

    host: str

    def send(self, alert: Alert) -> SendResult: ...


class Alerter:
    """One alerter instance.

    Args:
        r: decoded Redis client.
        settings: ``AlerterSettings``.
        clock: ``wall_ms`` for every rule (heartbeat age, rate limits, retries); the journal's clock.
        journal: the alerter's journal.
        instance: this instance's id (heartbeat; never alerted on itself).
        sender: the webhook, or None when ``PB_ALERT_WEBHOOK_URL`` is empty (log only).
    """

    def __init__(self, r: Redis, settings: AlerterSettings, clock: Clock, journal: Journal, instance: str,
                 sender: Sender | None) -> None:
        self.r, self.clock, self.journal, self.instance, self.sender = r, clock, journal, instance, sender
        self.rules = Rules(Limits(int(settings.alert_min_interval_s * 1000), settings.alert_max_per_hour),
                           int(settings.alert_service_down_s * 1000))
        self.failures, self.retry_at_ms, self.skip_journaled = 0, 0, False
        self.stats = {"sent": 0, "send_failed": 0, "dropped": 0}
        self.state, self.outbox = self.load()

    def load(self) -> tuple[State, list[Alert]]:
        """The persisted state and outbox; the first start begins at the end of ``pb:events``."""
        raw = self.r.hgetall(keys.ALERT_STATE)
        cursor = raw.get("cursor", "")
        if not cursor:
            last = self.r.xrevrange(keys.EVENTS, count=1)
            cursor = last[0][0] if last else "0-0"
            self.journal.record("ALERT_CURSOR_INIT", cursor=cursor)
        try:
            state = load_state(raw["state"], cursor) if raw.get("state") else State(cursor)
            outbox = load_outbox(raw["outbox"]) if raw.get("outbox") else []
        except ValueError as exc:
            self.journal.record("ALERT_STATE_CORRUPT", level="error", detail=str(exc)[:300], cursor=cursor)
            return State(cursor), []
        return state, outbox

    def step(self) -> None:
        """Heartbeat, observe, decide, persist, deliver (module doc)."""
        heartbeat(self.r, self.instance, SERVICE, self.clock, {**self.stats, "outbox": len(self.outbox)})
        inputs = self.observe()
        self.state, alerts = decide(self.state, inputs, self.clock.wall_ms(), self.rules)
        self.enqueue(alerts)
        self.save()
        if self.outbox and self.deliver():
            self.save()

    def observe(self) -> Inputs:
        """New journal entries after the cursor, the halt key and every other instance's heartbeat."""
        events: list[Event] = []
        cursor = self.state.cursor
        for _ in range(MAX_BATCHES):
            resp = self.r.xread({keys.EVENTS: cursor}, count=BATCH)
            entries = resp[0][1] if resp else []
            events += [Event.parse(entry_id, fields) for entry_id, fields in entries]
            if len(entries) < BATCH:
                break
            cursor = entries[-1][0]
        beats = {m: int(s) for m, s in self.r.zrange(keys.SERVICES, 0, -1, withscores=True) if m != self.instance}
        return Inputs(events, self.r.get(keys.HALT), beats)

    def enqueue(self, alerts: list[Alert]) -> None:
        """Append to the outbox; beyond ``OUTBOX_MAX`` the oldest are dropped (``ALERT_DROPPED``)."""
        self.outbox += alerts
        while len(self.outbox) > OUTBOX_MAX:
            old = self.outbox.pop(0)
            self.stats["dropped"] += 1
            self.journal.record("ALERT_DROPPED", level="error", token_id=old.token_id, alert=old.kind, key=old.key,
                                why="outbox full", outbox_max=OUTBOX_MAX)

    def save(self) -> None:
        """Cursor, state and outbox in one HSET."""
        self.r.hset(keys.ALERT_STATE, mapping={"cursor": self.state.cursor, "state": dump_state(self.state),
                                               "outbox": dump_outbox(self.outbox)})

    def deliver(self) -> bool:
        """Send the outbox in order until one fails; True when anything left the outbox."""
        if self.sender is None:
            return self._log_only()
        now = self.clock.wall_ms()
        if now < self.retry_at_ms:
            return False
        delivered = 0
        for alert in list(self.outbox):
            res = self.sender.send(alert)
            if not res.ok:
                self._failed(alert, res, now)
                break
            delivered += 1
            self.outbox.pop(0)
            self.failures, self.retry_at_ms = 0, 0
            self.stats["sent"] += 1
            self.journal.record("ALERT_SENT", token_id=alert.token_id, alert=alert.kind, key=alert.key,
                                severity=alert.severity, suppressed=alert.suppressed, host=self.sender.host,
                                status=res.status)
        return delivered > 0

    def _failed(self, alert: Alert, res: SendResult, now: int) -> None:
        """Journal a failed POST and schedule the retry (next step, then doubling up to ``RETRY_MAX_MS``)."""
        self.failures += 1
        self.stats["send_failed"] += 1
        wait = 0 if self.failures == 1 else min(RETRY_MAX_MS, 1000 * 2 ** min(self.failures - 1, 10))
        self.retry_at_ms = now + wait
        self.journal.record("ALERT_SEND_FAILED", level="error", token_id=alert.token_id, alert=alert.kind,
                            key=alert.key, status=res.status, error=res.error, host=self.sender.host if self.sender
                            else "", attempt=self.failures, retry_in_ms=wait, outbox=len(self.outbox))

    def _log_only(self) -> bool:
        """No webhook: log each alert, journal ``ALERT_SKIPPED_NO_URL`` once; the outbox empties."""
        for alert in self.outbox:
            log.warning("event ALERT_NOT_SENT alert=%s key=%s severity=%s text=%s", alert.kind, alert.key,
                        alert.severity, render(alert))
        if not self.skip_journaled:
            self.skip_journaled = True
            self.journal.record("ALERT_SKIPPED_NO_URL", level="warn", alerts=len(self.outbox),
                                hint="set PB_ALERT_WEBHOOK_URL to receive alerts")
        self.outbox = []
        return True
