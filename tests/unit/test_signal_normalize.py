"""signal_ingest normalisation of data-api /trades rows (polymarket-api.md 1.4)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from services.signal_ingest.batch import classify
from services.signal_ingest.cursor import Cursor, make_rows, plan
from services.signal_ingest.normalize import BadBody, Reject, Signal, fingerprint, normalize, parse_body

ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
TEXT = ('{"proxyWallet":"0x6031B6eed1c97e853c6e0f03ad3ce3529351f96d","side":"buy","asset":"9838422308310603710376",'
        '"conditionId":"0xa15","size":12.5,"price":0.5699998232997013,"timestamp":1767236479,"title":"ETH Up",'
        '"slug":"eth-up","icon":"","eventSlug":"e","outcome":"Up","outcomeIndex":0,"name":"gabagool22",'
        '"pseudonym":"p","bio":"","profileImage":"","profileImageOptimized":"","transactionHash":"0xe51d"}')


def good() -> dict[str, object]:
    return parse_body("[" + TEXT + "]")[0]


def test_row_becomes_signal_with_exact_decimals_and_upper_side() -> None:
    raw = good()
    fp = fingerprint(raw)
    s = normalize(raw, ACC, fp, 3)
    assert isinstance(s, Signal)
    assert s.price == Decimal("0.5699998232997013") and s.size == Decimal("12.5")
    assert s.side == "BUY" and s.ts_ms == 1767236479000 and s.token_id == "9838422308310603710376"
    assert s.signal_id == f"{ACC}:0xe51d:{fp[:16]}:3"
    f = s.fields()
    assert f["price"] == "0.5699998232997013" and f["size"] == "12.5" and f["condition_id"] == "0xa15"
    assert set(f) == {"signal_id", "account", "side", "token_id", "condition_id", "size", "price", "ts_ms",
                      "tx_hash", "title", "slug", "outcome"}


def test_integer_size_is_written_without_exponent() -> None:
    raw = good() | {"size": Decimal("1E+1")}
    s = normalize(raw, ACC, fingerprint(raw), 1)
    assert isinstance(s, Signal) and s.fields()["size"] == "10"


@pytest.mark.parametrize("field,value,reason", [
    ("side", "HOLD", "BAD_SIDE"), ("side", None, "BAD_SIDE"),
    ("asset", "", "BAD_TOKEN_ID"), ("asset", "0xabc", "BAD_TOKEN_ID"), ("asset", 123, "BAD_TOKEN_ID"),
    ("conditionId", "", "BAD_CONDITION_ID"), ("transactionHash", None, "BAD_TX_HASH"),
    ("size", 0, "BAD_SIZE"), ("size", "ten", "BAD_SIZE"), ("size", True, "BAD_SIZE"),
    ("size", Decimal("NaN"), "BAD_SIZE"),
    ("price", Decimal("1.01"), "BAD_PRICE"), ("price", -1, "BAD_PRICE"), ("price", None, "BAD_PRICE"),
    ("timestamp", 1767236479000, "BAD_TIMESTAMP"), ("timestamp", "1767236479", "BAD_TIMESTAMP"),
    ("timestamp", Decimal("1767236479.5"), "BAD_TIMESTAMP"),
    ("proxyWallet", "0x0000000000000000000000000000000000000001", "ACCOUNT_MISMATCH"),
])
def test_malformed_field_is_rejected_naming_field_and_value(field: str, value: object, reason: str) -> None:
    raw = good() | {field: value}
    out = normalize(raw, ACC, fingerprint(raw), 1)
    assert isinstance(out, Reject)
    assert (out.reason, out.field) == (reason, field)
    assert out.value in (repr(value), str(value))


def test_missing_field_and_non_object_rows_are_rejected() -> None:
    raw = good()
    del raw["asset"]
    assert normalize(raw, ACC, "f", 1) == Reject("BAD_TOKEN_ID", "asset", "None")
    assert normalize([1, 2], ACC, "f", 1) == Reject("ROW_NOT_OBJECT", "row", "[1,2]")


def test_fingerprint_is_over_fill_fields_not_profile_or_key_order_or_number_spelling() -> None:
    a = good()
    b = dict(reversed(list(a.items()))) | {"name": "renamed", "profileImage": "x.png", "size": Decimal("12.50")}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(a | {"price": Decimal("0.57")})
    assert fingerprint(a) != fingerprint(a | {"transactionHash": "0xother"})


def test_parse_body_refuses_non_arrays() -> None:
    with pytest.raises(BadBody, match="not JSON"):
        parse_body(b"<html>")
    with pytest.raises(BadBody, match="not an array"):
        parse_body(b'{"error": "x"}')


def test_classify_splits_signals_dead_letters_and_below_min() -> None:
    small = good() | {"size": 1, "transactionHash": "0xs"}
    bad = good() | {"price": 7}
    p = plan(Cursor(0), make_rows([good(), small, bad]))
    b = classify(p.fresh, ACC, Decimal(2))
    assert [s.tx_hash for s in b.signals] == ["0xe51d"]
    assert [s.tx_hash for s in b.below_min] == ["0xs"]
    assert len(b.dead) == 1
    d = b.dead[0].fields(ACC, 5)
    assert (d["reason"], d["field"], d["value"], d["account"]) == ("BAD_PRICE", "price", "7", ACC)
    assert '"price":7' in d["raw"] and d["seen_ms"] == "5"
