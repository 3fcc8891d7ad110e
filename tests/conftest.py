"""Shared fixtures. Tests talk to a real Redis: TEST_REDIS_URL if set, else a ``redis:7`` container
(testcontainers) when a Docker engine answers, else a private redis-server on a free port started for
the session (``tests/redis_backend.py``; the pytest header names the choice). A Redis this suite did
not start is never flushed."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis

from tests.redis_backend import (CONTAINER, DEFAULT_IMAGE, NONE, URL, Choice, docker_answers, redis_backend,
                                 redis_container)

pytest_plugins = ("tests.scheduler_fakes",)  # the shared scheduler fixture ``env``

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server process (no persistence unless asked) that tests may kill and restart."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.workdir), "--appendonly", "yes" if self.appendonly else "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)


_CHOICE = pytest.StashKey[Choice]()


def suite_redis(config: pytest.Config) -> Choice:
    """The suite's Redis backend, chosen once per process (probing Docker costs ~0.15 s without an engine)."""
    if _CHOICE not in config.stash:
        docker_ok = not os.environ.get("TEST_REDIS_URL") and docker_answers()[0]
        try:
            config.stash[_CHOICE] = redis_backend(os.environ, docker_ok, shutil.which("redis-server") is not None)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
    return config.stash[_CHOICE]


def pytest_report_header(config: pytest.Config) -> str:
    """Name the Redis backend at the top of the run."""
    return suite_redis(config).header()


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis the suite may flush: TEST_REDIS_URL, a testcontainers Redis, or a private redis-server."""
    choice = suite_redis(pytestconfig)
    if choice.backend == URL:
        yield choice.url
        return
    if choice.backend == CONTAINER:
        with ExitStack() as stack:
            try:  # an engine that answers but cannot pull or start the image: fall back, loudly
                url = stack.enter_context(redis_container(os.environ.get("TEST_REDIS_IMAGE") or DEFAULT_IMAGE))
            except Exception as exc:  # noqa: BLE001 - docker/testcontainers raise many types
                if os.environ.get("TEST_REDIS_BACKEND") == CONTAINER:
                    raise
                logging.getLogger("tests").warning("redis container did not start (%s: %s); using a private "
                                                   "redis-server", type(exc).__name__, str(exc)[:200])
            else:
                yield url
                return
    if choice.backend == NONE:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis for the tests: {choice.why} (CI must install redis-server)")
        pytest.skip(choice.why)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture()
def r(redis_url: str) -> Iterator[Redis]:
    """A decoded client on an empty database (flushed before and after the test)."""
    client = Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server per test, for fault tests that kill or restart it (always a process, also
    when Docker answers: a restarted container gets a new host port, and these tests restart in place)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    yield server
    server.stop(kill=True)
