"""The venue's redemption core (services/venue_sim/redeem.py) and the decoding of the calls the SDK
sends to redeem (services/venue_sim/redeem_calls.py), checked against polymarket-client's own
call encoders."""
from __future__ import annotations

from decimal import Decimal

import pytest
from polymarket._internal.actions.relayer.calls import (TransactionCall, ctf_redeem_positions_call, encode_proxy_call,
                                                        encode_safe_multisend_call, router_redeem_call)
from polymarket._internal.environment import PRODUCTION_CONFIG

from services.venue_sim import redeem_calls as rc
from services.venue_sim.accounts import Holding, Ledger
from services.venue_sim.redeem import RedeemRefused, Resolutions, redeem, resolutions_for
from tests.unit.test_venue_engine_fakes import CID, NO, YES, make_engine, market

D = Decimal
ADDR = "0x00000000000000000000000000000000000000a1"
C = rc.production_contracts()


def _ledger(yes: str = "0", no: str = "0") -> Ledger:
    ledger = Ledger(D("100"))
    acct = ledger.account(ADDR)
    acct.holdings[YES] = Holding(shares=D(yes), cost=D(yes) * D("0.4"))
    acct.holdings[NO] = Holding(shares=D(no), cost=D(no) * D("0.6"))
    return ledger


def test_winner_pays_one_loser_zero_and_shares_go() -> None:
    ledger = _ledger(yes="12.345678", no="3")
    out = redeem(ledger, ADDR, market(), YES)
    assert out.payout == D("12.345678") and out.redeemed == {YES: D("12.345678"), NO: D("3")}
    acct = ledger.account(ADDR)
    assert acct.collateral == D("112.345678") and acct.shares(YES) == 0 and acct.shares(NO) == 0
    assert acct.holdings[YES].realized == D("12.345678") - D("12.345678") * D("0.4")
    assert acct.holdings[NO].realized == -D("1.8") and acct.holdings[NO].cost == 0


def test_second_redeem_pays_nothing_and_unknown_account_is_a_noop() -> None:
    ledger = _ledger(yes="5")
    redeem(ledger, ADDR, market(), YES)
    again = redeem(ledger, ADDR, market(), YES)
    assert again.payout == 0 and again.redeemed == {} and ledger.account(ADDR).collateral == D("105")
    stranger = redeem(ledger, "0x00000000000000000000000000000000000000b2", market(), YES)
    assert stranger.payout == 0 and "0x00000000000000000000000000000000000000b2" not in ledger.accounts


def test_no_winner_splits_and_bad_winner_is_refused() -> None:
    ledger = _ledger(yes="3", no="1")
    assert redeem(ledger, ADDR, market(), "").payout == D("2")  # 50-50: (3 + 1) x 0.5
    with pytest.raises(RedeemRefused, match="winner is not a token") as exc:
        redeem(_ledger(yes="1"), ADDR, market(), "123")
    assert exc.value.field == "winner" and exc.value.reason == "BAD_WINNER"


def test_resolutions_registry_once_per_condition_and_per_engine() -> None:
    reg = Resolutions()
    assert reg.winner(CID) is None
    reg.record(CID.upper().replace("0X", "0x"), YES)
    reg.record(CID, NO)  # a market resolves once
    assert reg.winner(CID) == YES
    engine_a, engine_b = make_engine()[0], make_engine()[0]
    resolutions_for(engine_a).record(CID, NO)
    assert resolutions_for(engine_a).winner(CID) == NO and resolutions_for(engine_b).winner(CID) is None


def test_engine_redeem_refuses_unresolved_and_audits(tmp_path: object) -> None:
    engine = make_engine()[0]
    with pytest.raises(RedeemRefused, match="not received yet"):
        engine.redeem(ADDR, CID)
    with pytest.raises(RedeemRefused, match="not a market"):
        engine.redeem(ADDR, "0x" + "ab" * 32)
    resolutions_for(engine).record(CID, YES)
    engine.ledger.account(ADDR).holdings[YES] = Holding(shares=D("2"))
    assert engine.redeem(ADDR, CID).payout == D("2")
    assert engine.audit.counts["redeem"] == 1 and engine.audit.counts["redeem_rejected"] == 2


