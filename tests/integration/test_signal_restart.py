"""signal_ingest killed (SIGKILL) and restarted mid-stream ingests every real gabagool22 fill exactly once.

The fake data-api serves the real leader rows (data/leaders/gabagool22.jsonl.gz, data-api /trades
shape, exact JSON text) as they become visible on a replay clock running at 3600x; the same clock is
published in ``pb:clock`` so the service's market time matches. The service is killed once about a
quarter of the rows are in, restarted, and the stream must then hold every row exactly once: row
count and total size per transaction hash equal to the source.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import ReplayClock, publish_replay_clock
from tests.signal_fakes import FakeDataApi

REPO = Path(__file__).resolve().parents[2]
LEADER_FILE = REPO / "data" / "leaders" / "gabagool22.jsonl.gz"
ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
SPEED = 3600.0  # six hours of leader trading in about six seconds


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def source_lines() -> list[str]:
    if not LEADER_FILE.exists():
        pytest.skip(f"{LEADER_FILE} not present")
    with gzip.open(LEADER_FILE, "rt", encoding="utf-8") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    return [line for line in lines if '"_meta"' not in line[:10]]


def per_tx(rows: list[dict[str, object]], tx: str, size: str) -> dict[str, tuple[int, Decimal]]:
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])  # type: ignore[arg-type]
    for row in rows:
        out[str(row[tx])][0] += 1
        out[str(row[tx])][1] += Decimal(str(row[size]))
    return {k: (v[0], v[1]) for k, v in out.items()}


def start_service(redis_url: str, data_api_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PB_")}
    env.update({"PYTHONPATH": str(REPO), "PB_MODE": "paper", "PB_REDIS_URL": redis_url,
                "PB_DATA_API_URL": data_api_url, "PB_POLL_INTERVAL_S": "0.2", "PB_PAGE_SIZE": "50",
                "PB_MAX_PAGES": "200", "PB_LOOKBACK_S": "86400", "PB_INSTANCE_ID": "signal_ingest-restart",
                "PB_LEADERS": json.dumps([{"account": ACC, "min_size": "0", "enabled": True}])})
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "services.signal_ingest"], cwd=log.parent, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)


@pytest.fixture()
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_kill_and_restart_ingests_every_real_row_exactly_once(r: Redis, redis_url: str, tmp_path: Path,
                                                             procs: list[subprocess.Popen[bytes]]) -> None:
    lines = source_lines()
    rows = [json.loads(line, parse_float=Decimal) for line in lines]
    first_ts, last_ts = rows[0]["timestamp"], rows[-1]["timestamp"]
    clock = ReplayClock(epoch_wall_ms=time.time_ns() // 1_000_000 + 1500, epoch_tape_ms=first_ts * 1000 - 1000,
                        speed=SPEED)
    log = tmp_path / "signal_ingest.log"
    with FakeDataApi(clock=clock.now_ms) as fake:
        fake.add(ACC, lines)
        procs.append(start_service(redis_url, fake.url, log))
        publish_replay_clock(r, clock)
        wait_for(lambda: r.xlen(keys.SIG_STREAM) >= len(rows) // 4, 30, "a quarter of the rows")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(5)
        at_kill = r.xlen(keys.SIG_STREAM)
        procs.append(start_service(redis_url, fake.url, log))
        assert clock.now_ms() < last_ts * 1000, "the replay ended before the restart: nothing was tested"
        wait_for(lambda: r.xlen(keys.SIG_STREAM) >= len(rows), 30, "every row in the stream")
        n = len(fake.requests)
        wait_for(lambda: len(fake.requests) >= n + 5, 10, "five more polls after the last row")
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(10) == 0
    assert 0 < at_kill < len(rows)
    stream = [f for _, f in r.xrange(keys.SIG_STREAM)]
    assert len(stream) == len(rows)
    assert len({f["signal_id"] for f in stream}) == len(rows)
    assert per_tx(stream, "tx_hash", "size") == per_tx(rows, "transactionHash", "size")
    assert Counter(f["ts_ms"] for f in stream) == Counter(str(row["timestamp"] * 1000) for row in rows)
    assert r.xlen(keys.SIG_DEAD) == 0 and r.hget(keys.SUMMARY, "signals") == str(len(rows))
    assert "BAD_SETTING" not in log.read_text()
