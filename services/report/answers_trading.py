"""Answers about orders, exits, queues and money (4, 6, 9, 10, 11, 12, 13, 14): pure functions of
``RunData``. Same shape as ``answers_feed``: ``{"total": {...}, "per_token"/"per_leader"/...: {...}}``."""
from __future__ import annotations

from collections import Counter

from libs.common.pnl import aggregate, as_json
from services.report.model import RunData, as_int, by_token, percentile, ratio, ts

STATES = ("candidate", "pending", "active", "exiting", "exit_only", "cooldown", "closed", "failed", "resolved")
OPEN_STATES = {"candidate", "pending", "active", "exiting", "exit_only"}


def aggressive(d: RunData) -> dict:
    """(4) Aggressive-sell steps (SELL orders posted with purpose ``aggressive``), orders posted at the
    floor (purpose ``floor``) and floor holds (FLOOR_HIT), per token."""
    per: dict[str, dict[str, int]] = {}
    for token, evs in by_token(d.events, {"ORDER_POSTED", "FLOOR_HIT"}).items():
        row = {"aggressive_steps": 0, "floor_orders": 0, "floor_hits": 0}
        for e in evs:
            if e["reason"] == "FLOOR_HIT":
                row["floor_hits"] += 1
            elif e.get("purpose") == "aggressive":
                row["aggressive_steps"] += 1
            elif e.get("purpose") == "floor":
                row["floor_orders"] += 1
        if any(row.values()):
            per[token] = row
    total = {k: sum(r[k] for r in per.values()) for k in ("aggressive_steps", "floor_orders", "floor_hits")}
    total["tokens"] = len(per)
    return {"total": total, "per_token": per}


def _fill_times(d: RunData) -> dict[str, int]:
    """order id -> market ms of its last FILL event."""
    out: dict[str, int] = {}
    for e in d.events:
        if e.get("reason") == "FILL" and e.get("order_id"):
            out[e["order_id"]] = ts(e)
    return out


def orders(d: RunData) -> dict:
    """(6) Our orders (``pb:orders`` records placed at or after ``since_ms``) by final status, fill rate
    = MATCHED / (MATCHED + CANCELED), and time to fill (last FILL event - placement, P50/max ms)."""
    fills_at, per = _fill_times(d), {}
    for token, recs in d.orders.items():
        status: Counter[str] = Counter()
        waits: list[int] = []
        for oid, rec in recs.items():
            placed = as_int(rec.get("ts_ms", "")) or 0
            if placed < d.since_ms:
                continue
            status[str(rec.get("status", ""))] += 1
            if rec.get("status") == "MATCHED" and oid in fills_at:
                waits.append(max(0, fills_at[oid] - placed))
        if not status:
            continue
        per[token] = {"orders": sum(status.values()), "live": status["LIVE"] + status["PENDING"],
                      "matched": status["MATCHED"], "canceled": status["CANCELED"], "failed": status["FAILED"],
                      "fill_rate": ratio(status["MATCHED"], status["MATCHED"] + status["CANCELED"]),
                      "fill_p50_ms": percentile(waits, 50), "fill_max_ms": max(waits) if waits else None}
    total = {k: sum(r[k] for r in per.values()) for k in ("orders", "live", "matched", "canceled", "failed")}
    total["fill_rate"] = ratio(total["matched"], total["matched"] + total["canceled"])
    return {"total": total, "per_token": per}


def ignored_sells(d: RunData) -> dict:
    """(9) Leader SELLs ignored for no position (IGNORED_NO_POSITION) per leader (``leader`` field;
    "unknown" on records written before it was journaled)."""
    per = Counter(e.get("leader") or "unknown" for e in d.events if e.get("reason") == "IGNORED_NO_POSITION")
    return {"total": {"ignored": sum(per.values()), "leaders": len(per)},
            "per_leader": {k: {"ignored": v} for k, v in sorted(per.items())}}


def exits(d: RunData) -> dict:
    """(10) Exits by reason: the journaled triggers that moved a token to ``exiting``/``exit_only``
    (STOP_LOSS, SELL_ONLY_WINDOW, LEADER_SELL, ...) and the closing reason of every token no longer
    open (its pb:tok ``state`` and ``reason``)."""
    triggers = Counter(e["reason"] for e in d.events if e.get("state") in ("exiting", "exit_only")
                       and ("prev" in e or (e.get("svc") == "maker_worker" and "position" in e)))
    closing = Counter(f"{t.get('state', '')}:{t.get('reason', '')}" for t in d.toks.values()
                      if t.get("state") and t.get("state") not in OPEN_STATES)
    per = {tok: {"state": t.get("state", ""), "reason": t.get("reason", "")} for tok, t in d.toks.items()
           if t.get("state") and t.get("state") not in OPEN_STATES}
    return {"total": {"closed_tokens": sum(closing.values())}, "by_trigger": dict(sorted(triggers.items())),
            "by_closing_reason": dict(sorted(closing.items())), "per_token": per}


def exit_only_queue(d: RunData) -> dict:
    """(11) Tokens still in ``exit_only`` (state) or on an exit-only lease, with their age in market ms
    since they entered it (the last journaled move to ``exit_only``, else pb:tok ``updated_ms``)."""
    entered: dict[str, int] = {}
    for e in d.events:
        if e.get("state") == "exit_only" and e.get("token_id"):
            entered[e["token_id"]] = ts(e)
    per = {}
    for token, t in d.toks.items():
        lease = d.leases.get(token, {})
        if t.get("state") != "exit_only" and lease.get("mode") != "exit_only":
            continue
        since = entered.get(token) or as_int(t.get("updated_ms", "")) or d.now_ms
        per[token] = {"state": t.get("state", ""), "reason": t.get("reason", ""), "lease": lease.get("worker", ""),
                      "offered": token in d.offers, "age_ms": max(0, d.now_ms - since)}
    ages = [r["age_ms"] for r in per.values()]
    return {"total": {"queued": len(per), "max_age_ms": max(ages) if ages else None}, "per_token": per}


def balance_rejects(d: RunData) -> dict:
    """(12) SELL orders refused for balance (INSUFFICIENT_BALANCE with side SELL), per token."""
    per = Counter(e.get("token_id", "") for e in d.events
                  if e.get("reason") == "INSUFFICIENT_BALANCE" and e.get("side") == "SELL")
    return {"total": {"sell_rejects": sum(per.values()), "tokens": len(per)},
            "per_token": {k: {"sell_rejects": v} for k, v in sorted(per.items())}}


def states(d: RunData) -> dict:
    """(13) Tokens per lifecycle state (pb:tok ``state``), the pending queue and open offers."""
    c = Counter(t.get("state", "") or "none" for t in d.toks.values())
    total = {s: c.get(s, 0) for s in STATES}
    total.update({k: v for k, v in c.items() if k not in STATES})
    total.update({"tokens": len(d.toks), "pending_queue": len(d.pending), "offers": len(d.offers)})
    return {"total": total}


def pnl(d: RunData) -> dict:
    """(14) P&L (``libs.common.pnl``: average cost, pUSD) per token, per leader (pb:tok
    ``leader_account``) and in total; money fields as micro-pUSD Decimals."""
    per = {t.token_id: {"leader": t.leader, **as_json(t)} for t in d.pnl}
    leaders = {k or "unknown": {"tokens": v.tokens, **as_json(v)} for k, v in aggregate(d.pnl, "leader").items()}
    total = aggregate(d.pnl)["total"]
    return {"total": {"tokens": total.tokens, **as_json(total)}, "per_leader": leaders, "per_token": per}
