"""libs/common: key schema, Lua headers, settings errors, clocks."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from libs.common import keys, lua
from libs.common.clock import FakeClock, ReplayClock
from libs.common.settings import BadSetting, BaseServiceSettings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_per_token_keys_share_one_cluster_hash_tag() -> None:
    t = "123456"
    per_token = [keys.md_book(t), keys.md_stream(t), keys.tok(t), keys.lease(t), keys.fence(t), keys.orders(t)]
    assert len(set(per_token)) == len(per_token)
    assert all(re.search(r"\{123456\}$", k) for k in per_token)


def test_no_module_outside_keys_builds_pb_keys() -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py", "*.lua"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for f in files:
        if f.startswith(("tests/", "bench/")) or f == "libs/common/keys.py":
            continue
        text = (REPO / f).read_text(encoding="utf-8")
        if re.search(r"""["']pb:""", text):
            offenders.append(f)
    assert offenders == []


@pytest.mark.parametrize("name", lua.names())
def test_lua_headers_state_keys_argv_returns(name: str) -> None:
    text = lua.source(name)
    header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
    assert "KEYS[1]" in header and "ARGV[1]" in header and "Returns" in header, name
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert "pb:" not in body, f"{name} builds a key name inside Lua"
    assert "TIME" not in body, f"{name} reads the clock inside Lua"


def test_bad_setting_names_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_METRICS_PORT", "eighty")
    with pytest.raises(BadSetting, match=r"PB_METRICS_PORT='eighty'"):
        load_settings(BaseServiceSettings)


def test_live_mode_needs_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_MODE", "live")
    with pytest.raises(BadSetting, match="PB_LIVE_CONFIRM"):
        load_settings(BaseServiceSettings)


def test_paper_defaults_apply_only_in_paper_mode_and_never_over_explicit_values() -> None:
    class S(BaseServiceSettings):
        window_s: int = 3600
        paper_defaults = {"window_s": 60}

    assert load_settings(S).window_s == 60
    assert load_settings(S, window_s=7).window_s == 7
    assert load_settings(S, mode="live", live_confirm=True).window_s == 3600


def test_replay_clock_runs_at_speed() -> None:
    wall = time.time_ns() // 1_000_000
    c = ReplayClock(epoch_wall_ms=wall - 1000, epoch_tape_ms=5_000_000, speed=10.0)
    assert abs(c.now_ms() - (5_000_000 + 10_000)) < 500
    assert c.to_wall_ms(5_000_000 + 20_000) == wall - 1000 + 2000


def test_fake_clock_sleep_advances_without_waiting() -> None:
    c = FakeClock(now=0, wall=0)
    t0 = time.monotonic()
    c.sleep(3600)
    assert c.now_ms() == 3_600_000 and time.monotonic() - t0 < 0.5
