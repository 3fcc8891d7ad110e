"""Every Lua script and every multi-key call site against a real 3-master Redis Cluster
(tests/cluster.py): a script whose KEYS span two slots fails here with CROSSSLOT, and so would a
multi-stream XREAD, a transaction over two slots, or a client path that only works on one Redis."""
from __future__ import annotations

import re

import pytest
from redis import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from libs.common import keys, lua
from libs.common.clock import FakeClock
from libs.common.exposure import ExposureLedger
from libs.common.journal import Journal
from libs.common.leases import Leases
from libs.common.redis_client import is_cluster
from services.md_gateway.publish_cluster import ClusterPublisher
from services.md_gateway.state import Publish
from services.scheduler.model import Transition
from services.scheduler.store import Store
from tests.cluster import cluster, rc  # noqa: F401 - pytest fixtures

TOKENS = [str(10**76 + i) for i in range(12)]  # spread over the three nodes (checked below)
ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
HEADER_KEY = re.compile(r"^-- KEYS\[(\d+)\]\s.*?(pb:[^\s(),]+)")

# realistic ARGV per script (as their callers pass them); a script not listed runs with ARGV
# "0"s: the CROSSSLOT check happens before the script runs, so that still checks its keys
ARGS: dict[str, list[object]] = {
    "book_publish": ["1000", "price_change", "best_bid", "0.40", "best_ask", "0.45", "bid_size", "10",
                     "ask_size", "10", "exch_ts_ms", "1", "recv_ts_ms", "1"],
    "fenced_hset": ["w1", "1", "1000", "state", "active"],
    "lease_acquire": ["w1", "1000", "5000", "", "0", "0", "0"],
    "lease_offer": ["maker", "1000"],
    "lease_release": ["w1", "1", "done"],
    "lease_renew": ["w1", "1", "1000", "5000"],
    "lease_withdraw": ["1000"],
    "risk_exposure": [TOKENS[0], "1", "0", "0", "0", "0", "", "", ""],
    "risk_forget": [TOKENS[0]],
    "sig_count": ["signals", "3"],
    "sig_publish": ["0", "100", "1", "2", "signal_id", "s1", "side", "BUY", "0", "ts", "1"],
    "token_purge": ["0"],
}


def header_keys(name: str, token: str = TOKENS[0]) -> list[str]:
    """The KEYS of ``<name>.lua`` as its header states them, made concrete (a token, an account)."""
    found: dict[int, str] = {}
    for line in lua.source(name).splitlines():
        m = HEADER_KEY.match(line)
        if m:
            found.setdefault(int(m.group(1)), m.group(2).rstrip(":").replace("{token}", "{" + token + "}")
                             .replace("<account>", ACC))
    return [found[i] for i in sorted(found)]


@pytest.mark.parametrize("name", lua.names())
def test_each_script_header_names_keys_of_one_slot(name: str) -> None:
    ks = header_keys(name)
    assert ks, f"{name}.lua: no '-- KEYS[n] ... pb:...' line in its header"
    assert len({key_slot(k.encode()) for k in ks}) == 1, f"{name}.lua touches several cluster slots: {ks}"


@pytest.mark.parametrize("name", lua.names())
def test_each_script_runs_on_the_cluster(rc: RedisCluster, name: str) -> None:  # noqa: F811
    ks = header_keys(name)
    args = ARGS.get(name, ["0"] * 12)
    try:
        rc.eval(lua.source(name), len(ks), *ks, *args)
    except RedisClusterException as exc:
        pytest.fail(f"{name}.lua cannot run on a cluster: {exc}")
    except ResponseError as exc:  # a refusal of made-up ARGV is fine; a slot error is not
        assert not re.search(r"CROSSSLOT|non local key|MOVED", str(exc)), f"{name}.lua: {exc}"
        assert name not in ARGS, f"{name}.lua failed with its realistic ARGV: {exc}"


def test_tokens_spread_over_every_node(rc: RedisCluster) -> None:  # noqa: F811
    assert is_cluster(rc) and len(rc.get_primaries()) == 3
    nodes = {rc.get_node_from_key(keys.tok(t)).name for t in TOKENS}
    assert len(nodes) == 3


