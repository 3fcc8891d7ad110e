"""The paper venue's data-api ``/v2/trades`` replaying the real gabagool22 rows (1860 fills, many
identical): polymarket-client's own ``list_trades`` parses every row and pages to the end, the
venue's cursor pages stay put while newer rows appear, bad parameters are refused naming them, and
signal_ingest polling the venue through v2 (and the v1 fallback) publishes every fill exactly once
across a restart (count and size per transaction hash equal to the source)."""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import polymarket
import pytest
from flask import Flask
from redis import Redis
from werkzeug.serving import make_server

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from libs.common.settings import load_settings
from libs.common.tapes import load_leader
from services.signal_ingest.config import GABAGOOL22, IngestSettings, LeaderTarget
from services.signal_ingest.data_api import DataApi
from services.signal_ingest.service import SignalIngest
from services.venue_sim import data_api
from services.venue_sim.leaders import Leaders

LEADER = Path(__file__).resolve().parents[2] / "data/leaders/gabagool22.jsonl.gz"
SOURCE = load_leader(LEADER).rows
CALLS: list[tuple[str, Any]] = []
FIRST_MS, LAST_MS = SOURCE[0]["timestamp"] * 1000, SOURCE[-1]["timestamp"] * 1000


class Venue:
    """The venue's data-api blueprint over the real leader file, on a loopback HTTP server; the
    file starts inside the tape span, so rows are served at their recorded timestamps."""

    def __init__(self, now_ms: int) -> None:
        self.clock = FakeClock(now=now_ms)
        leaders = Leaders([LEADER], self.clock, FIRST_MS, LAST_MS)
        app = Flask("venue-data-api")
        app.register_blueprint(data_api.blueprint(None, None, {}, leaders, self.clock), url_prefix="/data-api")
        self.http = app.test_client()
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.root = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def v2(self, **params: Any) -> Any:
        return self.http.get("/data-api/v2/trades", query_string=params)


@pytest.fixture()
def venue() -> Iterator[Venue]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    v = Venue(LAST_MS + 1000)
    yield v
    v.server.shutdown()


def per_tx(pairs: list[tuple[Any, Any]]) -> dict[str, tuple[int, Decimal]]:
    out: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for tx, size in pairs:
        out[str(tx)][0] += 1
        out[str(tx)][1] += Decimal(str(size))
    return {k: (n, s) for k, (n, s) in out.items()}


def sdk_env(root: str) -> polymarket.Environment:
    """An SDK environment whose data-api is the venue's (libs.common.sdk_env when present)."""
    try:
        from libs.common.sdk_env import paper_urls, sdk_environment
        return sdk_environment(**paper_urls(root, "ws://127.0.0.1:9"))
    except ImportError:
        from polymarket._internal.environment import PRODUCTION_CONFIG, create_environment
        cfg = dataclasses.replace(PRODUCTION_CONFIG, data_url=f"{root}/data-api")
        return create_environment(name="paper", config=cfg)


def test_sdk_list_trades_parses_every_row_and_pages_to_the_end(venue: Venue) -> None:
    client = polymarket.PublicClient(sdk_env(venue.root))
    pages = list(client.list_trades(user=GABAGOOL22, taker_only=False, page_size=200))
    items = [t for p in pages for t in p.items]
    assert len(pages) == math.ceil(len(SOURCE) / 200) and not pages[-1].has_more
    assert all(p.has_more for p in pages[:-1])
    assert len(items) == len(SOURCE)
    assert all(a.timestamp >= b.timestamp for a, b in zip(items, items[1:])), "newest first"
    assert per_tx([(t.transaction_hash, t.size) for t in items]) == \
        per_tx([(r["transactionHash"], r["size"]) for r in SOURCE])
    assert Counter((t.asset_id, t.condition_id, t.outcome, t.wallet) for t in items) == \
        Counter((r["asset"], r["conditionId"], r["outcome"], r["proxyWallet"]) for r in SOURCE)
    market = SOURCE[0]["conditionId"]
    mine = list(client.list_trades(user=GABAGOOL22, condition_id=market, page_size=1000).iter_items())
    assert len(mine) == sum(r["conditionId"] == market for r in SOURCE)
    assert list(client.list_trades(user=GABAGOOL22, side="SELL").iter_items()) == []


