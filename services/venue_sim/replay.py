"""Tape replay of the paper venue: frames applied to the books in market time, market ends, resolution.

A tape is JSON lines ``{"seq", "recv_ms", "payload"}`` (libs/common/tapes.py). The replay clock maps
market time to wall time (``ReplayClock``: tape ms = ``epoch_tape_ms + (wall - epoch_wall_ms) * speed``,
``epoch_tape_ms`` = the first frame's ``recv_ms``). Each frame is applied when market time reaches its
``recv_ms``; each market ends when market time reaches its ``end_ms`` (frames at the same ms first),
also after the tape's last frame (market time goes on). A line that is not a valid tape line, or
whose payload is not a valid market-channel frame, is journaled with its line number and skipped.

Resolution: a ``market_resolved`` event in the tape (custom feature event, reference/polymarket-api.md
1.1; e.g. tapes/btc15m-2026-09-28 carries the real outcome at each market's end) resolves its market
(``market``) for its ``winning_asset_id`` when the frame is applied, through the same path as a
market end or ``request_resolution`` (journal ``MARKET_RESOLVED`` with ``source="tape"``, the sink's
``on_market_end``: winner recorded for redeem, orders cancelled, ``market_resolved`` announced). A
frame whose events are all ``market_resolved`` is not forwarded as a frame (the resolution path
announces it once). Frames at a market's ``end_ms`` are applied before its end, so a resolution
frame at exactly ``end_ms`` wins over the mid rule; one for a market already resolved, an unknown
market or a winner that is not one of its tokens is journaled (``RESOLVE_IGNORED``) and skipped.

Mid rule, only for a market whose tape carries no ``market_resolved`` by its end: the winning asset
is the token whose last tape mid is above 0.5; mid = (best bid + best ask) / 2, or the only side's
price when one side is empty. If no token is above 0.5 the highest mid wins (ties: the first
outcome); a market whose tokens have no levels at all resolves with no winner (``""``).
"""
from __future__ import annotations

import gzip
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Protocol

import orjson

from libs.common.clock import ReplayClock
from libs.common.quote_tape import is_quote_tape, quote_frames
from libs.common.tapes import MarketMeta, TapeFrame
from services.venue_sim.books import (ZERO, Applied, LastTrade, Level, LevelChange, ParsedFrame, Snapshot,
                                      TapeBooks, TickChange, Update)

log = logging.getLogger(__name__)


class FrameError(ValueError):
    """A market-channel frame cannot be used; the message names the event, the field and the value."""


# ---- frame parsing (pure) ----
def _dec(where: str, obj: dict[str, Any], name: str, lo: Decimal, hi: Decimal | None) -> Decimal:
    raw = obj.get(name)
    try:
        value = Decimal(raw) if isinstance(raw, str) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < lo or (hi is not None and value > hi):
        raise FrameError(f"{where}: field {name!r} has bad value {raw!r}")
    return value


def _tick(where: str, obj: dict[str, Any], name: str) -> Decimal:
    tick = _dec(where, obj, name, ZERO, Decimal(1))
    if tick == 0:
        raise FrameError(f"{where}: field {name!r} has bad value {obj.get(name)!r}")
    return tick


def _str(where: str, obj: dict[str, Any], name: str) -> str:
    raw = obj.get(name)
    if not isinstance(raw, str) or not raw:
        raise FrameError(f"{where}: field {name!r} has bad value {raw!r}")
    return raw


def _side(where: str, obj: dict[str, Any]) -> str:
    side = obj.get("side")
    if side not in ("BUY", "SELL"):
        raise FrameError(f"{where}: field 'side' has bad value {side!r}")
    return str(side)


def _levels(where: str, ev: dict[str, Any], name: str) -> tuple[Level, ...]:
    raw = ev.get(name)
    if not isinstance(raw, list):
        raise FrameError(f"{where}: field {name!r} has bad value {str(raw)[:80]!r}")
    out = []
    for i, lv in enumerate(raw):
        if not isinstance(lv, dict):
            raise FrameError(f"{where}: {name}[{i}] has bad value {lv!r}")
        out.append((_dec(f"{where} {name}[{i}]", lv, "price", ZERO, Decimal(1)),
                    _dec(f"{where} {name}[{i}]", lv, "size", ZERO, None)))
    return tuple(out)


def _change(where: str, obj: dict[str, Any], token: str, market: str, ts: str) -> LevelChange:
    return LevelChange(token, market, _side(where, obj), _dec(where, obj, "price", ZERO, Decimal(1)),
                       _dec(where, obj, "size", ZERO, None), ts)


def _entries(where: str, ev: dict[str, Any], name: str) -> list[dict[str, Any]]:
    entries = ev.get(name)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FrameError(f"{where}: field {name!r} has bad value {str(entries)[:80]!r}")
    return entries


