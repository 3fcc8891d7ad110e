"""scripts/compare_runs.py: two runs compared token by token from their audit logs alone."""
from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("compare_runs", REPO / "scripts/compare_runs.py")
assert spec is not None and spec.loader is not None
cr = importlib.util.module_from_spec(spec)
sys.modules["compare_runs"] = cr  # its dataclasses look their module up
spec.loader.exec_module(cr)

T1, T2, T3 = "111", "222", "333"


def order(token: str, ts: int, side: str = "BUY") -> dict[str, object]:
    return {"ts_ms": ts, "kind": "order_accepted", "token_id": token, "side": side, "price": "0.5", "size": "10"}


def fill(token: str, ts: int, side: str, price: str, size: str = "10") -> dict[str, object]:
    return {"ts_ms": ts, "kind": "fill", "token_id": token, "side": side, "price": price, "size": size,
            "size_matched": size, "role": "MAKER", "fee": "0", "rebate": "0", "book_best_bid": price}


def write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_the_net_difference_splits_by_kind_and_adds_up(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [
        order(T1, 1000), fill(T1, 2000, "BUY", "0.50"), fill(T1, 3000, "SELL", "0.60"),   # same in both
        order(T2, 1000), fill(T2, 2000, "BUY", "0.40"), fill(T2, 3000, "SELL", "0.30"),   # only in A
        order(T3, 1000), fill(T3, 2000, "BUY", "0.20"), fill(T3, 3000, "SELL", "0.25")])  # different
    b = write(tmp_path / "b.jsonl", [
        order(T1, 1500), fill(T1, 2000, "BUY", "0.50"), fill(T1, 3000, "SELL", "0.60"),
        order(T2, 1500),                                                                 # ordered, never filled
        order(T3, 1500), fill(T3, 2500, "BUY", "0.20"), fill(T3, 3500, "SELL", "0.30")])
    result = cr.compare(a, b)
    kinds = {r["token_id"]: r["kind"] for r in result["rows"]}
    assert kinds == {T1: "same", T2: "only A", T3: "different"}
    split = {k: Decimal(v) for k, v in result["delta_by_kind"].items()}
    assert split == {"same": 0, "only A": Decimal("1.0"), "different": Decimal("0.5")}
    assert Decimal(result["net"]["b"]) - Decimal(result["net"]["a"]) == sum(split.values())
    assert result["rows"][0]["token_id"] == T2, "largest difference first"


def test_side_summary_is_shares_at_the_volume_weighted_price() -> None:
    fills = [("BUY", "0.50", "10"), ("BUY", "0.80", "30"), ("SELL", "0.9", "5")]
    assert cr.side_summary(fills, "BUY") == "40@0.725"
    assert cr.side_summary(fills, "SELL") == "5@0.900"
    assert cr.side_summary([], "BUY") == "-"
