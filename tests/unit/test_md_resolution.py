"""md_gateway on ``market_resolved``: per token ``resolved=1`` and its payout, in one publish (pure core)."""
from __future__ import annotations

import json

from services.md_gateway import schemas as s
from services.md_gateway.core import Core
from services.md_gateway.parse import parse_frame

T, U, OTHER = "111", "222", "999"
NOW = 1_000_000


def core_with(*tokens: str) -> Core:
    core = Core(grace_ms=5000, rest_retry_ms=2000, buffer_max=4)
    for t in tokens:
        core.add(t, NOW)
    core.take()
    return core


def resolved_frame(winner: str | None) -> bytes:
    msg = {"event_type": "market_resolved", "market": "0xm", "assets_ids": [T, U], "timestamp": "1700000000000"}
    if winner is not None:
        msg["winning_asset_id"] = winner
    return json.dumps(msg).encode()


def test_the_wire_winner_is_parsed() -> None:
    ev = parse_frame(resolved_frame(U), NOW).events[0]
    assert isinstance(ev, s.Resolved) and ev.winner == U and ev.token_ids == (T, U)
    assert (ev.payout(T), ev.payout(U)) == ("0", "1")


def test_each_token_gets_resolved_and_its_payout_in_one_publish() -> None:
    core = core_with(T, U)
    core.apply_frame(parse_frame(resolved_frame(T), NOW).events, NOW)
    out = {p.token_id: p for p in core.take()}
    assert out[T].fields == ["resolved", "1", "payout", "1"] and out[T].stream is False
    assert out[U].fields == ["resolved", "1", "payout", "0"]
    assert [(n[0], n[2], n[3]["payout"]) for n in core.notes] == [("MARKET_RESOLVED", T, "1"),
                                                                  ("MARKET_RESOLVED", U, "0")]


def test_a_missing_or_foreign_winner_is_kept_explicit_and_journaled() -> None:
    for winner in (None, "", OTHER):
        core = core_with(T)
        core.apply_frame(parse_frame(resolved_frame(winner), NOW).events, NOW)
        assert [p.fields for p in core.take()] == [["resolved", "1", "payout", ""]]
        assert [n[0] for n in core.notes] == ["MARKET_RESOLVED", "RESOLVED_NO_WINNER"]
        assert core.notes[1][1] == "warn"


def test_tokens_we_do_not_track_are_not_published() -> None:
    core = core_with(T)
    core.apply_frame(parse_frame(resolved_frame(T), NOW).events, NOW)
    assert [p.token_id for p in core.take()] == [T]
