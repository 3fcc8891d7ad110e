"""libs/common/redis_wait: the backoff schedule, the log window, the gate's wait, run_loop through an
outage, and the lease takeover deadline. Fake time only: nothing here sleeps."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import runtime
from libs.common.clock import FakeClock
from libs.common.leases import holder_deadline
from libs.common.redis_wait import Backoff, Outage, RedisGate, is_down, safe_url


@dataclass
class FakeTime:
    """Monotonic seconds that move only when ``wait`` is called."""

    now: float = 100.0

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FlakyProbe:
    """PING fails ``down`` times (connection refused), then answers."""

    down: int
    pings: int = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.pings <= self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
        return True


@dataclass
class Records:
    """A journal stand-in: (reason, fields) of every record."""

    rows: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def record(self, reason: str, **fields: object) -> None:
        self.rows.append((reason, fields))


def gate_for(probe: object, t: FakeTime, stop: threading.Event | None = None) -> RedisGate:
    return RedisGate(probe, "redis://user:s3cret@127.0.0.1:6390/2", stop or threading.Event(),  # type: ignore[arg-type]
                     backoff=Backoff(base_s=0.1, cap_s=2.0, jitter=0.0), window_s=5.0, monotonic=t.monotonic,
                     wall_ms=lambda: int(t.now * 1000), wait=t.wait, rand=lambda: 0.5)


def lines(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if what in r.getMessage()]


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    b = Backoff(base_s=0.1, cap_s=2.0, jitter=0.2)
    assert [round(b.delay(n), 3) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert b.delay(10_000) == 2.0
    assert b.delay(6, u=0.999) == pytest.approx(2.0 * (1 - 0.2 * 0.999))
    assert b.delay(0) == b.delay(1) == 0.1


def test_outage_opens_one_log_window_every_window_s() -> None:
    o = Outage(started_s=0.0)
    opened = [t for t in range(13) if o.failed(float(t), RedisConnectionError("refused"), window_s=5.0)]
    assert opened == [0, 5, 10]
    assert o.attempts == 13 and o.waited_s(12.0) == 12.0 and o.error == "ConnectionError: refused"


def test_safe_url_never_shows_the_password() -> None:
    assert safe_url("redis://user:s3cret@host:6380/3") == "redis://user@host:6380/3"
    assert safe_url("rediss://:s3cret@host") == "rediss://host/0"
    assert safe_url("unix:///tmp/redis.sock") == "unix:///tmp/redis.sock"


def test_down_errors_are_connection_and_timeout_errors_only() -> None:
    assert is_down(RedisConnectionError("x")) and is_down(RedisTimeoutError("x"))
    assert not is_down(ResponseError("WRONGTYPE")) and not is_down(ValueError("x"))


def test_wait_up_logs_one_line_per_window_then_recovered_and_journals_the_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    gate = gate_for(FlakyProbe(down=20), t)
    with caplog.at_level(logging.INFO):
        assert gate.wait_up(phase="start") is True
    down = lines(caplog, "REDIS_UNAVAILABLE")
    waited = t.now - 100.0
    assert 20 < waited < 40 and len(down) == pytest.approx(waited / 5.0, abs=1)
    assert down[0].startswith("event REDIS_UNAVAILABLE url=redis://user@127.0.0.1:6390/2 phase=start attempts=1 ")
    assert "waited_s=" in down[0] and "next_in_s=" in down[0] and "error=ConnectionError: " in down[0]
    assert all("s3cret" not in m for m in down)
    up = lines(caplog, "REDIS_RECOVERED")
    assert len(up) == 1 and "attempts=20" in up[0] and f"outage_s={waited:.1f}" in up[0]
    assert gate.up_since_ms == int(t.now * 1000) and gate.recoveries == 1 and gate.outage is None
    j = Records()
    assert gate.journal_outage(j.record) == 1 and gate.journal_outage(j.record) == 0
    reason, fields = j.rows[0]
    assert reason == "REDIS_OUTAGE" and fields["outage_ms"] == int(waited * 1000) and fields["attempts"] == 20
    assert fields["phase"] == "start" and fields["level"] == "warn"


def test_wait_up_when_redis_answers_at_once_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    gate = gate_for(FlakyProbe(down=0), t)
    with caplog.at_level(logging.INFO):
        assert gate.wait_up(phase="start")
    assert lines(caplog, "REDIS_") == [] and gate.recoveries == 0 and gate.up_since_ms == 100_000
    assert not gate.unjournaled


def test_wait_up_returns_false_when_stopped() -> None:
    t, stop = FakeTime(), threading.Event()
    gate = gate_for(FlakyProbe(down=10**9), t, stop)
    gate.wait = lambda s: (t.wait(s), stop.set() if t.now > 130 else None)  # type: ignore[assignment]
    assert gate.wait_up(RedisConnectionError("refused")) is False
    assert gate.recoveries == 0 and gate.outage is not None


def test_call_retries_the_function_across_an_outage() -> None:
    t = FakeTime()
    gate = gate_for(FlakyProbe(down=3), t)
    calls = {"n": 0}

    def read() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RedisTimeoutError("Timeout reading from socket")
        return "clock"
    assert gate.call(read) == "clock" and calls["n"] == 2 and gate.recoveries == 1


def test_run_loop_waits_out_an_outage_then_recovers_first_and_journals_it(caplog: pytest.LogCaptureFixture) -> None:
    t, stop = FakeTime(), threading.Event()
    gate = gate_for(FlakyProbe(down=8), t, stop)
    order: list[str] = []
    fails = {"n": 2}

    def step() -> None:
        order.append("step")
        if fails["n"]:
            fails["n"] -= 1
            raise RedisConnectionError("Connection refused")
        if order.count("step") >= 5:
            stop.set()
    j = Records()
    with caplog.at_level(logging.INFO):
        runtime.run_loop(step, stop, FakeClock(), 0.0, j, gate=gate, on_recover=lambda: order.append("recover"))  # type: ignore[arg-type]
    assert order[:4] == ["step", "recover", "step", "recover"] and order[4:] == ["step", "step", "step"]
    assert [r for r, _ in j.rows] == ["REDIS_OUTAGE", "REDIS_OUTAGE"], "no STEP_FAILED for an outage"
    assert lines(caplog, "STEP_FAILED") == [] and all(r.exc_info is None for r in caplog.records)


def test_heartbeat_with_a_gate_reports_the_outage_through_it() -> None:
    t = FakeTime()
    gate = gate_for(FlakyProbe(down=0), t)

    class DownRedis:
        def pipeline(self, transaction: bool = False) -> object:
            raise RedisConnectionError("Connection refused")
    runtime.heartbeat(DownRedis(), "venue_sim-x", "venue_sim", FakeClock(), gate=gate)  # type: ignore[arg-type]
    assert gate.outage is not None and gate.outage.attempts == 1


@pytest.mark.parametrize("expires,beat,up_since,grace,want", [
    (10_000, 0, 0, 0, 10_000),            # grace 0: plain expiry
    (10_000, 0, 0, 10_000, 10_000),       # no heartbeat, no outage: expiry
    (10_000, 9_750, 0, 10_000, 19_750),   # heartbeat as recent as the lease: one more TTL to renew
    (10_000, 0, 25_000, 10_000, 35_000),  # Redis came back at 25 s: a TTL to renew from then
    (10_000, 40_000, 0, 10_000, 20_000),  # a heartbeat after expiry extends by one TTL at most
    (30_000, 1_000, 5_000, 10_000, 30_000),  # an unexpired lease: its expiry
])
def test_holder_deadline(expires: int, beat: int, up_since: int, grace: int, want: int) -> None:
    assert holder_deadline(expires, beat, up_since, grace) == want


def test_check_probes_at_most_once_per_delay_and_closes_the_outage(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    probe = FlakyProbe(down=3)
    gate = gate_for(probe, t)
    with caplog.at_level(logging.INFO):
        assert gate.check() is False and probe.pings == 1
        assert gate.check() is False and probe.pings == 1, "no probe before the backoff delay"
        results = []
        for _ in range(20):  # one second: probes after 0.1, 0.2 and 0.4 s of backoff; up at 0.7 s
            t.wait(0.05)
            results.append(gate.check())
    assert probe.pings == 4 and results[-1] is True and gate.recoveries == 1
    assert len(lines(caplog, "REDIS_UNAVAILABLE")) == 1 and len(lines(caplog, "REDIS_RECOVERED")) == 1
    t.wait(0.5)
    gate.check()
    assert probe.pings == 4, "one PING a second while Redis answers"


def test_watch_sees_an_outage_while_the_service_loop_is_busy() -> None:
    stop = threading.Event()
    t = FakeTime()
    probe = FlakyProbe(down=2)
    gate = gate_for(probe, t, stop)
    gate.monotonic = lambda: (t.wait(0.5), t.now)[1]  # each look at the clock: half a second later
    thread = gate.watch(every_s=0.001)
    deadline = time.monotonic() + 10
    while gate.recoveries == 0 and time.monotonic() < deadline:
        stop.wait(0.01)  # a real thread: wait for it (bounded), no fake time to advance
    stop.set()
    thread.join(2)
    assert gate.recoveries == 1 and len(gate.unjournaled) == 1 and probe.pings >= 3
