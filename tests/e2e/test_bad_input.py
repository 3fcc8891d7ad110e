"""Issue 2: a malformed WebSocket frame, a malformed trade row and a bad setting each produce one
clear logged error naming the field and the value; no service crashes and nothing already
ingested is lost."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from libs.common import keys
from libs.common.tapes import load_leader
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data/leaders/demo-synthetic.jsonl"
SERVICES = ("venue_sim", "md_gateway", "scheduler", "signal_ingest", "maker_worker")


def leader_with_a_bad_row(path: Path) -> Path:
    """The demo leader with one malformed row (side "HOLD") between its first and second rows."""
    demo = load_leader(DEMO)
    bad = {**demo.rows[0], "side": "HOLD", "transactionHash": "0x" + "ab" * 32}
    rows = [demo.rows[0], bad, *demo.rows[1:]]
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in [{"_meta": demo.meta}, *rows]) + b"\n")
    return path


@pytest.mark.timeout(180)
def test_malformed_frame_and_row_are_clear_rejections_and_nothing_is_lost(tmp_path: Path) -> None:
    leader = leader_with_a_bad_row(tmp_path / "leader.jsonl")
    run = PaperRun(PaperConfig(leaders=(leader,), speed=40.0, workers=1, log_dir=tmp_path / "logs"))
    try:
        run.start()
        r = run.r
        assert r is not None
        eventually(lambda: r.scard(keys.MD_SUBS) and r.hget(keys.MD_GATEWAY, "subscribed") not in (None, "0"),
                   60, "the gateway subscribed to a token")
        frame = '{"event_type":"price_change","market":"0x1","timestamp":"1","price_changes":[{"asset_id":"1","price":"1.70","size":"5","side":"BUY","hash":"x"}]}'
        httpx.post(f"{run.clob_url}/_sim/ws/inject", json={"text": frame}, timeout=5).raise_for_status()
        httpx.post(f"{run.clob_url}/_sim/ws/inject", json={"text": '{"event_type": "book", "asset_'}, timeout=5).raise_for_status()
        dead = eventually(lambda: r.xrange(keys.SIG_DEAD), 60, "the malformed row dead-lettered")
        before = r.xlen(keys.SIG_STREAM)
        eventually(lambda: r.xlen(keys.SIG_STREAM) > before, 60, "later good rows still published")
        gw_log = (run.cfg.log_dir / "md_gateway.log").read_text()
        assert any("1.70" in line and "price" in line for line in gw_log.splitlines() if "lvl=ERROR" in line or "lvl=WARNING" in line), \
            "the gateway did not log the bad price with its field and value"
        assert "asset_" in gw_log, "the truncated frame was not logged with its text"
        assert int(r.hget(keys.MD_GATEWAY, "parse_errors") or 0) >= 2
        assert len(dead) == 1
        fields = dead[0][1]
        assert fields["field"] == "side" and fields["value"].strip("'") == "HOLD", fields
        ingest_log = (run.cfg.log_dir / "signal_ingest.log").read_text()
        assert "side" in ingest_log and "HOLD" in ingest_log
        assert run.sup.dead() == [], "a service died on bad input"
        stream_ids = {f["signal_id"] for _, f in r.xrange(keys.SIG_STREAM)}
        assert len(stream_ids) == r.xlen(keys.SIG_STREAM)
    finally:
        run.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_bad_setting_is_one_line_naming_variable_and_value(service: str, tmp_path: Path) -> None:
    env = {**os.environ, "PB_METRICS_PORT": "eighty", "PB_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "PB_METRICS_PORT" in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "PB_METRICS_PORT='eighty'" in lines[0], lines
