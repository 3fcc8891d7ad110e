"""system_pnl on real Redis records, and audit_pnl on the equivalent audit log: equal to the micro-pUSD."""
from __future__ import annotations

from decimal import Decimal as D

import orjson
from redis import Redis

from libs.common import keys
from libs.common.pnl import as_json
from libs.common.pnl_audit import audit_pnl
from libs.common.pnl_redis import system_pnl

A, B, C = "111", "222", "333"  # A open, B resolved winner (in a redeem), C resolved loser (no redeem)
ME = "0xabc"
# (token, ts_ms, side, price, size, fee, rebate, role, trade, order); ts in whole seconds as the ledger has
FILLS = [
    (A, 1_000, "BUY", "0.40", "10", "0.0168", "0", "TAKER", "ta1", "oa1"),
    (A, 2_000, "BUY", "0.55", "5", "0", "0.00148", "MAKER", "ta2", "oa2"),
    (A, 3_000, "SELL", "0.61", "7", "0", "0.00166", "MAKER", "ta3", "oa3"),
    (B, 1_000, "BUY", "0.33", "30", "0", "0", "MAKER", "tb1", "ob1"),
    (B, 1_000, "BUY", "0.37", "3", "0.00699", "0", "TAKER", "tb2", "ob2"),
    (B, 4_000, "SELL", "0.90", "11", "0", "0", "MAKER", "tb3", "ob3"),
    (C, 2_000, "BUY", "0.52", "9.5", "0", "0", "MAKER", "tc1", "oc1"),
]


def _ledger_record(row: tuple[str, ...], counted: str | None = None, ours: str = "1") -> str:
    tok, ts, side, price, size, fee, rebate, role, tid, oid = row
    rec = {"trade_id": tid, "order_id": oid, "side": side, "price": price, "size": size, "status": "CONFIRMED",
           "counted": size if counted is None else counted, "fence": "1", "ts_ms": str(ts), "source": "ws",
           "role": role, "fee_rate_bps": "700", "fee": fee, "rebate": rebate, "ours": ours}
    return orjson.dumps(rec).decode()


def _write_system(r: Redis) -> None:
    for row in FILLS:
        r.hset(keys.fills(row[0]), f"{row[8]}:{row[9]}", _ledger_record(row))
    r.hset(keys.fills(C), "logged:only", _ledger_record(("C",) + FILLS[-1][1:8] + ("tx", "ox"), counted="0",
                                                       ours="0"))
    r.hset(keys.tok(A), mapping={"state": "active", "condition_id": "cA", "leader_account": "0xlead1"})
    r.hset(keys.tok(B), mapping={"state": "resolved", "condition_id": "cB", "leader_account": "0xlead2",
                                 "payout": "1"})
    r.hset(keys.tok(C), mapping={"state": "active", "condition_id": "cC", "leader_account": "0xlead1"})
    r.hset(keys.md_book(A), mapping={"best_bid": "0.58", "best_ask": "0.6", "seq": "9"})
    r.hset(keys.md_book(C), mapping={"best_bid": "", "resolved": "1", "payout": "0", "market": "cC"})


def _audit_lines() -> list[str]:
    out = []
    for tok, ts, side, price, size, fee, rebate, role, tid, oid in FILLS:
        out.append({"ts_ms": ts + 417, "wall_ms": 0, "kind": "fill", "order_id": oid, "token_id": tok, "side": side,
                    "price": price, "size": size, "maker": ME, "trade_id": tid, "role": role, "fee": fee,
                    "rebate": rebate, "fee_rate_bps": 700, "book_best_bid": "0.5"})
    out.append({"ts_ms": 2_500, "kind": "fill", "token_id": A, "side": "BUY", "price": "0.1", "size": "100",
                "maker": "0xsomeoneelse", "trade_id": "x", "order_id": "y"})
    out.append({"ts_ms": 5_000, "kind": "market_end", "market": "cB", "token_id": "", "reason": "MARKET_ENDED"})
    out.append({"ts_ms": 5_100, "kind": "redeem", "market": "cB", "maker": ME, "winner": B,
                "payout": "22", "shares": {B: "22"}})
    out.append({"ts_ms": 6_000, "kind": "market_end", "market": "cC", "winner": "444", "tokens": [C, "444"]})
    return [orjson.dumps(x).decode() for x in out]


def test_system_pnl_from_redis_records(r: Redis) -> None:
    _write_system(r)
    r.hset(keys.tok("999"), "state", "candidate")  # no fills: not listed
    tokens, total = system_pnl(r)
    a, b, c = tokens
    assert [t.token_id for t in tokens] == [A, B, C]
    # A: avg (4 + 2.75) / 15 = 0.45; sell 7 @ 0.61 -> 1.12; 8 x (0.58 - 0.45) = 1.04
    assert (a.position, a.avg_entry, a.realized, a.unrealized, a.settled) == (D(8), D("0.45"), D("1.12"), D("1.04"), 0)
    assert (a.fees, a.rebates, a.net, a.leader, a.mark) == (D("0.0168"), D("0.00314"), D("2.14634"), "0xlead1", D("0.58"))
    # B: avg (9.9 + 1.11) / 33 = 0.33363636...; sell 11 @ 0.9; settle 22 at 1
    assert b.payout == 1 and b.position == 0 and b.unrealized == 0
    assert b.realized == D("6.230000") and b.settled == D("14.660000") and b.fees == D("0.006990")
    # C: the counted-0 record is skipped; the book's resolved payout 0 settles 9.5 @ 0.52
    assert (c.bought, c.settled, c.condition_id) == (D("9.5"), D("-4.94"), "cC")
    assert total.net == a.net + b.net + c.net and total.tokens == 3
    assert as_json(total)["net"] == "18.089350"


