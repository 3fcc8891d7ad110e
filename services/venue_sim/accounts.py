"""Accounts of the paper venue: pUSD collateral and conditional-token balances per maker address. Pure.

Money is Decimal, exact to 6 decimals (the on-chain unit of pUSD and of conditional tokens; the
wire shows them as 6-decimal integers, ``balance-allowance``). A fill moves price x size, plus fees:
the V2 exchange sets them at match time by protocol (reference/polymarket-api.md "CLOB V2";
docs.polymarket.com/trading/fees): a TAKER fill pays ``fees.taker_fee(size, price, market
feeSchedule)`` pUSD, a MAKER fill pays nothing on a ``takerOnly`` market (every market today). The
fee is debited from the maker wallet's collateral at the fill: a SELL's from its proceeds, a BUY's
on top of its cost (documented simplification: Polymarket takes a BUY's fee in shares; we debit its
pUSD value). The fee joins a BUY's cost basis and reduces a SELL's realized P&L. Maker rebates are
paid daily by Polymarket, not per fill: the venue never credits them (the audit line reports the
estimate, ``fees.maker_rebate``). Markets without a ``fee_schedule`` (NO_FEES) charge 0.

Reservations are not stored: they are recomputed from the account's open orders (a BUY reserves
``price x remaining`` pUSD, a SELL reserves ``remaining`` shares of its token), so a cancel or a
fill releases them by construction and they can never drift.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any, Iterable

from libs.common.fees import FeeSchedule, fill_fee, taker_fee
from services.venue_sim.orders import Order, fmt, trade_wire

_SPENDERS = ("0xE111180000d2663C0091e4f400237545B87B996B",  # V2 exchange (py_clob_client_v2 config.py)
             "0xe2222d279d744050d28e00520010520000310F59",  # V2 neg-risk exchange
             "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa")  # ExchangeV3 (polymarket environments.py)

UNIT = Decimal("0.000001")
MAX_ALLOWANCE = str(2**256 - 1)  # the venue never limits allowance


def hex_id(*parts: object) -> str:
    """Deterministic 64-hex id from ``parts`` (sha256 of their text joined by ":")."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def usd_cost(price: Decimal, size: Decimal) -> Decimal:
    """pUSD paid by a buyer for ``size`` shares at ``price``, rounded UP to 10^-6."""
    return (price * size).quantize(UNIT, rounding=ROUND_UP)


def usd_proceeds(price: Decimal, size: Decimal) -> Decimal:
    """pUSD received by a seller for ``size`` shares at ``price``, rounded DOWN to 10^-6."""
    return (price * size).quantize(UNIT, rounding=ROUND_DOWN)


def rate_bps(schedule: FeeSchedule) -> int:
    """The wire's ``fee_rate_bps`` of a schedule: its taker rate x 10000 (0.07 -> 700)."""
    return int((schedule.rate * 10000).to_integral_value())


def fee_bound(side: str, limit: Decimal, size: Decimal, schedule: FeeSchedule) -> Decimal:
    """Most pUSD a taker order of ``size`` shares limited to ``limit`` can pay in fees: the fee curve
    ``p x (1 - p)`` peaks at 0.5 and a BUY fills at or below its limit, a SELL at or above it."""
    worst = min(limit, Decimal("0.5")) if side == "BUY" else max(limit, Decimal("0.5"))
    return taker_fee(size, worst, schedule)


def order_need(side: str, price: Decimal, size: Decimal, schedule: FeeSchedule, crossing: bool) -> Decimal:
    """What a new order must find available: a BUY ``price x size`` pUSD plus, when it crosses (it
    fills at once as taker), the most fee it can pay (``fee_bound``); a SELL ``size`` shares (its fee
    comes out of its proceeds, which always cover it: the rate is below 1)."""
    if side != "BUY":
        return size
    return usd_cost(price, size) + (fee_bound(side, price, size, schedule) if crossing else Decimal(0))


def to_micro(amount: Decimal) -> str:
    """Wire form of an amount: integer string of 10^-6 units (``Decimal('1.5')`` -> ``'1500000'``)."""
    return str(int((amount / UNIT).to_integral_value(rounding=ROUND_DOWN)))


@dataclass
class Holding:
    """One token held: ``shares``, ``cost`` (pUSD cost basis of the shares held, average cost),
    ``bought`` (shares ever bought), ``realized`` (pUSD realized P&L of sells)."""

    shares: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)

    @property
    def avg_price(self) -> Decimal:
        """Average entry price of the shares held (0 when flat)."""
        return self.cost / self.shares if self.shares > 0 else Decimal(0)


