"""A real 3-master Redis Cluster on free local ports, for tests (``redis+cluster://`` URLs).

Use the fixtures by importing them into a test module::

    from tests.cluster import cluster, rc  # noqa: F401  (pytest fixtures)

``cluster`` (session): a running :class:`LocalCluster`; ``rc``: a decoded ``RedisCluster`` client on
it, flushed (every primary) before and after the test. Skipped when redis-server or redis-cli is
missing, failed instead under ``CI=1``. The cluster is this suite's own: flushing it is safe.
"""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis, RedisCluster

from libs.common.redis_client import redis_for_url

START_S = 30.0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too (both below 65536)."""
    while True:
        p = random.randrange(20_000, 30_000)
        if _bindable(p) and _bindable(p + 10_000):
            return p


class LocalCluster:
    """Three ``redis-server --cluster-enabled yes`` processes joined by ``redis-cli --cluster create``
    (no replicas, no persistence), in ``workdir``. ``url`` is the polyband cluster URL of the first."""

    def __init__(self, workdir: Path, n: int = 3) -> None:
        self.workdir = workdir
        self.ports: list[int] = []
        while len(self.ports) < n:
            p = cluster_port()
            if p not in self.ports:
                self.ports.append(p)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        """Start the nodes, create the cluster, wait until every node says ``cluster_state:ok``.

        Raises:
            RuntimeError: a node did not start or the cluster did not become ok within ``START_S``.
        """
        for p in self.ports:
            args = ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--cluster-enabled", "yes", "--cluster-config-file", str(self.workdir / f"nodes-{p}.conf"),
                    "--dir", str(self.workdir)]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + START_S
        for p in self.ports:
            self._until(lambda p=p: Redis(port=p, socket_timeout=0.5).ping(), deadline, f"node {p} up")
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                  "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=START_S)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-500:]} {done.stderr[-500:]}")
        self._until(self._ok, deadline, "cluster_state:ok on every node")

    def _ok(self) -> bool:
        for p in self.ports:
            info = Redis(port=p, socket_timeout=0.5, decode_responses=True).cluster("INFO")  # parsed to a dict
            if info.get("cluster_state") != "ok":
                return False
        return True

    @staticmethod
    def _until(check, deadline: float, what: str) -> None:  # type: ignore[no-untyped-def]
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster: timed out waiting for {what}")

    def stop(self) -> None:
        """Kill every node (they hold nothing worth keeping)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running 3-master cluster for the session (see module doc)."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        if os.environ.get("CI"):
            pytest.fail("redis-server/redis-cli are not installed (CI must install redis-server)")
        pytest.skip("redis-server/redis-cli not installed")
    c = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture()
def rc(cluster: LocalCluster) -> Iterator[RedisCluster]:
    """A decoded client on the test cluster as services make it (``redis_for_url``: a
    ``PolybandCluster``), every primary flushed before and after."""
    client = redis_for_url(cluster.url, "polyband-test")
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    client.close()
