"""The venue driven by polymarket-client's SecureClient UNCHANGED, over HTTP (fake tape, no Redis):
API keys for the four wallet types, post-only orders, open orders, cancels, balances, heartbeats,
tampered signatures, session keys, rate limits and MATCHED -> MINED -> CONFIRMED settlement.
The SDK is aimed at the venue with libs.common.sdk_env (the adapter builds its client the same way)."""
from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from eth_account import Account
from polymarket import RateLimitError, RequestRejectedError, SecureClient
from polymarket._internal.actions.orders.place import _refresh_balance_allowance_sync
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.clob_types import OrderArgsV2, OrderPayload, OrderType, PartialCreateOrderOptions

from libs.common.sdk_env import paper_urls, sdk_environment
from services.venue_sim.engine import TradeEvent
from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.rest import create_app, make_http_server
from services.venue_sim.wallets import derive_wallets
from tests.unit.test_venue_engine_fakes import CID, KEY, NO, OTHER_KEY, YES, make_engine

SESSION_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # Hardhat account #2
OWNER, OTHER = Account.from_key(KEY).address, Account.from_key(OTHER_KEY).address


def _wallet(owner: str, kind: int) -> str:
    return next(w.address for w in derive_wallets(owner) if w.kind == kind and not w.legacy)


def _serve(fee_schedule: Any = None, **exchange: Any) -> Iterator[SimpleNamespace]:
    engine, books, clock, events = make_engine(start_usdc="1000", **exchange)
    if fee_schedule is not None:  # before the app is made: the market-info endpoints index the markets
        for token in (YES, NO):
            engine.markets[token] = dataclasses.replace(engine.markets[token], fee_schedule=fee_schedule)
    app = create_app(engine, books, engine.markets, Leaders([], clock, 0, 1), clock, Faults(), engine.audit)
    server = make_http_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}"
    env = sdk_environment(**paper_urls(url, "ws://127.0.0.1:9"))
    yield SimpleNamespace(url=url, env=env, engine=engine, books=books, clock=clock, events=events)
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture()
def venue() -> Iterator[SimpleNamespace]:
    yield from _serve()


def _client(v: SimpleNamespace, key: str, wallet: str | None, **kw: Any) -> SecureClient:
    return SecureClient.create(private_key=key, wallet=wallet, environment=v.env, **kw)


def _tamper(signed: Any, at: int = 10) -> Any:
    """``signed`` with one bit of its signature flipped (byte 10: in r, the ECDSA part of every
    owner signature; a session wrapper holds its ECDSA part from byte 128 on)."""
    sig = bytearray(bytes.fromhex(signed.signature[2:]))
    sig[at] ^= 0x01
    return dataclasses.replace(signed, signature="0x" + sig.hex())


@pytest.mark.parametrize("key,wallet,kind", [(KEY, OWNER, "EOA"), (OTHER_KEY, None, "DEPOSIT_WALLET")])
def test_eoa_and_deposit_wallet_accounts_trade_and_read(venue: SimpleNamespace, key: str, wallet: str | None,
                                                        kind: str) -> None:
    client = _client(venue, key, wallet)
    signer = Account.from_key(key).address
    expected_wallet = signer if kind == "EOA" else _wallet(signer, 3)  # wallet=None: the beacon deposit wallet
    assert (client._ctx.wallet_type, client._ctx.wallet) == (kind, expected_wallet)
    assert client._ctx.credentials.key in client.fetch_api_keys()
    placed = client.place_limit_order(token_id=YES, price="0.45", size="10", side="BUY", post_only=True)
    assert placed.ok and placed.status == "live" and placed.trade_ids == ()
    listed = list(client.list_open_orders().iter_items())
    assert [(o.id, o.maker_address, o.price, o.status) for o in listed] == [
        (placed.order_id, expected_wallet, Decimal("0.45"), "LIVE")]
    assert client.get_order(order_id=placed.order_id).original_size == Decimal("10")
    assert client.get_balance_allowance(asset_type="COLLATERAL").balance == 1_000_000_000  # held by the wallet
    assert venue.engine.ledger.accounts[expected_wallet.lower()].collateral == Decimal("1000")
    assert client.get_balance_allowance(asset_type="CONDITIONAL", token_id=YES).balance == 0
    assert client.cancel_order(order_id=placed.order_id).canceled == (placed.order_id,)
    assert list(client.list_open_orders().iter_items()) == []
    first = client.send_order_heartbeat(heartbeat_id="")
    assert client.send_order_heartbeat(heartbeat_id=first.heartbeat_id).heartbeat_id