@dataclass
class Account:
    """A maker address's balances: ``collateral`` pUSD and ``holdings`` by token id."""

    address: str
    collateral: Decimal
    holdings: dict[str, Holding] = field(default_factory=dict)

    def shares(self, token_id: str) -> Decimal:
        """Shares of ``token_id`` held (0 if none)."""
        holding = self.holdings.get(token_id)
        return holding.shares if holding else Decimal(0)


def reserved(open_orders: Iterable[Order]) -> tuple[Decimal, dict[str, Decimal]]:
    """(pUSD reserved by open BUYs, shares reserved by open SELLs per token) of some LIVE orders."""
    usd = Decimal(0)
    shares: dict[str, Decimal] = {}
    for o in open_orders:
        if o.status != "LIVE":
            continue
        if o.side == "BUY":
            usd += usd_cost(o.price, o.remaining)
        else:
            shares[o.token_id] = shares.get(o.token_id, Decimal(0)) + o.remaining
    return usd, shares


def can_fund(acct: Account, side: str, token_id: str, need: Decimal, open_orders: Iterable[Order]) -> bool:
    """Whether ``acct`` can fund a new order needing ``need`` (pUSD for a BUY, shares for a SELL)
    from its balance minus what its open orders reserve (Polymarket: "available balance is balance
    minus the open orders' remaining size", reference/polymarket-api.md order rules)."""
    usd, shares = reserved(open_orders)
    if side == "BUY":
        return need <= acct.collateral - usd
    return need <= acct.shares(token_id) - shares.get(token_id, Decimal(0))


def apply_fill(acct: Account, side: str, token_id: str, price: Decimal, size: Decimal,
               fee: Decimal = Decimal(0)) -> Decimal:
    """Move pUSD and shares for a fill of our ``side`` order, debiting ``fee`` pUSD (module doc);
    returns the pUSD amount of the trade itself (price x size, without the fee).

    Raises:
        ValueError: the fill would make a balance negative (a bug in the caller's reservation).
    """
    holding = acct.holdings.setdefault(token_id, Holding())
    if side == "BUY":
        cost = usd_cost(price, size)
        if cost + fee > acct.collateral:
            raise ValueError(f"fill needs {cost} pUSD + fee {fee}, {acct.address} has {acct.collateral}")
        acct.collateral -= cost + fee
        holding.shares += size
        holding.cost += cost + fee
        holding.bought += size
        return cost
    if size > holding.shares:
        raise ValueError(f"fill sells {size} shares of {token_id}, {acct.address} has {holding.shares}")
    proceeds = usd_proceeds(price, size)
    if fee > acct.collateral + proceeds:
        raise ValueError(f"fill fee {fee} pUSD exceeds {acct.address}'s collateral and proceeds")
    basis = holding.cost if size == holding.shares else holding.avg_price * size
    acct.collateral += proceeds - fee
    holding.realized += proceeds - fee - basis
    holding.cost -= basis
    holding.shares -= size
    return proceeds


def account_view(acct: Account, open_orders: Iterable[Order]) -> dict[str, Any]:
    """JSON view for ``GET /_sim/state``: balances and reservations as decimal strings."""
    orders = list(open_orders)
    usd, shares = reserved(orders)
    return {"address": acct.address, "collateral": fmt(acct.collateral), "reserved_usd": fmt(usd),
            "open_orders": sum(1 for o in orders if o.status == "LIVE"),
            "tokens": {t: {"shares": fmt(h.shares), "avg_price": fmt(h.avg_price),
                           "reserved": fmt(shares.get(t, Decimal(0))), "realized_pnl": fmt(h.realized)}
                       for t, h in acct.holdings.items()}}


