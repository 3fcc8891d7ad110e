"""Quote tapes: a compact top-of-book file expanded at load time into market-channel frames. Pure, no Redis.

A quote tape directory holds ``markets.json`` (libs/common/tapes.py), ``resolutions.json`` and
``quotes.csv.gz`` (gzip, UTF-8, ``\\n`` line ends):

* ``quotes.csv.gz``: line 1 is the header ``ts_ms,market,bid,ask``; every other line is one quote of
  a binary market's FIRST outcome ("Yes"): ``ts_ms`` (receive time, Unix ms), ``market`` (0-based index
  into ``markets.json``), ``bid`` and ``ask`` (decimal prices, 0 < bid < ask < 1). Lines are in strictly
  increasing (ts_ms, market slug) order. The second outcome ("No") mirrors it: bid_no = 1 - ask,
  ask_no = 1 - bid. Every level holds ``LEVEL_SIZE`` (500) synthetic shares, one level per side.
* ``resolutions.json``: a JSON list in ``markets.json`` order of ``{"condition_id", "winning_outcome"
  (an outcome name of the market), "resolved_ms" (Unix ms), "tags" (list of strings)}``.

Expansion (the exact frames scripts/convert_dineshkumar.py defines, compact JSON in wire field order):

* A market's first quote: ONE frame, a JSON array of two ``book`` objects (Yes, No); ``hash`` = sha1
  of ``"<token>:<best bid>:<best ask>"``; ``tick_size`` from markets.json; ``last_trade_price`` = the
  mid quantized to 0.001 (the source has no trades).
* A later quote whose (bid, ask) differs from the market's previous one: ONE ``price_change`` frame
  with the entries of both tokens (Yes first). Per side a moved price gives "set new level" then
  "delete old level" (size "0"); the side whose price worsens (the ask rising) goes first so no book
  is empty or crossed mid-frame; ``best_bid``/``best_ask`` are the token's top right after the entry;
  all entries of a token share the hash of its book after the frame. An unchanged quote gives no frame.
* ``market_resolved`` at ``resolved_ms``, ordered as if it were a quote line of its market with a
  later kind (frames sort by (recv_ms, slug, kind: book/price_change before market_resolved)).
* ``seq`` is 1.. in that order. The line number of a frame is its quote's line in ``quotes.csv.gz``;
  a ``market_resolved`` frame takes the line of its market's last quote (0 when it has none).

Errors raise :class:`TapeError` naming the file, the line (or entry), the field and the value.
"""
from __future__ import annotations

import gzip
import hashlib
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import orjson

from libs.common.tapes import MarketMeta, TapeError, TapeFrame, load_markets

__all__ = ["QUOTES_FILE", "RESOLUTIONS_FILE", "HEADER", "LEVEL_SIZE", "OUTCOMES", "is_quote_tape", "quote_frames",
           "quote_span", "book_obj", "book_hash", "token_entries", "change_text", "jstr", "resolved_obj", "dumps", "fmt", "mirror",
           "condition_id_for", "token_id_for"]

QUOTES_FILE = "quotes.csv.gz"
RESOLUTIONS_FILE = "resolutions.json"
HEADER = "ts_ms,market,bid,ask"
LEVEL_SIZE = Decimal(500)  # synthetic shares per level: the source has no depth
OUTCOMES = ("Yes", "No")
_MILLI = Decimal("0.001")
_ONE = Decimal(1)


# ---- ids and wire decimals ----
def condition_id_for(slug: str) -> str:
    """Synthetic condition id: "0x" + sha256(slug) hex."""
    return "0x" + hashlib.sha256(slug.encode()).hexdigest()


def token_id_for(condition_id: str, outcome: str) -> str:
    """Synthetic decimal token id: sha256(condition_id.lower() + ":" + outcome) as a big-endian integer."""
    return str(int.from_bytes(hashlib.sha256((condition_id.lower() + ":" + outcome).encode()).digest(), "big"))


