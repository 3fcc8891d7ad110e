"""Plain data of the band strategy: parameters, per-token state, market view, events and intents.

Units everywhere: prices in [0, 1] (USD of pUSD per share), sizes in shares, times in market ms
unless a name says ``wall``. All frozen: the strategy returns new values, never mutates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Union

ZERO = Decimal(0)
Side = Literal["BUY", "SELL"]
Purpose = Literal["entry", "take_profit", "aggressive", "floor", "exit"]


@dataclass(frozen=True)
class Params:
    """Strategy settings (SPEC S3.4), already converted to Decimal and market ms.

    ``take_profit``, ``stop_loss``, ``max_loss`` and ``max_entry_premium`` are fractions of a price
    (0.02 = 2 %); ``floor_price`` is a price; ``balance_backoff_ms`` the pause after a balance reject
    (multiplied by the number of failures so far).
    """

    order_size: Decimal = Decimal(10)
    take_profit: Decimal = Decimal("0.02")
    stop_loss: Decimal = Decimal("0.10")
    max_loss: Decimal = Decimal("0.20")
    floor_price: Decimal = Decimal("0.01")
    aggressive_step_after_ms: int = 30_000
    aggressive_step_ticks: int = 1
    max_entry_premium: Decimal = Decimal("0.05")
    sell_only_window_ms: int = 3_600_000
    signal_timeout_ms: int = 3_600_000
    max_balance_failures: int = 3
    max_position: Decimal = Decimal(100)
    balance_backoff_ms: int = 2_000
    resolution_wait_ms: int = 600_000  # holding at market end: wait this long for the resolution
    max_redeem_attempts: int = 5  # REDEEM_FAILED this often -> token failed
    redeem_backoff_ms: int = 2_000  # pause after the n-th failed redeem: this * 2**(n-1)


@dataclass(frozen=True)
class OpenOrder:
    """One of our orders the strategy still tracks. ``status`` LIVE, or PENDING while the outcome of
    its POST is unknown (it is then resolved by id, never re-signed)."""

    order_id: str
    side: Side
    price: Decimal
    size: Decimal
    purpose: str
    placed_ms: int
    matched: Decimal = ZERO
    status: str = "LIVE"

    @property
    def remaining(self) -> Decimal:
        """Shares not yet matched."""
        return max(ZERO, self.size - self.matched)


@dataclass(frozen=True)
class TokenState:
    """Everything the strategy knows about one token it holds the lease of.

    ``exit_reason`` != "" means aggressive selling (STOP_LOSS, LEADER_SELL, SELL_ONLY_WINDOW,
    SIGNAL_TIMEOUT_HOLDING, INACTIVE_CLEANUP, EXIT_ONLY); ``exit_only`` marks an exit-only lease.
    ``balance`` is the venue balance after the last refresh (None = unknown: trust ``position``);
    ``sell_cap`` the reduced sell size after a balance reject (None = no cap; reset by a BUY fill).
    ``done`` means released: the strategy emits nothing more.
    """

    token_id: str
    end_ms: int
    tick_size: Decimal
    min_order_size: Decimal
    position: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    orders: tuple[OpenOrder, ...] = ()
    leader_price: Decimal | None = None
    last_signal_ms: int = 0
    last_fill_ms: int = 0
    exit_reason: str = ""
    exit_only: bool = False
    sold_any: bool = False
    agg_price: Decimal | None = None
    agg_step_ms: int = 0
    floor_hit: bool = False
    balance: Decimal | None = None
    sell_cap: Decimal | None = None
    balance_failures: int = 0
    rejects: int = 0
    backoff_until_ms: int = 0
    stale: bool = False
    side_missing_ms: tuple[int, int] = (0, 0)  # market ms the (bid, ask) side went missing from a fresh book; 0 = present
    dust_noted: bool = False
    entry_block: str = ""
    done: bool = False
    condition_id: str = ""
    resolved: bool = False  # the market resolved: no order is ever placed again
    payout: Decimal | None = None  # USD per share at resolution (None = unknown winner)
    redeem_shares: Decimal = ZERO  # shares settled at ``payout`` and not redeemed yet
    settled_pnl: Decimal = ZERO  # realized P&L of that settlement (already in ``realized_pnl``)
    redeem_failures: int = 0
    awaiting_noted: bool = False  # AWAITING_RESOLUTION journaled


@dataclass(frozen=True)
class MarketView:
    """Top of book as the worker sees it. ``fresh`` False = neither Redis nor REST gave a usable book."""

    best_bid: Decimal | None
    best_ask: Decimal | None
    tick_size: Decimal
    min_order_size: Decimal
    end_ms: int
    fresh: bool = True


# ---- events (inputs) ----
@dataclass(frozen=True)
class Tick:
    """Periodic decision point. ``halted``: ``pb:halt`` is set (no entries); ``exposure_room_usd``:
    how much more USD this worker may commit to new entries."""

    halted: bool = False
    exposure_room_usd: Decimal = Decimal("1e9")


@dataclass(frozen=True)
class Fill:
    """Part of one of our orders matched: ``size`` shares at ``price``."""

    order_id: str
    side: Side
    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class SignalRefresh:
    """A newer leader BUY for this token (leader price, signal market ms)."""

    leader_price: Decimal | None
    ts_ms: int


@dataclass(frozen=True)
class ModeChange:
    """``exiting`` (scheduler set state exiting with ``reason``) or ``exit_only`` (lease mode)."""

    mode: Literal["exiting", "exit_only"]
    reason: str


@dataclass(frozen=True)
class OrderGone:
    """An order reached a final state: MATCHED, CANCELED or FAILED (never accepted)."""

    order_id: str
    status: str


@dataclass(frozen=True)
class Posted:
    """The venue accepted an order (``status`` LIVE) or its outcome is unknown (PENDING)."""

    order: OpenOrder


@dataclass(frozen=True)
class OrderLive:
    """A PENDING order was found on the venue: it is LIVE."""

    order_id: str


@dataclass(frozen=True)
class Rejected:
    """A Place was refused. ``kind``: INSUFFICIENT_BALANCE | POST_ONLY_CROSS | REJECTED | RATE_LIMITED |
    UNAVAILABLE (signing lookups failed; nothing was sent)."""

    side: Side
    size: Decimal
    purpose: str
    kind: str


@dataclass(frozen=True)
class Balance:
    """The venue's (refreshed) balance of the token, in shares."""

    shares: Decimal


