"""The journal: every event is streamed and counted; failures also in pb:errors; never raises."""
from __future__ import annotations

import logging

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal


def test_event_is_streamed_and_counted(r: Redis) -> None:
    j = Journal(r, "scheduler", FakeClock(now=5, wall=9))
    j.record("TOKEN_ACTIVATED", token_id="123", state="active")
    j.record("GAMMA_FAILED", level="error", token_id="123", status=500)
    j.bump("tokens_activated")
    entries = r.xrange(keys.EVENTS)
    assert [e[1]["reason"] for e in entries] == ["TOKEN_ACTIVATED", "GAMMA_FAILED"]
    assert entries[0][1] == {"ts_ms": "5", "wall_ms": "9", "svc": "scheduler", "reason": "TOKEN_ACTIVATED",
                             "level": "info", "token_id": "123", "state": "active"}
    assert r.hgetall(keys.COUNTS) == {"TOKEN_ACTIVATED": "1", "GAMMA_FAILED": "1"}
    assert r.hgetall(keys.ERRORS) == {"GAMMA_FAILED": "1"}
    assert r.hget(keys.SUMMARY, "tokens_activated") == "1"


def test_redis_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    dead = Redis(port=1, socket_connect_timeout=0.2, retry_on_error=[])
    j = Journal(dead, "scheduler", FakeClock())
    with caplog.at_level(logging.ERROR):
        j.record("X", level="error")
    assert j.local_failures == 1
    assert "JOURNAL_WRITE_FAILED" in caplog.text
