"""Issue 2, the long tape: the first hour of ``btc5m-2026-02-17-pm`` (12 consecutive BTC 5-minute
markets, each ending after 5 minutes) with its synthetic leader, every service as a process, 100x.

Prices on this tape are pinned at 0.01 / 0.99 (its recorder stored the worst levels), so nothing
can fill; what it exercises is the market-end path the legacy got wrong: every token the leader
buys is activated, quoted post-only, its entry cancelled in the sell-only window, released flat and
cleaned up; every leader SELL finds no position (IGNORED_NO_POSITION); no order stays live on the
venue and no clean-up is left behind."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

import pytest

from libs.common import keys
from libs.common.tapes import load_leader, load_markets, read_tape
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
LONG = REPO / "data" / "tapes" / "btc5m-2026-02-17-pm"
LEADER = REPO / "data" / "leaders" / "demo-synthetic-long.jsonl"
MARKETS = 12


def first_hour(tmp: Path) -> tuple[Path, Path, list[str]]:
    """A tape dir and leader file holding the long tape's first ``MARKETS`` markets; their BUY tokens."""
    markets = sorted(load_markets(LONG / "markets.json"), key=lambda m: m.start_ms)[:MARKETS]
    cut_ms = markets[-1].end_ms
    tape = tmp / "tape"
    tape.mkdir()
    raw = json.loads((LONG / "markets.json").read_text())
    keep = {m.condition_id for m in markets}
    (tape / "markets.json").write_text(json.dumps([m for m in raw if m["condition_id"] in keep]))
    with gzip.open(tape / "frames.jsonl.gz", "wt") as out:
        for f in read_tape(LONG / "frames.jsonl.gz"):
            if f.recv_ms < cut_ms:
                out.write(json.dumps({"seq": f.seq, "recv_ms": f.recv_ms, "payload": f.payload}) + "\n")
    leader = load_leader(LEADER)
    rows = [r for r in leader.rows if r["conditionId"] in keep]
    path = tmp / "leader.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [{"_meta": leader.meta}, *rows]) + "\n")
    return tape, path, sorted({r["asset"] for r in rows if r["side"] == "BUY"})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PaperRun, list[str]]]:
    tmp = tmp_path_factory.mktemp("long")
    tape, leader, bought = first_hour(tmp)
    pr = PaperRun(PaperConfig(tape=tape, leaders=(leader,), speed=100.0, workers=2, log_dir=tmp / "logs"))
    try:
        pr.start()
        yield pr, bought
    finally:
        pr.stop()


@pytest.mark.timeout(240)
def test_every_market_end_is_cleaned_up_and_nothing_is_left_behind(run: tuple[PaperRun, list[str]]) -> None:
    pr, bought = run
    r = pr.r
    assert r is not None and len(bought) == MARKETS

    def all_cleaned() -> bool:
        return all(r.hget(keys.tok(t), "state") in ("closed", "cooldown", "resolved") for t in bought) and \
            not r.smembers(keys.SCHED_TRACKED) & set(bought)

    eventually(all_cleaned, 120, "every bought token closed and no longer tracked")
    audit = pr.audit()
    accepted = {a["order_id"]: a for a in audit if a["kind"] == "order_accepted"}
    ended = {a["order_id"] for a in audit if a["kind"] in ("cancel", "fill")}
    assert {a["token_id"] for a in accepted.values()} == set(bought)
    assert all(a["side"] == "BUY" and a["post_only"] is True for a in accepted.values())
    assert set(accepted) <= ended, "an order was left live on the venue"
    assert len([a for a in audit if a["kind"] == "market_end"]) >= MARKETS - 1
    assert not r.smembers(keys.SCHED_OFFERS) & set(bought), "a finished token is still offered"
    assert not any(r.exists(keys.lease(t)) and r.hget(keys.lease(t), "worker") for t in bought)
    counts = r.hgetall(keys.COUNTS)
    assert int(counts.get("IGNORED_NO_POSITION", 0)) >= MARKETS - 1  # the leader's SELLs: we held nothing
    summary = pr.summary()
    assert summary["tokens_activated"] == MARKETS and summary["orders_posted"] >= MARKETS
    assert summary["fills"] == 0 and summary["errors"] == {}, summary
