"""The user channel (``/ws/user``) of the paper venue: our orders' ``order`` and ``trade`` events.

Protocol (reference/polymarket-api.md 1.2): the first message ``{"auth": {"apiKey", "secret",
"passphrase"}, "markets": ["0x<condition id>", ...], "type": "user"}`` authenticates with an API key
the venue issued (``engine.verify_user``); ``markets`` (optional, condition ids) limits the events,
empty = all markets; ``{"operation": "subscribe"|"unsubscribe", "markets": [...]}`` changes that set.
Text ``PING`` gets ``PONG``. A connection receives the ``order`` events (PLACEMENT, UPDATE,
CANCELLATION) and ``trade`` events of that key's orders, as the engine emits them, and again a
``trade`` event each time a trade's settlement status changes (MATCHED -> MINED -> CONFIRMED, or
FAILED: the engine's settlement TradeEvents, same trade ``id``). A failed auth is journaled
(``WS_AUTH_FAILED``) and the connection closed with code 1008. The SDK's all-markets subscribe
has no ``markets`` key at all (``build_initial_frame``); that means every market, like ``[]``.

Wire shapes (``polymarket/models/clob/user_events.py``, fixtures-nautilus ``ws_user_*.json``): an
order event has ``event_type "order"``, ``id, owner, order_owner, market, asset_id, side,
original_size, size_matched, price, associate_trades, outcome, type, created_at, expiration,
order_type, status, maker_address, timestamp``; a trade event ``event_type "trade"``, ``type
"TRADE"``, ``id, taker_order_id, market, asset_id, side, size, price, fee_rate_bps, status,
match_time, last_update, outcome, owner, trade_owner, maker_address, transaction_hash,
bucket_index, trader_side, timestamp`` and ``maker_orders`` legs ``{order_id, owner,
maker_address, matched_amount, price, fee_rate_bps, asset_id, outcome, side}``
(``services/venue_sim/orders.py`` builds both; tests parse them with the SDK).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import orjson

from services.venue_sim.controls import Conn, Hub, Recorder, Silence
from services.venue_sim.engine import OrderEvent, TradeEvent

log = logging.getLogger(__name__)


def owners(event: OrderEvent | TradeEvent) -> set[str]:
    """API keys an engine event belongs to: the order's ``owner``; for a trade its ``owner`` and the
    ``owner`` of every ``maker_orders`` leg."""
    if isinstance(event, OrderEvent):
        return {str(event.order.get("owner", ""))} - {""}
    legs = event.trade.get("maker_orders") or []
    found = {str(event.trade.get("owner", ""))} | {str(leg.get("owner", "")) for leg in legs if isinstance(leg, dict)}
    return found - {""}


class UserHub(Hub):
    """User-channel connections and the routing of engine events to them.

    Args:
        verify: ``(api_key, secret, passphrase) -> credentials or None`` (``engine.verify_user``).
        clock, journal, silence, queue_max: as for every hub (controls.Hub).
    """

    kind = "user"

    def __init__(self, verify: Callable[[str, str, str], Any], clock: Any, journal: Recorder,
                 silence: Silence, queue_max: int) -> None:
        super().__init__(clock, journal, silence, queue_max)
        self.verify = verify
        self.events_in = 0
        self.settlements_in = 0  # trade status changes (MINED/CONFIRMED/FAILED) among events_in

    def on_engine_event(self, event: OrderEvent | TradeEvent) -> None:
        """Engine listener: send the event to the connections of its owner (and of its market)."""
        self.events_in += 1
        self.settlements_in += int(bool(getattr(event, "settlement", False)))
        payload = event.order if isinstance(event, OrderEvent) else event.trade
        keys, market = owners(event), payload.get("market", "")
        text: str | None = None
        for conn in self.connections():
            if conn.subscribed and conn.api_key in keys and (not conn.markets or market in conn.markets):
                text = text or orjson.dumps(payload).decode()
                self._offer(conn, text)

    def handle_text(self, conn: Conn, text: str) -> None:
        """One client message (not PING): the auth subscribe, or a dynamic (un)subscribe of markets."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.bad_message(conn, text, "not JSON")
            return
        if not isinstance(msg, dict):
            self.bad_message(conn, text, "not a JSON object")
            return
        markets = msg.get("markets") or []
        if not isinstance(markets, list) or not all(isinstance(m, str) for m in markets):
            self.bad_message(conn, text, f"field 'markets' has bad value {str(markets)[:80]!r}")
            return
        op = msg.get("operation")
        if "auth" in msg:
            self._authenticate(conn, msg["auth"], markets)
        elif op == "subscribe" and conn.subscribed:
            conn.markets |= set(markets)
        elif op == "unsubscribe" and conn.subscribed:
            conn.markets -= set(markets)
        else:
            self.bad_message(conn, text, f"field 'operation' has bad value {op!r} (or not authenticated)")

    def _authenticate(self, conn: Conn, auth: Any, markets: list[str]) -> None:
        fields = [auth.get(k) if isinstance(auth, dict) else None for k in ("apiKey", "secret", "passphrase")]
        creds = self.verify(*fields) if all(isinstance(f, str) and f for f in fields) else None
        if creds is None:
            self.journal.record("WS_AUTH_FAILED", level="warn", channel="user", conn=conn.id,
                                api_key=str(fields[0])[:40])
            self.detach(conn)
            conn.close(1008, "invalid auth")
            return
        conn.api_key, conn.markets, conn.subscribed = str(fields[0]), set(markets), True
        log.info("event WS_USER_SUBSCRIBED conn=%d api_key=%s markets=%d", conn.id, conn.api_key, len(markets))

    def state(self) -> dict[str, Any]:
        """Counters and connections of the user channel."""
        return {**super().state(), "events_in": self.events_in, "settlements_in": self.settlements_in}
