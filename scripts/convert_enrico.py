#!/usr/bin/env python3
"""Bundle the ENRICOBIGNOZZI 2026-09-24 WebSocket capture as a polyband replay tape.

Usage::

    python scripts/convert_enrico.py [--src ../shared/data/ws-enricobignozzi-2026-09-24]
                                     [--out data/tapes/enrico-2026-09-24]

Rules:

* ``frames.jsonl`` is copied byte for byte (it already is our tape format: seq, recv_ms,
  payload_sha256, payload). Every payload's sha256 is checked; a mismatch stops the script.
* ``markets.json`` (the recorder's own normalised form: condition_id, yes_token, no_token,
  start_timestamp_ms, end_timestamp_ms, tick_size, minimum_order_size, ...) becomes our format:
  token_ids [yes_token, no_token], outcomes ["Yes", "No"], start_ms/end_ms, tick_size and
  min_order_size as decimal strings, synthetic_condition_id false. question, slug and neg_risk come
  from a matching ``/markets/{condition_id}`` body in ``rest_responses.jsonl`` when there is one;
  otherwise question and slug are the condition id and neg_risk is false (both reported as warnings).
* The tick size of every dumped ``book`` is compared with markets.json (mismatches are warnings).
* Writes ``LICENSE`` (MIT, Copyright (c) 2026 Enrico Bignozzi) and ``tape_meta.json`` next to the copy.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "ws-enricobignozzi-2026-09-24"
DEFAULT_OUT = REPO / "data" / "tapes" / "enrico-2026-09-24"
LICENCE = "MIT, Copyright (c) 2026 Enrico Bignozzi (ENRICOBIGNOZZI/Polymarket)"
LICENSE_TEXT = """MIT License

Copyright (c) 2026 Enrico Bignozzi

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def decimal_text(value: Any, field: str, cid: str) -> str:
    """A positive JSON number or string as a plain decimal string (0.01 -> "0.01", 5 -> "5")."""
    dec = Decimal(str(value))
    if not dec.is_finite() or dec <= 0:
        raise ValueError(f"market {cid}: field {field!r} has bad value {value!r}")
    return format(dec.normalize(), "f")


def rest_markets(path: Path) -> dict[str, dict[str, Any]]:
    """condition_id -> parsed ``/markets/{condition_id}`` body found in rest_responses.jsonl."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    for line in path.read_bytes().splitlines():
        rec = orjson.loads(line)
        if "/markets/" in rec.get("url", ""):
            body = orjson.loads(rec["raw_response"])
            found[body["condition_id"]] = body
    return found


def convert_market(rec: dict[str, Any], rest: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One recorder market -> our markets.json object."""
    cid = rec["condition_id"]
    body = rest.get(cid, {})
    return {"condition_id": cid, "question": body.get("question") or cid, "slug": body.get("market_slug") or cid,
            "token_ids": [rec["yes_token"], rec["no_token"]], "outcomes": ["Yes", "No"],
            "start_ms": int(rec["start_timestamp_ms"]), "end_ms": int(rec["end_timestamp_ms"]),
            "tick_size": decimal_text(rec["tick_size"], "tick_size", cid),
            "min_order_size": decimal_text(rec["minimum_order_size"], "minimum_order_size", cid),
            "neg_risk": bool(body.get("neg_risk", False)), "synthetic_condition_id": False}


def check_frames(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse the tape, verifying every payload_sha256; returns (lines, dumped book objects)."""
    lines = [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]
    books: list[dict[str, Any]] = []
    for rec in lines:
        digest = hashlib.sha256(rec["payload"].encode()).hexdigest()
        if digest != rec.get("payload_sha256"):
            raise ValueError(f"{path}: seq {rec['seq']}: payload_sha256 {rec.get('payload_sha256')!r} != {digest}")
        payload = orjson.loads(rec["payload"])
        books += [b for b in (payload if isinstance(payload, list) else [payload]) if b.get("event_type") == "book"]
    return lines, books


def tick_warnings(markets: list[dict[str, Any]], books: list[dict[str, Any]]) -> list[str]:
    """Books whose tick_size differs from markets.json, or whose token is in no market."""
    tick_of = {t: Decimal(m["tick_size"]) for m in markets for t in m["token_ids"]}
    out = []
    for book in books:
        tick = tick_of.get(book["asset_id"])
        if tick is None:
            out.append(f"book for token {book['asset_id']} has no market in markets.json")
        elif Decimal(book["tick_size"]) != tick:
            out.append(f"book tick_size {book['tick_size']} != markets.json {tick} for token {book['asset_id']}")
    return out


def convert(src: Path, out: Path) -> dict[str, Any]:
    """Copy the tape, convert markets.json and write LICENSE and tape_meta.json; returns tape_meta."""
    out.mkdir(parents=True, exist_ok=True)
    lines, books = check_frames(src / "frames.jsonl")
    shutil.copyfile(src / "frames.jsonl", out / "frames.jsonl")
    rest = rest_markets(src / "rest_responses.jsonl")
    markets = [convert_market(rec, rest) for rec in json.loads((src / "markets.json").read_text())]
    (out / "markets.json").write_text(json.dumps(markets, indent=1) + "\n")
    (out / "LICENSE").write_text(LICENSE_TEXT)
    named = sum(m["condition_id"] in rest for m in markets)
    warnings = tick_warnings(markets, books)
    if named < len(markets):
        warnings.append(f"{len(markets) - named} of {len(markets)} markets have no question/slug in the source: "
                        "question and slug are the condition id; neg_risk is unknown and set to false")
    meta = {"source": f"{src.name}/frames.jsonl + markets.json", "licence": LICENCE,
            "converter": "scripts/convert_enrico.py", "rows": len(lines), "frames": len(lines),
            "first_recv_ms": lines[0]["recv_ms"], "last_recv_ms": lines[-1]["recv_ms"], "markets": len(markets),
            "tokens": len(books), "warnings": warnings}
    (out / "tape_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the summary JSON on stdout, warnings on stderr."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    meta = convert(args.src, args.out)
    for warning in meta["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps({k: meta[k] for k in ("markets", "tokens", "frames", "first_recv_ms", "last_recv_ms")}
                     | {"warnings": len(meta["warnings"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
