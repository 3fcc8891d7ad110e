"""The signal: one leader fill as an entry of ``pb:sig:stream`` (docs/contracts.md "Signals").

signal_ingest encodes it with :meth:`Signal.fields`; the scheduler decodes and validates it with
:func:`parse_signal`. Values are plain strings in Redis; ``size`` is shares, ``price`` in [0, 1]
(USD per share), ``ts_ms`` the leader's trade time in market Unix ms.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

REQUIRED = ("signal_id", "account", "side", "token_id", "price", "size", "ts_ms")


def dec_text(d: Decimal) -> str:
    """Decimal as plain text without exponent or trailing zeros: ``Decimal('1E+1')`` -> ``'10'``."""
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True)
class Signal:
    """One leader fill. ``side`` BUY|SELL; ``stream_id`` is set once read back from the stream."""

    signal_id: str
    account: str
    side: str
    token_id: str
    condition_id: str
    size: Decimal
    price: Decimal
    ts_ms: int
    tx_hash: str = ""
    title: str = ""
    slug: str = ""
    outcome: str = ""
    stream_id: str = ""

    def fields(self) -> dict[str, str]:
        """Plain-string stream entry fields, decimals without exponent."""
        return {"signal_id": self.signal_id, "account": self.account, "side": self.side,
                "token_id": self.token_id, "condition_id": self.condition_id, "size": dec_text(self.size),
                "price": dec_text(self.price), "ts_ms": str(self.ts_ms), "tx_hash": self.tx_hash,
                "title": self.title, "slug": self.slug, "outcome": self.outcome}


class MalformedSignal(ValueError):
    """A signal entry lacks a field or holds an unusable value; names the field and the value."""

    def __init__(self, name: str, value: object, why: str) -> None:
        super().__init__(f"field={name} value={value!r}: {why}")
        self.field, self.value, self.why = name, value, why


def _decimal(fields: dict[str, str], name: str) -> Decimal:
    raw = fields[name]
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MalformedSignal(name, raw, "not a decimal") from None
    if not value.is_finite() or value < 0:
        raise MalformedSignal(name, raw, "not a finite non-negative decimal")
    return value


def parse_signal(stream_id: str, fields: dict[str, str] | None) -> Signal:
    """The typed signal of one stream entry (pure).

    Raises:
        MalformedSignal: a required field is missing/empty, ``side`` is not BUY/SELL, ``ts_ms`` is
            not an integer, ``price`` is not a decimal in [0, 1] or ``size`` not a decimal >= 0.
    """
    fields = fields or {}
    for name in REQUIRED:
        if not fields.get(name):
            raise MalformedSignal(name, fields.get(name), "missing")
    side = fields["side"].upper()
    if side not in ("BUY", "SELL"):
        raise MalformedSignal("side", fields["side"], "not BUY or SELL")
    try:
        ts_ms = int(fields["ts_ms"])
    except ValueError:
        raise MalformedSignal("ts_ms", fields["ts_ms"], "not an integer of ms") from None
    price, size = _decimal(fields, "price"), _decimal(fields, "size")
    if price > 1:
        raise MalformedSignal("price", fields["price"], "not in [0, 1]")
    return Signal(fields["signal_id"], fields["account"].lower(), side, fields["token_id"],
                  fields.get("condition_id", ""), size, price, ts_ms, fields.get("tx_hash", ""),
                  fields.get("title", ""), fields.get("slug", ""), fields.get("outcome", ""), stream_id)