def _price_change(where: str, ev: dict[str, Any], market: str, ts: str) -> list[Update]:
    if "price_changes" in ev:
        return [_change(f"{where} price_changes[{i}]", e, _str(f"{where} price_changes[{i}]", e, "asset_id"),
                        market, ts) for i, e in enumerate(_entries(where, ev, "price_changes"))]
    token = _str(where, ev, "asset_id")
    if "changes" in ev:
        return [_change(f"{where} changes[{i}]", e, token, market, ts)
                for i, e in enumerate(_entries(where, ev, "changes"))]
    return [_change(where, ev, token, market, ts)]


def parse_event(where: str, ev: Any) -> list[Update]:
    """The book updates one market-channel event carries (none for ``best_bid_ask``, ``market_resolved``,
    ``new_market``).

    Raises:
        FrameError: not an object, unknown ``event_type``, or a missing/bad field (named with its value).
    """
    if not isinstance(ev, dict):
        raise FrameError(f"{where}: not a JSON object: {str(ev)[:80]!r}")
    kind = ev.get("event_type")
    market = str(ev.get("market", ""))
    ts = str(ev.get("timestamp", ""))
    if kind == "book":
        tick = _tick(where, ev, "tick_size") if "tick_size" in ev else None
        ltp = ev.get("last_trade_price")
        return [Snapshot(_str(where, ev, "asset_id"), market, _levels(where, ev, "bids"), _levels(where, ev, "asks"),
                         tick, ltp if isinstance(ltp, str) else None, ts)]
    if kind == "price_change":
        return _price_change(where, ev, market, ts)
    if kind == "tick_size_change":
        return [TickChange(_str(where, ev, "asset_id"), market, _tick(where, ev, "new_tick_size"))]
    if kind == "last_trade_price":
        _dec(where, ev, "price", ZERO, Decimal(1))
        return [LastTrade(_str(where, ev, "asset_id"), market, str(ev["price"]))]
    if kind == "best_bid_ask":
        _str(where, ev, "asset_id")
        return []
    if kind in ("market_resolved", "new_market"):
        return []
    raise FrameError(f"{where}: field 'event_type' has bad value {kind!r}")


def parse_frame(text: str) -> ParsedFrame:
    """Parse one frame's text (a JSON object, or an array of them such as the subscription dump).

    Raises:
        FrameError: not JSON, or any event in it is bad (see ``parse_event``).
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame: not JSON ({exc}): {text[:80]!r}") from None
    events = data if isinstance(data, list) else [data]
    updates: list[Update] = []
    for i, ev in enumerate(events):
        updates.extend(parse_event(f"event {i}", ev))
    return ParsedFrame(tuple(events), isinstance(data, list), tuple(updates))


# ---- tape reading (bad lines reported, never fatal) ----
class Recorder(Protocol):
    """The journal's ``record`` (libs.common.journal.Journal)."""

    def record(self, reason: str, *, token_id: str = "", level: Any = "info", **fields: object) -> None: ...


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _tape_line(raw: bytes) -> TapeFrame:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise FrameError(f"line is not a JSON object: {raw[:80]!r}")
    for name, kind in (("seq", int), ("recv_ms", int), ("payload", str)):
        if not isinstance(obj.get(name), kind) or isinstance(obj.get(name), bool):
            raise FrameError(f"field {name!r} has bad value {str(obj.get(name))[:80]!r}")
    return TapeFrame(obj["seq"], obj["recv_ms"], obj["payload"])


def read_frames(path: Path) -> Iterator[tuple[int, TapeFrame | str]]:
    """Yield ``(line number, frame)`` of a plain or ``.gz`` tape, or ``(line number, reason)`` for a
    line that is not a valid tape line (the caller journals and skips it). Blank lines are ignored.

    A quote tape (its directory or its ``quotes.csv.gz``, libs/common/quote_tape.py) is expanded to
    frames; the line number is the quote's line. Its markets.json/resolutions.json or header being
    unusable raises ``TapeError``."""
    if is_quote_tape(Path(path)):
        yield from quote_frames(Path(path), strict=False)
        return
    with _open(Path(path)) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, _tape_line(raw)
            except FrameError as exc:
                yield lineno, str(exc)


def make_clock(first_recv_ms: int, speed: float, start_delay_ms: int, wall_now_ms: int) -> ReplayClock:
    """The replay clock: market time ``first_recv_ms`` at wall ``wall_now_ms + start_delay_ms``."""
    return ReplayClock(epoch_wall_ms=wall_now_ms + start_delay_ms, epoch_tape_ms=first_recv_ms, speed=speed)


# ---- market end (pure) ----
def tape_mid(top: tuple[Decimal | None, Decimal | None]) -> Decimal | None:
    """Mid of a (best bid, best ask) pair; the only side's price when one is empty; None when both are."""
    bid, ask = top
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return bid if bid is not None else ask


