"""The client factory with a cluster URL (``redis+cluster://``) against a real 3-master cluster: the
services' client, the probe RedisGate pings, and the run folder's Redis export."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from redis import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import keys
from libs.common.redis_client import is_cluster, make_probe, make_redis
from libs.common.redis_wait import RedisGate, cluster_seed, is_down, probe_client
from libs.common.run_store import export_redis, read_dump
from libs.common.settings import BaseServiceSettings, load_settings
from tests.cluster import LocalCluster, cluster, cluster_port, rc  # noqa: F401 - pytest fixtures


def test_cluster_seed_parses_the_url_forms() -> None:
    assert cluster_seed("redis+cluster://user:pw@10.0.0.1:7000/0") == "redis://user:pw@10.0.0.1:7000"
    assert cluster_seed("rediss+cluster://h:7001") == "rediss://h:7001"
    assert cluster_seed("redis://h:6379/0") is None and cluster_seed("unix:///tmp/r.sock") is None
    with pytest.raises(ValueError, match="needs host:port"):
        cluster_seed("redis+cluster:///0")


def test_services_client_and_probe_on_a_cluster(cluster: LocalCluster, rc: RedisCluster) -> None:  # noqa: F811
    settings = load_settings(BaseServiceSettings, redis_url=cluster.url)
    r = make_redis(settings, client_name="polyband-test")
    assert is_cluster(r) and r.ping()
    r.hset(keys.tok("1"), "state", "active")
    assert rc.hget(keys.tok("1"), "state") == "active"  # decoded str, same data
    per_node = r.client_list(target_nodes=RedisCluster.ALL_NODES)  # node name -> its clients
    names = {c.get("name") for clients in per_node.values() for c in clients}
    assert "polyband-test" in names
    assert make_probe(settings).ping()


def test_probe_of_an_unreachable_cluster_is_an_outage_the_gate_waits_out() -> None:
    url = f"redis+cluster://127.0.0.1:{cluster_port()}"
    probe = probe_client(url, timeout_s=0.2)
    with pytest.raises(RedisConnectionError) as err:
        probe.ping()
    assert is_down(err.value)
    with pytest.raises(RedisConnectionError):
        make_redis(load_settings(BaseServiceSettings, redis_url=url, redis_socket_timeout_s=0.2))
    stop = threading.Event()
    gate = RedisGate(probe, url, stop, wait=lambda s: stop.set())  # one failed probe, then stop
    assert gate.wait_up(phase="start") is False and gate.outage is not None and gate.outage.attempts == 1


def test_run_export_reads_every_node(rc: RedisCluster, tmp_path: Path) -> None:  # noqa: F811
    tokens = [str(10**76 + i) for i in range(12)]
    for t in tokens:
        rc.hset(keys.tok(t), "state", "active")
    rc.hset(keys.SUMMARY, "signals", "3")
    path = export_redis(rc, tmp_path)
    names = {k.decode() for k, _, _ in read_dump(path)}
    assert names == {keys.tok(t) for t in tokens} | {keys.SUMMARY}


SPIN = """local t0 = redis.call('TIME')
local start = t0[1] * 1000000 + t0[2]
repeat
  local t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start > tonumber(ARGV[1])
return redis.call('INCR', KEYS[1])"""


def test_a_timed_out_command_is_not_run_again(cluster: LocalCluster, rc: RedisCluster) -> None:  # noqa: F811
    settings = load_settings(BaseServiceSettings, redis_url=cluster.url, redis_socket_timeout_s=0.2)
    r = make_redis(settings)
    with pytest.raises(RedisTimeoutError):
        r.eval(SPIN, 1, "pb:test:{spin}", 400_000)  # runs 0.4 s, the client waits 0.2 s
    assert eventually_value(lambda: rc.get("pb:test:{spin}")) == "1"  # ran once: no retry after the timeout


def eventually_value(fn, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    """``fn()`` once it stops raising (the node is busy with the script until it ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