def test_proxy_and_safe_accounts_place_and_cancel(venue: SimpleNamespace) -> None:
    for key, kind, name in [(KEY, 1, "POLY_PROXY"), (OTHER_KEY, 2, "GNOSIS_SAFE")]:
        wallet = _wallet(Account.from_key(key).address, kind)
        client = _client(venue, key, wallet)
        assert client._ctx.wallet_type == name
        signed = client.create_limit_order(token_id=NO, price="0.4", size="20", side="BUY", post_only=True)
        assert (signed.signature_type, signed.maker) == (kind, wallet)
        placed = client.post_order(signed)
        assert placed.ok and venue.engine.orders[placed.order_id].maker == wallet
        again = client.place_limit_order(token_id=NO, price="0.41", size="20", side="BUY", post_only=True)
        assert client.cancel_orders(order_ids=[placed.order_id]).canceled == (placed.order_id,)
        assert client.cancel_market_orders(asset_id=NO).canceled == (again.order_id,)
        assert client.cancel_all().canceled == ()
        _refresh_balance_allowance_sync(client, signed)  # the SDK's balance update, then its read
        assert client.get_balance_allowance(asset_type="COLLATERAL").balance == 1_000_000_000


@pytest.mark.parametrize("key,wallet_kind", [(KEY, 0), (KEY, 1), (OTHER_KEY, 2), (OTHER_KEY, 3)])
def test_a_tampered_signature_is_refused_for_every_wallet_type(venue: SimpleNamespace, key: str,
                                                               wallet_kind: int) -> None:
    signer = Account.from_key(key).address
    client = _client(venue, key, _wallet(signer, wallet_kind))
    signed = client.create_limit_order(token_id=YES, price="0.45", size="10", side="BUY", post_only=True)
    assert signed.signature_type == wallet_kind
    with pytest.raises(RequestRejectedError) as exc:
        client.post_order(_tamper(signed))
    assert (exc.value.status, str(exc.value)) == (400, "invalid signature")
    assert client.post_order(signed).ok  # the untouched order is fine


def test_session_key_orders_need_an_authorization(venue: SimpleNamespace) -> None:
    wallet = _wallet(OWNER, 3)
    client = _client(venue, SESSION_KEY, wallet)  # not derivable from the key: the SDK's session-key path
    assert (client._ctx.signer_type, client._ctx.wallet_type) == ("SESSION_KEY", "DEPOSIT_WALLET")
    signed = client.create_limit_order(token_id=YES, price="0.45", size="10", side="BUY", post_only=True)
    with pytest.raises(RequestRejectedError) as exc:
        client.post_order(signed)
    assert (exc.value.status, str(exc.value)) == (400, "the order owner has to be the owner of the API KEY")
    venue.engine.wallets.authorize_session_key(wallet, Account.from_key(SESSION_KEY).address)
    placed = client.post_order(signed)
    assert placed.ok and venue.engine.orders[placed.order_id].maker == wallet
    another = client.create_limit_order(token_id=YES, price="0.44", size="10", side="BUY")
    for at in (10, 128 + 10):  # the wrapper's signer id; the session key's ECDSA signature
        with pytest.raises(RequestRejectedError) as exc:
            client.post_order(_tamper(another, at))
        assert str(exc.value) == "invalid signature"
    assert client.get_balance_allowance(asset_type="COLLATERAL").balance == 1_000_000_000


def test_trades_settle_matched_mined_confirmed(tmp_path: Any) -> None:
    for v in _serve(settle_mined_ms=1_000, settle_confirmed_ms=2_000):
        client = _client(v, KEY, OWNER)
        placed = client.place_limit_order(token_id=YES, price="0.52", size="10", side="BUY")  # crosses: taker
        assert placed.status == "matched" and len(placed.trade_ids) == 1 and placed.transactions_hashes == ()
        seen = []
        for step_ms in (0, 1_000, 2_000):
            v.clock.now += step_ms
            (trade,) = list(client.list_account_trades().iter_items())
            seen.append((trade.status, trade.transaction_hash is not None))
        assert seen == [("MATCHED", False), ("MINED", True), ("CONFIRMED", True)]
        updates = [e.trade["status"] for e in v.events if isinstance(e, TradeEvent) and e.settlement]
        assert updates == ["MINED", "CONFIRMED"]  # user-channel trade events with the new status
        assert client.wait_for_order_fill_settlement(placed, timeout_s=2) == (trade.transaction_hash,)


