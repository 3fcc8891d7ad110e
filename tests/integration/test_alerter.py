"""The alerter against a real Redis and a local webhook (http.server in a thread): the events the
services journal, the halt key and heartbeats become POSTs with the right JSON, rate-limited; a failed
POST is journaled and retried; the cursor and state survive a restart (no repeat, no skip); without a
URL alerts are only logged. Injected clock, no sleeps."""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import orjson
import pytest
from redis import Redis

from libs.common import keys, runtime
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from services.alerter.config import AlerterSettings
from services.alerter.service import Alerter
from services.alerter.webhook import WebhookSender

TOKEN = "1805475964" * 7
SECRET_PATH = "/bot123:SECRET/sendMessage"


class Hook:
    """A local webhook: records each POST's JSON; answers the statuses queued in ``fail`` first, then 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.fail.pop(0) if hook.fail else 200
                if status == 200:
                    hook.posts.append(orjson.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}?chat_id=1"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def texts(self) -> list[str]:
        return [p["text"] for p in self.posts]


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def make(r: Redis, redis_url: str, clock: FakeClock, url: str | None) -> Alerter:
    settings = AlerterSettings(redis_url=redis_url, alert_webhook_url=url, alert_min_interval_s=300,
                               alert_max_per_hour=30, alert_service_down_s=30)
    sender = WebhookSender(url, 2.0) if url else None
    return Alerter(r, settings, clock, Journal(r, "alerter", clock), "alerter-test", sender)


def test_alerts_are_posted_rate_limited_and_survive_a_restart(r: Redis, redis_url: str, hook: Hook) -> None:
    clock = FakeClock()
    sched, worker = Journal(r, "scheduler", clock), Journal(r, "maker_worker", clock)
    sched.record("BAD_MARKET_METADATA", token_id="old", level="error", state="failed")  # history: not alerted
    alerter = make(r, redis_url, clock, hook.url)
    runtime.heartbeat(r, "scheduler-x", "scheduler", clock)
    sched.record("BAD_MARKET_METADATA", token_id=TOKEN, level="error", state="failed", prev="candidate")
    r.set(keys.HALT, "MANUAL_HALT")
    alerter.step()
    assert hook.posts == [
        {"text": f"polyband: token {TOKEN} FAILED: BAD_MARKET_METADATA (by scheduler)", "alert": "token_failed",
         "severity": "error", "token_id": TOKEN, "reason": "BAD_MARKET_METADATA", "ts_ms": clock.wall,
         "suppressed": 0, "source": "polyband"},
        {"text": "polyband: trading HALTED: MANUAL_HALT", "alert": "halt", "severity": "critical", "token_id": "",
         "reason": "MANUAL_HALT", "ts_ms": clock.wall, "suppressed": 0, "source": "polyband"}]
    worker.record("REDEEM_FAILED", token_id=TOKEN, level="error", state="failed")  # same token within 300 s
    clock.advance(31_000)
    alerter.step()
    assert [(p["alert"], p["suppressed"]) for p in hook.posts[2:]] == [("service_down", 1)]
    assert hook.texts()[2] == "polyband: service scheduler-x DOWN: no heartbeat for 31 s (+1 more suppressed)"

    worker.record("ORDER_REJECTED", token_id="t2", level="error", state="failed")  # while the alerter is down
    alerter = make(r, redis_url, clock, hook.url)  # restart: nothing repeated, nothing skipped
    alerter.step()
    alerter.step()
    assert [(p["alert"], p["token_id"], p["reason"]) for p in hook.posts[3:]] == [("token_failed", "t2",
                                                                                   "ORDER_REJECTED")]
    r.delete(keys.HALT)
    clock.advance(1000)
    alerter.step()
    assert [p["alert"] for p in hook.posts[4:]] == ["halt_cleared"]
    assert int(r.hget(keys.COUNTS, "ALERT_SENT")) == 5 and not r.hexists(keys.ERRORS, "ALERT_SEND_FAILED")


def test_a_daily_loss_seen_after_a_restart_is_posted(r: Redis, redis_url: str, hook: Hook) -> None:
    clock = FakeClock()
    make(r, redis_url, clock, hook.url).step()  # first start: cursor at the end of the stream
    r.set(keys.HALT, "DAILY_LOSS_LIMIT day_pnl=-50.5 limit=50")
    Journal(r, "maker_worker", clock).record("HALT_DAILY_LOSS", token_id=TOKEN, level="error", day_pnl="-50.5",
                                             limit="50")
    alerter = make(r, redis_url, clock, hook.url)
    alerter.step()
    alerter.step()
    assert hook.texts() == ["polyband: trading HALTED by the daily loss limit: day P&L -50.5 pUSD, limit 50 pUSD"]
    assert hook.posts[0]["alert"] == "daily_loss" and hook.posts[0]["token_id"] == TOKEN


def test_failed_posts_are_journaled_and_retried_without_logging_the_url(r: Redis, redis_url: str, hook: Hook,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    alerter = make(r, redis_url, clock, hook.url)
    hook.fail = [500]
    Journal(r, "scheduler", clock).record("FEED_GATEWAY_DOWN", level="warn", detail="state=reconnecting")
    alerter.step()
    assert hook.posts == [] and int(r.hget(keys.ERRORS, "ALERT_SEND_FAILED")) == 1
    failed = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "ALERT_SEND_FAILED"]
    assert failed[0]["status"] == "500" and failed[0]["host"] == "127.0.0.1" and failed[0]["alert"] == "feed_down"
    assert orjson.loads(r.hget(keys.ALERT_STATE, "outbox"))[0]["kind"] == "feed_down"  # survives a crash
    clock.advance(1000)
    alerter.step()
    assert hook.texts() == ["polyband: market data feed DOWN: state=reconnecting"]
    assert r.hget(keys.ALERT_STATE, "outbox") == "[]"
    assert "SECRET" not in caplog.text and "ALERT_SEND_FAILED" in caplog.text


def test_an_unreachable_webhook_is_a_failure_not_a_crash(r: Redis, redis_url: str) -> None:
    clock = FakeClock()
    alerter = make(r, redis_url, clock, "http://127.0.0.1:9/hook")  # discard port: refused
    r.set(keys.HALT, "MANUAL_HALT")
    alerter.step()
    failed = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "ALERT_SEND_FAILED"]
    assert failed[0]["status"] == "0" and failed[0]["error"] == "ConnectError" and len(alerter.outbox) == 1


def test_without_a_url_alerts_are_logged_and_the_skip_journaled_once(r: Redis, redis_url: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    alerter = make(r, redis_url, clock, None)
    r.set(keys.HALT, "MANUAL_HALT")
    alerter.step()
    r.delete(keys.HALT)
    alerter.step()
    assert int(r.hget(keys.COUNTS, "ALERT_SKIPPED_NO_URL")) == 1
    assert "ALERT_NOT_SENT alert=halt" in caplog.text and "ALERT_NOT_SENT alert=halt_cleared" in caplog.text
