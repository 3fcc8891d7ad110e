"""Venue leaders: time alignment of leader files and visibility by market time (pure, files in tmp)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from libs.common.clock import FakeClock
from services.venue_sim.leaders import Leaders, alignment_shift_s

TAPE_START = 1_771_358_919_425
TAPE_END = 1_771_360_808_237
REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, rows: list[dict], meta: dict | None = None) -> Path:
    lines = ([json.dumps({"_meta": meta})] if meta is not None else []) + [json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(ts: object, n: int, wallet: str = "0xaaa") -> dict:
    return {"proxyWallet": wallet, "side": "BUY", "asset": "1", "size": 10, "price": 0.5, "timestamp": ts,
            "transactionHash": f"0x{n:064x}"}


def test_shift_rule() -> None:
    inside = TAPE_START // 1000 + 100
    assert alignment_shift_s([inside, inside + 5], TAPE_START, TAPE_END, 30) == 0
    january = 1_767_236_479
    shift = alignment_shift_s([january + 10, january], TAPE_START, TAPE_END, 30)
    assert january + shift == TAPE_START // 1000 + 30
    assert alignment_shift_s([], TAPE_START, TAPE_END, 30) == 0
    assert alignment_shift_s([TAPE_START // 1000], TAPE_START, TAPE_END, 30) == 0  # floor(recv_ms/1000)


def test_rows_inside_the_tape_are_not_shifted_and_become_visible_in_time(tmp_path: Path) -> None:
    t0 = TAPE_START // 1000 + 60
    path = _write(tmp_path / "l.jsonl", [_row(t0, 1), _row(t0, 2), _row(t0 + 10, 3)], {"synthetic": True})
    clock = FakeClock(now=t0 * 1000 - 1)
    leaders = Leaders([path], clock, TAPE_START, TAPE_END)
    assert leaders.visible() == []
    clock.now = t0 * 1000
    assert [r["transactionHash"][-1] for r in leaders.visible()] == ["1", "2"]  # equal ts: file order
    clock.now = (t0 + 10) * 1000 + 999
    rows = leaders.visible()
    assert [r["transactionHash"][-1] for r in rows] == ["3", "1", "2"]  # newest first
    assert rows[0]["timestamp"] == t0 + 10
    info = leaders.describe()[0]
    assert info["synthetic"] is True and info["shift_s"] == 0 and info["rows"] == 3


def test_rows_outside_the_tape_are_shifted_to_tape_start_plus_lead(tmp_path: Path) -> None:
    jan = 1_767_236_479
    path = tmp_path / "g.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"_meta": {"synthetic": False}}) + "\n")
        for i, ts in enumerate([jan, jan, jan + 7, "bad", jan + 20]):
            fh.write(json.dumps(_row(ts, i)) + "\n")
    clock = FakeClock(now=TAPE_START)
    leaders = Leaders([path], clock, TAPE_START, TAPE_END, align_lead_s=30)
    first = TAPE_START // 1000 + 30
    assert leaders.visible(first * 1000 - 1) == []
    assert [r["timestamp"] for r in leaders.visible(first * 1000)] == [first, first]
    rows = leaders.visible((first + 20) * 1000)
    assert [r["timestamp"] for r in rows] == [first + 20, first + 7, "bad", first, first]  # malformed served as is
    assert leaders.describe()[0]["malformed_ts"] == 1 and leaders.describe()[0]["first_ts"] == first


def test_real_leader_files_load(tmp_path: Path) -> None:
    files = [REPO / "data" / "leaders" / "demo-synthetic.jsonl", REPO / "data" / "leaders" / "gabagool22.jsonl.gz"]
    leaders = Leaders([f for f in files if f.exists()], FakeClock(now=TAPE_END), TAPE_START, TAPE_END)
    described = {Path(d["path"]).name: d for d in leaders.describe()}
    if "demo-synthetic.jsonl" in described:
        assert described["demo-synthetic.jsonl"]["synthetic"] is True
        assert described["demo-synthetic.jsonl"]["shift_s"] == 0
    if "gabagool22.jsonl.gz" in described:
        g = described["gabagool22.jsonl.gz"]
        assert g["synthetic"] is False and g["shift_s"] > 0 and g["first_ts"] == TAPE_START // 1000 + 30
