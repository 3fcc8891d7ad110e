"""The scheduler's Gamma parse of ``feesEnabled``/``feeSchedule`` into the ``pb:tok`` fee fields
(services/scheduler/gamma.py), on the real Gamma object of tests/fixtures/ra1nty/market_detail.json."""
from __future__ import annotations

from decimal import Decimal

import pytest

from libs.common.fees import NO_FEES, FeeSchedule
from services.scheduler.gamma import GammaBadMarket, parse_market
from services.maker_worker.tokens import fee_schedule as tok_schedule
from tests.unit.test_scheduler_core import DOWN, real_market

D = Decimal


def test_a_real_fee_schedule_reaches_the_token_fields() -> None:
    meta = parse_market(real_market(), DOWN)  # feesEnabled true, {exponent 2, rate 0.25, takerOnly, rebateRate 0.2}
    assert meta is not None and meta.fees == FeeSchedule(D("0.25"), 2, True, D("0.2"))
    f = meta.fields()
    assert (f["fee_rate"], f["fee_exponent"], f["rebate_rate"], f["fee_taker_only"]) == ("0.25", "2", "0.2", "1")
    assert tok_schedule(f) == meta.fees  # the worker reads back what the scheduler wrote


@pytest.mark.parametrize("change", [{"feeSchedule": None}, {"feesEnabled": False}, "drop"])
def test_absent_or_disabled_fees_are_no_fees(change: object) -> None:
    m = real_market()
    if change == "drop":
        del m["feeSchedule"]
    else:
        m.update(change)  # type: ignore[arg-type]
    meta = parse_market(m, DOWN)
    assert meta is not None and meta.fees == NO_FEES
    assert (meta.fields()["fee_rate"], meta.fields()["rebate_rate"]) == ("0", "0")


@pytest.mark.parametrize(("name", "value"), [("feeSchedule", "0.07"), ("feeSchedule.rate", "high"),
                                             ("feeSchedule.rate", D("1.5")), ("feeSchedule.rebateRate", D(-1)),
                                             ("feeSchedule.exponent", D("1.5")), ("feeSchedule.takerOnly", "yes")])
def test_a_malformed_fee_schedule_names_the_field_and_value(name: str, value: object) -> None:
    m = real_market()
    if name == "feeSchedule":
        m["feeSchedule"] = value
    else:
        m["feeSchedule"] = {**m["feeSchedule"], name.split(".")[1]: value}
    with pytest.raises(GammaBadMarket) as err:
        parse_market(m, DOWN)
    assert err.value.field == name and err.value.value == value and not err.value.retryable
    assert name in str(err.value) and repr(value) in str(err.value)
