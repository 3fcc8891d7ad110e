"""Lua scripts, one ``.lua`` file each; the header of each file states KEYS, ARGV and the return.

Scripts never build key names (keys come in KEYS) and never read the clock (time comes in ARGV).
``register(r, name)`` returns a redis-py ``Script`` that runs EVALSHA and reloads on NOSCRIPT.
"""
from __future__ import annotations

from importlib import resources

from redis import Redis
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