@dataclass(frozen=True)
class Resolved:
    """The token's market resolved: ``payout`` USD per share (1 winner, 0 loser; None = no known winner);
    ``condition_id`` the market as the token hash or the book names it ("" = unknown)."""

    payout: Decimal | None
    condition_id: str = ""


@dataclass(frozen=True)
class Redeemed:
    """The venue redeemed the settled shares: ``payout_usd`` pUSD received (None = not measurable)."""

    condition_id: str
    tx_id: str
    payout_usd: Decimal | None


@dataclass(frozen=True)
class RedeemFailed:
    """A redeem attempt failed (``reason``: UPPER_SNAKE code plus detail); it is retried with backoff."""

    reason: str


Event = Union[Tick, Fill, SignalRefresh, ModeChange, OrderGone, Posted, OrderLive, Rejected, Balance, Resolved,
              Redeemed, RedeemFailed]


# ---- intents (outputs) ----
@dataclass(frozen=True)
class Place:
    """Post a GTC limit order; ``post_only`` False only for an aggressive exit that would cross."""

    side: Side
    price: Decimal
    size: Decimal
    purpose: str
    post_only: bool = True


@dataclass(frozen=True)
class Cancel:
    """Cancel one of our orders; ``why`` is an UPPER_SNAKE reason."""

    order_id: str
    why: str


@dataclass(frozen=True)
class Transition:
    """Write ``pb:tok`` state/reason (journaled with the reason and ``info``)."""

    state: str
    reason: str
    info: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Redeem:
    """Redeem the market's settled position: ``shares`` at ``payout`` USD per share, realized ``pnl``
    (USD). ``first``: the settlement was booked by this Tick (the shell persists it and adds ``pnl``
    to the day's P&L once)."""

    shares: Decimal
    payout: Decimal
    pnl: Decimal
    first: bool = True


@dataclass(frozen=True)
class Release:
    """Give the lease up: ``done`` True for a finished token (deleted), False to hand it over."""

    done: bool


@dataclass(frozen=True)
class Note:
    """Journal a decision that changes no order (FLOOR_HIT, STALE_DATA, DUST_REMAINDER, ...)."""

    reason: str
    level: Literal["info", "warn", "error"] = "info"
    fields: dict[str, str] = field(default_factory=dict)


Intent = Union[Place, Cancel, Transition, Release, Note, Redeem]
