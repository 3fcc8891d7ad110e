"""Property test of the strategy core over random books, fills, rejects, modes and time (hypothesis).

Invariants checked on every intent: never a BUY in the sell-only window or an exit mode; a SELL never
offers more than the shares available (position, and the venue balance when known, minus what our
open SELLs lock); an aggressive ask never goes below the floor; every price is on the tick and in
[tick, 1 - tick]. Intents are "executed" by a tiny simulated venue and fed back as events.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.maker_worker.models import (
    Balance, Cancel, Fill, Intent, MarketView, ModeChange, OpenOrder, OrderGone, Params, Place, Posted, Rejected,
    SignalRefresh, Tick, TokenState,
)
from services.maker_worker.pricing import available_shares, floor_of, in_sell_only_window
from services.maker_worker.strategy import step

TICK = Decimal("0.01")
START = 1_700_000_000_000
P = Params(aggressive_step_after_ms=5_000, sell_only_window_ms=60_000, signal_timeout_ms=150_000,
           balance_backoff_ms=1_000, floor_price=Decimal("0.05"))
ticks = st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n) * TICK)


class StrategyMachine(RuleBasedStateMachine):
    """Random walk of one token through the strategy with a simulated venue."""

    @initialize(leader=st.none() | ticks)
    def start(self, leader: Decimal | None) -> None:
        self.now = START
        self.leader = leader
        self.n = 0
        self.tokens = 0
        self.market = MarketView(Decimal("0.50"), Decimal("0.51"), TICK, Decimal(5), START)
        self.new_token()

    def new_token(self) -> None:
        """A fresh token (the last one was released): exploration goes on in one run."""
        self.tokens += 1
        end = self.now + (65_000, 120_000, 300_000)[self.tokens % 3]  # some start near the sell-only window
        self.state = TokenState("t", end, TICK, Decimal(5), leader_price=self.leader, last_signal_ms=self.now)
        self.market = replace(self.market, end_ms=end)

    def feed(self, event: object) -> None:
        before = self.state
        self.state, intents = step(self.state, self.market, event, self.now, P)  # type: ignore[arg-type]
        self.check_and_execute(before, intents)
        if self.state.done:
            self.new_token()

    def check_and_execute(self, before: TokenState, intents: list[Intent]) -> None:
        for i in intents:
            if isinstance(i, Place):
                self.check_place(before, i)
                self.n += 1
                order = OpenOrder(f"o{self.n}", i.side, i.price, i.size, i.purpose, self.now)
                before = self.state
                self.state, more = step(self.state, self.market, Posted(order), self.now, P)
                assert more == []
            elif isinstance(i, Cancel):
                self.state, more = step(self.state, self.market, OrderGone(i.order_id, "CANCELED"), self.now, P)
                assert more == []

    def check_place(self, before: TokenState, p: Place) -> None:
        assert p.price % TICK == 0 and TICK <= p.price <= 1 - TICK, p
        if p.side == "BUY":
            assert not in_sell_only_window(self.state, self.now, P), p
            assert not before.exit_reason and not self.state.exit_reason and not self.state.exit_only, p
        else:
            assert p.size <= available_shares(self.state), (p, self.state)
            if p.purpose in ("aggressive", "floor"):
                assert p.price >= floor_of(self.state, P, TICK), (p, self.state.avg_entry)

    @rule(dt=st.sampled_from([0, 250, 1_000, 5_000, 20_000]), move=st.integers(-4, 4), spread=st.integers(1, 5),
          empty=st.integers(0, 9), fresh=st.integers(0, 9), halted=st.integers(0, 9))
    def tick(self, dt: int, move: int, spread: int, empty: int, fresh: int, halted: int) -> None:
        """The book walks a few ticks at a time; now and then a side is empty, data stale or trading halted."""
        self.now += dt
        last = self.market.best_bid if self.market.best_bid is not None else Decimal("0.50")
        bid: Decimal | None = min(max(last + move * TICK, TICK), 1 - 2 * TICK)
        ask: Decimal | None = min(bid + spread * TICK, 1 - TICK)  # type: ignore[operator]
        if empty == 0:
            bid = None
        elif empty == 1:
            ask = None
        self.market = replace(self.market, best_bid=bid, best_ask=ask, fresh=fresh != 0)
        self.feed(Tick(halted=halted == 0))

    @rule(ticks_down=st.integers(10, 30))
    def crash(self, ticks_down: int) -> None:
        """The bid falls far (stop loss, ladder to the floor)."""
        last = self.market.best_bid if self.market.best_bid is not None else Decimal("0.50")
        bid = max(last - ticks_down * TICK, TICK)
        self.market = replace(self.market, best_bid=bid, best_ask=bid + TICK, fresh=True)
        self.feed(Tick())

    @rule(data=st.data())
    def fill_again(self, data: st.DataObject) -> None:
        self.fill(data)

    @rule(data=st.data())
    def fill(self, data: st.DataObject) -> None:
        open_orders = [o for o in self.state.orders if o.remaining > 0]
        if not open_orders:
            return
        o = data.draw(st.sampled_from(open_orders))
        size = data.draw(st.sampled_from([o.remaining, (o.remaining / 2).quantize(Decimal("0.01"))]))
        if size <= 0:
            return
        self.feed(Fill(o.order_id, o.side, o.price, size))
        if o.remaining <= size:
            self.feed(OrderGone(o.order_id, "MATCHED"))

    @rule(data=st.data(), kind=st.sampled_from(["INSUFFICIENT_BALANCE", "POST_ONLY_CROSS", "RATE_LIMITED"]))
    def reject_last(self, data: st.DataObject, kind: str) -> None:
        if not self.state.orders:
            return
        o = self.state.orders[-1]
        self.feed(OrderGone(o.order_id, "FAILED"))
        if kind == "INSUFFICIENT_BALANCE" and o.side == "SELL":
            held = self.state.position
            self.feed(Balance(data.draw(st.sampled_from([held, held / 2, Decimal(0)]))))
        self.feed(Rejected(o.side, o.size, o.purpose, kind))

    @rule(mode=st.sampled_from(["exiting", "exit_only"]), why=st.sampled_from(["LEADER_SELL", "INACTIVE_CLEANUP"]),
          roll=st.integers(0, 3))
    def mode(self, mode: str, why: str, roll: int) -> None:
        if roll == 0:  # rarer than the other rules: a mode change ends the token soon
            self.feed(ModeChange(mode, why))  # type: ignore[arg-type]

    @rule(price=ticks)
    def signal(self, price: Decimal) -> None:
        self.feed(SignalRefresh(price, self.now))

    @invariant()
    def position_never_negative(self) -> None:
        assert self.state.position >= 0


StrategyMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
TestStrategyMachine = StrategyMachine.TestCase