def _sdk_call(neg_risk: bool = False) -> rc.Call:
    adapter = PRODUCTION_CONFIG.neg_risk_collateral_adapter if neg_risk else PRODUCTION_CONFIG.collateral_adapter
    call = ctf_redeem_positions_call(ctf=adapter, collateral=PRODUCTION_CONFIG.collateral_token,  # type: ignore[arg-type]
                                     condition_id=CID)
    return rc.Call(str(call.to).lower(), 0, bytes.fromhex(call.data[2:]))


@pytest.mark.parametrize("neg_risk", [False, True])
def test_sdk_redeem_call_decodes_to_its_condition(neg_risk: bool) -> None:
    meta = market(neg_risk)
    assert rc.redeem_condition(_sdk_call(neg_risk), {CID: meta}.get, C) == CID
    with pytest.raises(RedeemRefused, match="collateral adapter") as exc:
        rc.redeem_condition(_sdk_call(not neg_risk), {CID: meta}.get, C)
    assert exc.value.field == "to"


def test_foreign_condition_v2_router_value_and_other_calls_are_refused() -> None:
    with pytest.raises(RedeemRefused, match="not a market of this venue"):
        rc.redeem_condition(_sdk_call(), {}.get, C)
    v2 = router_redeem_call(router=PRODUCTION_CONFIG.protocol_v2_router,  # type: ignore[arg-type]
                            condition_id="0x" + "11" * 31 + "00", outcome_index=0, amount=5)
    with pytest.raises(RedeemRefused, match="protocol v2"):
        rc.redeem_condition(rc.Call(str(v2.to).lower(), 0, bytes.fromhex(v2.data[2:])), {CID: market()}.get, C)
    with pytest.raises(RedeemRefused, match="no value"):
        rc.redeem_condition(rc.Call(C.collateral_adapter, 1, _sdk_call().data), {CID: market()}.get, C)
    with pytest.raises(RedeemRefused, match="only redeemPositions"):
        rc.redeem_condition(rc.Call(C.collateral_adapter, 0, b"\x09\x5e\xa7\xb3" + b"\x00" * 64), {CID: market()}.get, C)


def test_wrong_collateral_is_refused_by_field() -> None:
    call = ctf_redeem_positions_call(ctf=PRODUCTION_CONFIG.collateral_adapter,  # type: ignore[arg-type]
                                     collateral="0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174", condition_id=CID)  # type: ignore[arg-type]
    with pytest.raises(RedeemRefused) as exc:
        rc.redeem_condition(rc.Call(C.collateral_adapter, 0, bytes.fromhex(call.data[2:])), {CID: market()}.get, C)
    assert exc.value.field == "collateral"


def test_proxy_and_multisend_unpack_the_sdk_encodings() -> None:
    inner = ctf_redeem_positions_call(ctf=PRODUCTION_CONFIG.collateral_adapter,  # type: ignore[arg-type]
                                      collateral=PRODUCTION_CONFIG.collateral_token, condition_id=CID)  # type: ignore[arg-type]
    calls: list[TransactionCall] = [inner, inner]
    want = [rc.Call(str(inner.to).lower(), 0, bytes.fromhex(inner.data[2:]))] * 2
    assert rc.proxy_calls(bytes.fromhex(encode_proxy_call(calls)[2:])) == want
    assert rc.multisend_calls(bytes.fromhex(encode_safe_multisend_call(calls)[2:])) == want
    with pytest.raises(RedeemRefused, match="proxy"):
        rc.proxy_calls(b"\x00" * 8)


def test_replay_market_end_records_the_winner_for_redemption() -> None:
    from services.venue_sim.__main__ import VenueSink
    from services.venue_sim.replay import resolved_message

    class Hub:
        published: list[object] = []

        def publish_events(self, events: list[object]) -> None:
            self.published.extend(events)

    engine = make_engine()[0]
    VenueSink(Hub(), engine).on_market_end(market(), resolved_message(market(), NO, 0))  # type: ignore[arg-type]
    assert resolutions_for(engine).winner(CID) == NO and CID in engine.counts()["ended_markets"]
