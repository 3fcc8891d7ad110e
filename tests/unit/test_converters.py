"""The bundled replay data matches its real sources and the conversion rules (no Redis needed).

Source captures live in ``../shared/data`` beside the repository; tests that need them skip when
that folder is absent.
"""
from __future__ import annotations

import collections
import gzip
import hashlib
import importlib.util
import json
import shutil
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import orjson
import pytest

from libs.common.tapes import load_leader, load_markets, read_tape

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
TAPES = REPO / "data" / "tapes"
LEADERS = REPO / "data" / "leaders"
HERBALCLAW = SHARED / "l1-herbalclaw-btc5m"
ENRICO_SRC = SHARED / "ws-enricobignozzi-2026-09-24"
GABAGOOL_SRC = SHARED / "leader-gabagool22" / "activity_all_sorted.jsonl.gz"
BTC_TAPES = {"btc5m-2026-02-18-am": "btc_hf_2026-02-18_AM.db.gz", "btc5m-2026-02-17-pm": "btc_hf_2026-02-17_PM.db.gz"}
DEMO_RULE = ('for each market, at window start + 45 s the leader BUYs 10 shares of the cheaper outcome (the token '
             'with the lower best ask as the book stands at that moment; on a tie the first outcome) at that best ask; '
             'at window start + 200 s it SELLs 10 shares of the same token at the best bid as the book stands then.')
