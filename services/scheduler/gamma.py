"""Market metadata from Gamma ``GET {gamma_url}/markets?clob_token_ids=<token>``.

Shapes (reference/polymarket-api.md 1.5, real object ``fixtures-ra1nty/market_detail.json``): the
answer is a JSON array of Market objects; ``clobTokenIds`` and ``outcomes`` are STRINGS holding
JSON arrays in the same order; ``orderMinSize`` and ``orderPriceMinTickSize`` are numbers;
``endDate`` is an ISO datetime; ``active``/``closed``/``acceptingOrders``/``negRisk`` are booleans.
Numbers are parsed straight to Decimal (never through float). Real Gamma filters ``closed=false``
by default, so a closed market may come back as no market at all (NO_MARKET; never refilled either).
Fees (docs.polymarket.com/trading/fees; reference/polymarket-api.md 1.5; real object
fixtures-nautilus ``gamma_market_sports_market_money_line.json``): ``feesEnabled`` (bool) and
``feeSchedule {rate, exponent, takerOnly, rebateRate}`` (JSON numbers and a bool). Absent, null, or
``feesEnabled`` false = no fees (rate 0); a present schedule that is malformed is GammaBadMarket.
The scheduler asks through ``gamma_prefetch.GammaPrefetch`` (fetches on background threads), so its
step never waits long on Gamma.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx

from libs.common.fees import NO_FEES, FeeSchedule

log = logging.getLogger(__name__)


class GammaError(Exception):
    """Metadata could not be had. ``retryable``: a later attempt may succeed."""

    retryable = False


class GammaUnavailable(GammaError):
    """Transport error, timeout, HTTP 429 or 5xx, or a body that is not JSON."""

    retryable = True


class GammaBadMarket(GammaError):
    """A Market object lacks a field or holds an unusable value; names the field and the value."""

    def __init__(self, name: str, value: object, why: str) -> None:
        super().__init__(f"field={name} value={value!r}: {why}")
        self.field, self.value = name, value


@dataclass(frozen=True)
class MarketMeta:
    """What the scheduler stores about a token's market. ``tick_size``/``min_order_size`` Decimal
    (price units / shares); ``end_ms`` market ms of ``endDate``."""

    token_id: str
    condition_id: str
    title: str
    slug: str
    outcome: str
    end_ms: int
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    closed: bool
    active: bool
    accepting_orders: bool
    payout: Decimal | None = None  # USD per share when Gamma reports the market resolved (closed, 0/1 prices)
    fees: FeeSchedule = NO_FEES  # the market's feeSchedule (libs/common/fees.py); NO_FEES = rate 0

    def fields(self) -> dict[str, str]:
        """Plain-string fields for ``pb:tok:{token}``; fees as ``fee_rate`` (taker rate, e.g. "0.07"),
        ``fee_exponent`` ("1"), ``rebate_rate`` (maker rebate share, e.g. "0.2") and
        ``fee_taker_only`` ("1"/"0")."""
        return {"condition_id": self.condition_id, "title": self.title, "slug": self.slug,
                "outcome": self.outcome, "end_ms": str(self.end_ms), "tick_size": str(self.tick_size),
                "min_order_size": str(self.min_order_size), "neg_risk": "1" if self.neg_risk else "0",
                "fee_rate": str(self.fees.rate), "fee_exponent": str(self.fees.exponent),
                "rebate_rate": str(self.fees.rebate_rate), "fee_taker_only": "1" if self.fees.taker_only else "0"}


def _json_list(market: dict[str, Any], name: str) -> list[Any]:
    raw = market.get(name)
    if isinstance(raw, list):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise GammaBadMarket(name, raw, "not a JSON-encoded list")
    return value


def _decimal(market: dict[str, Any], name: str) -> Decimal:
    raw = market.get(name)
    try:
        value = Decimal(str(raw)) if isinstance(raw, (int, Decimal, str)) and not isinstance(raw, bool) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise GammaBadMarket(name, raw, "not a positive number")
    return value


def _fee_number(raw: dict[str, Any], name: str, upper: Decimal, inclusive: bool) -> Decimal:
    """``feeSchedule.<name>``: a number (or decimal string) in [0, upper) or [0, upper]."""
    value = raw.get(name)
    try:
        ok = isinstance(value, (int, Decimal, str, float)) and not isinstance(value, bool)
        out = Decimal(str(value)) if ok else None
    except InvalidOperation:
        out = None
    if out is None or not out.is_finite() or out < 0 or out > upper or (out == upper and not inclusive):
        raise GammaBadMarket(f"feeSchedule.{name}", value, f"not a number in [0, {upper}{']' if inclusive else ')'}")
    return out


def fee_schedule(market: dict[str, Any]) -> FeeSchedule:
    """The market's ``feeSchedule`` (module doc): NO_FEES when absent/null or ``feesEnabled`` false.

    Raises:
        GammaBadMarket: ``feeSchedule`` not an object, or ``rate`` not in [0, 1), ``exponent`` not an
            integer >= 1, ``takerOnly`` not a bool (absent = true), ``rebateRate`` not in [0, 1].
    """
    raw = market.get("feeSchedule")
    if raw is None or market.get("feesEnabled") is False:
        return NO_FEES
    if not isinstance(raw, dict):
        raise GammaBadMarket("feeSchedule", raw, "not an object")
    rate = _fee_number(raw, "rate", Decimal(1), False)
    rebate = _fee_number(raw, "rebateRate", Decimal(1), True) if raw.get("rebateRate") is not None else Decimal(0)
    exponent = _fee_number(raw, "exponent", Decimal(100), True)
    if exponent < 1 or exponent != exponent.to_integral_value():
        raise GammaBadMarket("feeSchedule.exponent", raw.get("exponent"), "not an integer >= 1")
    taker_only = raw.get("takerOnly", True)
    if not isinstance(taker_only, bool):
        raise GammaBadMarket("feeSchedule.takerOnly", taker_only, "not a bool")
    return FeeSchedule(rate, int(exponent), taker_only, rebate)


def iso_to_ms(name: str, raw: object) -> int:
    """Unix ms of an ISO-8601 datetime (``Z`` or offset; a naive value is taken as UTC).

    Raises:
        GammaBadMarket: not an ISO datetime string.
    """
    if not isinstance(raw, str) or not raw:
        raise GammaBadMarket(name, raw, "not an ISO datetime")
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise GammaBadMarket(name, raw, "not an ISO datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def resolved_payout(market: dict[str, Any], idx: int) -> Decimal | None:
    """Payout per share of outcome ``idx`` when the market is ``closed`` with a winning outcome:
    ``outcomePrices`` are exactly one "1" and the rest "0" (a resolved market); None otherwise."""
    if market.get("closed") is not True or market.get("outcomePrices") is None:
        return None
    try:
        prices = [Decimal(str(p)) for p in _json_list(market, "outcomePrices")]
    except (GammaBadMarket, InvalidOperation):
        return None
    if idx >= len(prices) or sorted(prices) != [Decimal(0)] * (len(prices) - 1) + [Decimal(1)]:
        return None
    return Decimal(1) if prices[idx] == 1 else Decimal(0)


def parse_market(market: dict[str, Any], token_id: str) -> MarketMeta | None:
    """``MarketMeta`` of ``token_id`` in one Gamma Market object, None if the token is not in it (pure).

    Raises:
        GammaBadMarket: a needed field is missing or malformed.
    """
    ids = [str(t) for t in _json_list(market, "clobTokenIds")]
    if token_id not in ids:
        return None
    idx = ids.index(token_id)
    outcomes = _json_list(market, "outcomes") if market.get("outcomes") is not None else []
    cond = market.get("conditionId")
    if not isinstance(cond, str) or not cond:
        raise GammaBadMarket("conditionId", cond, "missing")
    return MarketMeta(
        token_id=token_id, condition_id=cond, title=str(market.get("question") or ""),
        slug=str(market.get("slug") or ""), outcome=str(outcomes[idx]) if idx < len(outcomes) else "",
        end_ms=iso_to_ms("endDate", market.get("endDate")),
        tick_size=_decimal(market, "orderPriceMinTickSize"), min_order_size=_decimal(market, "orderMinSize"),
        neg_risk=market.get("negRisk") is True, closed=market.get("closed") is True,
        active=market.get("active") is not False, accepting_orders=market.get("acceptingOrders") is not False,
        payout=resolved_payout(market, idx), fees=fee_schedule(market))


def pick_market(markets: object, token_id: str) -> MarketMeta | None:
    """The metadata of ``token_id`` in a Gamma answer (a JSON array), None when no market has it.

    Raises:
        GammaBadMarket: the answer is not a list, or the matching Market object is malformed.
    """
    if not isinstance(markets, list):
        raise GammaBadMarket("markets", type(markets).__name__, "answer is not a JSON array")
    for market in markets:
        if isinstance(market, dict):
            meta = parse_market(market, token_id)
            if meta is not None:
                return meta
    return None


class MetadataSource(Protocol):
    """Where market metadata comes from (the Gamma client, or a stand-in in tests)."""

    def market_for_token(self, token_id: str) -> MarketMeta | None: ...


class GammaPending(GammaError):
    """The answer is being fetched off the scheduler's step (``GammaPrefetch``): ask again later.
    Not a failure: it costs no attempt and is not journaled."""

    retryable = True


class GammaClient:
    """httpx client for Gamma ``/markets`` with a timeout on every request.

    Args:
        base_url: ``PB_GAMMA_URL`` (live ``https://gamma-api.polymarket.com``; paper the venue's ``/gamma``).
        timeout_s: connect/read timeout in wall seconds.
    """

    def __init__(self, base_url: str, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport,
                                 headers={"accept": "application/json"})

    def market_for_token(self, token_id: str) -> MarketMeta | None:
        """Metadata of the market holding ``token_id``; None when Gamma knows no such token.

        Raises:
            GammaUnavailable: transport error, timeout, 429/5xx, other non-200 or a non-JSON body.
            GammaBadMarket: the matching Market object is malformed.
        """
        try:
            resp = self.http.get(f"{self.base_url}/markets", params={"clob_token_ids": token_id})
        except httpx.HTTPError as exc:
            raise GammaUnavailable(f"GET /markets token={token_id}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise GammaUnavailable(f"GET /markets token={token_id}: HTTP {resp.status_code} {resp.text[:200]!r}")
        try:
            body = json.loads(resp.text, parse_float=Decimal)
        except ValueError:
            raise GammaUnavailable(f"GET /markets token={token_id}: body is not JSON {resp.text[:200]!r}") from None
        return pick_market(body, token_id)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()
