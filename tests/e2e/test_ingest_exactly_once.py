"""Issue 2: the real gabagool22 rows served by the venue's data-api are ingested exactly once each
(row count and total size per transaction hash equal the source), with signal_ingest SIGKILLed and
restarted in the middle of the replay."""
from __future__ import annotations

import signal
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from libs.common import keys
from libs.common.tapes import load_leader
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
LEADER = REPO / "data/leaders/gabagool22.jsonl.gz"


def by_tx(rows: list[dict]) -> tuple[Counter[str], dict[str, Decimal]]:
    counts: Counter[str] = Counter()
    sizes: dict[str, Decimal] = defaultdict(Decimal)
    for tx, size in rows:
        counts[tx] += 1
        sizes[tx] += Decimal(str(size))
    return counts, dict(sizes)


@pytest.mark.timeout(180)
def test_gabagool22_rows_ingested_exactly_once_across_a_kill(tmp_path: Path) -> None:
    source = load_leader(LEADER).rows
    cfg = PaperConfig(leaders=(LEADER,), speed=1000.0, log_dir=tmp_path, services=("signal_ingest",),
                      service_env={"signal_ingest": {"PB_LOOKBACK_S": "1000000", "PB_POLL_INTERVAL_S": "0.2"}})
    run = PaperRun(cfg)
    try:
        run.start()
        assert run.r is not None
        r = run.r
        ingest = next(p for p in run.sup.procs if p.kind == "signal_ingest")
        eventually(lambda: r.xlen(keys.SIG_STREAM) >= len(source) // 4, 60, "a quarter of the rows ingested")
        ingest.popen.send_signal(signal.SIGKILL)
        ingest.popen.wait(10)
        killed_at = r.xlen(keys.SIG_STREAM)
        run.start_ingest()
        eventually(lambda: r.xlen(keys.SIG_STREAM) >= len(source), 90, f"all {len(source)} rows ingested")
        entries = [f for _, f in r.xrange(keys.SIG_STREAM)]
    finally:
        run.stop()
    assert 0 < killed_at < len(source), "the kill must land in the middle of the replay"
    assert len(entries) == len(source)
    assert len({e["signal_id"] for e in entries}) == len(entries)
    got = by_tx([(e["tx_hash"], e["size"]) for e in entries])
    want = by_tx([(row["transactionHash"], row["size"]) for row in source])
    assert got == want
