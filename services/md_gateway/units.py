"""Exact units for prices and sizes: ``int`` micros (1e-6) parsed from and printed to decimal strings.

Price 0.62 -> ``620_000``; size 65.75 shares -> ``65_750_000``. Polymarket's finest tick is 0.0001
and on-chain amounts have 6 decimals, so micros hold every valid value exactly; integer compares and
dict keys are what the book needs, and they are several times faster than ``Decimal``.
"""
from __future__ import annotations

import re

MICRO = 1_000_000
MAX_PRICE = MICRO  # 1.0


class BadValue(ValueError):
    """A field holds a value that is not allowed; ``field`` and ``value`` name it."""

    def __init__(self, field: str, value: object, why: str) -> None:
        super().__init__(f"field {field!r} has bad value {str(value)[:80]!r}: {why}")
        self.field, self.value, self.why = field, value, why


_NUM = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,18}))?")  # ASCII digits only
_PRICE_CACHE: dict[str, int] = {}
_FMT_CACHE: dict[int, str] = {}


def to_micros(text: object, field: str) -> int:
    """Decimal string -> int micros, e.g. ``"0.62"`` -> 620000, ``"320875"`` -> 320875000000.

    Raises:
        BadValue: not a string, negative, not a plain decimal, or finer than 1e-6.
    """
    if not isinstance(text, str):
        raise BadValue(field, text, "expected a decimal string")
    m = _NUM.fullmatch(text)
    if m is None:
        why = "negative" if text.startswith("-") else "not a plain decimal string"
        raise BadValue(field, text, why)
    frac = m.group(2) or ""
    if len(frac) > 6:
        if frac[6:].strip("0"):
            raise BadValue(field, text, "finer than 1e-6")
        frac = frac[:6]
    return int(m.group(1)) * MICRO + (int(frac.ljust(6, "0")) if frac else 0)


def price_micros(text: object, field: str = "price") -> int:
    """A price in [0, 1] as micros (cached: a market has few distinct prices).

    Raises:
        BadValue: as :func:`to_micros`, or outside [0, 1].
    """
    v = _PRICE_CACHE.get(text) if isinstance(text, str) else None
    if v is not None:
        return v
    v = to_micros(text, field)
    if v > MAX_PRICE:
        raise BadValue(field, text, "price outside [0, 1]")
    if len(_PRICE_CACHE) > 100_000:
        _PRICE_CACHE.clear()
    _PRICE_CACHE[text] = v  # type: ignore[index]
    return v


def fmt_micros(v: int) -> str:
    """Int micros -> shortest decimal string: 620000 -> ``"0.62"``, 5000000 -> ``"5"``."""
    s = _FMT_CACHE.get(v)
    if s is None:
        q, r = divmod(v, MICRO)
        s = str(q) if r == 0 else f"{q}.{r:06d}".rstrip("0")
        if v <= MAX_PRICE:
            if len(_FMT_CACHE) > 100_000:
                _FMT_CACHE.clear()
            _FMT_CACHE[v] = s
    return s


def ms(text: object, field: str = "timestamp") -> int:
    """Timestamp string of Unix ms -> int. Raises BadValue when not a string of digits."""
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        raise BadValue(field, text, "expected a string of Unix milliseconds")
    return int(text)
