"""Reading ``pb:tok:{token}`` (docs/contracts.md "Tokens") into strategy state and events. Pure."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from libs.common.fees import FeeSchedule
from services.maker_worker.models import Event, ModeChange, Resolved, SignalRefresh, TokenState


class TokenMetaError(ValueError):
    """A field of ``pb:tok`` cannot be used; the message names the field and its value."""


def dec_field(tok: dict[str, str], name: str, default: Decimal | None = None) -> Decimal:
    """Decimal field ``name``; ``default`` when missing/empty (required when default is None).

    Raises:
        TokenMetaError: missing required field, or not a finite number.
    """
    raw = tok.get(name, "")
    if raw == "":
        if default is None:
            raise TokenMetaError(f"token hash field {name}={raw!r}: missing")
        return default
    try:
        out = Decimal(raw)
    except InvalidOperation:
        raise TokenMetaError(f"token hash field {name}={raw!r}: not a number") from None
    if not out.is_finite() or out < 0:
        raise TokenMetaError(f"token hash field {name}={raw!r}: not a finite number >= 0")
    return out


def int_field(tok: dict[str, str], name: str, default: int | None = None) -> int:
    """Integer field ``name`` (ms); ``default`` when missing (required when default is None).

    Raises:
        TokenMetaError: missing required field or not an integer.
    """
    raw = tok.get(name, "")
    if raw == "":
        if default is None:
            raise TokenMetaError(f"token hash field {name}={raw!r}: missing")
        return default
    try:
        return int(raw)
    except ValueError:
        raise TokenMetaError(f"token hash field {name}={raw!r}: not an integer") from None


FEE_FIELDS = ("fee_rate", "fee_exponent", "rebate_rate", "fee_taker_only")


def fee_schedule(tok: dict[str, str]) -> FeeSchedule | None:
    """The market's fee schedule from the scheduler's ``pb:tok`` fields (services/scheduler/gamma.py,
    Gamma ``feeSchedule``): ``fee_rate`` (taker rate in [0, 1)), ``fee_exponent`` (int >= 1, default
    1), ``rebate_rate`` (in [0, 1], default 0), ``fee_taker_only`` ("0" = makers pay too; default
    "1"). None when ``fee_rate`` is absent (a record written before fees were stored).

    Raises:
        TokenMetaError: a present field is malformed or out of range.
    """
    if tok.get("fee_rate", "") == "":
        return None
    rate, rebate = dec_field(tok, "fee_rate"), dec_field(tok, "rebate_rate", Decimal(0))
    exponent = int_field(tok, "fee_exponent", 1)
    if rate >= 1 or rebate > 1 or exponent < 1:
        raise TokenMetaError(f"token hash fee fields {({k: tok.get(k) for k in FEE_FIELDS})!r}: out of range")
    return FeeSchedule(rate, exponent, tok.get("fee_taker_only", "1") != "0", rebate)


def initial_state(token_id: str, tok: dict[str, str], position: Decimal, lease_mode: str,
                  now_ms: int) -> TokenState:
    """Strategy state for a newly acquired token: metadata and P&L from ``pb:tok``, ``position`` from
    the venue balance (the reconciled truth). A missing avg_entry with shares held falls back to the
    leader's price. A missing signal time counts from ``now_ms``.

    Raises:
        TokenMetaError: end_ms, tick_size or min_order_size missing or malformed.
    """
    tick = dec_field(tok, "tick_size")
    if not Decimal(0) < tick < Decimal(1):
        raise TokenMetaError(f"token hash field tick_size={tok.get('tick_size')!r}: not in (0, 1)")
    leader = dec_field(tok, "leader_price", Decimal(0)) or None
    avg = dec_field(tok, "avg_entry", Decimal(0))
    if position > 0 and avg == 0 and leader is not None:
        avg = leader
    exit_reason = ""
    if lease_mode == "exit_only" or tok.get("state") == "exit_only":
        exit_reason = "EXIT_ONLY"
    elif tok.get("state") == "exiting":
        exit_reason = tok.get("reason") or "EXITING"
    pending = dec_field(tok, "redeem_pending", Decimal(0))
    if pending > 0:
        position = Decimal(0)  # settled before a takeover: the venue shows the shares until redeemed
    return TokenState(
        token_id=token_id, end_ms=int_field(tok, "end_ms"), tick_size=tick, condition_id=tok.get("condition_id", ""),
        redeem_shares=pending, settled_pnl=_signed(tok.get("settled_pnl", "")),
        min_order_size=dec_field(tok, "min_order_size"), position=position, avg_entry=avg,
        realized_pnl=_signed(tok.get("realized_pnl", "")), leader_price=leader,
        last_signal_ms=int_field(tok, "signal_ts_ms", now_ms), last_fill_ms=int_field(tok, "last_fill_ms", 0),
        exit_reason=exit_reason, exit_only=exit_reason == "EXIT_ONLY")


def _signed(raw: str) -> Decimal:
    try:
        return Decimal(raw) if raw else Decimal(0)
    except InvalidOperation:
        raise TokenMetaError(f"token hash field realized_pnl/settled_pnl={raw!r}: not a number") from None


def payout_of(raw: str) -> Decimal | None:
    """A payout per share ("1", "0", or any price in [0, 1]); None when "" or unusable."""
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() and 0 <= value <= 1 else None


def resolution_events(state: TokenState, tok: dict[str, str], book: dict[str, str]) -> list[Event]:
    """``Resolved(payout)`` once: the gateway's book says ``resolved=1`` (with ``payout``), or the
    scheduler moved the token to state ``resolved`` (with ``payout`` from the book or Gamma)."""
    if state.resolved:
        return []
    cond = tok.get("condition_id") or book.get("market", "")
    if book.get("resolved") == "1":
        return [Resolved(payout_of(book.get("payout", "") or tok.get("payout", "")), cond)]
    if tok.get("state") == "resolved":
        return [Resolved(payout_of(tok.get("payout", "")), cond)]
    return []


def tok_events(state: TokenState, tok: dict[str, str], lease_mode: str) -> list[Event]:
    """Events from scheduler-written fields: a newer signal, state ``exiting``, an exit-only lease."""
    events: list[Event] = []
    ts = int_field(tok, "signal_ts_ms", 0)
    if ts > state.last_signal_ms:
        leader = dec_field(tok, "leader_price", Decimal(0)) or None
        events.append(SignalRefresh(leader, ts))
    if not state.exit_reason:
        if lease_mode == "exit_only" or tok.get("state") == "exit_only":
            events.append(ModeChange("exit_only", "EXIT_ONLY"))
        elif tok.get("state") == "exiting":
            events.append(ModeChange("exiting", tok.get("reason") or "EXITING"))
    return events


def position_fields(state: TokenState) -> dict[str, str]:
    """Worker-owned position fields of ``pb:tok`` (written through the fence); last_fill_ms 0 = none."""
    out = {"position": str(state.position), "avg_entry": str(state.avg_entry),
           "realized_pnl": str(state.realized_pnl), "last_fill_ms": str(state.last_fill_ms)}
    if state.resolved:  # settlement: shares settled but not redeemed yet, and that settlement's P&L
        out |= {"redeem_pending": str(state.redeem_shares), "settled_pnl": str(state.settled_pnl)}
        if state.payout is not None:
            out["payout"] = str(state.payout)
    return out
