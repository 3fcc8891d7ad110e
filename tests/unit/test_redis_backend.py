"""Which Redis the suite runs on (``tests/redis_backend.py``): the pure choice in every case, and the
Docker probe's cost on a machine without an engine."""
from __future__ import annotations

import time

import pytest

from tests.redis_backend import CONTAINER, NONE, REDIS_SERVER, URL, docker_answers, redis_backend


def test_test_redis_url_wins_over_everything() -> None:
    c = redis_backend({"TEST_REDIS_URL": "redis://h:1/2", "TEST_REDIS_BACKEND": "container"}, True, True)
    assert (c.backend, c.url) == (URL, "redis://h:1/2")


@pytest.mark.parametrize("docker_ok, have_server, want", [
    (True, True, CONTAINER), (True, False, CONTAINER), (False, True, REDIS_SERVER), (False, False, NONE)])
def test_a_container_when_docker_answers_else_redis_server(docker_ok: bool, have_server: bool, want: str) -> None:
    c = redis_backend({"TEST_REDIS_URL": ""}, docker_ok, have_server)  # an empty URL counts as unset
    assert c.backend == want
    assert c.url == ""
    assert c.header().startswith(f"redis backend: {want} (")


@pytest.mark.parametrize("forced, docker_ok, have_server, want", [
    ("redis-server", True, True, REDIS_SERVER), ("redis-server", True, False, NONE),
    ("container", False, True, NONE), ("container", True, True, CONTAINER)])
def test_test_redis_backend_forces_one_and_never_silently_falls_back(forced: str, docker_ok: bool,
                                                                      have_server: bool, want: str) -> None:
    c = redis_backend({"TEST_REDIS_BACKEND": forced}, docker_ok, have_server)
    assert c.backend == want
    if want == NONE:
        assert forced in c.why


def test_an_unknown_forced_backend_names_the_variable_and_value() -> None:
    with pytest.raises(ValueError, match=r"TEST_REDIS_BACKEND='podman'"):
        redis_backend({"TEST_REDIS_BACKEND": "podman"}, True, True)


def test_the_docker_probe_answers_within_a_second() -> None:
    t0 = time.perf_counter()
    ok, why = docker_answers(timeout_s=0.5)
    assert time.perf_counter() - t0 < 1.0
    assert ok or why  # no engine: a reason for the header


def test_the_docker_probe_says_no_for_an_engine_that_is_not_there(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    t0 = time.perf_counter()
    ok, why = docker_answers(timeout_s=0.5)
    assert (ok, time.perf_counter() - t0 < 1.0) == (False, True)
    assert why