def test_rate_limit_answers_429_and_the_sdk_raises_rate_limit_error() -> None:
    for v in _serve(order_rate_capacity=2, order_rate_per_s=1):
        updates: list[Any] = []
        client = _client(v, KEY, OWNER, on_rate_limit_update=updates.append)
        for price in ("0.40", "0.41"):
            client.place_limit_order(token_id=YES, price=price, size="10", side="BUY", post_only=True)
        assert [u.remaining for u in updates] == [1, 0] and updates[0].tier == "paper"
        with pytest.raises(RateLimitError) as exc:
            client.place_limit_order(token_id=YES, price="0.42", size="10", side="BUY", post_only=True)
        assert exc.value.retry_after is not None and exc.value.retry_after >= 1
        assert len(v.engine.orders) == 2  # the refused order never reached the engine
        assert client.cancel_all().canceled  # cancels use their own bucket


def test_py_clob_client_v2_still_places_and_cancels(venue: SimpleNamespace) -> None:
    client = ClobClient(venue.url, chain_id=137, key=KEY)
    client.set_api_creds(client.create_or_derive_api_key())
    resp = client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.47, size=10, side="BUY"),
                                        PartialCreateOrderOptions(tick_size="0.01"), OrderType.GTC, post_only=True)
    assert resp["status"] == "live"
    assert client.cancel_order(OrderPayload(orderID=resp["orderID"]))["canceled"] == [resp["orderID"]]
    assert venue.engine.markets[YES].condition_id == CID


def test_public_reads_and_market_parameters(venue: SimpleNamespace) -> None:
    from polymarket._internal.actions.orders.market_data import fetch_neg_risk_sync, fetch_tick_size_sync
    client = _client(venue, KEY, OWNER)
    book = client.get_order_book(token_id=YES)
    assert (book.bids[-1].price, book.asks[-1].price, book.tick_size) == (Decimal("0.48"), Decimal("0.52"),
                                                                         Decimal("0.01"))
    assert client.get_midpoint(token_id=YES) == Decimal("0.5") and client.get_spread(token_id=YES) == Decimal("0.04")
    assert (client.get_price(token_id=YES, side="BUY"), client.get_price(token_id=YES, side="SELL")) == (
        Decimal("0.48"), Decimal("0.52"))
    assert client.get_last_trade_price(token_id=YES) is None  # nothing traded yet
    assert fetch_tick_size_sync(client._ctx, token_id=YES) == Decimal("0.01")
    assert fetch_neg_risk_sync(client._ctx, token_id=YES) is False
    venue.books.ticks[YES] = Decimal("0.005")  # the SDK re-reads the market when a price is off its cached tick
    placed = client.place_limit_order(token_id=YES, price="0.455", size="10", side="BUY", post_only=True)
    assert placed.ok and venue.engine.orders[placed.order_id].price == Decimal("0.455")
    client.place_limit_order(token_id=YES, price="0.52", size="10", side="BUY")
    last = client.get_last_trade_price(token_id=YES)
    assert last is not None and (last.price, last.side) == (Decimal("0.52"), "BUY")


def test_the_sdk_reads_the_venues_fees_unchanged() -> None:
    """On a crypto-fee market the SDK parses our trades' ``fee_rate_bps`` and ``trader_side`` as
    sent, and the clob market info's ``fd`` (the fee it prices market BUYs with); our adapter's
    ``fills_of`` keeps them in its TradeFill."""
    from polymarket._internal.actions.orders.market_data import fetch_platform_fee_info_sync

    from libs.common.fees import CATEGORY_SCHEDULES
    from libs.common.venue_sdk_parse import fills_of
    for v in _serve(fee_schedule=CATEGORY_SCHEDULES["crypto"]):
        client = _client(v, KEY, OWNER)
        info = fetch_platform_fee_info_sync(client._ctx, condition_id=CID)
        assert (info.rate, info.exponent) == (Decimal("0.07"), Decimal(1))
        client.place_limit_order(token_id=YES, price="0.52", size="10", side="BUY")  # crosses: taker
        (trade,) = list(client.list_account_trades().iter_items())
        assert (trade.fee_rate_bps, trade.trader_side) == (Decimal(700), "TAKER")
        assert v.engine.ledger.account(OWNER).collateral == Decimal(1000) - Decimal("5.2") - Decimal("0.17472")
        (fill,) = fills_of(trade, YES, (OWNER, client._ctx.credentials.key))
        assert (fill.role, fill.fee_rate_bps, fill.size) == ("TAKER", "700", Decimal(10))
