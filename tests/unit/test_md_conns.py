"""md_gateway Shards (the connections' shell) with fake links: subscribe/unsubscribe on open links,
keepalive, half-open replacement with backoff, and late events of replaced links ignored."""
from __future__ import annotations

import json
import queue
import random

from libs.common.clock import FakeClock
from services.md_gateway.config import GatewaySettings
from services.md_gateway.conns import Shards
from services.md_gateway.core import Core


class FakeLink:
    made: list["FakeLink"] = []

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], *_: object, **__: object) -> None:
        self.conn_id, self.gen, self.assets, self.sent, self.aborted = conn_id, gen, assets, [], False
        FakeLink.made.append(self)

    def start(self) -> None:
        return None

    def send(self, text: str) -> None:
        self.sent.append(text)

    def abort(self) -> None:
        self.aborted = True


def setup() -> tuple[Shards, Core, list[tuple[str, dict]], FakeClock]:
    FakeLink.made = []
    clock, core, notes = FakeClock(wall=0), Core(), []
    settings = GatewaySettings(_env_file=None, max_assets_per_connection=2, ping_interval_s=10, pong_timeout_s=20,
                               backoff_min_s=1, backoff_max_s=8)
    shards = Shards(settings, queue.SimpleQueue(), clock, core, lambda reason, **kw: notes.append((reason, kw)),
                    random.Random(0), FakeLink)
    return shards, core, notes, clock


def test_tokens_are_sharded_subscribed_and_unsubscribed_on_open_links() -> None:
    shards, core, _, _ = setup()
    for t in ("a", "b", "c"):
        core.add(t, 0)
    shards.replan({"a", "b", "c"}, 0)
    shards.tick(0)
    assert sorted((x.conn_id, tuple(x.assets)) for x in FakeLink.made) == [(0, ("a", "b")), (1, ("c",))]
    for x in FakeLink.made:
        shards.on_open(x.conn_id, x.gen, 5)
    assert shards.state() == "connected" and shards.subscribed() == {"a", "b", "c"}
    assert all(core.tokens[t].live for t in "abc")
    core.remove("a", 6)
    core.add("d", 6)
    shards.replan({"b", "c", "d"}, 6)
    assert [json.loads(m) for m in FakeLink.made[0].sent] == [
        {"operation": "unsubscribe", "assets_ids": ["a"]},
        {"operation": "subscribe", "assets_ids": ["d"], "custom_feature_enabled": True}]
    assert FakeLink.made[1].sent == [] and core.tokens["d"].live
    assert shards.subscribed() == {"b", "c", "d"} and all(len(c.assets) <= 2 for c in shards.conns.values())


def test_a_missing_pong_replaces_the_link_after_a_jittered_backoff() -> None:
    shards, core, notes, _ = setup()
    core.add("a", 0)
    shards.replan({"a"}, 0)
    shards.tick(0)
    first = FakeLink.made[-1]
    shards.on_open(0, first.gen, 0)
    shards.tick(10_000)
    assert first.sent == ["PING"]
    shards.on_pong(shards.conns[0], 10_050)
    shards.tick(20_000)
    shards.tick(39_999)
    assert first.sent == ["PING", "PING", "PING"] and not first.aborted
    shards.tick(40_000)  # the PING of 20_000 is unanswered for 20 s
    assert first.aborted and shards.conns[0].status == "down" and shards.state() == "down"
    assert [n for n, _ in notes].count("WS_HALF_OPEN") == 1 and core.tokens["a"].live is False
    retry = shards.conns[0].retry_at_ms
    assert 40_000 + 500 <= retry <= 40_000 + 1000
    shards.tick(retry - 1)
    assert len(FakeLink.made) == 1
    shards.tick(retry)
    assert len(FakeLink.made) == 2 and shards.reconnects == 1


def test_late_events_of_a_replaced_or_closed_link_are_ignored() -> None:
    shards, core, _, _ = setup()
    core.add("a", 0)
    shards.replan({"a"}, 0)
    shards.tick(0)
    old = FakeLink.made[-1]
    shards.on_open(0, old.gen, 1)
    core.remove("a", 2)
    shards.replan(set(), 2)  # shard 0 closes
    core.add("a", 3)
    shards.replan({"a"}, 3)  # and is created again with the same id
    shards.tick(3)
    new = FakeLink.made[-1]
    assert new.gen != old.gen
    shards.on_closed(0, old.gen, "aborted", 4)  # the old link's end arrives late
    shards.on_open(0, new.gen, 5)
    assert shards.conns[0].status == "open" and not new.aborted


def test_a_refused_connect_is_journaled_and_retried_with_growing_backoff() -> None:
    shards, core, notes, _ = setup()
    core.add("a", 0)
    shards.replan({"a"}, 0)
    now, delays = 0, []
    for _ in range(5):
        shards.tick(now)
        link = FakeLink.made[-1]
        shards.on_closed(0, link.gen, "ConnectionRefusedError: [Errno 111]", now)
        delays.append(shards.conns[0].retry_at_ms - now)
        now = shards.conns[0].retry_at_ms
    assert [n for n, _ in notes].count("WS_CONNECT_FAILED") == 5 and "WS_DISCONNECT" not in [n for n, _ in notes]
    caps = [1000, 2000, 4000, 8000, 8000]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps)), delays
