"""GammaPrefetch: the scheduler's step never waits on Gamma (issue 10: Gamma off the critical path)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from services.scheduler.gamma import GammaBadMarket, GammaError, GammaPending, GammaUnavailable, MarketMeta
from services.scheduler.gamma_prefetch import GammaPrefetch

WAIT_S = 5.0  # bound on a background fetch that was released (never reached when it works)


def meta(token: str) -> MarketMeta:
    return MarketMeta(token, "0xc", "q", "s", "Yes", 1, Decimal("0.01"), Decimal(5), False, False, True, True)


class GatedSource:
    """Answers only once ``gate`` is set; counts calls; ``fail`` maps token -> exception to raise."""

    def __init__(self) -> None:
        self.gate, self.calls, self.fail = threading.Event(), [], {}
        self.inside = threading.Semaphore(0)
        self.closed = False

    def market_for_token(self, token_id: str) -> MarketMeta | None:
        self.calls.append(token_id)
        self.inside.release()
        assert self.gate.wait(WAIT_S)
        if token_id in self.fail:
            raise self.fail[token_id]
        return None if token_id == "none" else meta(token_id)

    def close(self) -> None:
        self.closed = True


def answered(p: GammaPrefetch, n: int) -> None:
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if p.ready() >= n:
            return
        done.wait(0.01)
    raise AssertionError(f"{n} answers not in within {WAIT_S} s")


def test_first_ask_does_not_block_and_a_later_ask_gets_the_answer_once() -> None:
    src = GatedSource()
    p = GammaPrefetch(src, threads=2)
    with pytest.raises(GammaPending):
        p.market_for_token("7")  # returns at once although the source blocks
    with pytest.raises(GammaPending):
        p.market_for_token("7")  # still in flight: not fetched twice
    src.gate.set()
    answered(p, 1)
    assert p.market_for_token("7") == meta("7")
    assert src.calls == ["7"]
    with pytest.raises(GammaPending):
        p.market_for_token("7")  # forgotten after use: a new ask fetches afresh
    answered(p, 1)
    assert src.calls == ["7", "7"]
    p.close()
    assert src.closed


def test_errors_and_no_market_are_handed_over_as_the_source_gave_them() -> None:
    src = GatedSource()
    src.fail = {"bad": GammaBadMarket("endDate", "x", "not an ISO datetime"), "boom": RuntimeError("socket")}
    p = GammaPrefetch(src)
    for t in ("bad", "boom", "none"):
        with pytest.raises(GammaPending):
            p.market_for_token(t)
    src.gate.set()
    answered(p, 3)
    with pytest.raises(GammaBadMarket) as bad:
        p.market_for_token("bad")
    assert bad.value.field == "endDate"
    with pytest.raises(GammaUnavailable, match="RuntimeError: socket"):  # unexpected: retried like a timeout
        p.market_for_token("boom")
    assert p.market_for_token("none") is None
    p.close()


def test_fetches_run_in_parallel_threads() -> None:
    src = GatedSource()
    p = GammaPrefetch(src, threads=3)
    for t in ("1", "2", "3"):
        with pytest.raises(GammaPending):
            p.market_for_token(t)
    for _ in range(3):  # all three are inside the (blocked) source at the same time
        assert src.inside.acquire(timeout=WAIT_S)
    src.gate.set()
    answered(p, 3)
    p.close()


def test_pending_is_a_retryable_gamma_error_not_a_bad_market() -> None:
    assert GammaPending.retryable and issubclass(GammaPending, GammaError)
    assert not issubclass(GammaPending, GammaBadMarket)


class FakeMonotonic:
    """A monotonic clock that moves only when told (the budget's window)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_fast_answer_comes_in_the_same_ask_and_a_hanging_one_costs_at_most_the_budget() -> None:
    src = GatedSource()
    clock = FakeMonotonic()
    p = GammaPrefetch(src, threads=2, budget_s=0.05, window_s=0.5, monotonic=clock)
    src.gate.set()
    assert p.market_for_token("a") == meta("a"), "a fast Gamma answers within the ask, as a blocking client"
    src.gate.clear()  # Gamma hangs from now on
    with pytest.raises(GammaPending):
        p.market_for_token("b")
    p._window = (clock.t, 0.05)  # noqa: SLF001 - the budget of this window is spent
    with pytest.raises(GammaPending):
        p.market_for_token("c")  # no wait left in this window: at once
    src.gate.set()
    answered(p, 2)
    assert p.market_for_token("b") == meta("b") and p.market_for_token("c") == meta("c")
    p.close()
