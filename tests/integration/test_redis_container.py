"""The testcontainers backend of the suite's Redis (``tests/redis_backend.py``): a ``redis:7`` container
runs every bundled Lua script. Runs only where a Docker engine answers; skipped otherwise."""
from __future__ import annotations

import pytest
from redis import Redis

from libs.common import lua
from tests.redis_backend import docker_answers, redis_container


@pytest.mark.timeout(180)  # a first run pulls the image
def test_a_redis_container_serves_the_projects_lua_scripts() -> None:
    ok, why = docker_answers()
    if not ok:
        pytest.skip(f"no Docker engine answers ({why})")
    with redis_container() as url:
        r = Redis.from_url(url, decode_responses=True)
        assert int(r.info("server")["redis_version"].split(".")[0]) >= 7
        shas = {name: r.script_load(lua.source(name)) for name in lua.names()}
        assert all(r.script_exists(*shas.values()))
        assert r.set("pb:test", "1") and r.get("pb:test") == "1"
        r.close()