class Ledger:
    """Every account and every fill of the venue. Not thread-safe: the engine calls it under its lock.

    ``trades`` holds ``(address lower, REST trade dict)`` in fill order; ``last_trade`` the last fill
    (price, taker side) per token.
    """

    def __init__(self, start_usdc: Decimal) -> None:
        self.start_usdc = start_usdc
        self.accounts: dict[str, Account] = {}
        self.trades: list[tuple[str, dict[str, Any]]] = []
        self.last_trade: dict[str, tuple[Decimal, str]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._tx: dict[str, str] = {}  # trade id -> its settlement tx hash, shown from MINED on

    def account(self, address: str) -> Account:
        """The account of ``address`` (any case), created with ``start_usdc`` when new."""
        key = address.lower()
        if key not in self.accounts:
            self.accounts[key] = Account(address, self.start_usdc)
        return self.accounts[key]

    def fill(self, order: Order, price: Decimal, size: Decimal, maker: bool, now_ms: int,
             seed: int, schedule: FeeSchedule) -> tuple[dict[str, Any], Decimal, str, tuple[Decimal, Decimal]]:
        """Move the balances of one fill of ``order`` (``size`` shares at ``price``), charging the fee
        of ``schedule`` (module doc), and keep its trade (REST copy, status MATCHED until
        ``set_status``), listed under the API key address that posted the order. Trade, tape order
        and tx ids derive from ``seed`` and the fill number, so a replay repeats them.

        Returns:
            (user-channel trade dict, pUSD moved without fee, taker side, (fee charged, rebate
            estimate NOT credited) in pUSD).
        Raises:
            ValueError: the account cannot cover the fill (apply_fill).
        """
        fee, rebate = fill_fee(size, price, "MAKER" if maker else "TAKER", schedule)
        usd = apply_fill(self.account(order.maker), order.side, order.token_id, price, size, fee)
        n = len(self.trades) + 1
        ids = {"trade": str(uuid.UUID(hex=hex_id(seed, "trade", n)[:32], version=4)),
               "tape_order": "0x" + hex_id(seed, "tape-order", n), "tx": "0x" + hex_id(seed, "tx", n)}
        trade = {**trade_wire(order, price, size, maker, now_ms, ids, rate_bps(schedule)),
                 "transaction_hash": ""}  # hash at MINED
        self._tx[ids["trade"]] = ids["tx"]
        taker_side = ("SELL" if order.side == "BUY" else "BUY") if maker else order.side
        self.trades.append((order.api_address.lower(), dict(trade)))
        self._by_id[trade["id"]] = self.trades[-1][1]
        self.last_trade[order.token_id] = (price, taker_side)
        return trade, usd, taker_side, (fee, rebate)

    def set_status(self, trade_id: str, status: str, now_ms: int) -> dict[str, Any] | None:
        """Set trade ``trade_id``'s settlement ``status`` (MINED, CONFIRMED) and ``last_update``
        (Unix s of market ms ``now_ms``) and show its ``transaction_hash``; returns a copy of the
        updated trade, None if unknown."""
        trade = self._by_id.get(trade_id)
        if trade is None:
            return None
        trade.update(status=status, last_update=str(now_ms // 1000), timestamp=str(now_ms),
                     transaction_hash=self._tx.get(trade_id, ""))
        return dict(trade)

    def trades_of(self, address: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Trades of API key address ``address``, newest first, filtered by ``id``, ``market``,
        ``asset_id``, ``maker_address`` (any case) and ``before``/``after`` (Unix s against
        ``match_time``; non-integers are refused by the caller)."""
        def keep(t: dict[str, Any]) -> bool:
            return (all(not filters.get(k) or t[k] == filters[k] for k in ("id", "market", "asset_id"))
                    and (not filters.get("maker_address")
                         or t["maker_address"].lower() == filters["maker_address"].lower())
                    and (not filters.get("before") or int(t["match_time"]) < int(filters["before"]))
                    and (not filters.get("after") or int(t["match_time"]) > int(filters["after"])))
        return [dict(t) for a, t in reversed(self.trades) if a == address.lower() and keep(t)]

    def balance(self, address: str, token_id: str = "") -> dict[str, Any]:
        """``balance-allowance`` answer: pUSD (no ``token_id``) or shares of ``token_id`` as a
        6-decimal integer string; the venue never limits allowances (max uint256)."""
        account = self.account(address)
        amount = account.shares(token_id) if token_id else account.collateral
        return {"balance": to_micro(amount), "allowance": MAX_ALLOWANCE,
                "allowances": {s: MAX_ALLOWANCE for s in _SPENDERS}}

    def holdings(self, address: str) -> list[tuple[str, Holding]]:
        """Copies of ``address``'s holdings as (token id, Holding), in token order."""
        account = self.accounts.get(address.lower())
        if account is None:
            return []
        return [(t, Holding(h.shares, h.cost, h.bought, h.realized)) for t, h in sorted(account.holdings.items())]