def test_leases_and_fenced_writes_on_every_node(rc: RedisCluster) -> None:  # noqa: F811
    leases = Leases(rc)
    for t in TOKENS:
        assert leases.offer(t, "maker", 1000)
        g = leases.acquire(t, "w1", 1000, 5000)
        assert g is not None and g.fence == 1
        g = leases.renew(g, 2000, 5000)
        leases.fenced_hset(g, keys.tok(t), {"state": "active"}, 2000)
        assert rc.hget(keys.tok(t), "state") == "active"
        assert leases.release(g, done=False)
        g2 = leases.acquire(t, "w2", 3000, 5000)
        assert g2 is not None and g2.fence == 2  # the fence counter lives in the token's slot
        assert leases.release(g2, done=True) and leases.withdraw(t, 4000)


def test_exposure_ledger_on_the_cluster(rc: RedisCluster) -> None:  # noqa: F811
    ledger = ExposureLedger(rc)
    assert ledger.reserve(TOKENS[0], 1, (0, 0), (4_000_000, 10_000_000), 5_000_000, 50_000_000).ok
    refused = ledger.reserve(TOKENS[1], 1, (0, 0), (2_000_000, 5_000_000), 5_000_000, 50_000_000)
    assert not refused.ok and refused.reason == "EXPOSURE_CAP"


def test_cluster_publisher_keeps_each_token_in_order_across_nodes(rc: RedisCluster) -> None:  # noqa: F811
    pub = ClusterPublisher(rc, 1000)
    rows = []
    for i in range(3):
        for t in TOKENS:
            bid = f"0.{40 + i}"
            rows.append(Publish(t, True, "price_change", ["best_bid", bid, "best_ask", "0.50", "bid_size", "1",
                                                          "ask_size", "1", "exch_ts_ms", "1", "recv_ts_ms", "1"]))
    pub.add(rows, [(TOKENS[0], 77)], [(TOKENS[1], "0.01")])
    assert pub.flush() == len(rows) and not pub.failed
    rc.script_flush()  # (every primary) a node restart loses its scripts: still no NOSCRIPT
    pub.add(rows[:1], [], [])
    assert pub.flush() == 1 and not pub.failed
    for t in TOKENS:
        seqs = [int(f["seq"]) for _, f in rc.xrange(keys.md_stream(t))]
        assert seqs == sorted(seqs) and len(seqs) == (4 if t == TOKENS[0] else 3)
        assert rc.hget(keys.md_book(t), "best_bid") == ("0.40" if t == TOKENS[0] else "0.42")  # the last publish
    assert rc.hget(keys.md_book(TOKENS[0]), "verified_ts_ms") == "77" and rc.hget(keys.MD_TICK, TOKENS[1]) == "0.01"


def test_scheduler_compare_and_set_is_one_slot_transaction(rc: RedisCluster) -> None:  # noqa: F811
    store = Store(rc, Leases(rc), Journal(rc, "scheduler", FakeClock()))
    for t in TOKENS[:6]:  # tokens on every node
        assert store.cas(t, Transition("pending", "QUEUED", ("",)), 1) == (True, "")
        assert store.cas(t, Transition("active", "ACTIVATED", ("pending",)), 2) == (True, "pending")
        assert store.cas(t, Transition("active", "ACTIVATED", ("pending",)), 3) == (False, "active")
        assert rc.hget(keys.tok(t), "updated_ms") == "2"


def test_lease_renewals_pipelined_across_nodes(rc: RedisCluster) -> None:  # noqa: F811
    leases = Leases(rc)
    grants = []
    for t in TOKENS:
        leases.offer(t, "maker", 1000)
        g = leases.acquire(t, "w1", 1000, 5000)
        assert g is not None
        grants.append(g)
    rc.script_flush()  # a restarted node lost its scripts: lua.queue loads them first
    lost = grants[5]
    assert leases.release(lost, done=True)
    out = leases.renew_many(grants, 2000, 5000)
    assert [type(x).__name__ for x in out] == ["Grant"] * 5 + ["LeaseLost"] + ["Grant"] * 6
    assert all(x.expires_ms == 7000 for x in out if not isinstance(x, Exception))
    assert rc.hget(keys.lease(TOKENS[0]), "expires_ms") == "7000"
