"""venue_sim replay: a tape's ``market_resolved`` frame resolves its market for the tape's winner."""
from __future__ import annotations

from pathlib import Path

import orjson

from services.venue_sim.books import TapeBooks
from services.venue_sim.replay import Replay, read_frames
from tests.unit.test_venue_books_replay import DOWN, MKT, UP, Journal, Sink, book, market, tape_line, write_tape


def resolved(winner: str, ts: int) -> str:
    return orjson.dumps({"event_type": "market_resolved", "id": "1", "market": MKT, "assets_ids": [UP, DOWN],
                         "winning_asset_id": winner, "winning_outcome": "Down" if winner == DOWN else "Up",
                         "timestamp": str(ts), "tags": []}).decode()


def run(tmp_path: Path, lines: list[str], end_ms: int = 250) -> tuple[Sink, Journal]:
    """Replay ``lines`` to the end of a one-market tape (Up 0.70/0.72, Down 0.28/0.30: mid rule says Up)."""
    books, sink, journal = TapeBooks([market(end_ms)]), Sink(), Journal()
    replay = Replay(read_frames(write_tape(tmp_path, lines)), [market(end_ms)], books, sink, journal)
    replay.advance_to(10_000)
    return sink, journal


def base() -> list[str]:
    return [tape_line(1, 100, book(UP, "0.70", "0.72", 100)), tape_line(2, 100, book(DOWN, "0.28", "0.30", 100))]


def resolutions(journal: Journal) -> list[dict]:
    return [f for r, f in journal.records if r == "MARKET_RESOLVED"]


def test_tape_winner_at_end_ms_beats_the_mid_rule(tmp_path: Path) -> None:
    """The frame sits at exactly end_ms; the mid rule would pick Up, the tape says Down: Down wins, once,
    and the resolution frame itself is not forwarded as a tape frame (announced once by on_market_end)."""
    sink, journal = run(tmp_path, [*base(), tape_line(3, 250, resolved(DOWN, 250))])
    assert [s[:2] for s in sink.seen] == [("frame", 1), ("frame", 2), ("end", DOWN), ("done",)]
    (rec,) = resolutions(journal)
    assert rec["token_id"] == DOWN and rec["source"] == "tape" and rec["resolved_ms"] == 250 and rec["early"] is False


def test_tape_winner_before_end_resolves_early_and_the_end_changes_nothing(tmp_path: Path) -> None:
    sink, journal = run(tmp_path, [*base(), tape_line(3, 200, resolved(DOWN, 200)), tape_line(4, 300, book(UP, "0.8", "0.9", 300))])
    assert [s[:2] for s in sink.seen if s[0] == "end"] == [("end", DOWN)]
    (rec,) = resolutions(journal)
    assert rec["early"] is True and rec["resolved_ms"] == 200


def test_a_tape_without_the_frame_uses_the_mid_rule(tmp_path: Path) -> None:
    sink, journal = run(tmp_path, base())
    assert [s for s in sink.seen if s[0] == "end"] == [("end", UP, None)]
    (rec,) = resolutions(journal)
    assert rec["source"] == "mid" and rec["resolved_ms"] == 250


def test_a_frame_after_end_or_with_a_foreign_winner_is_ignored_and_journaled(tmp_path: Path) -> None:
    sink, journal = run(tmp_path, [*base(), tape_line(3, 150, resolved("999", 150)), tape_line(4, 300, resolved(DOWN, 300))])
    assert [s for s in sink.seen if s[0] == "end"] == [("end", UP, None)]
    assert [f["why"] for r, f in journal.records if r == "RESOLVE_IGNORED"] == [
        "bad winning_asset_id '999'", "already resolved or unknown market"]