BOOK_KEYS = ["market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "event_type", "last_trade_price"]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"source captures not found at {SHARED}")


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


class RefBook:
    """Reference L2 applier: ``book`` replaces a token's book, price_change sets level totals ("0" deletes)."""

    def __init__(self) -> None:
        self.side: dict[tuple[str, str], dict[Decimal, Decimal]] = {}

    def apply(self, ev: dict[str, Any]) -> None:
        if ev["event_type"] == "book":
            for name, levels in (("BUY", ev["bids"]), ("SELL", ev["asks"])):
                self.side[(ev["asset_id"], name)] = {Decimal(x["price"]): Decimal(x["size"]) for x in levels}
        elif ev["event_type"] == "price_change":
            for ch in ev["price_changes"]:
                levels = self.side[(ch["asset_id"], ch["side"])]
                levels[Decimal(ch["price"])] = Decimal(ch["size"])
                if Decimal(ch["size"]) == 0:
                    del levels[Decimal(ch["price"])]

    def top(self, token: str) -> tuple[Decimal, Decimal]:
        return max(self.side[(token, "BUY")]), min(self.side[(token, "SELL")])

    def level_sizes(self, token: str) -> tuple[Decimal, Decimal]:
        bid, ask = self.top(token)
        return self.side[(token, "BUY")][bid], self.side[(token, "SELL")][ask]


def events(tape: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(recv_ms, payload text, event) of a tape, array frames flattened."""
    for frame in read_tape(tape):
        obj = orjson.loads(frame.payload)
        for ev in obj if isinstance(obj, list) else [obj]:
            yield frame.recv_ms, frame.payload, ev


def source_rows(db_gz: Path, tmp: Path) -> list[sqlite3.Row]:
    db = tmp / "src.db"
    with gzip.open(db_gz, "rb") as fin, open(db, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = list(con.execute("SELECT p.*, m.up_token_id, m.down_token_id FROM price_updates p "
                            "JOIN markets m ON m.timestamp = p.market_ts ORDER BY p.timestamp_ms, p.id"))
    con.close()
    return rows


def expected_price(millionths: int) -> Decimal:
    """The conversion rule: exact, snapped to the 0.01 tick when within 1e-4 of it."""
    exact = Decimal(millionths) / 1_000_000
    tick = exact.quantize(Decimal("0.01"))
    return tick if abs(tick - exact) <= Decimal("0.0001") else exact


def expected_size(depth: float | None) -> Decimal:
    return Decimal(repr(depth)).quantize(Decimal("0.000001")) if depth and depth > 0 else Decimal(100)


# --- herbalclaw BTC tapes ---------------------------------------------------------------------------------------

@needs_shared
@pytest.mark.parametrize("tape_name", sorted(BTC_TAPES))
def test_btc_tape_replay_reproduces_every_source_row(tape_name: str, tmp_path: Path) -> None:
    rows = source_rows(HERBALCLAW / BTC_TAPES[tape_name], tmp_path)
    evs = list(events(TAPES / tape_name / "frames.jsonl.gz"))
    book, i = RefBook(), 0
    for row in rows:
        while i < len(evs) and evs[i][0] <= row["timestamp_ms"]:
            book.apply(evs[i][2])
            i += 1
        token = row["up_token_id"] if row["side"].lower() in ("up", "yes") else row["down_token_id"]
        bid, ask = book.top(token)
        where = f"row id {row['id']}"
        assert (bid, ask) == (expected_price(row["bid"]), expected_price(row["ask"])), where
        assert abs(bid - Decimal(row["bid"]) / 1_000_000) <= Decimal("0.0001"), where
        assert book.level_sizes(token) == (expected_size(row["bid_depth"]), expected_size(row["ask_depth"])), where
    assert i == len(evs), "frames after the last source row"


@pytest.mark.parametrize("tape_name", sorted(BTC_TAPES))
def test_btc_tape_entries_and_best_bid_ask_match_book(tape_name: str) -> None:
    book, pending_bba = RefBook(), []
    for _, payload, ev in events(TAPES / tape_name / "frames.jsonl.gz"):
        if ev["event_type"] == "best_bid_ask":
            assert payload.count(", ") == 6 and '": ' not in payload
            pending_bba.append(ev)
            continue
        if ev["event_type"] == "book":
            book.apply(ev)
            assert list(ev) == BOOK_KEYS and ", " not in payload and len(ev["hash"]) == 40
            continue
        assert ev["event_type"] == "price_change" and '": ' not in payload
        assert ', "price_changes":[{"asset_id":"' in payload and payload.endswith(', "event_type":"price_change"}')
        assert payload.count('}, {"asset_id"') == len(ev["price_changes"]) - 1
        for ch in ev["price_changes"]:  # each entry carries the top of book right after it (wire meaning)
            book.apply({**ev, "price_changes": [ch]})
            top = book.top(ch["asset_id"])
            assert (Decimal(ch["best_bid"]), Decimal(ch["best_ask"])) == top
            assert top[0] < top[1], "crossed mid-frame"
        assert len(book.side[(ch["asset_id"], "BUY")]) == len(book.side[(ch["asset_id"], "SELL")]) == 1
        for bba in pending_bba:
            assert bba["timestamp"] == ev["timestamp"] and bba["asset_id"] == ev["price_changes"][0]["asset_id"]
            assert (Decimal(bba["best_bid"]), Decimal(bba["best_ask"])) == book.top(bba["asset_id"])
            assert Decimal(bba["spread"]) == Decimal(bba["best_ask"]) - Decimal(bba["best_bid"])
        pending_bba = []
    assert not pending_bba


@pytest.mark.parametrize("tape_name", sorted(BTC_TAPES))
def test_btc_tape_lines_and_markets(tape_name: str) -> None:
    meta = json.loads((TAPES / tape_name / "tape_meta.json").read_text())
    frames = list(read_tape(TAPES / tape_name / "frames.jsonl.gz"))
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1)) and len(frames) == meta["frames"]
    assert all(a.recv_ms <= b.recv_ms for a, b in zip(frames, frames[1:]))
    markets = load_markets(TAPES / tape_name / "markets.json")
    assert len(markets) == meta["markets"]
    for m in markets:
        assert m.synthetic_condition_id and m.condition_id == "0x" + hashlib.sha256(m.slug.encode()).hexdigest()
        assert m.outcomes == ("Up", "Down") and m.end_ms - m.start_ms == 300_000
    assert (TAPES / tape_name / "NOTICE").read_text().count("MIT") >= 1


def test_pinned_tape_is_flagged() -> None:
    meta = json.loads((TAPES / "btc5m-2026-02-17-pm" / "tape_meta.json").read_text())
    assert meta["summary"]["pinned_extremes"] == meta["summary"]["tokens"] == 130
    assert any(w.startswith("PINNED PRICES") for w in meta["warnings"])
    meta_am = json.loads((TAPES / "btc5m-2026-02-18-am" / "tape_meta.json").read_text())
    assert meta_am["summary"]["pinned_extremes"] == 0


@needs_shared
def test_btc_conversion_is_reproducible(tmp_path: Path) -> None:
    conv = load_script("convert_herbalclaw")
    conv.convert(HERBALCLAW / BTC_TAPES["btc5m-2026-02-18-am"], tmp_path, Decimal(100))
    for name in ("frames.jsonl.gz", "markets.json", "tape_meta.json", "NOTICE"):
        assert (tmp_path / name).read_bytes() == (TAPES / "btc5m-2026-02-18-am" / name).read_bytes(), name


def test_price_change_entries_for_every_kind_of_move() -> None:
    conv = load_script("convert_herbalclaw")
    d = Decimal
    old = conv.L1(d("0.50"), d("0.52"), d(10), d(20))
    for new in [conv.L1(d("0.51"), d("0.53"), d(1), d(2)), conv.L1(d("0.40"), d("0.45"), d(10), d(3)),
                conv.L1(d("0.52"), d("0.53"), d(10), d(20)), conv.L1(d("0.30"), d("0.90"), d(10), d(20)),
                conv.L1(d("0.50"), d("0.52"), d(11), d(20))]:
        book = RefBook()
        book.apply({"event_type": "book", "asset_id": "t", "bids": [{"price": "0.5", "size": "10"}],
                    "asks": [{"price": "0.52", "size": "20"}]})
        ev = json.loads(conv.price_change_frame("0xc", "t", 1, old, new))
        for ch in ev["price_changes"]:  # never empty, never crossed mid-frame
            book.apply({"event_type": "price_change", "price_changes": [ch]})
            assert book.top("t")[0] < book.top("t")[1]
        assert book.top("t") == (new.bid, new.ask) and book.level_sizes("t") == (new.bid_size, new.ask_size)


# --- enrico -----------------------------------------------------------------------------------------------------

def test_enrico_payload_hashes_and_markets() -> None:
    tape = TAPES / "enrico-2026-09-24"
    lines = [orjson.loads(x) for x in (tape / "frames.jsonl").read_bytes().splitlines()]
    assert len(lines) == 110
    for rec in lines:
        assert hashlib.sha256(rec["payload"].encode()).hexdigest() == rec["payload_sha256"], rec["seq"]
    markets = load_markets(tape / "markets.json")
    tokens = {t for m in markets for t in m.token_ids}
    assert len(markets) == 14 and len(tokens) == 28
    assert {ev["asset_id"] for _, _, ev in events(tape / "frames.jsonl") if ev["event_type"] == "book"} == tokens
    assert "Copyright (c) 2026 Enrico Bignozzi" in (tape / "LICENSE").read_text()


@needs_shared
def test_enrico_copy_is_byte_identical() -> None:
    assert (TAPES / "enrico-2026-09-24" / "frames.jsonl").read_bytes() == (ENRICO_SRC / "frames.jsonl").read_bytes()
    src = {m["condition_id"]: m for m in json.loads((ENRICO_SRC / "markets.json").read_text())}
    for m in load_markets(TAPES / "enrico-2026-09-24" / "markets.json"):
        assert m.token_ids == (src[m.condition_id]["yes_token"], src[m.condition_id]["no_token"])
        assert m.tick_size == Decimal(str(src[m.condition_id]["tick_size"]))


# --- leaders ----------------------------------------------------------------------------------------------------

@needs_shared
def test_gabagool22_bundle_matches_source_window() -> None:
    with gzip.open(GABAGOOL_SRC, "rb") as fh:
        src = [orjson.loads(line) for line in fh]
    t0 = src[0]["timestamp"]
    window = [r for r in src if r["type"] == "TRADE" and t0 <= r["timestamp"] < t0 + 6 * 3600]
    bundle = load_leader(LEADERS / "gabagool22.jsonl.gz")
    assert len(bundle.rows) == len(window) == bundle.meta["rows"] == 1860
    assert bundle.rows == [{k: v for k, v in r.items() if k not in ("type", "usdcSize")} for r in window]
    size_by_tx = collections.Counter()
    for r in window:
        size_by_tx[r["transactionHash"]] += Decimal(str(r["size"]))
    bundle_by_tx = collections.Counter()
    for r in bundle.rows:
        bundle_by_tx[r["transactionHash"]] += Decimal(str(r["size"]))
    assert bundle_by_tx == size_by_tx
    identical = collections.Counter(orjson.dumps(r) for r in bundle.rows)
    assert sum(n - 1 for n in identical.values()) > 0, "identical fills must all be kept"


def test_gabagool22_meta_and_shape() -> None:
    bundle = load_leader(LEADERS / "gabagool22.jsonl.gz")
    assert bundle.meta["licence"] == "ISC (DevShubham07/DataGABA)" and bundle.meta["synthetic"] is False
    assert bundle.meta["wallet"] == "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
    first = bundle.rows[0]
    assert list(first)[:7] == ["proxyWallet", "side", "asset", "conditionId", "size", "price", "timestamp"]
    assert "type" not in first and "usdcSize" not in first and isinstance(first["price"], float)
    assert "ISC License" in (LEADERS / "LICENSE-gabagool22").read_text()


def recompute_demo(tape: Path) -> list[tuple[str, int, str, int, Decimal]]:
    """(conditionId, outcome index, side, moment_ms, price) from the rule, independently of make_leaders:
    one walk over the tape, reading the books at each market's two moments."""
    markets = load_markets(tape / "markets.json")
    evs = list(events(tape / "frames.jsonl.gz"))
    moments = sorted((m.start_ms + after, leg, m) for m in markets for leg, after in ((0, 45_000), (1, 200_000)))
    book, tops, k = RefBook(), {}, 0
    for at, leg, m in moments:
        while k < len(evs) and evs[k][0] <= at:
            book.apply(evs[k][2])
            k += 1
        try:
            tops[(m.condition_id, leg)] = [book.top(t) for t in m.token_ids] if at <= evs[-1][0] else None
        except (KeyError, ValueError):
            tops[(m.condition_id, leg)] = None  # a token has no book yet at that moment
    out = []
    for m in markets:
        buy, sell = tops[(m.condition_id, 0)], tops[(m.condition_id, 1)]
        if buy is None:
            continue
        idx = min((ask, i) for i, (_, ask) in enumerate(buy))[1]
        out.append((m.condition_id, idx, "BUY", m.start_ms + 45_000, buy[idx][1]))
        if sell is not None:
            out.append((m.condition_id, idx, "SELL", m.start_ms + 200_000, sell[idx][0]))
    return sorted(out, key=lambda leg: leg[3])


@pytest.mark.parametrize("name,tape,wallet", [
    ("demo-synthetic.jsonl", "btc5m-2026-02-18-am", "0x00000000000000000000000000000000000de111"),
    ("demo-synthetic-long.jsonl", "btc5m-2026-02-17-pm", "0x00000000000000000000000000000000000de112"),
])
def test_demo_leader_follows_rule(name: str, tape: str, wallet: str) -> None:
    demo = load_leader(LEADERS / name)
    tape_dir = TAPES / tape
    assert demo.meta["synthetic"] is True and demo.meta["rule"] == DEMO_RULE
    assert demo.meta["tape"] == f"data/tapes/{tape}" and demo.meta["wallet"] == wallet
    assert " ".join(DEMO_RULE.split()) in " ".join((load_script("make_leaders").__doc__ or "").split())
    expected = recompute_demo(tape_dir)
    assert expected, "the rule produced no trade"
    markets = {m.condition_id: m for m in load_markets(tape_dir / "markets.json")}
    assert len(demo.rows) == len(expected) == demo.meta["rows"]
    for row, (cid, idx, side, at, price) in zip(demo.rows, expected):
        m = markets[cid]
        assert (row["conditionId"], row["side"], row["timestamp"]) == (cid, side, at // 1000)
        assert Decimal(str(row["price"])) == price and row["size"] == 10
        assert (row["asset"], row["outcome"], row["outcomeIndex"]) == (m.token_ids[idx], m.outcomes[idx], idx)
        assert (row["slug"], row["title"]) == (m.slug, m.question)
        assert row["transactionHash"] == "0x" + hashlib.sha256(f"{m.slug}:{side}".encode()).hexdigest()
        assert row["proxyWallet"] == wallet
        assert row["name"] == "synthetic-demo-leader"


def test_data_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in (REPO / "data").rglob("*") if p.is_file())
    assert total < 15 * 1024 * 1024
