"""libs.common.tapes: readers for tapes, markets.json and leader files, and their error messages."""
from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.tapes import (LeaderFile, MarketMeta, TapeError, TapeFrame, load_leader, load_markets,
                               read_tape)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"

MARKET: dict[str, Any] = {
    "condition_id": "0xabc", "question": "Will it?", "slug": "will-it", "token_ids": ["11", "22"],
    "outcomes": ["Yes", "No"], "start_ms": 1_000, "end_ms": 301_000, "tick_size": "0.01",
    "min_order_size": "5", "neg_risk": False, "synthetic_condition_id": False}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


# --- read_tape --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_read_tape_plain_and_gz(tmp_path: Path, name: str) -> None:
    lines = [orjson.dumps({"seq": i, "recv_ms": 1000 + i, "payload": f'{{"n":{i}}}', "payload_sha256": "x"})
             for i in (1, 2)]
    path = write_lines(tmp_path / name, lines)
    assert list(read_tape(path)) == [TapeFrame(1, 1001, '{"n":1}'), TapeFrame(2, 1002, '{"n":2}')]


@pytest.mark.parametrize("line, field, shown", [
    (b'{"seq": 2, "payload": "{}"}', "'recv_ms'", "missing"),
    (b'{"seq": 2, "recv_ms": "1790267379153", "payload": "{}"}', "'recv_ms'", "'1790267379153'"),
    (b'{"seq": 2, "recv_ms": 17.5, "payload": "{}"}', "'recv_ms'", "17.5"),
    (b'{"seq": 2, "recv_ms": 5}', "'payload'", "missing"),
    (b'{"seq": 2, "recv_ms": 5, "payload": {"a": 1}}', "'payload'", "{'a': 1}"),
    (b'{"seq": true, "recv_ms": 5, "payload": "{}"}', "'seq'", "True"),
])
def test_read_tape_errors_name_file_line_field_value(tmp_path: Path, line: bytes, field: str, shown: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [b'{"seq": 1, "recv_ms": 1, "payload": "{}"}', line])
    with pytest.raises(TapeError) as err:
        list(read_tape(path))
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: field {field}") and shown in msg


def test_read_tape_not_json_or_not_object(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl.gz", [b"{oops"])
    with pytest.raises(TapeError, match=r"bad\.jsonl\.gz:1: not JSON .*oops"):
        list(read_tape(path))
    path = write_lines(tmp_path / "list.jsonl", [b"", b"[1, 2]"])
    with pytest.raises(TapeError, match=r"list\.jsonl:2: line is not a JSON object: \[1, 2\]"):
        list(read_tape(path))


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 2**53), st.text()), max_size=5))
def test_read_tape_round_trips_any_payload(tmp_path_factory: pytest.TempPathFactory,
                                           frames: list[tuple[int, str]]) -> None:
    path = tmp_path_factory.mktemp("rt") / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"seq": i, "recv_ms": ms, "payload": p}) + b"\n"
                              for i, (ms, p) in enumerate(frames, 1)))
    assert [(f.recv_ms, f.payload) for f in read_tape(path)] == frames


# --- load_markets -----------------------------------------------------------------------------------------------

def test_load_markets_ok(tmp_path: Path) -> None:
    path = tmp_path / "markets.json"
    path.write_text(json.dumps([MARKET]))
    assert load_markets(path) == [MarketMeta("0xabc", "Will it?", "will-it", ("11", "22"), ("Yes", "No"), 1_000,
                                             301_000, Decimal("0.01"), Decimal("5"), False, False)]


