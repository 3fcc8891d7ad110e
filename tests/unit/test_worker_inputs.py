"""maker_worker inputs: the Redis book freshness rule, token-hash parsing, risk arithmetic. Pure."""
from __future__ import annotations

from decimal import Decimal

import pytest

from services.maker_worker.book_source import from_redis, gateway_ok
from services.maker_worker.models import ModeChange, OpenOrder, SignalRefresh, TokenState
from services.maker_worker.risk import exposure_room, utc_day
from services.maker_worker.tokens import TokenMetaError, initial_state, tok_events

D = Decimal
WALL = 1_800_000_000_000
BOOK = {"best_bid": "0.48", "best_ask": "0.52", "status": "ok", "recv_ts_ms": str(WALL - 1_000),
        "verified_ts_ms": "", "tick_size": "0.01", "min_order_size": "5"}
TOK = {"state": "active", "end_ms": "1800000300000", "tick_size": "0.01", "min_order_size": "5",
       "leader_price": "0.50", "signal_ts_ms": "1800000000000", "avg_entry": "", "position": "0"}


def test_gateway_must_be_connected_and_recent() -> None:
    assert gateway_ok({"state": "connected", "updated_ms": str(WALL - 4_000)}, WALL, 5_000)
    assert not gateway_ok({"state": "connected", "updated_ms": str(WALL - 6_000)}, WALL, 5_000)
    assert not gateway_ok({"state": "connecting", "updated_ms": str(WALL)}, WALL, 5_000)
    assert not gateway_ok({}, WALL, 5_000)


def test_redis_book_fresh_by_receive_or_verify_time() -> None:
    read = from_redis(BOOK, True, WALL, 20_000)
    assert read is not None and (read.best_bid, read.best_ask, read.source) == (D("0.48"), D("0.52"), "redis")
    old = {**BOOK, "recv_ts_ms": str(WALL - 30_000)}
    assert from_redis(old, True, WALL, 20_000) is None
    verified = {**old, "verified_ts_ms": str(WALL - 2_000)}  # quiet but checked by REST: still fresh
    assert from_redis(verified, True, WALL, 20_000) is not None


@pytest.mark.parametrize("change", [{"status": "resync"}, {"resolved": "1"}])
def test_resync_or_resolved_book_is_not_quoted(change: dict[str, str]) -> None:
    assert from_redis({**BOOK, **change}, True, WALL, 20_000) is None
    assert from_redis(BOOK, False, WALL, 20_000) is None  # gateway down


def test_empty_side_is_none_and_bad_price_names_field_and_value() -> None:
    read = from_redis({**BOOK, "best_ask": ""}, True, WALL, 20_000)
    assert read is not None and read.best_ask is None
    with pytest.raises(ValueError, match=r"best_bid='1.5'"):
        from_redis({**BOOK, "best_bid": "1.5"}, True, WALL, 20_000)
    with pytest.raises(ValueError, match=r"min_order_size='x'"):
        from_redis({**BOOK, "min_order_size": "x"}, True, WALL, 20_000)


def test_initial_state_from_token_hash() -> None:
    s = initial_state("t", TOK, D(10), "maker", 1)
    assert (s.end_ms, s.tick_size, s.min_order_size, s.position) == (1800000300000, D("0.01"), D(5), D(10))
    assert s.avg_entry == D("0.50")  # unknown avg with shares held: the leader's price
    assert s.last_signal_ms == 1800000000000 and s.exit_reason == ""
    assert initial_state("t", {**TOK, "state": "exiting", "reason": "LEADER_SELL"}, D(0), "maker", 1).exit_reason \
        == "LEADER_SELL"
    ex = initial_state("t", TOK, D(0), "exit_only", 1)
    assert ex.exit_only and ex.exit_reason == "EXIT_ONLY"


@pytest.mark.parametrize(("field", "value"), [("end_ms", ""), ("end_ms", "soon"), ("tick_size", "abc"),
                                              ("tick_size", "2"), ("min_order_size", "-1")])
def test_bad_token_field_is_named_with_its_value(field: str, value: str) -> None:
    with pytest.raises(TokenMetaError, match=f"{field}={value!r}"):
        initial_state("t", {**TOK, field: value}, D(0), "maker", 1)


def test_token_hash_events() -> None:
    s = initial_state("t", TOK, D(0), "maker", 1)
    newer = {**TOK, "signal_ts_ms": "1800000001000", "leader_price": "0.55", "state": "exiting",
             "reason": "LEADER_SELL"}
    assert tok_events(s, newer, "maker") == [SignalRefresh(D("0.55"), 1800000001000),
                                              ModeChange("exiting", "LEADER_SELL")]
    assert tok_events(s, TOK, "exit_only") == [ModeChange("exit_only", "EXIT_ONLY")]
    assert tok_events(s, TOK, "maker") == []


def test_exposure_counts_holdings_and_open_buys() -> None:
    a = TokenState("a", 0, D("0.01"), D(5), position=D(10), avg_entry=D("0.50"))
    b = TokenState("b", 0, D("0.01"), D(5), orders=(OpenOrder("o", "BUY", D("0.40"), D(10), "entry", 0, D(5)),))
    assert exposure_room([a, b], D(10)) == D(10) - D(5) - D(2)
    assert exposure_room([a, b], D(1)) == 0
    assert utc_day(1_771_358_700_000) == "2026-02-17"
