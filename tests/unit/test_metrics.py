"""libs/common/metrics.py: per-service registration, the counts mirror, the venue's audit mapping,
a released token's series going away, and the gateway's oldest-book age."""
from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter

from libs.common import metrics
from services.md_gateway.state import OK, RESYNC, TokenState
from services.md_gateway.status import oldest_book_age_ms


def names(registry: CollectorRegistry) -> set[str]:
    return {m.name for m in registry.collect()}


def test_a_service_registers_the_common_families_and_only_its_own_twice_harmlessly() -> None:
    reg = CollectorRegistry()
    metrics.register("md_gateway", reg)
    metrics.register("md_gateway", reg)
    assert names(reg) == {"pb_events"} | {f._name for f in metrics.FAMILIES["md_gateway"]}
    other = CollectorRegistry()
    metrics.register("alerter", other)  # a service with no families of its own
    assert names(other) == {"pb_events"}


def test_families_are_unique_and_named_by_the_conventions() -> None:
    every = [f for fs in metrics.FAMILIES.values() for f in fs] + list(metrics.COMMON)
    assert len({f._name for f in every}) == len(every)
    for f in every:
        assert f._name.startswith("pb_")
        if f._type == "histogram":
            assert f._name.endswith("_seconds"), f._name
    assert "pb_gateway_frames_total" in metrics.all_sample_names()
    assert metrics.all_sample_names()["pb_events_total"] == "*"


def test_mirror_adds_only_growth() -> None:
    reg = CollectorRegistry()
    c = Counter("t_things", "test", ["kind"], registry=reg)
    m = metrics.Mirror()
    m.add(c.labels("a"), 5)
    m.add(c.labels("a"), 5)
    m.add(c.labels("a"), 8)
    m.add(c.labels("b"), 2)
    m.add(c.labels("b"), 0)  # a reset adds nothing ...
    m.add(c.labels("b"), 1)  # ... and counting resumes from there
    assert reg.get_sample_value("t_things_total", {"kind": "a"}) == 8
    assert reg.get_sample_value("t_things_total", {"kind": "b"}) == 3


def test_venue_audit_lines_become_counters() -> None:
    def val(family: Counter, *labels: str) -> float:
        return family.labels(*labels)._value.get()

    before = (val(metrics.VENUE_FILLS, "MAKER"), val(metrics.VENUE_ORDERS, "rejected", "INVALID_POST_ONLY_ORDER"),
              val(metrics.VENUE_CANCELS, "USER_CANCEL"), val(metrics.VENUE_ORDERS, "accepted", "OK"))
    metrics.observe_venue_audit("fill", {"role": "MAKER"})
    metrics.observe_venue_audit("order_rejected", {"reason": "INVALID_POST_ONLY_ORDER"})
    metrics.observe_venue_audit("cancel", {"reason": "USER_CANCEL"})
    metrics.observe_venue_audit("order_accepted", {})
    metrics.observe_venue_audit("market_end", {"reason": "MARKET_ENDED"})  # not counted
    after = (val(metrics.VENUE_FILLS, "MAKER"), val(metrics.VENUE_ORDERS, "rejected", "INVALID_POST_ONLY_ORDER"),
             val(metrics.VENUE_CANCELS, "USER_CANCEL"), val(metrics.VENUE_ORDERS, "accepted", "OK"))
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1, 1]


def test_a_released_token_leaves_no_series() -> None:
    reg = CollectorRegistry()
    reg.register(metrics.WORKER_POSITION)
    reg.register(metrics.WORKER_PNL)
    metrics.set_token("tok-x", Decimal("12.5"), Decimal("-0.25"), Decimal("0.125"))
    assert reg.get_sample_value("pb_worker_position_shares", {"token_id": "tok-x"}) == 12.5
    assert reg.get_sample_value("pb_worker_pnl_usd", {"token_id": "tok-x", "kind": "realized"}) == -0.25
    metrics.forget_token("tok-x")
    metrics.forget_token("tok-x")  # twice, or never set: no error
    assert reg.get_sample_value("pb_worker_pnl_usd", {"token_id": "tok-x", "kind": "unrealized"}) is None
    assert reg.get_sample_value("pb_worker_position_shares", {"token_id": "tok-x"}) is None


def test_oldest_book_age_counts_ok_books_updated_over_the_websocket() -> None:
    tokens = [TokenState("a", status=OK, last_msg_ms=9_000), TokenState("b", status=OK, last_msg_ms=7_500),
              TokenState("c", status=RESYNC, last_msg_ms=1_000), TokenState("d", status=OK, last_msg_ms=0)]
    assert oldest_book_age_ms(tokens, 10_000) == 2_500
    assert oldest_book_age_ms([], 10_000) == 0