def winning_token(market: MarketMeta, tops: dict[str, tuple[Decimal | None, Decimal | None]]) -> str:
    """The winner by the module's resolution rule ("" when no token of ``market`` has any level)."""
    mids = [(tape_mid(tops.get(t, (None, None))), -i, t) for i, t in enumerate(market.token_ids)]
    known = [m for m in mids if m[0] is not None]
    return max(known)[2] if known else ""


def market_id(condition_id: str) -> str:
    """The numeric market id the venue's Gamma serves for a condition id (gamma.py's rule)."""
    return str(int(condition_id[2:18], 16)) if condition_id.startswith("0x") else condition_id


def resolved_message(market: MarketMeta, winner: str, now_ms: int) -> dict[str, Any]:
    """The wire ``market_resolved`` event (custom feature; reference/polymarket-api.md 1.1)."""
    outcome = market.outcomes[market.token_ids.index(winner)] if winner else ""
    return {"event_type": "market_resolved", "id": market_id(market.condition_id), "question": market.question,
            "market": market.condition_id, "slug": market.slug, "description": market.question,
            "assets_ids": list(market.token_ids), "outcomes": list(market.outcomes),
            "winning_asset_id": winner, "winning_outcome": outcome,
            "event_message": {"id": market_id(market.condition_id), "ticker": market.slug, "slug": market.slug,
                              "title": market.question, "description": market.question},
            "timestamp": str(now_ms), "tags": []}


# ---- the replay ----
class ReplaySink(Protocol):
    """Where the replay's effects go (the WebSocket hub and the engine, wired in ``__main__``)."""

    def on_frame(self, frame: TapeFrame, parsed: ParsedFrame, applied: Applied) -> None: ...

    def on_market_end(self, market: MarketMeta, message: dict[str, Any]) -> None: ...

    def on_done(self) -> None: ...


class WallTimer(Protocol):
    """``wall_ms`` now and ``to_wall_ms`` of a market ms (ReplayClock has both)."""

    def wall_ms(self) -> int: ...

    def to_wall_ms(self, market_ms: int) -> int: ...


@dataclass
class Position:
    """Replay progress (read by ``/_sim/ws/state`` and the heartbeat)."""

    frames_applied: int = 0
    last_seq: int = 0
    last_recv_ms: int = 0
    bad_lines: int = 0
    markets_ended: int = 0
    done: bool = False


