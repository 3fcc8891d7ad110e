"""The paper venue's exchange core: our orders, matching against the replayed tape, balances.

Matching rules (SPEC S4; deterministic given the tape and the seed, no randomness at all):
- Our orders rest in our own book per token, beside the tape's book (which we never change).
- A resting BUY at p FILLS when the tape's best ask <= p; a resting SELL at p fills when the
  tape's best bid >= p. Fill price = the order's own price (we are the maker). Fill size = the
  whole remaining size: the tape level that crossed us is other people's liquidity that, in the
  real market, would have traded against our better-or-equal resting price first, and the tape
  cannot show how much of it was consumed by us, so no cap is applied (optimistic; documented).
  Queue position behind equal-priced tape orders is not modelled.
- On placement: a post-only order that would cross the tape's opposite best is rejected
  ("invalid post-only order: order crosses book", Polymarket create-order docs,
  INVALID_POST_ONLY_ORDER). A non-post-only limit order that crosses fills at once as taker,
  walking the tape's opposite levels (best first, at each level's price, up to its size, never
  beyond the order price); the rest rests (GTC/GTD) or is killed (FAK); FOK must fill completely.
  Tape liquidity we took stays consumed until the tape next updates that token. Market BUYs
  (FOK/FAK) buy up to ``takerAmount`` shares at prices up to ``makerAmount/takerAmount`` (they do
  not spend price improvement on extra shares).
- Our orders never match each other. Fees follow the market's ``fee_schedule`` (accounts.py,
  libs/common/fees.py): a TAKER fill pays ``taker_fee`` pUSD from the maker wallet, a MAKER fill
  pays 0 (``takerOnly``) and its rebate estimate is audited, never credited; no schedule = fees 0.
- Orders of the four wallet types are checked by wallets.py/sigs.py; the maker WALLET funds them and
  holds the result, while the API key's address (``Order.api_address``) owns them for listing,
  cancels and heartbeats. Fills are MATCHED trades that settle later: MINED, then CONFIRMED
  (settlement.py), each step a TradeEvent with ``settlement=True`` at the next sweep.
- GTD orders expire at ``expiration`` (market time). After heartbeats started for an address, no
  heartbeat for 10 s (wall) cancels all its orders (Polymarket ``POST /v1/heartbeats`` rule).
  Both are checked at every engine call (``sweep``), and ``sweep()`` may also be called
  periodically.
The engine is thread-safe (one RLock); listeners are called after the state changed, outside it.
It calls ``books`` while holding its lock, so callers must not hold a books lock while calling it.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.tapes import MarketMeta
from services.venue_sim import accounts as acc
from services.venue_sim import auth, sigs
from services.venue_sim import orders as od
from services.venue_sim.audit import Audit
from services.venue_sim.books import BookView  # the tape's books, implemented by venue-ws
from services.venue_sim.config import PaperExchangeSettings
from services.venue_sim.engine_queries import EngineQueries
from services.venue_sim.orders import Order, OrderReject, fmt
from services.venue_sim.redeem import Resolutions
from services.venue_sim.settlement import Settlement
from services.venue_sim.wallets import WalletBook, WalletError

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_MS = 10_000
Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class OrderEvent:
    """``kind`` PLACEMENT | UPDATE | CANCELLATION; ``order`` in user-channel shape (its ``owner`` is
    the API key, ``maker_address`` the maker)."""

    kind: str
    order: dict[str, Any]


@dataclass(frozen=True)
class TradeEvent:
    """A fill of one of our orders: ``trade`` in user-channel shape (``owner`` API key,
    ``maker_address``), the fill ``price``/``size`` and the taker's side. ``settlement`` marks a
    later status change of that trade (MINED, CONFIRMED: settlement.py), not a new fill."""

    trade: dict[str, Any]
    token_id: str
    price: Decimal
    size: Decimal
    taker_side: str
    settlement: bool = False


VenueEvent = OrderEvent | TradeEvent
Events = list[VenueEvent]


class Engine(EngineQueries):
    """Orders, fills and balances of the paper venue (see module doc for the rules).

    Args:
        books: the tape's books (BookView). markets: MarketMeta by token id.
        clock: ``now_ms`` market time, ``wall_ms`` wall time. audit: the audit log.
        start_usdc: pUSD credited to an address (signer or wallet) when first seen. seed: makes ids
        and keys. exchange: owners, settlement delays, rate limits (default: read from ``PB_*``).
    """

    def __init__(self, books: BookView, markets: dict[str, MarketMeta], clock: Clock, audit: Audit,
                 start_usdc: Decimal, seed: int, exchange: PaperExchangeSettings | None = None) -> None:
        self.books, self.markets, self.clock, self.audit = books, markets, clock, audit
        self.exchange = exchange or PaperExchangeSettings()
        self.wallets = WalletBook(self.exchange.paper_owners)
        self.settlement = Settlement(self.exchange.settle_mined_ms, self.exchange.settle_confirmed_ms)
        self.resolutions = Resolutions()  # condition id -> winner, once the market resolved (redeem.py)
        self.start_usdc, self.seed = Decimal(start_usdc), seed
        self.keys = auth.KeyStore(seed)
        self.conditions = {m.condition_id: m for m in markets.values()}
        self._lock = threading.RLock()
        self._listeners: list[tuple[Callable[[VenueEvent], None], bool]] = []
        self.ledger = acc.Ledger(self.start_usdc)
        self.orders: dict[str, Order] = {}
        self._open: dict[str, dict[str, Order]] = {}  # token -> id -> LIVE order
        self._consumed: dict[tuple[str, str], dict[Decimal, Decimal]] = {}  # (token, side taken) -> price -> size
        self._ended: set[str] = set()
        self._heartbeats: dict[str, int] = {}  # address lower -> wall ms of last heartbeat
        self._seq = 0
        self.rejected = 0

    # ---- listeners and the locked-run helper ----
    def listen(self, callback: Callable[[VenueEvent], None], settlement_updates: bool = True) -> None:
        """Call ``callback(event)`` for every OrderEvent/TradeEvent, after the state changed.
        ``settlement_updates``: also pass settlement TradeEvents (MINED/CONFIRMED); the market channel
        listens without them (it reports fills, not their settlement)."""
        with self._lock:
            self._listeners.append((callback, settlement_updates))

    def _emit(self, events: Events) -> None:
        for event in events:
            settling = isinstance(event, TradeEvent) and event.settlement
            for callback, wants in list(self._listeners):
                if settling and not wants:
                    continue
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a listener must never break matching
                    log.exception("event LISTENER_FAILED kind=%s", type(event).__name__)

    def _run(self, fn: Callable[[Events], Any]) -> Any:
        """Run ``fn(events)`` under the lock after a sweep; emit the events after releasing it."""
        events: Events = []
        try:
            with self._lock:
                self._sweep_locked(events)
                return fn(events)
        finally:
            self._emit(events)

    def _audit(self, kind: str, **fields: Any) -> None:
        """Write an audit line; lines about a known token also carry the tape's top of book and tick
        (``book_best_bid``, ``book_best_ask``, ``tick_size``: the market as it stood, without our orders)."""
        token = fields.get("token_id")
        if token and self.books.known(token):
            bid, ask = self.books.tape_top(token)
            fields.update(book_best_bid=bid, book_best_ask=ask, tick_size=self.books.tick_size(token))
        self.audit.write(kind, self.clock.now_ms(), self.clock.wall_ms(), **fields)
        metrics.observe_venue_audit(kind, fields)  # fills, placements and cancels as Prometheus counters

    # ---- keys and accounts ----
    def register_key(self, address: str, nonce: int) -> auth.ApiCreds:
        """Create/derive the API key of (address, nonce); a new address gets ``start_usdc`` pUSD."""
        creds = self.keys.register(address, nonce)
        with self._lock:
            if creds.address.lower() not in self.ledger.accounts:
                self.ledger.account(creds.address)
                log.info("event ACCOUNT_CREATED address=%s collateral=%s", creds.address, self.start_usdc)
        return creds

    def verify_user(self, api_key: str, secret: str, passphrase: str) -> auth.ApiCreds | None:
        """Credentials of a user-channel ``auth`` object, or None when they do not match."""
        return self.keys.check_user(api_key, secret, passphrase)

    def _open_of(self, address: str, by_maker: bool = False) -> list[Order]:
        """LIVE orders posted by API keys of ``address`` (or, ``by_maker``, made by wallet ``address``)."""
        key = address.lower()
        return [o for book in self._open.values() for o in book.values()
                if (o.maker if by_maker else o.api_address).lower() == key]

    # ---- placement ----
    def place(self, creds: auth.ApiCreds, body: Any) -> dict[str, Any]:
        """Validate, check the signature, fund and match one POST /order body.

        Returns:
            ``{"success": true, "errorMsg": "", "orderID", "status": "live"|"matched",
            "makingAmount", "takingAmount", "tradeIDs"}`` (no ``transactionsHashes``: trades
            settle asynchronously, settlement.py).
        Raises:
            OrderReject: with Polymarket's status and text (audited as ``order_rejected``).
        """
        parsed: od.ParsedOrder | None = None
        try:
            parsed = od.parse_post_body(body)
            meta = self._market(parsed.token_id)
            order_id, maker = self._verify(creds, parsed, meta)
            return self._run(lambda events: self._place_locked(creds, parsed, meta, (order_id, maker), events))
        except OrderReject as rej:
            self._reject(rej, parsed, creds)
            raise

    def _reject(self, rej: OrderReject, p: od.ParsedOrder | None, creds: auth.ApiCreds) -> None:
        with self._lock:
            self.rejected += 1
        fields: dict[str, Any] = {"reason": rej.reason, "maker": creds.address, "error": rej.message}
        if p is not None:
            fields.update(token_id=p.token_id, side=p.side, price=p.price, size=p.size,
                          post_only=p.post_only, order_type=p.order_type)
        self._audit("order_rejected", **fields)
        log.info("event ORDER_REJECTED reason=%s maker=%s error=%s", rej.reason, creds.address, rej.message)

    def _market(self, token_id: str) -> MarketMeta:
        meta = self.markets.get(token_id)
        if meta is None or not self.books.known(token_id):
            raise OrderReject(400, od.ERR_TOKEN, "UNKNOWN_TOKEN")
        return meta

    def _verify(self, creds: auth.ApiCreds, p: od.ParsedOrder, meta: MarketMeta) -> tuple[str, str]:
        """Owner check, then the wallet and signature rule of the four wallet types (wallets.py);
        returns (order id, maker wallet)."""
        if p.owner != creds.api_key or not self.wallets.acts_for(creds.address, p.raw):
            raise OrderReject(400, od.ERR_OWNER, "OWNER_MISMATCH")
        try:
            maker = self.wallets.verify_order(p.raw, meta.neg_risk, creds.address)
            return "0x" + sigs.order_digest(p.raw, meta.neg_risk).hex(), maker
        except (WalletError, KeyError, TypeError, ValueError) as exc:
            log.info("event ORDER_SIGNATURE_REFUSED maker=%s why=%s", p.maker, exc)
            raise OrderReject(400, od.ERR_SIGNATURE, "INVALID_SIGNATURE") from None

    def _place_locked(self, creds: auth.ApiCreds, p: od.ParsedOrder, meta: MarketMeta, ids: tuple[str, str],
                      events: Events) -> dict[str, Any]:
        now, (order_id, maker) = self.clock.now_ms(), ids
        if order_id in self.orders:
            raise OrderReject(400, od.err_duplicated(order_id), "INVALID_ORDER_DUPLICATED")
        if meta.condition_id in self._ended or now >= meta.end_ms:
            raise OrderReject(400, od.ERR_MARKET_CLOSED, "MARKET_CLOSED")
        od.check_rules(p, order_id, self.books.tick_size(p.token_id), meta.min_order_size, now)
        best_bid, best_ask = self.books.tape_top(p.token_id)
        crossing = od.crosses(p.side, p.price, best_ask if p.side == "BUY" else best_bid)
        if p.post_only and crossing:
            raise OrderReject(400, od.ERR_POST_ONLY_CROSS, "INVALID_POST_ONLY_ORDER")
        need = acc.order_need(p.side, p.price, p.size, meta.fee_schedule, crossing)
        if not acc.can_fund(self.ledger.account(maker), p.side, p.token_id, need, self._open_of(maker, by_maker=True)):
            raise OrderReject(400, od.ERR_BALANCE, "INVALID_ORDER_NOT_ENOUGH_BALANCE")
        fills = self._taker_fills(p) if crossing else []
        filled = sum((s for _, s in fills), Decimal(0))
        if p.order_type == "FOK" and filled < p.size:
            raise OrderReject(400, od.ERR_FOK, "FOK_ORDER_NOT_FILLED_ERROR")
        if p.order_type == "FAK" and filled == 0:
            raise OrderReject(400, od.ERR_FAK, "FAK_ORDER_NOT_FILLED")
        return self._accept(creds, p, meta, ids, fills, events)

    def _taker_fills(self, p: od.ParsedOrder) -> list[Level]:
        bids, asks = self.books.tape_levels(p.token_id)
        consumed = self._consumed.setdefault((p.token_id, p.side), {})
        return od.walk_levels(p.side, p.price, p.size, asks if p.side == "BUY" else bids, consumed)

    def _accept(self, creds: auth.ApiCreds, p: od.ParsedOrder, meta: MarketMeta, ids: tuple[str, str],
                fills: list[Level], events: Events) -> dict[str, Any]:
        self._seq += 1
        order = Order(id=ids[0], owner=creds.api_key, maker=ids[1], api_address=creds.address, token_id=p.token_id,
                      market=meta.condition_id, outcome=meta.outcomes[meta.token_ids.index(p.token_id)],
                      side=p.side, price=p.price, original_size=p.size, order_type=p.order_type,
                      post_only=p.post_only, expiration=p.expiration, created_ms=self.clock.now_ms(),
                      seq=self._seq)
        self.orders[order.id] = order
        self._audit("order_accepted", order_id=order.id, token_id=order.token_id, side=order.side,
                    price=order.price, size=order.original_size, post_only=order.post_only,
                    order_type=order.order_type, maker=order.maker, taker_fills=len(fills))
        trade_events = []
        making = taking = Decimal(0)
        for price, size in fills:
            consumed = self._consumed.setdefault((p.token_id, p.side), {})
            consumed[price] = consumed.get(price, Decimal(0)) + size
            event, usd = self._fill(order, price, size, maker=False)
            trade_events.append(event)
            making, taking = (making + usd, taking + size) if p.side == "BUY" else (making + size, taking + usd)
        if order.remaining > 0 and p.order_type in ("GTC", "GTD"):
            self._open.setdefault(order.token_id, {})[order.id] = order
        elif order.status == "LIVE":
            order.status, order.cancel_reason = "MATCHED", ("FAK_REMAINDER_KILLED" if order.remaining > 0 else "")
        events.append(OrderEvent("PLACEMENT", od.user_order_event(order, "PLACEMENT", self.clock.now_ms())))
        events.extend(trade_events)
        trade_ids = [e.trade["id"] for e in trade_events]
        return {"success": True, "errorMsg": "", "orderID": order.id,
                "status": "matched" if fills else "live", "makingAmount": fmt(making),
                "takingAmount": fmt(taking), "tradeIDs": trade_ids}

    # ---- fills ----
    def _fill(self, order: Order, price: Decimal, size: Decimal, maker: bool) -> tuple[TradeEvent, Decimal]:
        """Book one fill of ``order``; returns its TradeEvent and the pUSD moved.

        Raises:
            ValueError: the account cannot cover the fill (a reservation bug; the caller cancels).
        """
        schedule = self.markets[order.token_id].fee_schedule
        trade, usd, taker_side, (fee, rebate) = self.ledger.fill(order, price, size, maker, self.clock.now_ms(),
                                                                  self.seed, schedule)
        self.settlement.matched(trade["id"], self.clock.now_ms())
        order.size_matched += size
        order.associate_trades.append(trade["id"])
        if order.remaining <= 0:
            order.status = "MATCHED"
            self._open.get(order.token_id, {}).pop(order.id, None)
        self._audit("fill", order_id=order.id, token_id=order.token_id, side=order.side, price=price,
                    size=size, post_only=order.post_only, order_type=order.order_type, maker=order.maker,
                    trade_id=trade["id"], role="MAKER" if maker else "TAKER", size_matched=order.size_matched,
                    fee=fee, rebate=rebate, fee_rate_bps=acc.rate_bps(schedule))
        log.info("event ORDER_FILLED order_id=%s side=%s price=%s size=%s role=%s", order.id, order.side,
                 price, size, "MAKER" if maker else "TAKER")
        return TradeEvent(trade, order.token_id, price, size, taker_side), usd

    def on_tape_update(self, token_id: str) -> None:
        """Fill our resting orders of ``token_id`` that the tape's new top crosses (module doc)."""
        self._run(lambda events: self._match_resting(token_id, events))

    def _match_resting(self, token_id: str, events: Events) -> None:
        self._consumed.pop((token_id, "BUY"), None)
        self._consumed.pop((token_id, "SELL"), None)
        if not self.books.known(token_id):  # the tape dropped the token: its orders cannot rest
            for order in sorted(self._open.get(token_id, {}).values(), key=lambda o: o.seq):
                self._cancel(order, "MARKET_NOT_FOUND", events, "CANCELED_MARKET_NOT_FOUND")
            return
        best_bid, best_ask = self.books.tape_top(token_id)
        resting = sorted(self._open.get(token_id, {}).values(),
                         key=lambda o: (-o.price if o.side == "BUY" else o.price, o.seq))
        for order in resting:
            if not od.crosses(order.side, order.price, best_ask if order.side == "BUY" else best_bid):
                continue
            try:
                trade_event, _ = self._fill(order, order.price, order.remaining, maker=True)
            except ValueError as exc:
                log.error("event FILL_BALANCE_ERROR order_id=%s err=%s", order.id, exc)
                self._cancel(order, "FILL_BALANCE_ERROR", events, "CANCELED_NOT_ENOUGH_BALANCE")
                continue
            events.append(OrderEvent("UPDATE", od.user_order_event(order, "UPDATE", self.clock.now_ms())))
            events.append(trade_event)

    # ---- cancels, market end, heartbeats, expiry ----
    def _cancel(self, order: Order, reason: str, events: Events, status: str = "CANCELED") -> None:
        """Cancel ``order`` with audit ``reason``; ``status`` is Polymarket's order status for the
        cause (``polymarket/models/clob/user_events.py`` KnownUserOrderStatus: CANCELED,
        CANCELED_MARKET_RESOLVED, CANCELED_EXPIRED_ORDER, CANCELED_NOT_ENOUGH_BALANCE, ...)."""
        order.status, order.cancel_reason = status, reason
        self._open.get(order.token_id, {}).pop(order.id, None)
        self._audit("cancel", order_id=order.id, token_id=order.token_id, side=order.side, price=order.price,
                    size=order.remaining, post_only=order.post_only, order_type=order.order_type,
                    reason=reason, maker=order.maker)
        events.append(OrderEvent("CANCELLATION", od.user_order_event(order, "CANCELLATION", self.clock.now_ms())))

    def cancel(self, address: str, order_ids: list[str], reason: str = "USER_CANCEL") -> dict[str, Any]:
        """Cancel ``order_ids`` of ``address``: ``{"canceled": [ids], "not_canceled": {id: reason}}``
        (reasons as Polymarket words them, reference/polymarket-api.md "Other order endpoints")."""
        def run(events: Events) -> dict[str, Any]:
            canceled: list[str] = []
            not_canceled: dict[str, str] = {}
            for oid in order_ids:
                order = self.orders.get(oid)
                if order is None or order.api_address.lower() != address.lower():
                    not_canceled[oid] = "Order not found or already canceled"
                elif order.status != "LIVE":
                    not_canceled[oid] = "already canceled or matched"
                else:
                    self._cancel(order, reason, events)
                    canceled.append(oid)
            return {"canceled": canceled, "not_canceled": not_canceled}
        return self._run(run)

    def cancel_where(self, address: str, market: str = "", asset_id: str = "",
                     reason: str = "CANCEL_ALL") -> dict[str, Any]:
        """Cancel the open orders of ``address`` (optionally only of ``market`` and/or ``asset_id``)."""
        with self._lock:
            ids = [o.id for o in sorted(self._open_of(address), key=lambda o: o.seq)
                   if (not market or o.market == market) and (not asset_id or o.token_id == asset_id)]
        return self.cancel(address, ids, reason)

    def on_market_end(self, condition_id: str) -> None:
        """Market ended: refuse new orders and cancel every resting order of it (reason MARKET_ENDED)."""
        def run(events: Events) -> None:
            self._ended.add(condition_id)
            self._audit("market_end", reason="MARKET_ENDED", market=condition_id)
            for book in list(self._open.values()):
                for order in sorted(book.values(), key=lambda o: o.seq):
                    if order.market == condition_id:
                        self._cancel(order, "MARKET_ENDED", events, "CANCELED_MARKET_RESOLVED")
        self._run(run)

    def heartbeat(self, address: str, heartbeat_id: str) -> dict[str, Any]:
        """Record a heartbeat (wall time) of ``address``; heartbeat ids are not chained/enforced."""
        def beat(events: Events) -> dict[str, Any]:  # the sweep before it cancels a lapsed address first
            self._heartbeats[address.lower()] = wall = self.clock.wall_ms()
            return {"heartbeat_id": str(uuid.UUID(hex=acc.hex_id(self.seed, "hb", address, heartbeat_id, wall)[:32]))}
        return self._run(beat)

    def sweep(self) -> None:
        """Apply GTD expiry, heartbeat expiry and due settlement steps now (also done at every
        engine call; call it periodically so the user channel sees MINED/CONFIRMED in time)."""
        self._run(lambda events: None)

    def _settle_locked(self, now: int, events: Events) -> None:
        """Move due trades to MINED/CONFIRMED (settlement.py) and emit settlement TradeEvents."""
        for step in self.settlement.due(now):
            trade = self.ledger.set_status(step.trade_id, step.status, step.due_ms)
            if trade is not None:
                events.append(TradeEvent(trade, trade["asset_id"], Decimal(trade["price"]), Decimal(trade["size"]),
                                         trade["side"], settlement=True))

    def _sweep_locked(self, events: Events) -> None:
        wall, now = self.clock.wall_ms(), self.clock.now_ms()
        self._settle_locked(now, events)
        for address, last in list(self._heartbeats.items()):
            if wall - last > HEARTBEAT_TIMEOUT_MS:
                del self._heartbeats[address]
                self._audit("heartbeat_expired", reason="HEARTBEAT_EXPIRED", maker=address, last_wall_ms=last)
                log.warning("event HEARTBEAT_EXPIRED address=%s silent_ms=%d", address, wall - last)
                for order in sorted(self._open_of(address), key=lambda o: o.seq):
                    self._cancel(order, "HEARTBEAT_EXPIRED", events)
        for book in list(self._open.values()):
            for order in list(book.values()):
                if order.order_type == "GTD" and 0 < order.expiration and order.expiration * 1000 <= now:
                    self._cancel(order, "EXPIRED", events, "CANCELED_EXPIRED_ORDER")