def test_cursor_pages_do_not_shift_while_newer_rows_appear(venue: Venue) -> None:
    venue.clock.now = FIRST_MS + 3_600_000
    first = venue.v2(user=GABAGOOL22, limit=50).get_json()
    venue.clock.advance(3_600_000)  # an hour of newer fills become visible at the top
    second = venue.v2(user=GABAGOOL22, limit=50, cursor=first["pagination"]["next_cursor"]).get_json()
    newest_first = sorted(SOURCE, key=lambda r: -r["timestamp"])  # equal seconds keep file order (leaders.py)
    visible_then = [data_api.v2_row(r) for r in newest_first if r["timestamp"] * 1000 <= FIRST_MS + 3_600_000]
    assert first["data"] + second["data"] == visible_then[:100]


def test_taker_only_is_accepted_but_leader_files_have_no_maker_flag(venue: Venue) -> None:
    assert venue.v2(user=GABAGOOL22, taker_only="true").get_json() == \
        venue.v2(user=GABAGOOL22, taker_only="false").get_json() == venue.v2(user=GABAGOOL22).get_json()


def test_time_and_amount_filters(venue: Venue) -> None:
    ts = SOURCE[100]["timestamp"]
    got = venue.v2(user=GABAGOOL22, start=ts, end=ts, limit=1000).get_json()["data"]
    assert len(got) == sum(r["timestamp"] == ts for r in SOURCE) > 0
    big = venue.v2(user=GABAGOOL22, filter_type="CASH", filter_amount="5", limit=1000).get_json()["data"]
    assert len(big) == sum(Decimal(str(r["size"])) * Decimal(str(r["price"])) >= 5 for r in SOURCE)


@pytest.mark.parametrize("params,named", [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"cursor": "bm9wZQ"}, "cursor"),
    ({"taker_only": "maybe"}, "taker_only"), ({"event_id": "7"}, "event_id"), ({"side": "HOLD"}, "side"),
    ({"filter_type": "CASH"}, "filter_type"), ({"filter_type": "CASH", "filter_amount": "-1"}, "filter_amount"),
    ({"start": "yesterday"}, "start"),
])
def test_bad_v2_parameters_are_refused_naming_them(venue: Venue, params: dict[str, str], named: str) -> None:
    resp = venue.v2(user=GABAGOOL22, **params)
    assert resp.status_code == 400 and named in resp.get_json()["error"]


def ingest(r: Redis, venue: Venue, version: str) -> tuple[SignalIngest, DataApi]:
    settings = load_settings(IngestSettings, leaders=[LeaderTarget(account=GABAGOOL22)],
                             data_api_url=f"{venue.root}/data-api", data_api_version=version, page_size=40,
                             max_pages=100, poll_interval_s=1.0, lookback_s=0)
    api = DataApi(settings.data_api_url, 5.0)
    for name in ("trades", "trades_v2"):  # spy: which endpoint, and with which cursor / offset
        real = getattr(api, name)
        setattr(api, name, lambda *a, _real=real, _name=name: CALLS.append((_name, a[2])) or _real(*a))
    svc = SignalIngest(r, settings, venue.clock, Journal(r, "signal_ingest", venue.clock), api, "si-test",
                       random.Random(3))
    return svc, api


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_poller_ingests_every_real_row_exactly_once_across_a_restart(r: Redis, venue: Venue, version: str) -> None:
    venue.clock.now = FIRST_MS - 5_000  # first run before the first fill: nothing is history
    CALLS.clear()
    svc, api = ingest(r, venue, version)
    step = 0
    while venue.clock.now_ms() <= LAST_MS + 1000:
        if step == 30:  # the process is replaced mid-replay: the next one resumes from the cursor
            api.close()
            svc, api = ingest(r, venue, version)
        svc.step()
        venue.clock.advance(97_000 if step % 3 else 1_000)  # uneven polls: some land mid-second bursts
        step += 1
    svc.step()
    api.close()
    entries = [f for _, f in r.xrange(keys.SIG_STREAM)]
    assert len(entries) == len(SOURCE) and len({e["signal_id"] for e in entries}) == len(entries)
    assert per_tx([(e["tx_hash"], e["size"]) for e in entries]) == \
        per_tx([(r_["transactionHash"], r_["size"]) for r_ in SOURCE])
    assert r.xlen(keys.SIG_DEAD) == 0
    assert {name for name, _ in CALLS} == {"trades_v2" if version == "v2" else "trades"}
    if version == "v2":
        assert any(cursor is not None for _, cursor in CALLS), "no poll followed a next_cursor"
