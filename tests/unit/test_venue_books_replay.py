"""venue_sim replay: market-time order, market ends and resolution, bad lines, timing (no sleeping)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import orjson

from libs.common.clock import ReplayClock
from libs.common.tapes import MarketMeta, TapeFrame
from services.venue_sim.books import Applied, ParsedFrame, TapeBooks
from services.venue_sim.replay import Replay, make_clock, read_frames, resolved_message, tape_mid, winning_token

UP, DOWN, MKT = "1", "2", "0x" + "ab" * 32


def market(end_ms: int) -> MarketMeta:
    return MarketMeta(MKT, "BTC up?", "btc-up", (UP, DOWN), ("Up", "Down"), 0, end_ms, D("0.01"), D("5"), False, False)


def book(asset: str, bid: str, ask: str, ts: int) -> str:
    return orjson.dumps({"market": MKT, "asset_id": asset, "timestamp": str(ts), "hash": "h",
                         "bids": [{"price": bid, "size": "10"}], "asks": [{"price": ask, "size": "10"}],
                         "tick_size": "0.01", "event_type": "book", "last_trade_price": "0.5"}).decode()


def tape_line(seq: int, recv_ms: int, payload: str) -> str:
    return orjson.dumps({"seq": seq, "recv_ms": recv_ms, "payload": payload}).decode()


@dataclass
class Journal:
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, reason: str, *, token_id: str = "", level: Any = "info", **fields: object) -> None:
        self.records.append((reason, {"level": level, "token_id": token_id, **fields}))

    def reasons(self) -> list[str]:
        return [r for r, _ in self.records]


@dataclass
class Sink:
    wall: Any = None
    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def on_frame(self, frame: TapeFrame, parsed: ParsedFrame, applied: Applied) -> None:
        self.seen.append(("frame", frame.seq, self.wall() if self.wall else None))

    def on_market_end(self, m: MarketMeta, message: dict[str, Any]) -> None:
        self.seen.append(("end", message["winning_asset_id"], self.wall() if self.wall else None))

    def on_done(self) -> None:
        self.seen.append(("done",))


def write_tape(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make(tmp_path: Path, lines: list[str], end_ms: int = 250) -> tuple[Replay, Sink, Journal, TapeBooks]:
    books, sink, journal = TapeBooks([market(end_ms)]), Sink(), Journal()
    replay = Replay(read_frames(write_tape(tmp_path, lines)), [market(end_ms)], books, sink, journal)
    return replay, sink, journal, books


def three_frames() -> list[str]:
    return [tape_line(1, 100, book(UP, "0.60", "0.62", 100)), tape_line(2, 200, book(DOWN, "0.38", "0.40", 200)),
            tape_line(3, 300, book(UP, "0.70", "0.72", 300))]


def test_advance_applies_due_frames_then_the_market_end_in_time_order(tmp_path: Path) -> None:
    replay, sink, journal, books = make(tmp_path, three_frames(), end_ms=200)
    assert replay.first_ms() == 100 and replay.next_due_ms() == 100
    assert replay.advance_to(199) == 1
    assert replay.advance_to(200) == 2  # the frame at 200 first, then the end at 200
    assert sink.seen == [("frame", 1, None), ("frame", 2, None), ("end", UP, None)]
    assert replay.advance_to(250) == 0 and replay.next_due_ms() == 300
    replay.advance_to(300)
    assert sink.seen[-2:] == [("frame", 3, None), ("done",)]
    assert replay.position.done and replay.position.frames_applied == 3 and replay.position.markets_ended == 1
    assert journal.reasons().count("REPLAY_DONE") == 1 and replay.next_due_ms() is None


def test_market_ends_after_the_last_frame_still_resolve(tmp_path: Path) -> None:
    replay, sink, _, _ = make(tmp_path, three_frames(), end_ms=10_000)
    replay.advance_to(300)
    assert ("done",) in sink.seen and replay.next_due_ms() == 10_000
    replay.advance_to(10_000)
    assert sink.seen[-1] == ("end", UP, None)


def test_an_early_resolution_ends_the_market_once_for_the_chosen_winner(tmp_path: Path) -> None:
    """``/_sim/resolve`` through the replay: resolved at the next advance, before its end time, for the
    winner asked (here the token the tape would call the loser), journaled early; its end time and a
    second request change nothing."""
    replay, sink, journal, _ = make(tmp_path, three_frames(), end_ms=250)
    replay.advance_to(100)
    replay.request_resolution(MKT, DOWN)
    assert replay.advance_to(150) == 1 and sink.seen[-1] == ("end", DOWN, None)
    (rec,) = [f for r, f in journal.records if r == "MARKET_RESOLVED"]
    assert rec["token_id"] == DOWN and rec["early"] is True and rec["resolved_ms"] == 150 and rec["end_ms"] == 250
    replay.request_resolution(MKT, UP)
    replay.advance_to(400)
    assert [s for s in sink.seen if s[0] == "end"] == [("end", DOWN, None)]
    assert replay.position.markets_ended == 1 and "RESOLVE_IGNORED" in journal.reasons()


def test_bad_lines_are_journaled_with_their_line_number_and_skipped(tmp_path: Path) -> None:
    lines = three_frames()
    lines.insert(1, "{not json")
    lines.insert(2, tape_line(9, 150, '{"event_type":"price_change","asset_id":"1","price":"2","side":"BUY","size":"1"}'))
    lines.insert(3, '{"seq": 10, "recv_ms": "soon", "payload": "{}"}')
    replay, sink, journal, books = make(tmp_path, lines)
    replay.advance_to(1_000)
    bad = [(f["line"], f["level"]) for r, f in journal.records if r == "BAD_TAPE_LINE"]
    assert sorted(bad) == [(2, "error"), (3, "error"), (4, "error")]
    details = " ".join(str(f["detail"]) for r, f in journal.records if r == "BAD_TAPE_LINE")
    assert "'price' has bad value '2'" in details and "'recv_ms' has bad value 'soon'" in details
    assert replay.position.bad_lines == 3 and replay.position.frames_applied == 3
    assert books.tape_top(UP) == (D("0.70"), D("0.72"))


def test_winner_is_the_token_whose_last_mid_is_above_half() -> None:
    m = market(1)
    assert winning_token(m, {UP: (D("0.60"), D("0.62")), DOWN: (D("0.38"), D("0.40"))}) == UP
    assert winning_token(m, {UP: (D("0.10"), None), DOWN: (None, D("0.95"))}) == DOWN
    assert winning_token(m, {UP: (D("0.49"), D("0.51")), DOWN: (D("0.49"), D("0.51"))}) == UP  # tie: first outcome
    assert winning_token(m, {}) == ""
    assert tape_mid((None, None)) is None


def test_resolved_message_shape() -> None:
    msg = resolved_message(market(1), DOWN, 1234)
    assert msg["event_type"] == "market_resolved" and msg["winning_asset_id"] == DOWN
    assert msg["winning_outcome"] == "Down" and msg["assets_ids"] == [UP, DOWN] and msg["timestamp"] == "1234"
    assert msg["market"] == MKT and msg["id"] == str(int(MKT[2:18], 16))


class FakeTimer:
    """A replay clock whose wall time moves only when the replay waits."""

    def __init__(self, clock: ReplayClock) -> None:
        self.clock, self.wall = clock, clock.epoch_wall_ms - 1500
        self.waits: list[float] = []

    def wall_ms(self) -> int:
        return self.wall

    def to_wall_ms(self, market_ms: int) -> int:
        return self.clock.to_wall_ms(market_ms)

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.wall += round(seconds * 1000)
        return False


def test_run_applies_each_frame_when_the_clock_reaches_it(tmp_path: Path) -> None:
    replay, sink, _, _ = make(tmp_path, three_frames(), end_ms=250)
    timer = FakeTimer(make_clock(first_recv_ms=100, speed=10.0, start_delay_ms=1500, wall_now_ms=1_000_000))
    sink.wall = timer.wall_ms
    replay.run(timer, threading.Event(), wait=timer.wait)
    walls = {s[1]: s[2] for s in sink.seen if s[0] == "frame"}
    assert walls == {1: 1_001_500, 2: 1_001_510, 3: 1_001_520}  # speed 10: 100 market ms = 10 wall ms
    assert ("end", UP, 1_001_515) in sink.seen
    assert timer.waits == [1.5, 0.01, 0.005, 0.005]  # one wait per step, no busy loop


def test_run_returns_at_once_when_stopped(tmp_path: Path) -> None:
    replay, sink, _, _ = make(tmp_path, three_frames())
    stop = threading.Event()
    stop.set()
    replay.run(FakeTimer(make_clock(100, 1.0, 0, 0)), stop, wait=lambda s: True)
    assert sink.seen == []


def test_gz_tape_and_blank_lines(tmp_path: Path) -> None:
    import gzip
    path = tmp_path / "frames.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(three_frames()[0] + "\n\n" + three_frames()[1] + "\n")
    items = list(read_frames(path))
    assert [(n, f.seq) for n, f in items if isinstance(f, TapeFrame)] == [(1, 1), (3, 2)]
