"""tapes/btc15m-2026-09-28 matches its source (resolvedkit L2 sample) and the rules of
scripts/convert_resolvedkit.py: byte-reproducible, books replayed exactly, real resolutions, token ids.

Needs ``../shared/data/l2-resolvedkit-btc15m`` beside the repository and pyarrow; skips otherwise.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from libs.common.fees import schedule_for_category
from libs.common.tapes import load_markets, read_tape
from services.venue_sim.books import TapeBooks
from services.venue_sim.replay import parse_frame

REPO = Path(__file__).resolve().parents[2]
SRC = REPO.parent / "shared" / "data" / "l2-resolvedkit-btc15m"
TAPE = REPO / "data" / "tapes" / "btc15m-2026-09-28"
FILES = ("frames.jsonl.gz", "markets.json", "tape_meta.json", "NOTICE")
pytestmark = pytest.mark.skipif(not SRC.is_dir(), reason=f"source not found at {SRC}")


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module (needs pyarrow for this converter)."""
    pytest.importorskip("pyarrow")
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def conv() -> ModuleType:
    return load_script("convert_resolvedkit")


@pytest.fixture(scope="module")
def source(conv: ModuleType) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return conv.read_source(SRC)


@pytest.mark.timeout(300)  # the conversion takes ~30 s
def test_bundled_files_are_reproduced_byte_for_byte(conv: ModuleType, tmp_path: Path) -> None:
    conv.convert(SRC, tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (TAPE / name).read_bytes(), name


@pytest.mark.timeout(300)
def test_replaying_the_frames_through_tape_books_gives_every_snapshot_exactly(conv: ModuleType, source: Any) -> None:
    """After each kept snapshot's frame (none when unchanged) the token's TapeBooks levels equal the
    snapshot's levels (thinned and cut as tape_meta.json says)."""
    meta = orjson.loads((TAPE / "tape_meta.json").read_bytes())
    rows = conv.thin(source[1], meta["levels"], meta["every_ms"])
    assert meta["rows"] == len(rows) and meta["source_rows"] == len(source[1]) == 38_333
    markets = {m.condition_id: m for m in load_markets(TAPE / "markets.json")}
    books = TapeBooks(markets.values())
    frames = iter(f for f in read_tape(TAPE / "frames.jsonl.gz") if '"market_resolved"' not in f.payload)
    pending = next(frames, None)
    for row in rows:
        token = markets[row["market_id"]].token_ids[0 if row["side"] == "UP" else 1]
        if pending is not None and pending.recv_ms == row["ts"] and f'"{token}"' in pending.payload:
            books.apply(parse_frame(pending.payload), pending.recv_ms)
            pending = next(frames, None)
        bids, asks = books.tape_levels(token)
        assert bids == [(conv.num(p), conv.num(s)) for p, s in zip(row["bid_px"], row["bid_sz"])], (row["ts"], token)
        assert asks == [(conv.num(p), conv.num(s)) for p, s in zip(row["ask_px"], row["ask_sz"])], (row["ts"], token)
    assert pending is None


def test_each_market_resolves_at_end_ms_for_the_outcome_the_data_paid(source: Any) -> None:
    mrows, _ = source
    markets = {m.condition_id: m for m in load_markets(TAPE / "markets.json")}
    events = [(f.recv_ms, orjson.loads(f.payload)) for f in read_tape(TAPE / "frames.jsonl.gz")
              if '"market_resolved"' in f.payload]
    by_market = {ev["market"]: (ms, ev) for ms, ev in events}
    assert len(events) == len(by_market) == len(mrows) == 18
    for r in mrows:
        m = markets[r["market_id"]]
        ms, ev = by_market[r["market_id"]]
        paid = 0 if r["payout_up"] == 1.0 else 1
        assert (r["payout_up"], r["payout_down"]) in ((1.0, 0.0), (0.0, 1.0))
        assert ms == m.end_ms == r["end_ts"] and ev["timestamp"] == str(ms)
        assert ev["winning_asset_id"] == m.token_ids[paid] and ev["winning_outcome"] == m.outcomes[paid]
        assert ev["assets_ids"] == list(m.token_ids)


def test_markets_follow_the_documented_rules(source: Any) -> None:
    mrows, _ = source
    markets = load_markets(TAPE / "markets.json")
    assert [m.condition_id for m in markets] == [r["market_id"] for r in mrows]
    for m, r in zip(markets, mrows):
        expected = [str(int.from_bytes(hashlib.sha256(f"{m.condition_id.lower()}:{o}".encode()).digest(), "big"))
                    for o in (r["outcome_up"], r["outcome_down"])]
        assert list(m.token_ids) == expected and m.outcomes == ("Up", "Down")
        assert (m.start_ms, m.end_ms) == (r["start_ts"], r["end_ts"])
        assert m.tick_size == Decimal("0.01") and m.min_order_size == Decimal(5) and not m.synthetic_condition_id
        assert m.fee_schedule == schedule_for_category("crypto")


def test_frames_are_in_time_order_in_the_wire_format() -> None:
    last, kinds = 0, set()
    for i, f in enumerate(read_tape(TAPE / "frames.jsonl.gz"), start=1):
        assert f.seq == i and f.recv_ms >= last
        last = f.recv_ms
        ev = orjson.loads(f.payload)
        kinds.add(ev["event_type"])
        if ev["event_type"] == "book":
            prices = [Decimal(x["price"]) for x in ev["bids"]], [Decimal(x["price"]) for x in ev["asks"]]
            assert prices[0] == sorted(prices[0]) and prices[1] == sorted(prices[1], reverse=True)
            assert ev["tick_size"] == "0.01" and f.payload.startswith('{"market":')
        elif ev["event_type"] == "price_change":
            assert '", "price_changes":[{"asset_id":' in f.payload
            assert {e["asset_id"] for e in ev["price_changes"]} == {ev["price_changes"][0]["asset_id"]}
    assert kinds == {"book", "price_change", "market_resolved"}


def test_the_venue_replay_resolves_every_market_for_the_tapes_winner(source: Any) -> None:
    """Whole tape through services/venue_sim Replay: 18 resolutions, all from the tape, none by the mid rule."""
    from services.venue_sim.replay import Replay, read_frames
    from tests.unit.test_venue_books_replay import Journal, Sink

    markets = load_markets(TAPE / "markets.json")
    sink, journal = Sink(), Journal()
    Replay(read_frames(TAPE / "frames.jsonl.gz"), markets, TapeBooks(markets), sink, journal).advance_to(2**62)
    paid = {r["market_id"]: 0 if r["payout_up"] == 1.0 else 1 for r in source[0]}
    recs = [f for r, f in journal.records if r == "MARKET_RESOLVED"]
    assert len(recs) == 18 and {f["source"] for f in recs} == {"tape"}
    assert {f["market"]: f["token_id"] for f in recs} == {m.condition_id: m.token_ids[paid[m.condition_id]] for m in markets}
    assert "BAD_TAPE_LINE" not in journal.reasons()
