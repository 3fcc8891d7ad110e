"""The nemesis (scripts/nemesis.py) end to end, short: 8 seeded kills and pauses of random services and
Redis during a paper run, then every invariant checked; exit status 0 and the checks saw real data."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_nemesis_with_8_faults_holds_every_invariant(tmp_path: Path) -> None:
    out = tmp_path / "nemesis.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/nemesis.py"), "--faults", "8", "--seed", "3",
                           "--duration", "24", "--speed", "20", "--lease-ttl-ms", "3000", "--http-timeout-s", "1.5",
                           "--settle", "25", "--log-dir", str(tmp_path / "run"), "--json-out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=170)
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    checks = {c["name"]: c for c in res["checks"]}
    assert res["ok"] and all(c["held"] for c in checks.values())
    assert len(res["faults"]) == 8 and {f["kind"] for f in res["faults"]} == {"kill", "pause"}
    assert res["summary"]["fills"] > 0 and res["summary"]["orders_posted"] > 0, res["summary"]
    assert checks["every signal applied exactly once"]["numbers"]["signals"] > 0
    assert checks["one fence at a time per token"]["numbers"]["orders"] > 0
    assert checks["book seq never backwards"]["numbers"]["samples"] > 0
    for f in res["faults"]:  # each fault line printed as it was injected
        assert f"{f['target']:<15} {f['kind']:<5}" in proc.stdout
