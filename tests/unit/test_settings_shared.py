"""Settings several services read are validated by one set of rules (``SHARED_RULES``): a combination
one service refuses is refused, with the same message naming the variables, by every service whose
settings class has those fields; the defaults pass everywhere, in paper and in live mode."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from libs.common.settings import SHARED_RULES, BadSetting, BaseServiceSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
KEY = "0x" + "2" * 64
QUICK = {"http_timeout_s": 0.5}  # keeps the timeout rule out of other cases


def service_classes() -> dict[str, type[BaseServiceSettings]]:
    """Every service's settings class, found as the README table finds them."""
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts/settings_table.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.settings_classes()


CLASSES = service_classes()

# (fields of the rule, a combination breaking it, the one message every class with the fields gives)
CASES: list[tuple[tuple[str, ...], dict[str, Any], str]] = [
    (("lease_ttl_ms",), {"lease_ttl_ms": 500},
     "PB_LEASE_TTL_MS=500: must be at least 1000 ms (every service refuses a shorter lease)"),
    (("lease_ttl_ms", "step_interval_s"), {"lease_ttl_ms": 1000, "step_interval_s": 0.6, **QUICK},
     ("PB_LEASE_TTL_MS=1000, PB_STEP_INTERVAL_S=0.6: the lease TTL must be at least 2 step intervals "
      "(1200 ms), so that a worker renews its lease at least 2 times per TTL")),
    (("lease_ttl_ms", "http_timeout_s"), {"lease_ttl_ms": 4000, "http_timeout_s": 4.0},
     ("PB_LEASE_TTL_MS=4000, PB_HTTP_TIMEOUT_S=4.0: an HTTP timeout must be shorter than the lease TTL, "
      "or a call could still act after the lease passed to another worker")),
    (("gateway_stale_ms",), {"gateway_stale_ms": 1500},
     ("PB_GATEWAY_STALE_MS=1500: must be at least 2000 ms (2 status writes of md_gateway and user_feed, "
      "at most 1000 ms apart), or a healthy feed is seen as down")),
    (("backoff_min_s", "backoff_max_s"), {"backoff_min_s": 2.0, "backoff_max_s": 1.0},
     "PB_BACKOFF_MIN_S=2.0, PB_BACKOFF_MAX_S=1.0: the longest backoff must not be below the shortest"),
]


def having(fields: tuple[str, ...]) -> list[type[BaseServiceSettings]]:
    return [c for c in CLASSES.values() if all(f in c.model_fields for f in fields)]


def refusal(cls: type[BaseServiceSettings], **values: Any) -> str | None:
    """The BadSetting message of ``cls`` built with ``values`` (None = accepted)."""
    try:
        load_settings(cls, **values)
    except BadSetting as exc:
        return str(exc)
    return None


def test_every_shared_rule_has_a_case_and_a_service() -> None:
    assert sorted(f for f, _, _ in CASES) == sorted(r.fields for r in SHARED_RULES)
    for fields, _, _ in CASES:
        assert having(fields), f"no service reads {fields}: a rule for nothing"


@pytest.mark.parametrize(("fields", "bad", "message"), CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_each_service_with_the_fields_refuses_with_one_message(fields: tuple[str, ...], bad: dict[str, Any],
                                                               message: str) -> None:
    for cls in having(fields):
        for mode in ("paper", "live"):
            got = refusal(cls, mode=mode, live_confirm=True, private_key=KEY, **bad)
            assert got == f"bad setting: {message}", (cls.__name__, mode)


def test_the_issue_case_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PB_LEASE_TTL_MS=500 used to start a scheduler with no workers: now both refuse, naming it."""
    monkeypatch.setenv("PB_LEASE_TTL_MS", "500")
    readers = having(("lease_ttl_ms",))
    assert {c.__name__ for c in readers} == {"SchedulerSettings", "WorkerSettings"}
    for cls in readers:
        assert refusal(cls) == "bad setting: " + CASES[0][2]


@pytest.mark.parametrize("mode", ["paper", "live"])
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_defaults_pass_every_rule(name: str, mode: str) -> None:
    assert refusal(CLASSES[name], mode=mode, live_confirm=True, private_key=KEY) is None


@pytest.mark.parametrize("ttl", [999, 1000, 1199, 1200, 3000, 4999, 5000, 5001, 10_000])
@pytest.mark.parametrize("step", [None, 0.25, 0.5, 0.6, 2.0])
def test_scheduler_and_workers_agree_on_lease_settings(ttl: int, step: float | None) -> None:
    """Whatever PB_LEASE_TTL_MS and PB_STEP_INTERVAL_S (set or not), both start or both refuse."""
    extra = {} if step is None else {"step_interval_s": step}
    verdicts = {cls.__name__: refusal(cls, lease_ttl_ms=ttl, **extra) is None for cls in having(("lease_ttl_ms",))}
    assert len(set(verdicts.values())) == 1, verdicts


def test_a_rule_between_fields_never_prints_the_settings() -> None:
    """The input of a model-level error holds every setting, the private key included."""
    msg = refusal(CLASSES["scheduler"], private_key=KEY, inactive_warn_s=5000.0)
    assert msg is not None and "inactive_cleanup_s" in msg and "2222" not in msg and "PB_?" not in msg


def test_live_urls_are_the_sdks_production_endpoints_and_every_service_defaults_alike() -> None:
    """A hand-started live service must reach Polymarket, a paper one the venue: one URL default per
    mode for every service that reads the variable (PB_CLOB_URL used to default to the venue in
    three services and to Polymarket in the scheduler)."""
    from libs.common.sdk_env import production_urls
    from libs.common.settings import LIVE_URLS, PAPER_URLS

    assert {f"PB_{k.upper()}": v for k, v in LIVE_URLS.items() if k != "data_api_url"} | {
        "PB_DATA_API_URL": LIVE_URLS["data_api_url"]} == production_urls()
    for name in LIVE_URLS:
        for cls in having((name,)):
            live = load_settings(cls, mode="live", live_confirm=True, private_key=KEY)
            paper = load_settings(cls)
            assert (getattr(live, name), getattr(paper, name)) == (LIVE_URLS[name], PAPER_URLS[name]), cls
