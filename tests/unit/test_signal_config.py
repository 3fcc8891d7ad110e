"""signal_ingest settings: leaders from PB_LEADERS / PB_LEADERS_FILE, paper defaults, bad values."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from libs.common.settings import BadSetting, load_settings
from services.signal_ingest.config import BTC15M_LEADER, DEMO_LEADER, GABAGOOL22, IngestSettings

A = "0x00000000000000000000000000000000000000AA"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k in ("PB_LEADERS", "PB_LEADERS_FILE", "PB_MODE", "PB_PAGE_SIZE", "PB_MAX_PAGES", "PB_POLL_INTERVAL_S",
              "PB_DATA_API_VERSION"):
        monkeypatch.delenv(k, raising=False)


def test_paper_defaults_follow_demo_leader_gabagool22_and_the_default_tapes_leader() -> None:
    s = load_settings(IngestSettings)
    assert [(t.account, t.min_size, t.enabled) for t in s.leaders] == [
        (DEMO_LEADER, Decimal(1), True), (GABAGOOL22, Decimal(0), True), (BTC15M_LEADER, Decimal(0), True)]
    assert s.poll_interval_s == 0.5 and s.data_api_url == "http://127.0.0.1:8080/data-api"
    assert s.rate_limit_per_10s == 200 and s.page_size == 100 and s.lookback_s == 120
    live = load_settings(IngestSettings, mode="live", live_confirm=True)
    assert live.leaders == [] and live.poll_interval_s == 60.0 and live.lookback_s == 0


def test_leaders_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_LEADERS", json.dumps([{"account": A, "min_size": "5"},
                                                 {"account": GABAGOOL22, "enabled": False}]))
    s = load_settings(IngestSettings)
    assert [t.account for t in s.enabled_leaders()] == [A.lower()]
    assert s.leaders[0].min_size == Decimal(5)


def test_leaders_file_replaces_paper_defaults_and_adds_to_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "leaders.json"
    f.write_text(json.dumps([{"account": A, "min_size": 2}]))
    monkeypatch.setenv("PB_LEADERS_FILE", str(f))
    assert [t.account for t in load_settings(IngestSettings).leaders] == [A.lower()]
    monkeypatch.setenv("PB_LEADERS", json.dumps([{"account": GABAGOOL22}]))
    assert [t.account for t in load_settings(IngestSettings).leaders] == [GABAGOOL22, A.lower()]


@pytest.mark.parametrize("env,value,match", [
    ("PB_LEADERS", "[{\"account\": \"0xnothex\"}]", r"PB_LEADERS.0.ACCOUNT='0xnothex'"),
    ("PB_LEADERS", "[{oops", r"PB_LEADERS='\[\{oops'"),
    ("PB_LEADERS", json.dumps([{"account": A, "min_size": "-1"}]), r"PB_LEADERS.0.MIN_SIZE='-1'"),
    ("PB_PAGE_SIZE", "20000", r"PB_PAGE_SIZE='20000'"),
    ("PB_MAX_PAGES", "1000", r"PB_MAX_PAGES='1000'"),
    ("PB_LEADERS_FILE", "/nonexistent/leaders.json", r"PB_LEADERS_FILE='/nonexistent/leaders.json'"),
    ("PB_DATA_API_VERSION", "v3", r"PB_DATA_API_VERSION='v3'"),
    ("PB_PAGE_SIZE", "1001", r"PB_PAGE_SIZE='1001'"),  # v2 pages hold at most 1000 rows
])
def test_bad_setting_names_variable_and_value(monkeypatch: pytest.MonkeyPatch, env: str, value: str,
                                              match: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(BadSetting, match=match):
        load_settings(IngestSettings)


def test_data_api_version_defaults_to_v2_and_v1_keeps_its_wider_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(IngestSettings).data_api_version == "v2"
    monkeypatch.setenv("PB_DATA_API_VERSION", "v1")
    monkeypatch.setenv("PB_PAGE_SIZE", "2000")
    monkeypatch.setenv("PB_MAX_PAGES", "5")
    s = load_settings(IngestSettings)
    assert (s.data_api_version, s.page_size) == ("v1", 2000)


def test_account_listed_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_LEADERS", json.dumps([{"account": A}, {"account": A.lower()}]))
    with pytest.raises(BadSetting, match="listed twice"):
        load_settings(IngestSettings)


def test_main_exits_2_with_one_bad_setting_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PB_")}
    env.update({"PYTHONPATH": str(repo), "PB_PAGE_SIZE": "lots"})
    out = subprocess.run([sys.executable, "-m", "services.signal_ingest"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "event BAD_SETTING" in lines[0] and "PB_PAGE_SIZE='lots'" in lines[0]
