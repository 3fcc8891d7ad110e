"""P&L of the running system, read from Redis and computed with :mod:`libs.common.pnl`.

Read per token that has a fills ledger (SCAN ``keys.fills_pattern()``), in pipelines of BATCH tokens:

- ``pb:fills:{t}`` (``maker_worker.user_events.on_trade``): each JSON record is one fill (one trade of
  one of our orders, keyed ``<trade_id>:<order_id>``, so never twice) and every record whose
  ``status`` is not FAILED and whose order is one polyband sent (``ours`` not "0") counts with its
  ``size`` (shares). Its ``counted`` says how much of it was new to the worker when it arrived; a
  fill a REST poll saw first has ``counted`` 0 but is a fill all the same (the worker's position
  has it), so ``counted`` is not the size used here. A trade of an order polyband has no record of
  (``ours`` "0": placed by hand on the same account) is logged, not counted.
  ``price``, ``side``, ``ts_ms``, ``trade_id``, ``order_id``; ``fee``, ``rebate`` (pUSD), ``role``
  when present ("0"/"" when absent: older records). The fee and rebate are the whole trade's.
- ``pb:user:{t}`` (user_feed's stream of our orders' events): a trade of one of our orders (an id in
  ``pb:orders:{t}``) with no ledger record, because the worker let the token go before it read
  the event, is a fill at the trade's price and size, its fee from the token's schedule
  (``fee_rate``/``rebate_rate`` of ``pb:tok``, else the trade's ``fee_rate_bps``) and its ``role``.
  The last status of each trade decides (FAILED is no fill).
- ``pb:orders:{t}`` (the worker's order records): ``matched`` is every share of the order the worker
  counted into its position, by trade or by a REST poll. Where the trade records of an order hold
  fewer shares (a fill seen only by a poll, whose trade event came after the token was released),
  the rest is a fill at the order's ``price`` at its ``ts_ms``, role unknown, no fee: so the P&L
  always covers the worker's position. Exact for maker fills (they fill at the order's price).
- ``pb:tok:{t}``: ``condition_id``, ``leader_account`` (the leader), ``payout`` (pUSD/share; written
  by the worker at settlement or by the scheduler at resolution).
- ``pb:md:book:{t}``: ``best_bid`` (the mark while open); ``resolved`` "1" with ``payout`` (the
  gateway's ``market_resolved``) also resolves the token when ``pb:tok`` has no payout yet.

A payout ("1", "0", any price in [0, 1]) means resolved (settled at it); an unknown or unusable one
means open (marked at the best bid).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator

import orjson
from redis import Redis

from libs.common import keys
from libs.common.fees import NO_FEES, FeeSchedule, fill_fee
from libs.common.pnl import stored_decimal, stored_price, ZERO, Fill, PnlTotals, TokenPnl, aggregate, token_pnl

__all__ = ["system_pnl", "ledger_fills", "token_from_hashes"]

BATCH = 200  # tokens per pipeline
BOOK_FIELDS = ("best_bid", "resolved", "payout")


def ledger_fills(token_id: str, ledger: dict[str, str]) -> list[Fill]:
    """The fills of one ``pb:fills`` hash (field -> JSON; module doc): every record not FAILED, at its
    ``size``; unreadable records are skipped."""
    out = []
    for text in ledger.values():
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or rec.get("status") == "FAILED" or rec.get("ours") == "0" \
                or stored_decimal(rec.get("size")) <= 0:
            continue
        out.append(Fill(int(stored_decimal(rec.get("ts_ms"))), token_id, str(rec.get("side", "")), stored_decimal(rec.get("price")),
                        stored_decimal(rec.get("size")), stored_decimal(rec.get("fee")), stored_decimal(rec.get("rebate")),
                        str(rec.get("role", "")), str(rec.get("trade_id", "")), str(rec.get("order_id", ""))))
    return out


def _schedule(tok: dict[str, str], trade_bps: object) -> FeeSchedule:
    rate = stored_decimal(tok.get("fee_rate")) if tok.get("fee_rate") else stored_decimal(trade_bps) / 10000
    if not 0 < rate < 1:
        return NO_FEES
    exponent = int(stored_decimal(tok.get("fee_exponent")) or 1)
    return FeeSchedule(rate, max(1, exponent), tok.get("fee_taker_only", "1") != "0",
                       min(stored_decimal(tok.get("rebate_rate")), Decimal(1)))


def stream_fills(token_id: str, entries: list[tuple[str, dict[str, str]]], ledger: dict[str, str],
                 orders: dict[str, str], tok: dict[str, str]) -> list[Fill]:
    """Trades of our orders in ``pb:user:{token}`` that the ledger lacks (module doc)."""
    last: dict[str, dict[str, str]] = {}
    for _id, e in entries:
        key = f"{e.get('trade_id', '')}:{e.get('order_id', '')}"
        if e.get("kind") == "trade" and key not in ledger and e.get("order_id") in orders:
            last[key] = e
    out = []
    for key, e in sorted(last.items()):
        size, price, role = stored_decimal(e.get("size")), stored_decimal(e.get("price")), e.get("role", "")
        if e.get("trade_status") == "FAILED" or size <= 0 or e.get("side") not in ("BUY", "SELL"):
            continue
        fee, rebate = (fill_fee(size, price, role, _schedule(tok, e.get("fee_rate_bps")))
                       if role in ("MAKER", "TAKER") and 0 <= price <= 1 else (ZERO, ZERO))
        out.append(Fill(int(stored_decimal(e.get("ts_ms"))), token_id, str(e["side"]), price, size, fee, rebate,
                        role, str(e.get("trade_id", "")), str(e.get("order_id", ""))))
    return out


def order_fills(token_id: str, orders: dict[str, str], fills: list[Fill]) -> list[Fill]:
    """Fills for the shares ``pb:orders`` records say matched beyond their trade records (module doc)."""
    by_order: dict[str, Decimal] = {}
    for f in fills:
        by_order[f.order_id] = by_order.get(f.order_id, ZERO) + f.size
    out = []
    for oid, text in sorted(orders.items()):
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rec, dict):
            continue
        rest = stored_decimal(rec.get("matched")) - by_order.get(oid, ZERO)
        if rest > 0 and rec.get("side") in ("BUY", "SELL"):
            out.append(Fill(int(stored_decimal(rec.get("ts_ms"))), token_id, str(rec["side"]), stored_decimal(rec.get("price")), rest,
                            trade_id="poll", order_id=oid))
    return out


def token_from_hashes(token_id: str, ledger: dict[str, str], tok: dict[str, str], book: list[str | None],
                      orders: dict[str, str] | None = None,
                      events: list[tuple[str, dict[str, str]]] | None = None) -> TokenPnl:
    """TokenPnl of one token from its fills hash, pb:tok hash, book fields (BOOK_FIELDS order), order
    records and user-channel events (module doc)."""
    bid, resolved, book_payout = (book + [None] * 3)[:3]
    payout = stored_price(tok.get("payout"))
    if payout is None and resolved == "1":
        payout = stored_price(book_payout)
    fills = ledger_fills(token_id, ledger)
    fills += stream_fills(token_id, events or [], ledger, orders or {}, tok)
    fills += order_fills(token_id, orders or {}, fills)
    return token_pnl(fills, stored_price(bid), payout, token_id, tok.get("condition_id", ""), tok.get("leader_account", ""))


def _tokens(r: Redis) -> Iterator[str]:
    for key in r.scan_iter(match=keys.fills_pattern(), count=1000):
        yield keys.token_of_fills(key)
    for key in r.scan_iter(match=keys.orders_pattern(), count=1000):
        yield keys.token_of_orders(key)


def _batch(r: Redis, tokens: list[str]) -> list[TokenPnl]:
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.hgetall(keys.fills(t))
        pipe.hgetall(keys.tok(t))
        pipe.hmget(keys.md_book(t), list(BOOK_FIELDS))
        pipe.hgetall(keys.orders(t))
        pipe.xrange(keys.user_stream(t))
    res = pipe.execute()
    out = [token_from_hashes(t, res[5 * i], res[5 * i + 1], list(res[5 * i + 2]), res[5 * i + 3], res[5 * i + 4])
           for i, t in enumerate(tokens)]
    return [t for t in out if t.bought or t.sold]  # tokens whose orders never filled have no P&L


def system_pnl(r: Redis) -> tuple[list[TokenPnl], PnlTotals]:
    """Per-token P&L (sorted by token id) of every token with a fill, and their total.
    ``r`` must decode responses (str)."""
    tokens = sorted(set(_tokens(r)))
    out: list[TokenPnl] = []
    for i in range(0, len(tokens), BATCH):
        out.extend(_batch(r, tokens[i:i + BATCH]))
    return out, aggregate(out)["total"]
