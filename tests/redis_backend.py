"""Which Redis the test suite runs on, and the testcontainers backend.

Order (``redis_backend``, pure): ``TEST_REDIS_URL`` if set (a Redis someone else runs; never flushed
by anything but the tests' own fixtures), else a ``redis:7`` container through testcontainers when a
Docker engine answers (``docker_answers``: one SDK ping with a short timeout, about 0.15 s with
no engine, import included), else a private ``redis-server`` on a free port. ``TEST_REDIS_BACKEND``
(``container`` or ``redis-server``) forces one of the last two; ``TEST_REDIS_IMAGE`` names another image.
"""
from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

URL, CONTAINER, REDIS_SERVER, NONE = "url", "container", "redis-server", "none"
FORCEABLE = (CONTAINER, REDIS_SERVER)
DEFAULT_IMAGE = "redis:7"  # as docker-compose.yml


@dataclass(frozen=True)
class Choice:
    """The backend (``url``, ``container``, ``redis-server`` or ``none``: nothing usable) and why."""

    backend: str
    why: str
    url: str = ""  # only for ``url``

    def header(self) -> str:
        """One line for the pytest report header."""
        return f"redis backend: {self.backend} ({self.why})"


def redis_backend(env: Mapping[str, str], docker_ok: bool, have_redis_server: bool) -> Choice:
    """Pick the suite's Redis.

    Args:
        env: the environment (``TEST_REDIS_URL``, ``TEST_REDIS_BACKEND``).
        docker_ok: testcontainers is installed and a Docker engine answered.
        have_redis_server: ``redis-server`` is on PATH.

    Raises:
        ValueError: ``TEST_REDIS_BACKEND`` is neither ``container`` nor ``redis-server``.
    """
    if env.get("TEST_REDIS_URL"):
        return Choice(URL, "TEST_REDIS_URL is set", env["TEST_REDIS_URL"])
    forced = env.get("TEST_REDIS_BACKEND", "")
    if forced and forced not in FORCEABLE:
        raise ValueError(f"TEST_REDIS_BACKEND={forced!r}: expected one of {', '.join(FORCEABLE)}")
    if forced == CONTAINER:
        return Choice(CONTAINER, "forced by TEST_REDIS_BACKEND") if docker_ok else \
            Choice(NONE, "TEST_REDIS_BACKEND=container but no Docker engine answers")
    if forced == REDIS_SERVER:
        return Choice(REDIS_SERVER, "forced by TEST_REDIS_BACKEND") if have_redis_server else \
            Choice(NONE, "TEST_REDIS_BACKEND=redis-server but redis-server is not installed")
    if docker_ok:
        return Choice(CONTAINER, "a Docker engine answers")
    if have_redis_server:
        return Choice(REDIS_SERVER, "no Docker engine answers")
    return Choice(NONE, "no Docker engine answers and redis-server is not installed")


def docker_answers(timeout_s: float = 0.5) -> tuple[bool, str]:
    """``(True, "")`` when testcontainers is installed and the Docker engine of the environment
    (``DOCKER_HOST`` or the default socket) answers a ping within ``timeout_s``; else ``(False, why)``."""
    if importlib.util.find_spec("testcontainers") is None:
        return False, "testcontainers is not installed"
    import docker

    try:
        client = docker.from_env(timeout=timeout_s)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine": the suite falls back
        return False, f"{type(exc).__name__}: {str(exc)[:120]}"
    return True, ""


@contextmanager
def redis_container(image: str = DEFAULT_IMAGE) -> Iterator[str]:
    """Run ``image`` with testcontainers for the block; yields its ``redis://host:port/0`` URL.

    Raises:
        docker.errors.DockerException: the engine failed to pull or start the image.
    """
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # older releases ship it as testcontainers.redis only
        from testcontainers.redis import RedisContainer

    with RedisContainer(image) as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
