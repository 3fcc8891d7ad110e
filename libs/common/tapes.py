"""Readers for the bundled replay data: tapes, market lists and leader files. Pure, no Redis.

* A **tape** (``frames.jsonl`` or ``frames.jsonl.gz``) holds one JSON object per line,
  ``{"seq": N, "recv_ms": <receive time, Unix ms>, "payload": "<exact market-channel frame text>", ...}``.
  Extra keys (for example ``payload_sha256``) are allowed and ignored.
* A **quote tape** (``quotes.csv.gz`` + ``resolutions.json``, libs/common/quote_tape.py) is a compact
  top-of-book file expanded at load time into the same frames; :func:`read_tape_dir` reads either kind.
* ``markets.json`` is a JSON list of :class:`MarketMeta` objects (prices as decimal strings).
* A **leader file** holds data-api ``GET /trades`` rows (``timestamp`` in Unix seconds, ``size`` in
  shares and ``price`` in [0, 1] as JSON numbers), optionally preceded by a ``{"_meta": {...}}`` line.

Every malformed input raises :class:`TapeError` naming the file, the line (or entry), the field and
the offending value.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from libs.common.fees import NO_FEES, FeeSchedule

__all__ = ["TapeError", "TapeFrame", "MarketMeta", "LeaderFile", "read_tape", "read_tape_dir", "tape_source",
           "load_markets", "load_leader"]

_SHOWN = 80  # characters of an offending value quoted in an error message


class TapeError(ValueError):
    """A tape, market list or leader file is malformed; the message names file, line, field and value."""


@dataclass(frozen=True)
class TapeFrame:
    """One recorded frame: ``seq`` (1.., file order), ``recv_ms`` (receive time, Unix ms) and the
    exact frame text ``payload`` (a JSON object or array, as sent by the market channel)."""

    seq: int
    recv_ms: int
    payload: str


@dataclass(frozen=True)
class MarketMeta:
    """One market (condition) of a tape.

    ``token_ids[i]`` is the token of ``outcomes[i]``; ``start_ms``/``end_ms`` are Unix ms;
    ``tick_size`` is a price in (0, 1); ``min_order_size`` is in shares; ``synthetic_condition_id``
    is true when the source had no condition id and one was derived (``0x`` + sha256(slug));
    ``fee_schedule`` is the market's ``feeSchedule`` (libs/common/fees.py; absent in the file = no fees).
    """

    condition_id: str
    question: str
    slug: str
    token_ids: tuple[str, ...]
    outcomes: tuple[str, ...]
    start_ms: int
    end_ms: int
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    synthetic_condition_id: bool
    fee_schedule: FeeSchedule = NO_FEES


@dataclass(frozen=True)
class LeaderFile:
    """A leader file: ``meta`` from the optional first ``{"_meta": {...}}`` line (else ``{}``) and the
    data-api ``/trades`` rows in file order, unvalidated (``timestamp`` s, ``size`` shares, ``price``)."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(lineno, parsed JSON)`` for every non-blank line of a plain or ``.gz`` JSON-lines file."""
    with _open(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise TapeError(f"{path}:{lineno}: not JSON ({exc}): {_show(raw[:_SHOWN])}") from None


def _field(where: str, obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``obj[name]`` if present and of ``kind`` (bool never passes as int), else raise TapeError."""
    if name not in obj:
        raise TapeError(f"{where}: field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise TapeError(f"{where}: field {name!r} has bad value {_show(value)}")
    return value


def read_tape(path: Path) -> Iterator[TapeFrame]:
    """Yield the frames of a tape (plain or ``.gz`` JSON lines) in file order.

    Raises:
        TapeError: a line is not a JSON object, or ``seq``/``recv_ms`` (int, ms) or ``payload`` (str)
            is missing or has the wrong type, e.g. ``"f.jsonl:7: field 'recv_ms' has bad value '12'"``.
    """
    path = Path(path)
    for lineno, obj in _json_lines(path):
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            raise TapeError(f"{where}: line is not a JSON object: {_show(obj)}")
        yield TapeFrame(seq=_field(where, obj, "seq", int), recv_ms=_field(where, obj, "recv_ms", int),
                        payload=_field(where, obj, "payload", str))


TAPE_FILES = ("frames.jsonl", "frames.jsonl.gz", "quotes.csv.gz")  # in order of preference in a tape directory


def tape_source(path: Path) -> Path:
    """The file holding a tape's frames: ``path`` itself when it is a file, else the first of
    ``TAPE_FILES`` present in the directory ``path``.

    Raises:
        TapeError: ``path`` does not exist, or the directory holds none of ``TAPE_FILES``.
    """
    path = Path(path)
    if path.is_file():
        return path
    found = next((path / f for f in TAPE_FILES if (path / f).is_file()), None)
    if found is None:
        raise TapeError(f"{path}: field 'tape' has bad value: no file of {', '.join(TAPE_FILES)} there")
    return found


def read_tape_dir(path: Path) -> Iterator[TapeFrame]:
    """Yield the frames of a tape directory (or one of its ``TAPE_FILES``) in order: the JSON lines of
    ``frames.jsonl[.gz]`` (:func:`read_tape`), or a quote tape's ``quotes.csv.gz`` expanded to frames
    (libs/common/quote_tape.py).

    Raises:
        TapeError: no tape file there, or a malformed line (file, line, field and value named).
    """
    source = tape_source(path)
    if source.name.endswith(".csv.gz"):
        from libs.common.quote_tape import quote_frames  # noqa: PLC0415 - quote_tape imports this module

        for _, frame in quote_frames(source):
            assert isinstance(frame, TapeFrame)  # strict: a bad line raises
            yield frame
    else:
        yield from read_tape(source)


_MARKET_FIELDS = ("condition_id", "question", "slug", "token_ids", "outcomes", "start_ms", "end_ms",
                  "tick_size", "min_order_size", "neg_risk", "synthetic_condition_id", "fee_schedule")


def _fee_schedule(where: str, obj: dict[str, Any]) -> FeeSchedule:
    """Optional ``fee_schedule {rate, exponent, taker_only, rebate_rate}`` (decimal strings, bool)."""
    raw = obj.get("fee_schedule")
    if raw is None:
        return NO_FEES
    if not isinstance(raw, dict) or set(raw) != {"rate", "exponent", "taker_only", "rebate_rate"}:
        raise TapeError(f"{where}: field 'fee_schedule' has bad value {_show(raw)}")
    try:
        rate, rebate, exponent = Decimal(raw["rate"]), Decimal(raw["rebate_rate"]), int(raw["exponent"])
    except (InvalidOperation, TypeError, ValueError):
        raise TapeError(f"{where}: field 'fee_schedule' has bad value {_show(raw)}") from None
    if not (0 <= rate < 1 and 0 <= rebate <= 1 and exponent >= 1 and isinstance(raw["taker_only"], bool)):
        raise TapeError(f"{where}: field 'fee_schedule' has bad value {_show(raw)}")
    return FeeSchedule(rate, exponent, raw["taker_only"], rebate)


def _decimal(where: str, obj: dict[str, Any], name: str, upper: Decimal | None) -> Decimal:
    """A positive decimal string (below ``upper`` if given), e.g. ``"0.01"``; JSON numbers are refused."""
    text = _field(where, obj, name, str)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise TapeError(f"{where}: field {name!r} has bad value {_show(text)}") from None
    if not value.is_finite() or value <= 0 or (upper is not None and value >= upper):
        raise TapeError(f"{where}: field {name!r} has bad value {_show(text)}")
    return value


def _strings(where: str, obj: dict[str, Any], name: str) -> tuple[str, ...]:
    items = _field(where, obj, name, list)
    if not items or not all(isinstance(x, str) and x for x in items):
        raise TapeError(f"{where}: field {name!r} has bad value {_show(items)}")
    return tuple(items)


def _market(where: str, obj: Any) -> MarketMeta:
    if not isinstance(obj, dict):
        raise TapeError(f"{where}: entry is not a JSON object: {_show(obj)}")
    unknown = sorted(set(obj) - set(_MARKET_FIELDS))
    if unknown:
        raise TapeError(f"{where}: unknown field {unknown[0]!r} with value {_show(obj[unknown[0]])}")
    meta = MarketMeta(
        condition_id=_field(where, obj, "condition_id", str), question=_field(where, obj, "question", str),
        slug=_field(where, obj, "slug", str), token_ids=_strings(where, obj, "token_ids"),
        outcomes=_strings(where, obj, "outcomes"), start_ms=_field(where, obj, "start_ms", int),
        end_ms=_field(where, obj, "end_ms", int), tick_size=_decimal(where, obj, "tick_size", Decimal(1)),
        min_order_size=_decimal(where, obj, "min_order_size", None),
        neg_risk=_field(where, obj, "neg_risk", bool),
        synthetic_condition_id=_field(where, obj, "synthetic_condition_id", bool),
        fee_schedule=_fee_schedule(where, obj))
    if len(meta.outcomes) != len(meta.token_ids):
        raise TapeError(f"{where}: field 'outcomes' has bad value {_show(obj['outcomes'])} "
                        f"(needs one outcome per token id, {len(meta.token_ids)})")
    if meta.end_ms <= meta.start_ms:
        raise TapeError(f"{where}: field 'end_ms' has bad value {meta.end_ms} (not after start_ms {meta.start_ms})")
    return meta


def load_markets(path: Path) -> list[MarketMeta]:
    """Load ``markets.json``: a JSON list of objects with exactly the :class:`MarketMeta` field names
    (``token_ids``/``outcomes`` lists, ``tick_size``/``min_order_size`` decimal strings).

    Raises:
        TapeError: e.g. ``"markets.json: market 3: field 'tick_size' has bad value 0.01"``.
    """
    path = Path(path)
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise TapeError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise TapeError(f"{path}: top level is not a JSON list: {_show(data)}")
    markets = [_market(f"{path}: market {i}", obj) for i, obj in enumerate(data)]
    seen: set[str] = set()
    for i, m in enumerate(markets):
        if m.condition_id in seen:
            raise TapeError(f"{path}: market {i}: field 'condition_id' has duplicate value {m.condition_id!r}")
        seen.add(m.condition_id)
    return markets


def load_leader(path: Path) -> LeaderFile:
    """Load a leader file (plain or ``.gz`` JSON lines). Line 1 may be ``{"_meta": {...}}``; every other
    line must be a JSON object (one data-api ``/trades`` row) and is returned as is, unvalidated.

    Raises:
        TapeError: a line is not JSON or not an object, ``_meta`` is not an object, or ``_meta``
            appears after line 1.
    """
    path = Path(path)
    meta: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    first = True
    for lineno, obj in _json_lines(path):
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            raise TapeError(f"{where}: line is not a JSON object: {_show(obj)}")
        was_first, first = first, False
        if "_meta" in obj:
            if not was_first:
                raise TapeError(f"{where}: field '_meta' is only allowed on the first line, value {_show(obj)}")
            meta = _field(where, obj, "_meta", dict)
            continue
        rows.append(obj)
    return LeaderFile(meta=meta, rows=rows)
