"""Pure assignment of tokens to market-channel connections (shards), at most ``cap`` per connection.

Polymarket documents no per-connection asset cap; nautilus_trader caps itself at 200
(``WS_MAX_SUBSCRIPTIONS``, ``reference/polymarket-api.md`` 1.1), which is our default. A plan is
stable: a token stays on its connection while it is wanted (moving it would cost a snapshot), new
tokens fill the lowest-numbered connection with room, and connections left empty are closed.
"""
from __future__ import annotations

import json


def plan(current: dict[int, set[str]], wanted: set[str], cap: int) -> dict[int, set[str]]:
    """New assignment ``conn_id -> tokens`` covering exactly ``wanted``.

    Args:
        current: the present assignment (not modified).
        wanted: every token that must be subscribed.
        cap: most tokens per connection (>= 1).

    Raises:
        ValueError: ``cap`` < 1.
    """
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    out = {cid: toks & wanted for cid, toks in current.items()}
    out = {cid: toks for cid, toks in out.items() if toks}
    placed = set().union(*out.values()) if out else set()
    new = sorted(wanted - placed)
    cid = 0
    while new:
        toks = out.setdefault(cid, set())
        room = cap - len(toks)
        if room > 0:
            toks.update(new[:room])
            new = new[room:]
        cid += 1
    return {c: t for c, t in out.items() if t}


def initial_subscribe(token_ids: list[str]) -> str:
    """The first message on a new connection (docs ``market-data/websocket/overview.md``): market
    channel, snapshot dump on, full depth (level 2), custom events (best_bid_ask, market_resolved)."""
    return json.dumps({"assets_ids": token_ids, "type": "market", "initial_dump": True, "level": 2,
                       "custom_feature_enabled": True})


def subscribe_op(token_ids: list[str]) -> str:
    """Dynamic subscribe on an open connection."""
    return json.dumps({"operation": "subscribe", "assets_ids": token_ids, "custom_feature_enabled": True})


def unsubscribe_op(token_ids: list[str]) -> str:
    """Dynamic unsubscribe on an open connection."""
    return json.dumps({"operation": "unsubscribe", "assets_ids": token_ids})