@pytest.mark.parametrize("change, expected", [
    ({"tick_size": 0.01}, "field 'tick_size' has bad value 0.01"),
    ({"tick_size": "1.5"}, "field 'tick_size' has bad value '1.5'"),
    ({"min_order_size": "five"}, "field 'min_order_size' has bad value 'five'"),
    ({"start_ms": "1000"}, "field 'start_ms' has bad value '1000'"),
    ({"end_ms": 500}, "field 'end_ms' has bad value 500"),
    ({"neg_risk": "no"}, "field 'neg_risk' has bad value 'no'"),
    ({"token_ids": ["11", 22]}, "field 'token_ids' has bad value ['11', 22]"),
    ({"outcomes": ["Yes"]}, "field 'outcomes' has bad value ['Yes']"),
    ({"colour": "red"}, "unknown field 'colour' with value 'red'"),
    ({"slug": None}, "field 'slug' has bad value None"),
])
def test_load_markets_errors_name_field_and_value(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    path = tmp_path / "markets.json"
    path.write_text(json.dumps([MARKET, {**MARKET, "condition_id": "0xdef", **change}]))
    with pytest.raises(TapeError) as err:
        load_markets(path)
    assert str(err.value).startswith(f"{path}: market 1: {expected}")


def test_load_markets_missing_field_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "markets.json"
    path.write_text(json.dumps([{k: v for k, v in MARKET.items() if k != "question"}]))
    with pytest.raises(TapeError, match=r"market 0: field 'question' is missing"):
        load_markets(path)
    path.write_text(json.dumps([MARKET, MARKET]))
    with pytest.raises(TapeError, match=r"market 1: field 'condition_id' has duplicate value '0xabc'"):
        load_markets(path)
    path.write_text(json.dumps({"markets": []}))
    with pytest.raises(TapeError, match="top level is not a JSON list"):
        load_markets(path)


# --- load_leader ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["l.jsonl", "l.jsonl.gz"])
def test_load_leader_meta_and_unvalidated_rows(tmp_path: Path, name: str) -> None:
    rows = [{"side": "BUY", "size": 10, "price": 0.53, "timestamp": 1771358919}, {"side": "HOLD", "size": "x"},
            {"side": "BUY", "size": 10, "price": 0.53, "timestamp": 1771358919}]
    meta_line = orjson.dumps({"_meta": {"synthetic": True}})
    path = write_lines(tmp_path / name, [meta_line] + [orjson.dumps(r) for r in rows])
    assert load_leader(path) == LeaderFile(meta={"synthetic": True}, rows=rows)
    path = write_lines(tmp_path / ("plain-" + name), [orjson.dumps(r) for r in rows])
    assert load_leader(path) == LeaderFile(meta={}, rows=rows)


def test_load_leader_errors_name_line_field_and_value(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "l.jsonl", [b'{"side": "BUY"}', b'{"_meta": {"a": 1}}'])
    with pytest.raises(TapeError, match=r"l\.jsonl:2: field '_meta' is only allowed on the first line"):
        load_leader(path)
    path = write_lines(tmp_path / "m.jsonl", [b'{"_meta": [1]}'])
    with pytest.raises(TapeError, match=r"m\.jsonl:1: field '_meta' has bad value \[1\]"):
        load_leader(path)
    path = write_lines(tmp_path / "n.jsonl", [b'{"side": "BUY"}', b'"just a string"'])
    with pytest.raises(TapeError, match=r"n\.jsonl:2: line is not a JSON object: 'just a string'"):
        load_leader(path)
    path = write_lines(tmp_path / "o.jsonl", [b'{"side": "BUY"', b'{}'])
    with pytest.raises(TapeError, match=r"o\.jsonl:1: not JSON"):
        load_leader(path)


# --- the bundled files load ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("tape", ["btc5m-2026-02-18-am", "btc5m-2026-02-17-pm", "enrico-2026-09-24"])
def test_bundled_tapes_load(tape: str) -> None:
    folder = DATA / "tapes" / tape
    meta = json.loads((folder / "tape_meta.json").read_text())
    frames_file = next(p for p in (folder / "frames.jsonl.gz", folder / "frames.jsonl") if p.exists())
    frames = list(read_tape(frames_file))
    assert len(frames) == meta["frames"]
    assert (frames[0].recv_ms, frames[-1].recv_ms) == (meta["first_recv_ms"], meta["last_recv_ms"])
    assert len(load_markets(folder / "markets.json")) == meta["markets"]


def test_bundled_leaders_load() -> None:
    assert load_leader(DATA / "leaders" / "gabagool22.jsonl.gz").meta["rows"] == 1860
    assert load_leader(DATA / "leaders" / "demo-synthetic.jsonl").meta["synthetic"] is True
