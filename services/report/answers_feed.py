"""Answers about market data and health (1, 2, 3, 5, 7, 8): pure functions of ``RunData``.

Each answer is a dict ``{"total": {...}, "per_token": {token: {...}}}`` (or ``per_side`` ...) of
ints, Decimals and None; ``*_ms`` are market milliseconds.
"""
from __future__ import annotations

from libs.common.pnl import ZERO
from services.report.model import Event, Params, RunData, as_int, by_token, per_minute, percentile, ratio, ts

INACTIVE = {"HEALTH_INACTIVE_WARN", "INACTIVE_CLEANUP", "INACTIVE_CLEANUP_FLAT", "HEALTH_RECOVERED"}
STALE_OPEN = {"BOOK_REST_FALLBACK", "BOOK_REST_FAILED", "STALE_DATA"}
STALE_ALL = STALE_OPEN | {"STALE_RECOVERED", "BOOK_FEED_RETURNED", "LEASE_RELEASED"}
RECONNECTS = {"WS_RECONNECT", "USER_FEED_DISCONNECTED"}


def inactive(d: RunData) -> dict:
    """(1) Tokens warned inactive (30 min), cleaned up (60 min) and recovered in between."""
    per: dict[str, dict[str, int]] = {}
    for token, evs in by_token(d.events, INACTIVE).items():
        row = per.setdefault(token, {"warned": 0, "cleaned_up": 0, "recovered": 0})
        for e in evs:
            key = {"HEALTH_INACTIVE_WARN": "warned", "HEALTH_RECOVERED": "recovered"}.get(e["reason"], "cleaned_up")
            row[key] += 1
    total = {f"tokens_{k}": sum(1 for r in per.values() if r[k]) for k in ("warned", "cleaned_up", "recovered")}
    total.update({k: sum(r[k] for r in per.values()) for k in ("warned", "cleaned_up", "recovered")})
    return {"total": total, "per_token": per}


def stale_episodes(evs: list[Event]) -> list[dict]:
    """Stale-book episodes of one token from its events (stream order). An episode opens at the first
    BOOK_REST_FALLBACK / BOOK_REST_FAILED / STALE_DATA and ends ``feed`` at BOOK_FEED_RETURNED; at
    LEASE_RELEASED it ends ``gave_up`` when the book was unusable (STALE_DATA not recovered), else
    ``rest`` (it ran on the REST fallback until the token was let go); still running: ``open``."""
    out, cur = [], None
    for e in evs:
        reason = e["reason"]
        if reason in STALE_OPEN:
            cur = cur or {"start_ms": ts(e), "rest": False, "stale": False}
            cur["rest"] |= reason == "BOOK_REST_FALLBACK"
            cur["stale"] |= reason == "STALE_DATA"
        elif cur is not None and reason == "STALE_RECOVERED":
            cur["stale"] = False
        elif cur is not None and reason in ("BOOK_FEED_RETURNED", "LEASE_RELEASED"):
            how = "feed" if reason == "BOOK_FEED_RETURNED" else ("gave_up" if cur["stale"] else "rest")
            out.append({"start_ms": cur["start_ms"], "ended": how, "duration_ms": ts(e) - cur["start_ms"]})
            cur = None
    if cur is not None:
        out.append({"start_ms": cur["start_ms"], "ended": "open", "duration_ms": None})
    return out


def stale(d: RunData) -> dict:
    """(2) Stale-book episodes per token and how each ended (``stale_episodes``)."""
    per: dict[str, dict] = {}
    for token, evs in by_token(d.events, STALE_ALL).items():
        eps = stale_episodes(evs)
        if not eps:
            continue
        row = {"episodes": len(eps), **{k: sum(1 for x in eps if x["ended"] == k)
                                        for k in ("feed", "rest", "gave_up", "open")}}
        row["p50_ms"] = percentile([x["duration_ms"] for x in eps if x["duration_ms"] is not None], 50)
        per[token] = row
    keys = ("episodes", "feed", "rest", "gave_up", "open")
    total = {k: sum(r[k] for r in per.values()) for k in keys}
    total["feed_recovery_rate"] = ratio(total["feed"], total["episodes"])
    return {"total": total, "per_token": per}


