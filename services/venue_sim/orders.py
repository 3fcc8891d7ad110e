"""Orders of the paper venue: wire parsing, validation rules and the wire shapes of an order. Pure.

Amounts on the wire are 6-decimal integers (``makerAmount``/``takerAmount``): a BUY gives
``makerAmount`` pUSD for ``takerAmount`` shares, a SELL gives ``makerAmount`` shares for
``takerAmount`` pUSD (py_clob_client_v2 ``order_builder/builder.py`` ``get_order_amounts``).
So a limit order's size (shares) and price (pUSD per share, in [0, 1]) are derived exactly with
Decimal from the two integers.

Error strings are Polymarket's where they could be confirmed: the "Insert Error Messages" table of
docs.polymarket.com/developers/CLOB/orders/create-order (INVALID_ORDER_MIN_TICK_SIZE, ...,
INVALID_POST_ONLY_ORDER "invalid post-only order: order crosses book") with the full texts
recorded in /work/shared/reference/polymarket-api.md. Strings marked UNCONFIRMED below are the
venue's own wording.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MICRO = Decimal(1_000_000)
SIDES = ("BUY", "SELL")
ORDER_TYPES = ("GTC", "GTD", "FOK", "FAK")
MARKET_TYPES = ("FOK", "FAK")
GTD_THRESHOLD_MS = 60_000  # GTD "security threshold of one minute" (Polymarket order docs)
V2_ONLY_FIELDS = ("timestamp", "metadata", "builder")
V1_ONLY_FIELDS = ("nonce", "feeRateBps", "taker")

# -- error strings (status 400 unless noted) --
ERR_VERSION = "invalid order version, please use the latest clob-client"  # reference/polymarket-api.md
# The SDK (polymarket-client 0.14.0) carries no text for a bad signature; this is the create-order
# docs' / reference error list's text: UNCONFIRMED against the SDK. Used for every wallet type.
ERR_SIGNATURE = "invalid signature"
ERR_OWNER = "the order owner has to be the owner of the API KEY"  # reference error list
ERR_BALANCE = "not enough balance / allowance"  # INVALID_ORDER_NOT_ENOUGH_BALANCE
ERR_EXPIRATION = "invalid expiration"  # INVALID_ORDER_EXPIRATION
ERR_POST_ONLY_TYPE = "invalid post-only order: only GTC and GTD order types are allowed"
ERR_POST_ONLY_CROSS = "invalid post-only order: order crosses book"  # INVALID_POST_ONLY_ORDER
# polymarket/models/clob/order_response.py _FOK_NOT_FILLED_MSG (the SDK wins over the older docs'
# "order couldn't be fully filled, FOK orders are fully filled/killed")
ERR_FOK = "order couldn't be fully filled. FOK orders are fully filled or killed."
ERR_FAK = ("no orders found to match with FAK order. FAK orders are partially filled or killed if no "
           "match is found.")  # polymarket/models/clob/order_response.py _FAK_NOT_FILLED_MSG
ERR_PAYLOAD = "Invalid order payload"  # docs.polymarket.com/resources/error-codes (POST order)
ERR_TOKEN = "Invalid token id"  # error-codes page (GET book); reused for orders: UNCONFIRMED for POST /order
ERR_MARKET_CLOSED = "market is closed: no new orders are accepted"  # UNCONFIRMED: venue wording


def err_tick(order_id: str, price: Decimal, tick: Decimal) -> str:
    """INVALID_ORDER_MIN_TICK_SIZE text (reference/polymarket-api.md error list)."""
    return f"order {order_id} is invalid. Price ({fmt(price)}) breaks minimum tick size rule: {fmt(tick)}"


def err_min_size(order_id: str, size: Decimal, min_size: Decimal) -> str:
    """INVALID_ORDER_MIN_SIZE text (reference/polymarket-api.md error list)."""
    return f"order {order_id} is invalid. Size ({fmt(size)}) lower than the minimum: {fmt(min_size)}"


def err_duplicated(order_id: str) -> str:
    """INVALID_ORDER_DUPLICATED text (reference/polymarket-api.md error list)."""
    return f"order {order_id} is invalid. Duplicated."


def err_market_buy_amount(amount: Decimal) -> str:
    """Marketable BUY below $1 (nautilus docs, quoted in reference/polymarket-api.md)."""
    return f"invalid amount for a marketable BUY order (${fmt(amount)}), min size: $1"


class OrderReject(Exception):
    """An order or request the venue refuses.

    Attributes:
        status: HTTP status (400 for every order rule, 401 for auth).
        message: the ``{"error": message}`` text sent to the client.
        reason: UPPER_SNAKE reason code for the audit log and logs.
    """

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def fmt(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: ``Decimal('10.500')`` -> ``'10.5'``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class ParsedOrder:
    """A posted V2 order (``{"order": {...}, "owner", "orderType", "postOnly"}``), typed.

    ``maker_amount``/``taker_amount`` are 6-decimal integers; ``timestamp`` is ms; ``expiration`` is
    Unix seconds (0 = none); ``raw`` is the wire ``order`` object as posted (for the signature check).
    """

    raw: dict[str, Any]
    salt: int
    maker: str
    signer: str
    token_id: str
    maker_amount: int
    taker_amount: int
    side: str
    expiration: int
    signature_type: int
    timestamp: int
    metadata: str
    builder: str
    signature: str
    owner: str
    order_type: str
    post_only: bool

    @property
    def size(self) -> Decimal:
        """Shares: ``takerAmount`` of a BUY, ``makerAmount`` of a SELL, / 10^6."""
        return Decimal(self.taker_amount if self.side == "BUY" else self.maker_amount) / MICRO

    @property
    def price(self) -> Decimal:
        """pUSD per share: USD amount / share amount (exact for limit orders built by the client)."""
        usd, shares = ((self.maker_amount, self.taker_amount) if self.side == "BUY"
                       else (self.taker_amount, self.maker_amount))
        return Decimal(usd) / Decimal(shares)


def _bad(name: str, value: object) -> OrderReject:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    return OrderReject(400, f"{ERR_PAYLOAD}: field {name!r} has bad value {shown}", "INVALID_ORDER_PAYLOAD")


def _int_field(obj: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _bad(name, value)
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value) from None
    if number < minimum:
        raise _bad(name, value)
    return number


def _str_field(obj: dict[str, Any], name: str, prefix: str = "") -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value or not value.startswith(prefix):
        raise _bad(name, value)
    return value


def check_version(order: dict[str, Any]) -> None:
    """Raise ORDER_VERSION_MISMATCH for a V1-shaped order (V1 fields present, V2 fields missing)."""
    missing_v2 = any(k not in order for k in V2_ONLY_FIELDS)
    if missing_v2 and any(k in order for k in V1_ONLY_FIELDS):
        raise OrderReject(400, ERR_VERSION, "ORDER_VERSION_MISMATCH")


def parse_post_body(body: Any) -> ParsedOrder:
    """Parse one POST /order body (shape: py_clob_client_v2 ``order_to_json_v2``).

    Raises:
        OrderReject: 400 ORDER_VERSION_MISMATCH for a V1 order; 400 INVALID_ORDER_PAYLOAD naming
            the field and its value for anything else malformed.
    """
    if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
        raise _bad("order", body if not isinstance(body, dict) else body.get("order"))
    raw = body["order"]
    check_version(raw)
    side = raw.get("side")
    if side not in SIDES:
        raise _bad("side", side)
    order_type = body.get("orderType", "GTC")
    if order_type not in ORDER_TYPES:
        raise _bad("orderType", order_type)
    post_only = body.get("postOnly", False)
    if not isinstance(post_only, bool):
        raise _bad("postOnly", post_only)
    token_id = _str_field(raw, "tokenId")
    if not token_id.isdigit():
        raise _bad("tokenId", token_id)
    return ParsedOrder(
        raw=raw, salt=_int_field(raw, "salt"), maker=_str_field(raw, "maker", "0x"),
        signer=_str_field(raw, "signer", "0x"), token_id=token_id,
        maker_amount=_int_field(raw, "makerAmount", 1), taker_amount=_int_field(raw, "takerAmount", 1),
        side=side, expiration=_int_field(raw, "expiration") if "expiration" in raw else 0,
        signature_type=_int_field(raw, "signatureType"), timestamp=_int_field(raw, "timestamp"),
        metadata=_str_field(raw, "metadata", "0x"), builder=_str_field(raw, "builder", "0x"),
        signature=_str_field(raw, "signature", "0x"), owner=str(body.get("owner", "")),
        order_type=order_type, post_only=post_only)


def check_rules(p: ParsedOrder, order_id: str, tick: Decimal, min_size: Decimal, now_ms: int) -> None:
    """Order rules that need no book or balance: post-only type, GTD expiration, tick, range, size.

    Limit orders (GTC/GTD): price a multiple of ``tick`` in [tick, 1 - tick] (``price_valid`` in
    py_clob_client_v2 utilities), size >= ``min_size`` shares. Market orders (FOK/FAK) carry a
    worst price that need not sit on the tick; a marketable BUY must be worth at least $1.

    Raises:
        OrderReject: with Polymarket's text and reason code.
    """
    if p.post_only and p.order_type in MARKET_TYPES:
        raise OrderReject(400, ERR_POST_ONLY_TYPE, "INVALID_POST_ONLY_ORDER_TYPE")
    if p.order_type == "GTD" and p.expiration * 1000 < now_ms + GTD_THRESHOLD_MS:
        raise OrderReject(400, ERR_EXPIRATION, "INVALID_ORDER_EXPIRATION")
    price = p.price
    if p.order_type in MARKET_TYPES:
        if not Decimal(0) < price < Decimal(1):
            raise OrderReject(400, err_tick(order_id, price, tick), "INVALID_ORDER_MIN_TICK_SIZE")
        if p.side == "BUY" and Decimal(p.maker_amount) / MICRO < 1:
            raise OrderReject(400, err_market_buy_amount(Decimal(p.maker_amount) / MICRO),
                              "INVALID_ORDER_MIN_SIZE")
        return
    if price % tick != 0 or not tick <= price <= 1 - tick:
        raise OrderReject(400, err_tick(order_id, price, tick), "INVALID_ORDER_MIN_TICK_SIZE")
    if p.size < min_size:
        raise OrderReject(400, err_min_size(order_id, p.size, min_size), "INVALID_ORDER_MIN_SIZE")


@dataclass
class Order:
    """One order held by the venue (any state). Sizes in shares, price in [0, 1], times market ms.

    ``status`` is LIVE | MATCHED | CANCELED or a CANCELED_* cause (user-channel spelling, one L,
    ``polymarket/models/clob/user_events.py``); ``owner`` is the API key that posted it,
    ``api_address`` that key's address (the signer or session key), ``maker`` the wallet that
    funds it; ``seq`` is the venue's arrival number (time priority).
    """

    id: str
    owner: str
    maker: str
    token_id: str
    market: str
    outcome: str
    side: str
    price: Decimal
    original_size: Decimal
    order_type: str
    post_only: bool
    expiration: int
    created_ms: int
    seq: int
    api_address: str = ""
    size_matched: Decimal = Decimal(0)
    status: str = "LIVE"
    cancel_reason: str = ""
    associate_trades: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        """Shares still open."""
        return self.original_size - self.size_matched

    def __post_init__(self) -> None:
        self.api_address = self.api_address or self.maker


def open_order_wire(o: Order) -> dict[str, Any]:
    """The REST ``OpenOrder`` shape (``GET /data/orders``, ``GET /data/order/{id}``), all strings
    except ``created_at`` (int seconds, as in real responses) and ``associate_trades`` (list)."""
    return {"id": o.id, "status": o.status, "owner": o.owner, "maker_address": o.maker,
            "market": o.market, "asset_id": o.token_id, "side": o.side,
            "original_size": fmt(o.original_size), "size_matched": fmt(o.size_matched),
            "price": fmt(o.price), "outcome": o.outcome, "expiration": str(o.expiration),
            "order_type": o.order_type, "associate_trades": list(o.associate_trades),
            "created_at": o.created_ms // 1000}


def user_order_event(o: Order, kind: str, now_ms: int) -> dict[str, Any]:
    """The user-channel ``order`` event (reference/polymarket-api.md 1.2): ``type`` is ``kind``
    (PLACEMENT | UPDATE | CANCELLATION), ``created_at`` seconds, ``timestamp`` ms, as strings."""
    return {"event_type": "order", "id": o.id, "owner": o.owner, "order_owner": o.owner,
            "market": o.market, "asset_id": o.token_id, "side": o.side,
            "original_size": fmt(o.original_size), "size_matched": fmt(o.size_matched),
            "price": fmt(o.price), "associate_trades": list(o.associate_trades) or None,
            "outcome": o.outcome, "type": kind, "created_at": str(o.created_ms // 1000),
            "expiration": str(o.expiration), "order_type": o.order_type, "status": o.status,
            "maker_address": o.maker, "timestamp": str(now_ms)}


def crosses(side: str, price: Decimal, opposite_best: Decimal | None) -> bool:
    """Whether a ``side`` order at ``price`` crosses the opposite side's best (None = empty side)."""
    if opposite_best is None:
        return False
    return opposite_best <= price if side == "BUY" else opposite_best >= price


