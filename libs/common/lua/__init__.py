"""Lua scripts, one ``.lua`` file each; the header of each file states KEYS, ARGV and the return.

Scripts never build key names (keys come in KEYS) and never read the clock (time comes in ARGV).
``register(r, name)`` returns a redis-py ``Script`` that runs EVALSHA and reloads on NOSCRIPT.
"""
from __future__ import annotations

from importlib import resources

from redis import Redis
from redis.cluster import ClusterPipeline
from redis.commands.core import Script


def source(name: str) -> str:
    """Text of ``<name>.lua`` shipped in this package."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def register(r: Redis, name: str) -> Script:
    """Register ``<name>.lua`` on client ``r``."""
    return r.register_script(source(name))


def names() -> list[str]:
    """Names of every bundled script (without ``.lua``)."""
    return sorted(p.name[:-4] for p in resources.files(__package__).iterdir() if p.name.endswith(".lua"))


def queue(pipe: object, script: Script, keys: list[str], args: list[object]) -> None:
    """Queue one call of ``script`` on the non-transactional pipeline ``pipe`` (the reply comes with
    ``pipe.execute()``). On one Redis this is ``script(keys, args, client=pipe)`` (redis-py loads the
    script before the pipeline runs). redis-py refuses Script calls on a cluster pipeline, so there
    the script is loaded on every primary (once per pipeline) and a raw EVALSHA is queued; each call
    is routed by its keys (one slot per call)."""
    if not isinstance(pipe, ClusterPipeline):
        script(keys=keys, args=args, client=pipe)
        return
    loaded: set[str] = pipe.__dict__.setdefault("_pb_loaded_scripts", set())
    if script.sha not in loaded:
        script.registered_client.script_load(script.script)
        loaded.add(script.sha)
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