@lru_cache(maxsize=65536)
def fmt(value: Decimal) -> str:
    """Wire decimal string without exponent or trailing zeros ("0.50" -> "0.5")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def mirror(bid: Decimal, ask: Decimal) -> tuple[Decimal, Decimal]:
    """The "No" top of book from the "Yes" one: (1 - ask, 1 - bid)."""
    return _ONE - ask, _ONE - bid


def dumps(obj: Any) -> str:
    """Compact JSON text (no spaces, non-ASCII kept), keys in insertion order."""
    return orjson.dumps(obj).decode()


# ---- frame objects (one implementation, shared with scripts/convert_dineshkumar.py) ----
def book_hash(token: str, bid: Decimal, ask: Decimal) -> str:
    """40 hex: sha1 of the token's top of book after the frame."""
    return hashlib.sha1(f"{token}:{fmt(bid)}:{fmt(ask)}".encode()).hexdigest()


def book_obj(cid: str, token: str, ts: int, bid: Decimal, ask: Decimal, tick: str) -> dict[str, Any]:
    """One ``book`` object in wire field order (one level per side of ``LEVEL_SIZE`` shares)."""
    size = fmt(LEVEL_SIZE)
    return {"market": cid, "asset_id": token, "timestamp": str(ts), "hash": book_hash(token, bid, ask),
            "bids": [{"price": fmt(bid), "size": size}], "asks": [{"price": fmt(ask), "size": size}],
            "tick_size": tick, "event_type": "book", "last_trade_price": str(((bid + ask) / 2).quantize(_MILLI))}


def token_entries(token: str, old: tuple[Decimal, Decimal], new: tuple[Decimal, Decimal]) -> list[str]:
    """price_change entries (JSON object texts, wire field order) moving one token's (bid, ask) from
    ``old`` to ``new`` (module rules).

    One level per side, so a moved side reads: set new (top = the better of old and new), delete old
    (top = new); the side not yet moved keeps its old top."""
    h, size, tj = book_hash(token, *new), fmt(LEVEL_SIZE), jstr(token)
    ob, oa, nb, na = fmt(old[0]), fmt(old[1]), fmt(new[0]), fmt(new[1])
    bid_moves = [] if old[0] == new[0] else [(nb, size, "BUY", fmt(max(old[0], new[0]))), (ob, "0", "BUY", nb)]
    ask_moves = [] if old[1] == new[1] else [(na, size, "SELL", fmt(min(old[1], new[1]))), (oa, "0", "SELL", na)]
    if new[1] > old[1]:
        steps = [(p, q, sd, ob, top) for p, q, sd, top in ask_moves] + [(p, q, sd, top, na) for p, q, sd, top in bid_moves]
    else:
        steps = [(p, q, sd, top, oa) for p, q, sd, top in bid_moves] + [(p, q, sd, nb, top) for p, q, sd, top in ask_moves]
    return [f'{{"asset_id":{tj},"price":"{p}","size":"{q}","side":"{sd}","hash":"{h}","best_bid":"{bb}",'
            f'"best_ask":"{ba}"}}' for p, q, sd, bb, ba in steps]


def change_text(cid: str, tokens: tuple[str, ...], ts: int, old: tuple[Decimal, Decimal],
                new: tuple[Decimal, Decimal]) -> str:
    """The ``price_change`` frame text moving the Yes quote from ``old`` to ``new`` (both tokens, Yes
    first)."""
    entries = token_entries(tokens[0], old, new) + token_entries(tokens[1], mirror(*old), mirror(*new))
    return f'{{"market":{jstr(cid)},"price_changes":[{",".join(entries)}],"timestamp":"{ts}","event_type":"price_change"}}'


def jstr(text: str) -> str:
    """``text`` as a JSON string literal (quoted, escaped)."""
    return orjson.dumps(text).decode()


def resolved_obj(cid: str, tokens: tuple[str, ...], winner: int, end_ms: int, tags: list[str],
                 outcomes: tuple[str, ...] = OUTCOMES) -> dict[str, Any]:
    """The custom ``market_resolved`` event (fields as in the nautilus schema example); ``winner`` = outcome index."""
    return {"event_type": "market_resolved", "id": str(int(cid[2:18], 16)), "market": cid, "assets_ids": list(tokens),
            "winning_asset_id": tokens[winner], "winning_outcome": outcomes[winner], "timestamp": str(end_ms),
            "tags": tags}


