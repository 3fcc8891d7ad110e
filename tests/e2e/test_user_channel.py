"""The user channel end to end: Redis, the venue and every service (user_feed included) as processes
on the default real tape. Order states come from the user channel: while it is up the workers do not
poll orders (the venue counts ``GET /data/order/<id>`` requests: only the one read a cancel makes
per order is allowed), while it is cut they fall back to polling; and cutting it again and again
mid-run loses no fill: every fill in the venue's audit log is in our journal (FILL, summed per order,
once), and the per-token fill ledger holds each trade once with the venue's size.
"""
from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx
import orjson
import pytest

from libs.common import keys
from services.ops.paper import DEMO_TAPE, PaperConfig, PaperRun
from tests.e2e.helpers import eventually, paper_run

REPO = Path(__file__).resolve().parents[2]
GET_ORDER = "GET /data/order/<order_id>"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperRun]:
    cfg = PaperConfig(tape=DEMO_TAPE, leaders=(REPO / "data/leaders/demo-synthetic.jsonl",), speed=20.0,
                      workers=2, log_dir=tmp_path_factory.mktemp("userchan"),
                      # a cut channel stays down 1.5-3 s, long enough to see the workers poll meanwhile
                      service_env={"user_feed": {"PB_BACKOFF_MIN_S": "3", "PB_BACKOFF_MAX_S": "3"}})
    with paper_run(cfg) as pr:
        yield pr


def get_orders(run: PaperRun) -> int:
    state = httpx.get(f"{run.clob_url}/_sim/ws/state", timeout=5).json()
    return int(state["requests"].get(GET_ORDER, 0))


def feed_up(run: PaperRun) -> bool:
    assert run.r is not None
    h = run.r.hgetall(keys.USER_FEED)
    return h.get("connected") == "1" and h.get("backfill_pending") == "0"


def count(run: PaperRun, kind: str) -> int:
    return sum(1 for a in run.audit() if a["kind"] == kind)


def journal(run: PaperRun, reason: str) -> list[dict[str, str]]:
    assert run.r is not None
    return [f for _, f in run.r.xrange(keys.EVENTS) if f.get("reason") == reason]


@pytest.mark.timeout(300)
def test_orders_come_from_the_user_channel_and_a_cut_channel_loses_no_fill(run: PaperRun) -> None:
    assert run.r is not None
    eventually(lambda: feed_up(run), 60, "the user feed connected and backfilled")
    eventually(lambda: journal(run, "ORDER_POSTED"), 90, "a worker posted an order")

    # channel up: 10 s of trading with no per-order polling (a cancel may read its order once)
    g0, c0, t0 = get_orders(run), count(run, "cancel"), time.monotonic()
    run.wait(10)
    up_gets, up_cancels, up_s = get_orders(run) - g0, count(run, "cancel") - c0, time.monotonic() - t0
    assert feed_up(run), "the channel stayed up"
    assert up_gets <= up_cancels + 2, f"{up_gets} order polls with {up_cancels} cancels while the channel was up"

    # cut the channel every few seconds until fills happened (at most ~150 s of replay)
    down_gets, down_s, cuts = 0, 0.0, 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and (cuts < 3 or count(run, "fill") < 2):
        g, t = get_orders(run), time.monotonic()
        assert httpx.post(f"{run.clob_url}/_sim/ws/drop", json={"channel": "user"}, timeout=5).json()["dropped"] == 1
        cuts += 1
        eventually(lambda: feed_up(run), 30, "the user feed reconnected and backfilled", interval_s=0.05)
        down_gets, down_s = down_gets + get_orders(run) - g, down_s + time.monotonic() - t
        run.wait(3)
    print(f"GET /data/order: channel up {up_gets} in {up_s:.1f}s ({up_cancels} cancels); "
          f"channel cut {cuts}x: {down_gets} in {down_s:.1f}s")
    assert down_gets > up_gets, "the workers fall back to polling while the channel is down"
    assert count(run, "fill") >= 1, "the run produced fills"
    reconnects = int(run.r.hget(keys.USER_FEED, "reconnects") or 0)
    assert reconnects >= cuts

    run.sup.stop_services()  # workers cancel and record their final fills; Redis stays up
    audit = run.audit()
    fills = [a for a in audit if a["kind"] == "fill"]
    venue_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for a in fills:
        venue_by_order[a["order_id"]] += Decimal(str(a["size"]))
    ours_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in journal(run, "FILL"):
        ours_by_order[f["order_id"]] += Decimal(f["size"])
    assert dict(ours_by_order) == dict(venue_by_order), "every venue fill is a FILL in our journal, once"
    by_trade = {(a["trade_id"], a["order_id"]): Decimal(str(a["size"])) for a in fills}
    ledger = {k: orjson.loads(v) for t in {a["token_id"] for a in fills} for k, v in run.r.hgetall(keys.fills(t)).items()}
    assert ledger, "fills reached the workers through the channel"
    for key, rec in ledger.items():
        trade_id, order_id = key.split(":", 1)
        assert Decimal(rec["size"]) == by_trade[(trade_id, order_id)], f"ledger {key} differs from the venue"
        assert Decimal(rec["counted"]) <= Decimal(rec["size"])
    print(f"fills: venue {len(fills)}, journal {len(journal(run, 'FILL'))}, ledger {len(ledger)}")
    assert int(run.r.hget(keys.SUMMARY, "fills") or 0) == len(journal(run, "FILL"))
