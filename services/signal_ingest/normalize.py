"""Pure normalisation of data-api ``GET /trades`` rows into signals (SPEC S2.1).

A row (reference/polymarket-api.md 1.4) is a JSON object ``{proxyWallet, side, asset, conditionId,
size: number (shares), price: number in [0, 1], timestamp: int (Unix SECONDS), title, slug, icon,
eventSlug, outcome, outcomeIndex, name, pseudonym, bio, profileImage, profileImageOptimized,
transactionHash}``. Numbers are parsed from their JSON text into ``Decimal`` (``parse_body``), so a
price such as ``0.5699998232997013`` keeps every digit; money never passes through ``float``.

Rows of data-api v2 (``/v2/trades``, snake_case) are normalised through their v1 view (wire.py),
so everything here speaks v1 field names; dead letters are renamed back to the received names.

Rows identical in every field are separate fills (data/README.md), so nothing here deduplicates;
the multiset cursor (``cursor.py``) decides which occurrences are new.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from libs.common.signals import Signal, dec_text  # noqa: F401 - Signal re-exported for the ingest modules

# User-editable profile fields and market art: the data-api reports their *current* values on
# every row, so they are left out of a row's fingerprint; a leader renaming themselves must not
# make old fills look new. Every other field (including unknown future ones) is fingerprinted.
VOLATILE_FIELDS = frozenset({"name", "pseudonym", "bio", "profileImage", "profileImageOptimized", "icon"})
MAX_TS_S = 10**11  # larger "seconds" are really milliseconds (year 5138): refused, not guessed
_SHOWN = 200  # characters of an offending value kept in a Reject


class BadBody(ValueError):
    """A ``/trades`` response body is not JSON of the expected shape (message says what it was)."""


@dataclass(frozen=True)
class Reject:
    """A malformed row: ``reason`` (UPPER_SNAKE), the offending ``field`` and its ``value`` (text)."""

    reason: str
    field: str
    value: str


def parse_json(body: bytes | str) -> Any:
    """Parse a response body; JSON numbers with a fraction become ``Decimal`` from their text.

    Raises:
        BadBody: not JSON.
    """
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(f"body is not JSON ({exc}): {show(body[:_SHOWN])}") from None


def parse_body(body: bytes | str) -> list[Any]:
    """Parse a v1 ``/trades`` body (see ``parse_json``).

    Raises:
        BadBody: not JSON, or JSON that is not an array.
    """
    data = parse_json(body)
    if not isinstance(data, list):
        raise BadBody(f"body is a JSON {type(data).__name__}, not an array: {show(data)}")
    return data


def canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, numbers by value (``10`` == ``10.0``)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{canonical(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return dec_text(value) if value.is_finite() else json.dumps(str(value))
    return json.dumps(str(value))


def fingerprint(raw: Any) -> str:
    """sha1 (hex) of the canonical row without ``VOLATILE_FIELDS``; identical fills share it."""
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in VOLATILE_FIELDS}
    return hashlib.sha1(canonical(raw).encode("utf-8")).hexdigest()


def show(value: Any) -> str:
    """Short text of an offending value for errors and dead letters."""
    if isinstance(value, Decimal):
        text = dec_text(value) if value.is_finite() else str(value)
    else:
        text = canonical(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def row_ts(raw: Any) -> int | None:
    """The row's ``timestamp`` (int Unix seconds), or None when missing or malformed."""
    ts = raw.get("timestamp") if isinstance(raw, dict) else None
    if isinstance(ts, int) and not isinstance(ts, bool) and 0 < ts < MAX_TS_S:
        return ts
    return None


def _number(raw: dict[str, Any], name: str) -> Decimal | None:
    """A JSON number (or decimal string) as a finite Decimal, else None."""
    v = raw.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _text(raw: dict[str, Any], name: str) -> str:
    v = raw.get(name)
    return "" if v is None else str(v)


def check(raw: Any, account: str) -> Reject | None:
    """First problem of a row (None when well-formed). Rules from polymarket-api.md 1.4.

    side BUY|SELL (any case); ``asset`` a non-empty decimal string; ``conditionId`` and
    ``transactionHash`` non-empty strings; ``size`` a number > 0; ``price`` a number in [0, 1]
    (a decimal string is accepted for both: leniency that loses nothing);
    ``timestamp`` int seconds (a value >= 1e11 is milliseconds by mistake and refused);
    ``proxyWallet``, when present, equal to ``account``. ``title``/``slug``/``outcome`` are
    optional metadata ("" when missing).
    """
    if not isinstance(raw, dict):
        return Reject("ROW_NOT_OBJECT", "row", show(raw))
    side = raw.get("side")
    if not isinstance(side, str) or side.upper() not in ("BUY", "SELL"):
        return Reject("BAD_SIDE", "side", show(side))
    asset = raw.get("asset")
    if not isinstance(asset, str) or not asset.isdigit() or not asset.isascii():
        return Reject("BAD_TOKEN_ID", "asset", show(asset))
    for name, reason in (("conditionId", "BAD_CONDITION_ID"), ("transactionHash", "BAD_TX_HASH")):
        v = raw.get(name)
        if not isinstance(v, str) or not v.strip():
            return Reject(reason, name, show(v))
    size = _number(raw, "size")
    if size is None or size <= 0:
        return Reject("BAD_SIZE", "size", show(raw.get("size")))
    price = _number(raw, "price")
    if price is None or not Decimal(0) <= price <= Decimal(1):
        return Reject("BAD_PRICE", "price", show(raw.get("price")))
    if row_ts(raw) is None:
        return Reject("BAD_TIMESTAMP", "timestamp", show(raw.get("timestamp")))
    wallet = raw.get("proxyWallet")
    if wallet is not None and (not isinstance(wallet, str) or wallet.lower() != account.lower()):
        return Reject("ACCOUNT_MISMATCH", "proxyWallet", show(wallet))
    return None


def normalize(raw: Any, account: str, fp: str, n: int) -> Signal | Reject:
    """Row -> ``Signal`` (the ``n``-th occurrence of fingerprint ``fp`` at its timestamp) or ``Reject``.

    ``signal_id`` is ``<account>:<tx_hash>:<fp[:16]>:<n>`` (docs/contracts.md): deterministic, so a
    re-publish of the same fill carries the same id.
    """
    bad = check(raw, account)
    if bad is not None:
        return bad
    tx = str(raw["transactionHash"])
    size, price, ts = _number(raw, "size"), _number(raw, "price"), row_ts(raw)
    assert size is not None and price is not None and ts is not None  # guaranteed by check()
    return Signal(signal_id=f"{account}:{tx}:{fp[:16]}:{n}", account=account, side=str(raw["side"]).upper(),
                  token_id=str(raw["asset"]), condition_id=str(raw["conditionId"]), size=size, price=price,
                  ts_ms=ts * 1000, tx_hash=tx, title=_text(raw, "title"), slug=_text(raw, "slug"),
                  outcome=_text(raw, "outcome"))
