"""Shared fakes for the venue core tests (no tests here): a BookView over hand-set tape levels, a
market factory and signed order bodies built with the REAL py_clob_client_v2 classes."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2
from py_clob_client_v2.order_builder.builder import OrderBuilder
from py_clob_client_v2.order_utils.model.order_data_v1 import order_to_json_v1
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
from py_clob_client_v2.signer import Signer

from libs.common.clock import FakeClock
from libs.common.tapes import MarketMeta
from services.venue_sim.audit import Audit
from services.venue_sim.config import PaperExchangeSettings
from services.venue_sim.engine import Engine

# Hardhat's well-known test accounts #0 and #1: throwaway keys that hold nothing anywhere.
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
CID = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
START_MS = 1_771_358_700_000
END_MS = START_MS + 300_000

D = Decimal


def market(neg_risk: bool = False, end_ms: int = END_MS) -> MarketMeta:
    """A binary 5-minute market with tokens YES/NO, tick 0.01, min size 5."""
    return MarketMeta(condition_id=CID, question="Bitcoin Up or Down - test", slug="btc-updown-5m-test",
                      token_ids=(YES, NO), outcomes=("Up", "Down"), start_ms=START_MS, end_ms=end_ms,
                      tick_size=D("0.01"), min_order_size=D("5"), neg_risk=neg_risk, synthetic_condition_id=False)


class FakeBooks:
    """BookView over levels set by the test: ``set(token, bids, asks)`` with (price, size) strings,
    best first (the BookView contract)."""

    def __init__(self) -> None:
        self.levels: dict[str, tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = {}
        self.ticks: dict[str, Decimal] = {}

    def set(self, token_id: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.levels[token_id] = ([(D(p), D(s)) for p, s in bids], [(D(p), D(s)) for p, s in asks])

    def tape_top(self, token_id: str) -> tuple[Decimal | None, Decimal | None]:
        bids, asks = self.levels.get(token_id, ([], []))
        return (bids[0][0] if bids else None), (asks[0][0] if asks else None)

    def tape_levels(self, token_id: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids, asks = self.levels.get(token_id, ([], []))
        return list(bids), list(asks)

    def tick_size(self, token_id: str) -> Decimal:
        return self.ticks.get(token_id, D("0.01"))

    def known(self, token_id: str) -> bool:
        return token_id in self.levels


def make_engine(neg_risk: bool = False, start_usdc: str = "100", seed: int = 7,
                audit_path: Any = None, **exchange: Any) -> tuple[Engine, FakeBooks, FakeClock, list[Any]]:
    """Engine on a fresh FakeBooks (YES: bid 0.48/ask 0.52, NO: bid 0.48/ask 0.52) and a FakeClock
    at the market's start; returns (engine, books, clock, events list filled by a listener).
    ``exchange`` overrides PaperExchangeSettings; settlement delays default to 0 (trades reach
    MINED/CONFIRMED at the next engine call, since the FakeClock does not move by itself)."""
    books = FakeBooks()
    books.set(YES, [("0.48", "100"), ("0.47", "200")], [("0.52", "100"), ("0.53", "50"), ("0.60", "500")])
    books.set(NO, [("0.48", "100")], [("0.52", "100")])
    meta = market(neg_risk)
    clock = FakeClock(now=START_MS + 10_000, wall=1_800_000_000_000)
    settings = PaperExchangeSettings(**{"settle_mined_ms": 0, "settle_confirmed_ms": 0, **exchange})
    engine = Engine(books, {YES: meta, NO: meta}, clock, Audit(audit_path), D(start_usdc), seed, settings)
    events: list[Any] = []
    engine.listen(events.append)
    return engine, books, clock, events


def signed_body(creds: Any, price: float, size: float, side: str = "BUY", token_id: str = YES,
                order_type: str = "GTC", post_only: bool = False, key: str = KEY, tick: str = "0.01",
                neg_risk: bool = False, version: int = 2) -> dict[str, Any]:
    """A POST /order body made and signed by py_clob_client_v2's own OrderBuilder."""
    builder = OrderBuilder(Signer(key, 137))
    order = builder.build_order(OrderArgsV2(token_id=token_id, price=price, size=size, side=side),
                                CreateOrderOptions(tick_size=tick, neg_risk=neg_risk), version=version)
    to_json = order_to_json_v2 if version == 2 else order_to_json_v1
    return to_json(order, creds.api_key, order_type, post_only)
