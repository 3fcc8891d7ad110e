"""The scheduler with GammaPrefetch (as ``python -m services.scheduler`` runs it): a signal burst
never makes a step wait on Gamma; candidates are queued and activated at later steps."""
from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from services.scheduler.config import SchedulerSettings
from services.scheduler.gamma import GammaClient
from services.scheduler.gamma_prefetch import GammaPrefetch
from services.scheduler.service import Scheduler
from tests.scheduler_fakes import LIVE_LIKE, FakeGamma, gateway_ok, make_market, publish

HOUR = 3_600_000
WAIT_S = 5.0


class SlowGamma(GammaClient):
    """The real client, held back until ``gate`` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(url, 2.0)
        self.gate = threading.Event()

    def market_for_token(self, token_id: str):  # type: ignore[no-untyped-def]
        assert self.gate.wait(WAIT_S)
        return super().market_for_token(token_id)


@pytest.fixture()
def rig(r: Redis) -> Iterator[tuple[Scheduler, SlowGamma, FakeClock, FakeGamma]]:
    with FakeGamma() as g:
        clock = FakeClock()
        slow = SlowGamma(g.url)
        cfg = SchedulerSettings(gamma_url=g.url, max_active_tokens=5, **LIVE_LIKE)
        s = Scheduler(r, clock, Journal(r, "scheduler", clock), cfg, GammaPrefetch(slow, threads=4), "sched-1")
        yield s, slow, clock, g
        s.metadata.close()


def states(r: Redis, tokens: list[str]) -> list[str]:
    return [r.hget(keys.tok(t), "state") or "" for t in tokens]


def test_a_signal_burst_does_not_wait_on_gamma_and_activates_later(
        r: Redis, rig: tuple[Scheduler, SlowGamma, FakeClock, FakeGamma]) -> None:
    s, slow, clock, g = rig
    tokens = [str(500 + i) for i in range(8)]
    for i in range(0, 8, 2):
        g.add(make_market((tokens[i], tokens[i + 1]), clock.now + 4 * HOUR, condition_id=f"0xc{i}"))
    for i, t in enumerate(tokens):
        publish(r, "BUY", t, f"sig-{i}", clock.now - 1000 + i)
    gateway_ok(r, clock.wall)
    t0 = time.monotonic()
    s.step()  # Gamma is held back: a synchronous client would block here until WAIT_S
    assert time.monotonic() - t0 < WAIT_S / 2
    assert states(r, tokens) == ["candidate"] * 8
    assert r.hget(keys.COUNTS, "GAMMA_UNAVAILABLE") is None  # waiting is no failure
    slow.gate.set()
    for _ in range(int(WAIT_S / 0.01)):
        if s.metadata.ready() == 8:
            break
        threading.Event().wait(0.01)
    clock.advance(500)
    s.step()  # answers in: queued
    assert states(r, tokens) == ["pending"] * 8
    clock.advance(500)
    s.step()  # planned: the 5 oldest signals first
    assert states(r, tokens) == ["active"] * 5 + ["pending"] * 3
    assert g.requests == 8
