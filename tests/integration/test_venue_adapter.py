"""libs.common.venue.VenueClient (polymarket-client's SecureClient underneath) against the REAL paper
venue started in-process over HTTP (fake tape, no Redis), for an EOA and a deposit wallet: post-only
BUY, open orders, cancel, rejections, balances, heartbeats, a fill seen in ``trades``, a 429."""
from __future__ import annotations

import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Iterator

import httpx
import pytest
from pydantic import SecretStr

from libs.common.venue import (
    InsufficientBalance, PostOnlyCross, RateLimited, VenueClient, VenueError,
)
from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.rest import create_app, make_http_server
from tests.unit.test_venue_engine_fakes import CID, END_MS, KEY, START_MS, YES, make_engine

D = Decimal
TICK = D("0.01")


@pytest.fixture()
def venue() -> Iterator[SimpleNamespace]:
    engine, books, clock, events = make_engine(start_usdc="1000")
    app = create_app(engine, books, engine.markets, Leaders([], clock, START_MS, END_MS), clock, Faults(),
                     engine.audit)
    server = make_http_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}"
    yield SimpleNamespace(url=url, engine=engine, books=books, clock=clock, http=httpx.Client(base_url=url, timeout=5))
    server.shutdown()
    thread.join(5)
    server.server_close()
    engine.audit.close()


@pytest.fixture(params=["EOA", "DEPOSIT_WALLET"])
def adapter(request: pytest.FixtureRequest, venue: SimpleNamespace) -> Iterator[VenueClient]:
    v = VenueClient(venue.url, SecretStr(KEY), wallet_type=request.param, http_timeout_s=5.0)
    yield v
    v.close()


def test_post_only_buy_rests_is_listed_and_cancels(adapter: VenueClient) -> None:
    v = adapter
    signed = v.sign_limit(YES, "BUY", D("0.48"), D(10), TICK, False)
    ack = v.post_signed(signed, post_only=True)
    assert (ack.order_id, ack.status, ack.trade_ids) == (signed.order_id, "live", ())  # the id known before
    assert [o.id for o in v.open_orders(YES)] == [signed.order_id]
    state = v.get_order(signed.order_id)
    assert state is not None and (state.status, state.side, state.price, state.original_size, state.token_id) == \
        ("LIVE", "BUY", D("0.48"), D(10), YES)
    assert v.collateral() == D(1000) and v.token_balance(YES) == D(0)
    assert v.cancel(signed.order_id).canceled == (signed.order_id,)
    assert v.open_orders(YES) == []
    state = v.get_order(signed.order_id)
    assert state is not None and state.status == "CANCELED"
    assert signed.order_id in v.cancel(signed.order_id).not_canceled


def test_rejections_are_typed_and_unknown_order_is_none(adapter: VenueClient) -> None:
    v = adapter
    with pytest.raises(PostOnlyCross):
        v.post_limit(YES, "BUY", D("0.55"), D(10), True, TICK, False)
    with pytest.raises(InsufficientBalance):
        v.post_limit(YES, "BUY", D("0.48"), D(5000), True, TICK, False)
    assert v.get_order("0x" + "ab" * 32) is None
    with pytest.raises(InsufficientBalance):  # nothing held: nothing to sell
        v.post_limit(YES, "SELL", D("0.60"), D(5), True, TICK, False)
    resting = v.post_limit(YES, "BUY", D("0.40"), D(10), True, TICK, False)
    assert v.cancel_token(YES).canceled == (resting.order_id,)


def test_a_fill_shows_in_order_trades_and_balances(venue: SimpleNamespace, adapter: VenueClient) -> None:
    v = adapter
    signed = v.sign_limit(YES, "BUY", D("0.48"), D(10), TICK, False)
    v.post_signed(signed, post_only=True)
    venue.books.set(YES, [("0.46", "100")], [("0.47", "20")])  # the tape's ask moves down through our bid
    venue.engine.on_tape_update(YES)
    state = v.get_order(signed.order_id)
    assert state is not None and (state.status, state.size_matched) == ("MATCHED", D(10))
    fill, = v.trades(YES)
    assert (fill.order_id, fill.token_id, fill.side, fill.price, fill.size) == (signed.order_id, YES, "BUY",
                                                                               D("0.48"), D(10))
    assert fill.status in ("MATCHED", "MINED", "CONFIRMED") and fill.trade_id and fill.ts_ms > 0
    assert v.trades(YES, after_ms=fill.ts_ms + 1000) == []
    v.refresh_balance(YES)
    assert v.token_balance(YES) == D(10) and v.collateral() == D(1000) - D("4.8")


def test_heartbeats_chain_and_a_429_is_rate_limited(venue: SimpleNamespace, adapter: VenueClient) -> None:
    v = adapter
    key, secret, passphrase = v.api_credentials()  # what the user channel authenticates with
    assert key and secret and passphrase
    first = v.post_heartbeat("")
    assert first and v.post_heartbeat(first)
    r = venue.http.post("/_sim/fault", json={"path": "/order", "method": "POST", "status": 429, "count": 1})
    assert r.status_code == 200
    with pytest.raises(RateLimited):
        v.post_limit(YES, "BUY", D("0.40"), D(10), True, TICK, False)
    assert v.post_limit(YES, "BUY", D("0.40"), D(10), True, TICK, False).status == "live"
    state = v.rate_limit_state()  # the per-signer bucket the venue reports on order answers
    assert state is not None and state.remaining is not None and state.updated_ms > 0


def test_redeem_pays_the_winning_shares(venue: SimpleNamespace, adapter: VenueClient) -> None:
    v = adapter
    ack = v.post_limit(YES, "BUY", D("0.52"), D(10), False, TICK, False)  # crosses the tape's ask: a taker fill
    assert ack.status == "matched" and ack.trade_ids
    fill, = v.trades(YES)
    assert (fill.order_id, fill.side, fill.size) == (ack.order_id, "BUY", D(10))
    r = venue.http.post("/_sim/resolve", json={"condition_id": CID, "winner": YES})
    assert r.status_code == 200, r.text
    result = v.redeem(CID)
    assert (result.condition_id, result.state, result.payout_usd) == (CID, "CONFIRMED", D(10)) and result.tx_id
    v.refresh_balance(YES)
    assert v.token_balance(YES) == D(0)
    again = v.redeem(CID)  # as the CTF contract does: redeeming again succeeds and pays nothing
    assert (again.state, again.payout_usd) == ("CONFIRMED", D(0)) and again.tx_id != result.tx_id
    with pytest.raises(VenueError):  # an unknown market is refused before anything is sent
        v.redeem("0x" + "ee" * 32)
