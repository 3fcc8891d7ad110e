"""Issue 3 against the real paper venue: the 60 s raw capture replayed through venue_sim and the
md_gateway process; then the connection is cut, made half-open and the subscription set changed,
and each time the Redis books return to the venue's REST /book within the verify interval while no
reader sees a seq go backwards."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from redis import Redis

from libs.common import keys
from libs.common.tapes import read_tape
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import SeqMonitor, eventually, stream_seqs_increase

REPO = Path(__file__).resolve().parents[2]
TAPE = REPO / "data/tapes/enrico-2026-09-24"
VERIFY_S = 3


def capture() -> tuple[dict[str, tuple[str, str]], dict[str, list[tuple[str, str]]]]:
    """(final best bid/ask per token, every best_bid/best_ask pair per token in order) of the capture."""
    final: dict[str, tuple[str, str]] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for frame in read_tape(TAPE / "frames.jsonl"):
        payload = json.loads(frame.payload)
        for ev in payload if isinstance(payload, list) else [payload]:
            if ev["event_type"] == "book":
                top = (ev["bids"][-1]["price"] if ev["bids"] else "", ev["asks"][-1]["price"] if ev["asks"] else "")
                final[ev["asset_id"]] = top
                pairs.setdefault(ev["asset_id"], []).append(top)
            for ch in ev.get("price_changes", []):
                top = (ch["best_bid"], ch["best_ask"])
                final[ch["asset_id"]] = top
                if pairs.setdefault(ch["asset_id"], [top])[-1] != top:
                    pairs[ch["asset_id"]].append(top)
    return final, pairs


def redis_top(r: Redis, token: str) -> tuple[Decimal, Decimal] | None:
    h = r.hgetall(keys.md_book(token))
    if not h or not h.get("best_bid") or not h.get("best_ask"):
        return None
    return Decimal(h["best_bid"]), Decimal(h["best_ask"])


def rest_top(clob_url: str, token: str) -> tuple[Decimal, Decimal] | None:
    """The venue's REST best bid/ask (best is the LAST level on the wire); None while a side is empty."""
    book = httpx.get(f"{clob_url}/book", params={"token_id": token}, timeout=5).json()
    if not book.get("bids") or not book.get("asks"):
        return None
    return Decimal(book["bids"][-1]["price"]), Decimal(book["asks"][-1]["price"])


@pytest.fixture()
def run(tmp_path: Path) -> Iterator[PaperRun]:
    pr = PaperRun(PaperConfig(tape=TAPE, leaders=(REPO / "data/leaders/demo-synthetic.jsonl",), speed=4.0,
                              log_dir=tmp_path, services=("md_gateway",),
                              service_env={"venue_sim": {"PB_START_DELAY_MS": "4000"},
                                           "md_gateway": {"PB_VERIFY_INTERVAL_S": str(VERIFY_S)}}))
    try:
        pr.start()
        yield pr
    finally:
        pr.stop()


@pytest.mark.timeout(180)
def test_capture_replay_final_books_and_every_pair_in_order(run: PaperRun) -> None:
    r = run.r
    assert r is not None
    final, pairs = capture()
    r.sadd(keys.MD_SUBS, *final)
    eventually(lambda: httpx.get(f"{run.clob_url}/_sim/ws/state", timeout=5).json()["replay"].get("done"), 90, "replay done")
    def all_final() -> bool:
        return all(redis_top(r, t) == (Decimal(b), Decimal(a)) for t, (b, a) in final.items())
    eventually(all_final, 20, "every Redis book equal to the capture's final best bid/ask")
    for token, want in pairs.items():
        stream_seqs_increase(r, token)
        seen = [(f["best_bid"], f["best_ask"]) for _, f in r.xrange(keys.md_stream(token))]
        it = iter([(Decimal(b), Decimal(a)) for b, a in seen if b and a])
        assert all(any(x == (Decimal(b), Decimal(a)) for x in it) for b, a in want), \
            f"{token}: the capture's pairs {want} are not all in the stream, in order: {seen}"


@pytest.mark.timeout(180)
def test_cut_half_open_and_resubscribe_return_to_rest_books_without_seq_going_back(run: PaperRun) -> None:
    r = run.r
    assert r is not None
    final, _ = capture()
    tokens = sorted(final)
    r.sadd(keys.MD_SUBS, *tokens[:20])
    monitor = SeqMonitor(r)
    monitor.start()
    def books_match(subset: list[str]) -> bool:
        return all((top := rest_top(run.clob_url, t)) is not None and redis_top(r, t) == top for t in subset)
    try:
        eventually(lambda: books_match(tokens[:20]), 60, "books equal to REST after subscribing")
        reconnects = int(r.hget(keys.MD_GATEWAY, "reconnects") or 0)
        httpx.post(f"{run.clob_url}/_sim/ws/drop", json={}, timeout=5).raise_for_status()
        eventually(lambda: int(r.hget(keys.MD_GATEWAY, "reconnects") or 0) > reconnects, 30, "a reconnect after the cut")
        eventually(lambda: books_match(tokens[:20]), VERIFY_S * 3 + 10, "books equal to REST after the cut")
        reconnects = int(r.hget(keys.MD_GATEWAY, "reconnects") or 0)
        httpx.post(f"{run.clob_url}/_sim/ws/silence", json={"seconds": 60}, timeout=5).raise_for_status()
        eventually(lambda: int(r.hget(keys.MD_GATEWAY, "reconnects") or 0) > reconnects, 60, "half-open socket replaced")
        eventually(lambda: books_match(tokens[:20]), VERIFY_S * 3 + 10, "books equal to REST after half-open")
        r.srem(keys.MD_SUBS, *tokens[:5])
        r.sadd(keys.MD_SUBS, *tokens[20:])
        now_wanted = tokens[5:]
        eventually(lambda: books_match(now_wanted), VERIFY_S * 3 + 20, "books equal to REST after the subscription change")
        eventually(lambda: int(r.hget(keys.MD_GATEWAY, "subscribed") or 0) == len(now_wanted), 20, "unsubscribed tokens dropped")
    finally:
        monitor.stop_flag.set()
        monitor.join(5)
    assert monitor.samples > 0 and monitor.backwards == [], monitor.backwards
    for t in tokens:
        stream_seqs_increase(r, t)