class Replay:
    """Applies tape frames and market ends, in market-time order, to ``books`` and ``sink``.

    Args:
        frames: ``(line number, frame or bad-line reason)`` in file order (``read_frames``).
        markets: the tape's markets (each ends at its ``end_ms``).
        books: the tape books. sink: receives every effect. journal: records bad lines and failures.
    """

    def __init__(self, frames: Iterable[tuple[int, TapeFrame | str]], markets: Iterable[MarketMeta],
                 books: TapeBooks, sink: ReplaySink, journal: Recorder) -> None:
        self._frames, self.books, self.sink, self.journal = iter(frames), books, sink, journal
        self._ends = sorted(markets, key=lambda m: (m.end_ms, m.condition_id))
        self._early: list[tuple[str, str]] = []  # (condition id, winner) asked for by request_resolution
        self._early_lock = threading.Lock()
        self._next: tuple[int, TapeFrame] | None = None
        self.position = Position()
        self._pull()

    def _pull(self) -> None:
        while True:
            item = next(self._frames, None)
            if item is None or isinstance(item[1], TapeFrame):
                self._next = item  # type: ignore[assignment]
                return
            self.bad_line(item[0], item[1])

    def first_ms(self) -> int | None:
        """``recv_ms`` of the next frame (the first, before any ``advance_to``); None when the tape is empty."""
        return self._next[1].recv_ms if self._next else None

    def next_due_ms(self) -> int | None:
        """Market ms of the next frame or market end; None when nothing is left."""
        due = [t for t in (self.first_ms(), self._ends[0].end_ms if self._ends else None) if t is not None]
        return min(due) if due else None

    def advance_to(self, t_ms: int) -> int:
        """Apply every frame and market end due at or before market ms ``t_ms``, in time order (frames
        first on a tie); returns how many were applied. Deterministic: no clock is read."""
        n = self._resolve_early(t_ms)
        while True:
            self._check_done()
            frame_ms = self.first_ms()
            end_ms = self._ends[0].end_ms if self._ends else None
            if frame_ms is not None and frame_ms <= t_ms and (end_ms is None or frame_ms <= end_ms):
                self._apply_frame()
            elif end_ms is not None and end_ms <= t_ms:
                self._end_market(self._ends.pop(0))
            else:
                return n
            n += 1

    def _apply_frame(self) -> None:
        assert self._next is not None
        lineno, frame = self._next
        self._pull()
        try:
            parsed = parse_frame(frame.payload)
        except FrameError as exc:
            self.bad_line(lineno, str(exc))
        else:
            applied = self.books.apply(parsed, frame.recv_ms)
            self.position.frames_applied += 1
            self.position.last_seq, self.position.last_recv_ms = frame.seq, frame.recv_ms
            resolved = [ev for ev in parsed.events if ev.get("event_type") == "market_resolved"]
            if len(resolved) < len(parsed.events):
                self._safely("on_frame", self.sink.on_frame, frame, parsed, applied)
            for ev in resolved:
                self._resolve_from_tape(ev, frame.recv_ms)

    def _resolve_from_tape(self, ev: dict[str, Any], at_ms: int) -> None:
        """Resolve the market of a tape ``market_resolved`` event for its ``winning_asset_id`` (module doc)."""
        condition_id, winner = str(ev.get("market", "")), ev.get("winning_asset_id")
        market = next((m for m in self._ends if m.condition_id == condition_id), None)
        if market is None or not isinstance(winner, str) or (winner and winner not in market.token_ids):
            why = "already resolved or unknown market" if market is None else f"bad winning_asset_id {winner!r}"
            self.journal.record("RESOLVE_IGNORED", level="warn", market=condition_id, why=why, source="tape")
            return
        self._ends.remove(market)
        self._end_market(market, winner, at_ms, source="tape")

    def _check_done(self) -> None:
        if self._next is None and not self.position.done:
            self.position.done = True
            self.journal.record("REPLAY_DONE", frames=self.position.frames_applied,
                                bad_lines=self.position.bad_lines, last_recv_ms=self.position.last_recv_ms)
            self._safely("on_done", self.sink.on_done)

    def request_resolution(self, condition_id: str, winner: str) -> None:
        """Resolve the market of ``condition_id`` for ``winner`` (a token id of it, "" = no winner) at the
        next ``advance_to``, before its end time, exactly as a market end does (journal, engine,
        ``market_resolved`` on the market channel); its end time then changes nothing. Thread-safe:
        the ``/_sim/resolve`` control calls it while the replay thread advances."""
        with self._early_lock:
            self._early.append((condition_id, winner))

    def _resolve_early(self, t_ms: int) -> int:
        with self._early_lock:
            early, self._early = self._early, []
        n = 0
        for condition_id, winner in early:
            market = next((m for m in self._ends if m.condition_id == condition_id), None)
            if market is None:
                self.journal.record("RESOLVE_IGNORED", level="warn", market=condition_id, why="already resolved")
                continue
            self._ends.remove(market)
            self._end_market(market, winner, t_ms, source="control")
            n += 1
        return n

    def _end_market(self, market: MarketMeta, winner: str | None = None, at_ms: int | None = None,
                    source: str = "mid") -> None:
        """Resolve ``market``: at its end by the mid rule, or for ``winner`` at ``at_ms`` (``source``
        "tape" = a tape ``market_resolved``, "control" = ``request_resolution``, always journaled
        ``early``); a tape resolution is ``early`` when it is before the market's end."""
        if winner is None:
            winner = winning_token(market, {t: self.books.tape_top(t) for t in market.token_ids})
        at = market.end_ms if at_ms is None else at_ms
        self.position.markets_ended += 1
        self.journal.record("MARKET_RESOLVED", token_id=winner, market=market.condition_id, end_ms=market.end_ms,
                            resolved_ms=at, early=source == "control" or at < market.end_ms, source=source)
        self._safely("on_market_end", self.sink.on_market_end, market, resolved_message(market, winner, at))

    def bad_line(self, lineno: int, reason: str) -> None:
        """Count and journal a skipped tape line (``BAD_TAPE_LINE``, error)."""
        self.position.bad_lines += 1
        self.journal.record("BAD_TAPE_LINE", level="error", line=lineno, detail=reason[:300])

    def _safely(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - journaled; one bad effect must not end the replay
            log.exception("event REPLAY_SINK_FAILED step=%s", what)
            self.journal.record("REPLAY_SINK_FAILED", level="error", step=what, error=f"{type(exc).__name__}: {exc}"[:300])

    def run(self, timer: WallTimer, stop: threading.Event, wait: Callable[[float], bool] | None = None) -> None:
        """Apply everything when due on ``timer`` until nothing is left or ``stop`` is set.

        Sleeps with ``wait(seconds)`` (default ``stop.wait``; returns True to stop) until the wall time
        of the next item, so there is no busy loop and a stop is seen at once.
        """
        wait = wait or stop.wait
        self._check_done()
        while not stop.is_set():
            due = self.next_due_ms()
            if due is None:
                return
            delay_ms = timer.to_wall_ms(due) - timer.wall_ms()
            if delay_ms > 0:
                if wait(delay_ms / 1000):
                    return
                continue
            self.advance_to(due)
