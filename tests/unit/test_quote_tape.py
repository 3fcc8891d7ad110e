"""Quote tapes (libs/common/quote_tape.py): a tiny hand-written quotes.csv.gz expands to the expected frames."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from libs.common.quote_tape import quote_span
from libs.common.tapes import TapeError, TapeFrame, read_tape_dir, tape_source
from services.venue_sim.replay import read_frames

CID_B, CID_A = "0x" + "ab" * 32, "0x" + "cd" * 32
QUOTES = ["ts_ms,market,bid,ask",
          "1000,1,0.40,0.45",  # line 2: a-market book
          "1000,0,0.5,0.6",  # line 3: b-market book
          "2000,1,0.4,0.45",  # line 4: a-market unchanged (0.40 == 0.4): no frame
          "2000,0,0.5,0.62"]  # line 5: b-market ask rises


def _market(cid: str, slug: str, tokens: list[str], tick: str) -> dict[str, object]:
    return {"condition_id": cid, "question": slug, "slug": slug, "token_ids": tokens, "outcomes": ["Yes", "No"],
            "start_ms": 1000, "end_ms": 3000, "tick_size": tick, "min_order_size": "5", "neg_risk": False,
            "synthetic_condition_id": True}


def make_tape(tmp: Path, lines: list[str] = QUOTES) -> Path:
    """markets.json (b-market first), resolutions.json and quotes.csv.gz in ``tmp``."""
    markets = [_market(CID_B, "b-market", ["11", "12"], "0.01"), _market(CID_A, "a-market", ["21", "22"], "0.01")]
    (tmp / "markets.json").write_text(json.dumps(markets))
    (tmp / "resolutions.json").write_text(json.dumps([
        {"condition_id": CID_B, "winning_outcome": "Yes", "resolved_ms": 3000, "tags": ["Sports"]},
        {"condition_id": CID_A, "winning_outcome": "No", "resolved_ms": 2000, "tags": []}]))
    with gzip.open(tmp / "quotes.csv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return tmp


def h(token: str, bid: str, ask: str) -> str:
    return hashlib.sha1(f"{token}:{bid}:{ask}".encode()).hexdigest()


def book(cid: str, token: str, bid: str, ask: str, ltp: str) -> str:
    return (f'{{"market":"{cid}","asset_id":"{token}","timestamp":"1000","hash":"{h(token, bid, ask)}",'
            f'"bids":[{{"price":"{bid}","size":"500"}}],"asks":[{{"price":"{ask}","size":"500"}}],'
            f'"tick_size":"0.01","event_type":"book","last_trade_price":"{ltp}"}}')


def entry(token: str, price: str, size: str, side: str, after: tuple[str, str], best: tuple[str, str]) -> str:
    return (f'{{"asset_id":"{token}","price":"{price}","size":"{size}","side":"{side}","hash":"{h(token, *after)}",'
            f'"best_bid":"{best[0]}","best_ask":"{best[1]}"}}')


def resolved(cid: str, tokens: list[str], winner: int, ms: int, tags: str) -> str:
    return (f'{{"event_type":"market_resolved","id":"{int(cid[2:18], 16)}","market":"{cid}",'
            f'"assets_ids":["{tokens[0]}","{tokens[1]}"],"winning_asset_id":"{tokens[winner]}",'
            f'"winning_outcome":"{("Yes", "No")[winner]}","timestamp":"{ms}","tags":{tags}}}')


# Yes 0.5/0.6 -> 0.5/0.62 (ask worsens: asks first); No 0.4/0.5 -> 0.38/0.5 (bid only)
CHANGE = ('{"market":"' + CID_B + '","price_changes":[' + ",".join([
    entry("11", "0.62", "500", "SELL", ("0.5", "0.62"), ("0.5", "0.6")),
    entry("11", "0.6", "0", "SELL", ("0.5", "0.62"), ("0.5", "0.62")),
    entry("12", "0.38", "500", "BUY", ("0.38", "0.5"), ("0.4", "0.5")),
    entry("12", "0.4", "0", "BUY", ("0.38", "0.5"), ("0.38", "0.5"))]) +
    '],"timestamp":"2000","event_type":"price_change"}')
EXPECTED = [
    (2, TapeFrame(1, 1000, "[" + book(CID_A, "21", "0.4", "0.45", "0.425") + ","
                  + book(CID_A, "22", "0.55", "0.6", "0.575") + "]")),
    (3, TapeFrame(2, 1000, "[" + book(CID_B, "11", "0.5", "0.6", "0.550") + ","
                  + book(CID_B, "12", "0.4", "0.5", "0.450") + "]")),
    (4, TapeFrame(3, 2000, resolved(CID_A, ["21", "22"], 1, 2000, "[]"))),  # (2000, a-market) before b-market
    (5, TapeFrame(4, 2000, CHANGE)),
    (5, TapeFrame(5, 3000, resolved(CID_B, ["11", "12"], 0, 3000, '["Sports"]'))),
]


def test_expansion_gives_exactly_the_expected_frames(tmp_path: Path) -> None:
    tape = make_tape(tmp_path)
    assert list(read_tape_dir(tape)) == [f for _, f in EXPECTED]
    for _, frame in EXPECTED:  # each payload is valid JSON
        json.loads(frame.payload)


def test_read_frames_and_span_on_a_quote_tape(tmp_path: Path) -> None:
    tape = make_tape(tmp_path)
    assert tape_source(tape) == tape / "quotes.csv.gz"
    assert list(read_frames(tape)) == EXPECTED
    assert list(read_frames(tape / "quotes.csv.gz")) == EXPECTED
    assert quote_span(tape) == (1000, 3000)


@pytest.mark.parametrize(("line", "field", "value"), [
    ("2500,0,0.5,1.2", "ask", "1.2"),
    ("2500,0,abc,0.7", "bid", "abc"),
    ("2500,7,0.5,0.7", "market", "7"),
    ("25x0,0,0.5,0.7", "ts_ms", "25x0"),
    ("1500,0,0.5,0.7", "ts_ms", "1500"),  # before the previous line
])
def test_malformed_line_raises_naming_file_line_field_value(tmp_path: Path, line: str, field: str,
                                                            value: str) -> None:
    tape = make_tape(tmp_path, QUOTES + [line])
    with pytest.raises(TapeError) as err:
        list(read_tape_dir(tape))
    text = str(err.value)
    assert f"quotes.csv.gz:6: field '{field}' has bad value" in text and value in text, text


def test_read_frames_skips_a_bad_line_with_its_reason(tmp_path: Path) -> None:
    tape = make_tape(tmp_path, QUOTES[:3] + ["1500,0,0.5,zz"] + QUOTES[3:])
    items = list(read_frames(tape))
    assert items[2][0] == 4 and isinstance(items[2][1], str) and "field 'ask' has bad value 'zz'" in items[2][1]
    assert [f for _, f in items if isinstance(f, TapeFrame)] == [f for _, f in EXPECTED]


def test_bad_header_or_resolutions_raise(tmp_path: Path) -> None:
    tape = make_tape(tmp_path, ["ts,market,bid,ask"] + QUOTES[1:])
    with pytest.raises(TapeError, match="quotes.csv.gz:1: header has bad value 'ts,market,bid,ask'"):
        list(read_frames(tape))
    make_tape(tmp_path)
    res = json.loads((tmp_path / "resolutions.json").read_text())
    res[1]["winning_outcome"] = "Maybe"
    (tmp_path / "resolutions.json").write_text(json.dumps(res))
    with pytest.raises(TapeError, match="resolutions.json: entry 1: field 'winning_outcome' has bad value 'Maybe'"):
        list(read_tape_dir(tape))