def walk_levels(side: str, limit: Decimal, size: Decimal, levels: list[tuple[Decimal, Decimal]],
                consumed: dict[Decimal, Decimal]) -> list[tuple[Decimal, Decimal]]:
    """Taker fills ``[(price, shares)]`` of a ``side`` order of ``size`` shares limited to ``limit``
    against the opposite ``levels`` (best first), minus sizes already ``consumed`` per price."""
    fills: list[tuple[Decimal, Decimal]] = []
    left = size
    for price, level_size in levels:
        if left <= 0 or not crosses(side, limit, price):
            break
        take = min(left, level_size - consumed.get(price, Decimal(0)))
        if take > 0:
            fills.append((price, take))
            left -= take
    return fills


def trade_wire(o: Order, price: Decimal, size: Decimal, maker: bool, now_ms: int,
               ids: dict[str, str], fee_rate_bps: int = 0) -> dict[str, Any]:
    """The user-channel ``trade`` event of one fill of our order ``o`` (reference/polymarket-api.md
    1.2): as maker, top-level ``side`` is the taker's and our leg is in ``maker_orders``; as taker,
    the tape is the maker (zero address). ``ids`` gives ``trade``, ``tape_order`` and ``tx`` ids.
    ``fee_rate_bps`` is the market's taker fee rate x 10000, sent as a decimal string on the trade
    and its leg (polymarket/models/clob/account.py ``ClobTrade.fee_rate_bps``, parsed as Decimal);
    ``trader_side`` says whether OUR order was MAKER or TAKER."""
    other, bps = ("SELL" if o.side == "BUY" else "BUY"), str(fee_rate_bps)
    leg = {"order_id": o.id if maker else ids["tape_order"], "owner": o.owner if maker else "",
           "maker_address": o.maker if maker else "0x" + "0" * 40, "matched_amount": fmt(size),
           "price": fmt(price), "fee_rate_bps": bps, "asset_id": o.token_id, "outcome": o.outcome,
           "side": o.side if maker else other}
    return {"event_type": "trade", "type": "TRADE", "id": ids["trade"],
            "taker_order_id": ids["tape_order"] if maker else o.id, "market": o.market,
            "asset_id": o.token_id, "side": other if maker else o.side, "size": fmt(size),
            "price": fmt(price), "fee_rate_bps": bps, "status": "MATCHED",
            "match_time": str(now_ms // 1000), "last_update": str(now_ms // 1000), "outcome": o.outcome,
            "owner": o.owner, "trade_owner": o.owner, "maker_address": o.maker,
            "transaction_hash": ids["tx"], "bucket_index": 0, "maker_orders": [leg],
            "trader_side": "MAKER" if maker else "TAKER", "timestamp": str(now_ms)}


def overlay_book(tape: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]],
                 ours: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]
                 ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """The venue's book: tape levels (bids, asks, best first) plus our resting sizes (BUY by price,
    SELL by price), merged per price; returns (bids, asks) best first."""
    merged = []
    for levels, extra in zip(tape, ours):
        sizes = dict(levels)
        for price, size in extra.items():
            sizes[price] = sizes.get(price, Decimal(0)) + size
        merged.append(sizes)
    bids = sorted(merged[0].items(), key=lambda level: -level[0])
    asks = sorted(merged[1].items(), key=lambda level: level[0])
    return bids, asks
