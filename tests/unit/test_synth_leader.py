"""scripts/synth_leader.py: deterministic for a seed, ``_meta`` says synthetic and the rule, rows match the tape."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from libs.common.tapes import load_leader, load_markets

REPO = Path(__file__).resolve().parents[2]
TAPE = REPO / "data" / "tapes" / "btc5m-2026-02-18-am"  # small (52 frames)
BUNDLED = REPO / "data" / "leaders" / "btc15m-synthetic.jsonl"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synth() -> ModuleType:
    return load_script("synth_leader")


def run(synth: ModuleType, out: Path, seed: int, markets: int | None = None) -> bytes:
    extra = ["--markets", str(markets)] if markets is not None else []
    synth.main([str(TAPE), str(out), "--seed", str(seed), "--per-market", "3", *extra])
    return out.read_bytes()


def test_same_seed_same_bytes_other_seed_other_rows(synth: ModuleType, tmp_path: Path) -> None:
    a, b, c = run(synth, tmp_path / "a.jsonl", 7), run(synth, tmp_path / "b.jsonl", 7), run(synth, tmp_path / "c.jsonl", 8)
    assert a == b and a != c


def test_meta_says_synthetic_with_the_rule_and_rows_follow_it(synth: ModuleType, tmp_path: Path) -> None:
    run(synth, tmp_path / "l.jsonl", 3)
    leader = load_leader(tmp_path / "l.jsonl")
    meta, rows = leader.meta, leader.rows
    assert meta["synthetic"] is True and "best ask" in meta["rule"] and meta["seed"] == 3 and meta["rows"] == len(rows)
    markets = {m.condition_id: m for m in load_markets(TAPE / "markets.json")}
    assert rows and [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    for r in rows:
        m = markets[r["conditionId"]]
        assert r["asset"] == m.token_ids[r["outcomeIndex"]] and r["outcome"] == m.outcomes[r["outcomeIndex"]]
        assert m.start_ms // 1000 <= r["timestamp"] <= (m.end_ms - 60_000) // 1000
        assert r["side"] in ("BUY", "SELL") and r["size"] in (5, 10, 20, 25, 50) and 0 < r["price"] < 1
        assert r["side"] == "SELL" or 0.05 <= r["price"] <= 0.95
    buys = {(r["conditionId"], r["asset"], r["size"]) for r in rows if r["side"] == "BUY"}
    assert all((r["conditionId"], r["asset"], r["size"]) in buys for r in rows if r["side"] == "SELL")


def test_markets_option_keeps_only_the_most_active_markets(synth: ModuleType, tmp_path: Path) -> None:
    run(synth, tmp_path / "l.jsonl", 3, markets=2)
    leader = load_leader(tmp_path / "l.jsonl")
    assert leader.meta["markets"] == 2 and len({r["conditionId"] for r in leader.rows}) <= 2


@pytest.mark.timeout(300)
def test_bundled_btc15m_leader_is_reproduced_byte_for_byte(synth: ModuleType, tmp_path: Path) -> None:
    """data/leaders/btc15m-synthetic.jsonl = synth_leader.py data/tapes/btc15m-2026-09-28 --seed 1 --per-market 4."""
    meta = load_leader(BUNDLED).meta
    assert meta["synthetic"] is True and meta["tape"] == "data/tapes/btc15m-2026-09-28" and meta["per_market"] == 4
    synth.main([str(REPO / meta["tape"]), str(tmp_path / "l.jsonl"), "--seed", "1", "--per-market", "4"])
    assert (tmp_path / "l.jsonl").read_bytes() == BUNDLED.read_bytes()
