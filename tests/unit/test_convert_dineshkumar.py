"""The week-2026-07 tape matches its source (quotes-dineshkumar-2026-07) and the conversion rules.

The bundled tape is a quote tape (quotes.csv.gz, libs/common/quote_tape.py); every test reads its frames
through the expansion (``read_tape_dir``), as the venue does. Needs pyarrow and the source folder ``../shared/data/quotes-dineshkumar-2026-07`` beside the repository;
skips when either is absent. The tests that read the whole source (40 M rows, ~40 s, then two
``--markets 20`` conversions) run only with ``PB_SOURCE_TESTS=1``: they keep the suite inside its
time budget; the rest always run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

pa = pytest.importorskip("pyarrow")

from libs.common.fees import schedule_for_category  # noqa: E402
from libs.common.tapes import load_markets, read_tape_dir  # noqa: E402
from services.venue_sim.books import TapeBooks  # noqa: E402
from services.venue_sim.replay import ParsedFrame, parse_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SRC = REPO.parent / "shared" / "data" / "quotes-dineshkumar-2026-07"
TAPE = REPO / "data" / "tapes" / "week-2026-07"
# the module fixture reads 40 M source rows (~40 s), more than the default 60 s timeout allows on a slow machine
pytestmark = [pytest.mark.skipif(not SRC.is_dir(), reason=f"source data not found at {SRC}"), pytest.mark.timeout(240)]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_dineshkumar", REPO / "scripts" / "convert_dineshkumar.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["convert_dineshkumar"] = mod
    spec.loader.exec_module(mod)
    return mod


conv = _load_script()


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    if os.environ.get("PB_SOURCE_TESTS") != "1":  # 40 M rows: ~1.5 min of the suite's 20-minute budget
        pytest.skip("reading the 40 M-row source: run with PB_SOURCE_TESTS=1")
    """Kept quotes, change counts and labels of the whole source, computed once."""
    quotes = conv.read_quotes(SRC)
    kept = quotes.filter(conv.kept_mask(quotes))
    labels, ambiguous = conv.read_labels(SRC)
    return {"quotes": quotes, "kept": kept, "counts": conv.change_counts(kept), "labels": labels, "ambiguous": ambiguous}


@pytest.fixture(scope="module")
def tape() -> dict[str, Any]:
    """The bundled markets and frames (the quote tape expanded by libs/common/quote_tape.py), grouped by
    condition id."""
    markets = load_markets(TAPE / "markets.json")
    by_cid: dict[str, list[tuple[int, dict[str, Any] | list[Any], str]]] = {m.condition_id: [] for m in markets}
    seqs = []
    for f in read_tape_dir(TAPE):
        obj = orjson.loads(f.payload)
        cid = obj[0]["market"] if isinstance(obj, list) else obj["market"]
        by_cid[cid].append((f.recv_ms, obj, f.payload))
        seqs.append(f.seq)
    return {"markets": markets, "frames": by_cid, "seqs": seqs}


def test_change_counts_rule_on_a_small_table() -> None:
    t = pa.table({"ts": pa.array([3, 1, 2, 4, 1, 2], pa.timestamp("us")), "slug": ["a", "a", "a", "a", "b", "b"],
                  "bid": [0.5, 0.4, 0.4, None, 0.2, 0.3], "ask": [0.6, 0.6, 0.6, 0.7, 0.3, 0.3]})
    kept = t.filter(conv.kept_mask(t))  # drops the missing side and the locked b row
    assert kept.num_rows == 4
    assert conv.change_counts(kept) == {"a": 1, "b": 0}
    assert conv.select({"a": 1, "b": 1, "c": 5}, {"a": 1, "b": 0}, 1) == ["a"]


def test_selection_rule(source: dict[str, Any], tape: dict[str, Any]) -> None:
    counts, labels = source["counts"], source["labels"]
    slugs = [m.slug for m in tape["markets"]]
    assert slugs == sorted((s for s in counts if s in labels), key=lambda s: (-counts[s], s))[:len(slugs)]
    assert not set(slugs) & set(source["ambiguous"])
    for m in tape["markets"]:  # one price_change frame per quote change
        kinds = [o["event_type"] for _, o, _ in tape["frames"][m.condition_id] if isinstance(o, dict)]
        assert kinds.count("price_change") == counts[m.slug]
    meta = json.loads((TAPE / "tape_meta.json").read_text())
    assert meta["summary"]["qualifying_markets"] == sum(1 for s in counts if s in labels)


def test_markets_ids_fees_and_mirror(tape: dict[str, Any]) -> None:
    info = conv.market_info(SRC)
    for m in tape["markets"]:
        assert m.condition_id == "0x" + hashlib.sha256(m.slug.encode()).hexdigest() and m.synthetic_condition_id
        assert m.outcomes == ("Yes", "No")
        assert m.token_ids == tuple(str(int.from_bytes(hashlib.sha256(
            (m.condition_id.lower() + ":" + o).encode()).digest(), "big")) for o in ("Yes", "No"))
        assert (m.question, m.fee_schedule) == (info[m.slug][0], schedule_for_category(info[m.slug][1]))
        recv_ms, books, _ = tape["frames"][m.condition_id][0]
        assert recv_ms == m.start_ms and [b["asset_id"] for b in books] == list(m.token_ids)
        yes, no = books
        assert Decimal(no["bids"][0]["price"]) == 1 - Decimal(yes["asks"][0]["price"])
        assert Decimal(no["asks"][0]["price"]) == 1 - Decimal(yes["bids"][0]["price"])
        assert list(yes) == ["market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "event_type",
                             "last_trade_price"]


def test_resolutions_equal_labels(source: dict[str, Any], tape: dict[str, Any]) -> None:
    for m in tape["markets"]:
        recv_ms, last, _ = tape["frames"][m.condition_id][-1]
        assert last["event_type"] == "market_resolved" and recv_ms == m.end_ms == int(last["timestamp"])
        winner = 0 if source["labels"][m.slug] == 1 else 1
        assert (last["winning_asset_id"], last["winning_outcome"]) == (m.token_ids[winner], m.outcomes[winner])
        assert last["assets_ids"] == list(m.token_ids) and last["market"] == m.condition_id


def _single(update: Any) -> ParsedFrame:
    return ParsedFrame(events=(), is_array=False, updates=(update,))


def test_replay_reproduces_quotes(source: dict[str, Any], tape: dict[str, Any]) -> None:
    sample = tape["markets"][::9]
    quotes = conv.market_rows(source["kept"], [m.slug for m in sample])
    books = TapeBooks(tape["markets"])
    for m in sample:
        yes, no = m.token_ids
        frames = [f for f in tape["frames"][m.condition_id]
                  if isinstance(f[1], list) or f[1]["event_type"] != "market_resolved"]
        i = 0
        for ts, bid, ask in quotes[m.slug]:
            while i < len(frames) and frames[i][0] <= ts:
                parsed = parse_frame(frames[i][2])
                for u, entry in zip(parsed.updates, _entries(frames[i][1], len(parsed.updates))):
                    books.apply(_single(u), frames[i][0])
                    if entry:  # each entry's best_bid/best_ask is the top right after it, never crossed
                        top = books.tape_top(entry["asset_id"])
                        assert top == (Decimal(entry["best_bid"]), Decimal(entry["best_ask"])) and top[0] < top[1]
                i += 1
            assert books.tape_top(yes) == (bid, ask)
            assert books.tape_top(no) == (1 - ask, 1 - bid)
        assert i == len(frames)


def _entries(obj: Any, n: int) -> list[dict[str, Any] | None]:
    return obj["price_changes"] if isinstance(obj, dict) else [None] * n


def test_meta_licence_and_size(tape: dict[str, Any]) -> None:
    meta = json.loads((TAPE / "tape_meta.json").read_text())
    seqs = tape["seqs"]
    assert meta["frames"] == len(seqs) and seqs == list(range(1, len(seqs) + 1))
    assert meta["licence"] == conv.LICENCE and not (TAPE / "frames.jsonl.gz").exists()
    assert meta["markets"] == len(load_markets(TAPE / "markets.json"))
    for name in ("LICENSE", "NOTICE"):
        assert (TAPE / name).read_bytes() == (SRC / name).read_bytes()
    assert (TAPE / "quotes.csv.gz").stat().st_size < 6_000_000


def test_byte_reproducible_small_run(source: dict[str, Any], tmp_path: Path) -> None:
    conv.convert(SRC, tmp_path / "a", 20, quotes=source["quotes"])  # the read path is the fixture's
    conv.convert(SRC, tmp_path / "b", 20, quotes=source["quotes"])  # again, reusing the read quotes
    for name in ("quotes.csv.gz", "resolutions.json", "markets.json", "tape_meta.json", "LICENSE", "NOTICE"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert not (tmp_path / "a" / "frames.jsonl.gz").exists()
    small = json.loads((tmp_path / "a" / "markets.json").read_text())
    assert [m["slug"] for m in small] == [m["slug"] for m in json.loads((TAPE / "markets.json").read_text())][:20]