def side_gaps(d: RunData) -> dict:
    """(3) Missing bid / ask episodes per side (BOOK_SIDE_MISSING) and how many came back
    (BOOK_SIDE_RESTORED, with ``gap_ms``)."""
    per: dict[str, dict] = {}
    gaps: dict[str, list[int]] = {"bid": [], "ask": []}
    for token, evs in by_token(d.events, {"BOOK_SIDE_MISSING", "BOOK_SIDE_RESTORED"}).items():
        row = per.setdefault(token, {"bid_missing": 0, "bid_restored": 0, "ask_missing": 0, "ask_restored": 0})
        for e in evs:
            side = e.get("side", "")
            if side not in gaps:
                continue
            row[f"{side}_{'missing' if e['reason'] == 'BOOK_SIDE_MISSING' else 'restored'}"] += 1
            gap = as_int(e.get("gap_ms")) if e["reason"] == "BOOK_SIDE_RESTORED" else None
            if gap is not None:
                gaps[side].append(gap)
    total: dict[str, object] = {}
    for side in ("bid", "ask"):
        missing = sum(r[f"{side}_missing"] for r in per.values())
        restored = sum(r[f"{side}_restored"] for r in per.values())
        total.update({f"{side}_missing": missing, f"{side}_restored": restored,
                      f"{side}_recovery_rate": ratio(restored, missing), f"{side}_gap_p50_ms": percentile(gaps[side], 50)})
    return {"total": total, "per_token": per}


def reconnects(d: RunData) -> dict:
    """(5) Market-feed reconnects, user-feed disconnects, book resyncs and REST verify rounds
    (journal counts), with the gateway's and user feed's own counters."""
    names = {"WS_RECONNECT": "ws_reconnects", "USER_FEED_DISCONNECTED": "user_feed_disconnects",
             "BOOK_RESYNC": "book_resyncs", "VERIFY_ROUND": "verify_rounds", "USER_FEED_BACKFILL": "user_backfills"}
    total = {v: 0 for v in names.values()}
    per: dict[str, dict[str, int]] = {}
    for e in d.events:
        name = names.get(e.get("reason", ""))
        if name is None:
            continue
        total[name] += 1
        if e.get("token_id") and name == "book_resyncs":
            row = per.setdefault(e["token_id"], {"book_resyncs": 0})
            row["book_resyncs"] += 1
    total["gateway_reconnects"] = as_int(d.gateway.get("reconnects", "")) or 0
    total["gateway_resyncs"] = as_int(d.gateway.get("resyncs", "")) or 0
    total["user_feed_reconnects"] = as_int(d.user_feed.get("reconnects", "")) or 0
    return {"total": total, "per_token": per}


def data_age(d: RunData) -> dict:
    """(7) Book data age (``data_age_ms`` on ORDER_POSTED / ORDER_CANCELED: wall ms between the
    book's receive or REST check and the decision) P50 / P95 / max per token and in total."""
    ages: dict[str, list[int]] = {}
    for token, evs in by_token(d.events, {"ORDER_POSTED", "ORDER_CANCELED"}).items():
        vals = [a for a in (as_int(e.get("data_age_ms", "")) for e in evs) if a is not None]
        if vals:
            ages[token] = vals
    def stats(v: list[int]) -> dict:
        return {"n": len(v), "p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95), "max_ms": max(v) if v else None}
    return {"total": stats([a for v in ages.values() for a in v]), "per_token": {t: stats(v) for t, v in ages.items()}}


def windows(starts: list[int], width: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Merged ``[t, t + width)`` intervals of ``starts`` clipped to ``[lo, hi)`` (market ms)."""
    out: list[tuple[int, int]] = []
    for t in sorted(starts):
        a, b = max(lo, t), min(hi, t + width)
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def after_reconnects(d: RunData, p: Params) -> dict:
    """(8) Fills (FILL) and orders posted (ORDER_POSTED) per minute in the ``reconnect_window_ms``
    after each reconnect (WS_RECONNECT, USER_FEED_DISCONNECTED) vs the rest of the span."""
    if not d.events:
        return {"total": {"reconnects": 0}}
    lo, hi = min(ts(e) for e in d.events), max(ts(e) for e in d.events) + 1
    starts = [ts(e) for e in d.events if e.get("reason") in RECONNECTS]
    wins = windows(starts, p.reconnect_window_ms, lo, hi)
    inside = sum(b - a for a, b in wins)
    counts = {"fills_after": 0, "fills_otherwise": 0, "posted_after": 0, "posted_otherwise": 0}
    for e in d.events:
        kind = {"FILL": "fills", "ORDER_POSTED": "posted"}.get(e.get("reason", ""))
        if kind:
            t = ts(e)
            counts[f"{kind}_{'after' if any(a <= t < b for a, b in wins) else 'otherwise'}"] += 1
    total: dict[str, object] = {"reconnects": len(starts), "window_ms": p.reconnect_window_ms,
                                "minutes_after": ratio(inside, 60_000) or ZERO, **counts}
    for kind in ("fills", "posted"):
        total[f"{kind}_per_min_after"] = per_minute(counts[f"{kind}_after"], inside)
        total[f"{kind}_per_min_otherwise"] = per_minute(counts[f"{kind}_otherwise"], hi - lo - inside)
    return {"total": total}