# ---- reading ----
def is_quote_tape(path: Path) -> bool:
    """True for a ``quotes.csv.gz`` file or a directory holding one."""
    path = Path(path)
    return path.name == QUOTES_FILE if not path.is_dir() else (path / QUOTES_FILE).is_file()


def _tape_dir(path: Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def load_resolutions(tape_dir: Path, markets: list[MarketMeta]) -> list[tuple[int, int, list[str]]]:
    """``(resolved_ms, winner outcome index, tags)`` per market of ``markets`` from ``resolutions.json``."""
    path = tape_dir / RESOLUTIONS_FILE
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise TapeError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, list) or len(data) != len(markets):
        raise TapeError(f"{path}: top level must be a list of {len(markets)} entries (one per market), got "
                        f"{type(data).__name__} of {len(data) if isinstance(data, list) else '-'}")
    out = []
    for i, (obj, m) in enumerate(zip(data, markets)):
        where = f"{path}: entry {i}"
        obj = obj if isinstance(obj, dict) else {}
        checks = (("condition_id", obj.get("condition_id") == m.condition_id),
                  ("winning_outcome", obj.get("winning_outcome") in m.outcomes),
                  ("resolved_ms", type(obj.get("resolved_ms")) is int),
                  ("tags", isinstance(obj.get("tags"), list) and all(isinstance(t, str) for t in obj.get("tags", ()))))
        for name, ok in checks:
            if not ok:
                raise TapeError(f"{where}: field {name!r} has bad value {str(obj.get(name))[:80]!r}")
        out.append((obj["resolved_ms"], m.outcomes.index(obj["winning_outcome"]), obj["tags"]))
    return out


def _price(where: str, name: str, text: str, cache: dict[str, Decimal]) -> Decimal:
    value = cache.get(text)
    if value is None:
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise TapeError(f"{where}: field {name!r} has bad value {text[:80]!r}") from None
        if not (value.is_finite() and 0 < value < 1):
            raise TapeError(f"{where}: field {name!r} has bad value {text[:80]!r}")
        cache[text] = value
    return value


def _row(where: str, line: str, n: int, cache: dict[str, Decimal]) -> tuple[int, int, Decimal, Decimal]:
    """One quote line -> (ts_ms, market index, bid, ask); TapeError naming the field and value."""
    parts = line.split(",")
    if len(parts) != 4:
        raise TapeError(f"{where}: line has {len(parts)} fields, want 4 ({HEADER}): {line[:80]!r}")
    ts, idx = parts[0], parts[1]
    if not ts.isdigit():
        raise TapeError(f"{where}: field 'ts_ms' has bad value {ts[:80]!r}")
    if not idx.isdigit() or int(idx) >= n:
        raise TapeError(f"{where}: field 'market' has bad value {idx[:80]!r} (markets.json has {n})")
    bid, ask = _price(where, "bid", parts[2], cache), _price(where, "ask", parts[3], cache)
    if bid >= ask:
        raise TapeError(f"{where}: field 'ask' has bad value {parts[3]!r} (not above bid {parts[2]!r})")
    return int(ts), int(idx), bid, ask


def quote_rows(path: Path, n_markets: int, slugs: list[str], strict: bool = True
               ) -> Iterator[tuple[int, tuple[int, int, Decimal, Decimal] | str]]:
    """``(line number, (ts_ms, market index, bid, ask))`` per quote line of a ``quotes.csv.gz``.

    With ``strict`` a bad line raises :class:`TapeError`; otherwise it yields ``(line number, reason)``
    and is skipped. A line not after the previous good one in (ts_ms, slug) order is a bad line.
    """
    cache: dict[str, Decimal] = {}
    last: tuple[int, str] = (-1, "")
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as fh:
        head = fh.readline().rstrip("\n")
        if head != HEADER:
            raise TapeError(f"{path}:1: header has bad value {head[:80]!r}, want {HEADER!r}")
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = _row(where, line.rstrip("\n"), n_markets, cache)
                if (row[0], slugs[row[1]]) <= last:
                    raise TapeError(f"{where}: field 'ts_ms' has bad value {row[0]} (not after the previous line "
                                    f"in (ts_ms, slug) order)")
            except TapeError as exc:
                if strict:
                    raise
                yield lineno, str(exc)
                continue
            last = (row[0], slugs[row[1]])
            yield lineno, row