def test_audit_pnl_equals_system_pnl_to_the_micro(r: Redis, tmp_path) -> None:
    _write_system(r)
    sys_tokens, sys_total = system_pnl(r)
    path = tmp_path / "venue_audit.jsonl"
    path.write_text("\n".join(_audit_lines()) + "\n")
    leaders = {t.token_id: t.leader for t in sys_tokens}
    aud_tokens, aud_total = audit_pnl(path, marks={A: D("0.58")}, leaders=leaders, maker=ME, conditions={A: "cA"})
    assert aud_tokens == sys_tokens
    assert aud_total == sys_total
    assert as_json(aud_total) == as_json(sys_total)


def test_audit_pnl_defaults_to_the_tape_mark_and_every_maker() -> None:
    tokens, _ = audit_pnl(_audit_lines())
    a = tokens[0]
    assert a.mark == D("0.5") and a.bought == D(115)  # the other account's fill is counted without maker=


def test_status_and_paper_summary_show_the_pnl(r: Redis) -> None:
    from rich.console import Console

    from services.ops import status
    from services.ops.paper import PaperRun

    _write_system(r)
    for t in (A, B, C):
        r.sadd(keys.TOKENS, t)
    console = Console(width=250, record=True)
    console.print(status.render(status.read(r, 0)))
    text = console.export_text()
    assert "net 18.089350 = realized" in text and "2.146340" in text
    run = PaperRun.__new__(PaperRun)  # summary() reads only Redis and the baselines
    run.r, run.baseline, run.baseline_errors = r, {}, {}
    assert run.summary()["pnl_usd"] == as_json(system_pnl(r)[1])


def test_a_fill_a_poll_counted_first_counts_and_hand_placed_or_failed_trades_do_not(r: Redis) -> None:
    """Every fill of our orders is in the P&L once, whichever path counted it first; a trade of an
    order polyband never sent (ours "0") and a FAILED trade are not."""
    row = ("D", 1_000, "BUY", "0.40", "10", "0", "0", "MAKER", "t1", "o1")
    r.hset(keys.fills("D"), mapping={
        "t1:o1": _ledger_record(row, counted="0"),  # a REST poll counted it: still a fill
        "t2:o2": _ledger_record(row[:8] + ("t2", "o2"), counted="0", ours="0"),  # placed by hand
        "t3:o3": orjson.dumps({**orjson.loads(_ledger_record(row[:8] + ("t3", "o3"))), "status": "FAILED"}).decode(),
    })
    tokens, totals = system_pnl(r)
    (d,) = [t for t in tokens if t.token_id == "D"]
    assert d.bought == D(10) and d.position == D(10) and d.avg_entry == D("0.40")


def test_shares_a_poll_counted_without_a_trade_record_are_fills_at_the_order_price(r: Redis) -> None:
    """The worker's position includes shares only a REST poll saw (the trade event came after the
    token was released): the P&L covers them at the order's price, the traded part at its trade's."""
    order = {"id": "o9", "side": "SELL", "price": "0.60", "size": "10", "matched": "10", "status": "MATCHED",
             "fence": "1", "ts_ms": 5_000, "purpose": "take_profit"}
    r.hset(keys.orders("E"), mapping={"o9": orjson.dumps(order).decode(),
                                      "o8": orjson.dumps({**order, "id": "o8", "side": "BUY", "price": "0.50",
                                                          "ts_ms": 1_000}).decode()})
    r.hset(keys.fills("E"), "t9:o9", _ledger_record(("E", 6_000, "SELL", "0.62", "4", "0", "0", "MAKER", "t9", "o9")))
    tokens, _ = system_pnl(r)
    (e,) = [t for t in tokens if t.token_id == "E"]
    assert e.bought == D(10) and e.sold == D(10) and e.position == 0
    assert e.realized == D("1.080000")  # 4 x (0.62 - 0.50) + 6 x (0.60 - 0.50)


def test_a_trade_event_the_worker_never_read_is_a_fill_with_its_taker_fee(r: Redis) -> None:
    """The worker released the token on a REST poll before user_feed's trade event came: the event in
    pb:user:{token} still makes the fill, at the trade's price, with the taker fee of its role."""
    order = {"id": "o7", "side": "SELL", "price": "0.70", "size": "10", "matched": "10", "status": "MATCHED",
             "fence": "1", "ts_ms": 9_000, "purpose": "aggressive"}
    buy = {**order, "id": "o6", "side": "BUY", "price": "0.83", "ts_ms": 1_000}
    r.hset(keys.orders("F"), mapping={"o7": orjson.dumps(order).decode(), "o6": orjson.dumps(buy).decode()})
    r.hset(keys.fills("F"), "t6:o6", _ledger_record(("F", 2_000, "BUY", "0.83", "10", "0", "0", "MAKER", "t6", "o6")))
    r.hset(keys.tok("F"), mapping={"fee_rate": "0.07", "fee_exponent": "1", "rebate_rate": "0.2"})
    trade = {"kind": "trade", "trade_id": "t7", "order_id": "o7", "side": "SELL", "price": "0.71", "size": "10",
             "ts_ms": "9500", "trade_status": "MATCHED", "role": "TAKER", "fee_rate_bps": "700", "source": "ws"}
    r.xadd(keys.user_stream("F"), trade)
    r.xadd(keys.user_stream("F"), {**trade, "trade_status": "CONFIRMED"})  # one fill, whatever its statuses
    tokens, _ = system_pnl(r)
    (f,) = [t for t in tokens if t.token_id == "F"]
    assert f.sold == D(10) and f.realized == D("-1.200000")  # 10 x (0.71 - 0.83), at the trade's price
    assert f.fees == D("0.144130")  # 10 x 0.07 x 0.71 x 0.29, floored to 5 decimals
