"""``polyband live``: what it refuses before anything starts (SPEC S6: an explicit flag plus
credentials), one line per problem naming the variable, exit 2, no traceback; and what it accepts."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from libs.common.venue_types import PAPER_TEST_PRIVATE_KEY
from services.ops.cli import app
from services.ops.live import live_env, preflight

LEADERS = '[{"account": "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"}]'
READY = {"PB_MODE": "live", "PB_LIVE_CONFIRM": "true", "PB_PRIVATE_KEY": PAPER_TEST_PRIVATE_KEY, "PB_LEADERS": LEADERS}


def clean(**env: str) -> dict[str, str]:
    """This process's environment without any PB_* variable, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PB_")}, **env}


def run_cli(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    unset = {k: None for k in os.environ if k.startswith("PB_") and k not in env}
    return CliRunner().invoke(app, ["live", *args], env={**env, **unset})


@pytest.mark.parametrize(("drop", "named"), [
    ("PB_LIVE_CONFIRM", "PB_LIVE_CONFIRM"), ("PB_PRIVATE_KEY", "PB_PRIVATE_KEY"), ("PB_LEADERS", "PB_LEADERS"),
    ("PB_MODE", "PB_MODE")])
def test_each_missing_requirement_is_refused_by_name(drop: str, named: str) -> None:
    env = {k: v for k, v in READY.items() if k != drop}
    problems = preflight(live_env(clean(**env)))
    assert problems and any(named in p for p in problems), problems
    res = run_cli(env, "--check")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert named in res.output


def test_private_key_never_appears_in_a_refusal() -> None:
    env = {**READY, "PB_WALLET_TYPE": "POLY_PROXY", "PB_WALLET": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}
    problems = preflight(live_env(clean(**env)))
    assert problems and all(PAPER_TEST_PRIVATE_KEY[2:] not in p for p in problems)
    assert any("PB_WALLET" in p for p in problems)


def test_bad_setting_of_one_service_is_refused_once() -> None:
    problems = preflight(live_env(clean(**READY, PB_ORDER_SIZE="abc")))
    assert problems == [p for p in problems if "PB_ORDER_SIZE='abc'" in p] and len(problems) == 1


def test_complete_live_settings_pass_and_target_polymarket() -> None:
    env = live_env(clean(**READY))
    assert preflight(env) == []
    assert env["PB_CLOB_URL"] == "https://clob.polymarket.com"
    assert env["PB_WS_USER_URL"].endswith("/ws/user")
    assert live_env(clean(**READY, PB_CLOB_URL="http://proxy:9"))["PB_CLOB_URL"] == "http://proxy:9"
    res = run_cli(READY, "--check")
    assert res.exit_code == 0 and "ready" in res.output