# ---- expansion ----
def _load(path: Path) -> tuple[Path, list[MarketMeta], list[tuple[int, int, list[str]]]]:
    """(quotes file, markets, resolutions) of a quote tape directory or its ``quotes.csv.gz``."""
    tape_dir = _tape_dir(path)
    markets = load_markets(tape_dir / "markets.json")
    for i, m in enumerate(markets):
        if len(m.token_ids) != 2:
            raise TapeError(f"{tape_dir / 'markets.json'}: market {i}: field 'token_ids' has bad value "
                            f"{list(m.token_ids)!r} (a quote tape needs binary markets)")
    return tape_dir / QUOTES_FILE, markets, load_resolutions(tape_dir, markets)


def quote_frames(path: Path, strict: bool = True) -> Iterator[tuple[int, TapeFrame | str]]:
    """``(line number, frame)`` of a quote tape (directory or its ``quotes.csv.gz``), expanded by the
    module rules; with ``strict`` False a bad quote line gives ``(line number, reason)`` and is skipped.

    Raises:
        TapeError: markets.json or resolutions.json is unusable, the header is wrong, or (``strict``)
            a quote line is malformed, e.g. ``"quotes.csv.gz:7: field 'bid' has bad value '1.2'"``.
    """
    quotes, markets, res = _load(path)
    slugs = [m.slug for m in markets]
    ticks = [str(m.tick_size) for m in markets]
    ends = sorted((ms, slugs[i], i) for i, (ms, _, _) in enumerate(res))
    prev: list[tuple[Decimal, Decimal] | None] = [None] * len(markets)
    line_of = [0] * len(markets)
    seq, r = 0, 0
    for lineno, row in quote_rows(quotes, len(markets), slugs, strict):
        if isinstance(row, str):
            yield lineno, row
            continue
        ts, i, bid, ask = row
        while r < len(ends) and (ends[r][0], ends[r][1]) < (ts, slugs[i]):
            seq, r = seq + 1, r + 1
            yield line_of[ends[r - 1][2]], _resolved_frame(seq, markets[ends[r - 1][2]], res[ends[r - 1][2]])
        old, prev[i], line_of[i] = prev[i], (bid, ask), lineno
        m = markets[i]
        if old is None:
            payload = dumps([book_obj(m.condition_id, m.token_ids[0], ts, bid, ask, ticks[i]),
                             book_obj(m.condition_id, m.token_ids[1], ts, *mirror(bid, ask), ticks[i])])
        elif old != (bid, ask):
            payload = change_text(m.condition_id, m.token_ids, ts, old, (bid, ask))
        else:
            continue
        seq += 1
        yield lineno, TapeFrame(seq, ts, payload)
    for ms, _, i in ends[r:]:
        seq += 1
        yield line_of[i], _resolved_frame(seq, markets[i], res[i])


def _resolved_frame(seq: int, m: MarketMeta, res: tuple[int, int, list[str]]) -> TapeFrame:
    ms, winner, tags = res
    return TapeFrame(seq, ms, dumps(resolved_obj(m.condition_id, m.token_ids, winner, ms, tags, m.outcomes)))


def quote_span(path: Path) -> tuple[int | None, int | None]:
    """(first, last) ``recv_ms`` of the frames :func:`quote_frames` (not strict) yields, without building
    them; (None, None) when it yields none."""
    quotes, markets, res = _load(path)
    slugs = [m.slug for m in markets]
    times = [ms for ms, _, _ in res]
    prev: list[tuple[Decimal, Decimal] | None] = [None] * len(markets)
    first = last = None
    for _, row in quote_rows(quotes, len(markets), slugs, strict=False):
        if isinstance(row, str) or prev[row[1]] == (row[2], row[3]):
            continue
        prev[row[1]] = (row[2], row[3])
        first = row[0] if first is None else first
        last = row[0]
    times += [t for t in (first, last) if t is not None]
    return (min(times), max(times)) if times else (None, None)
