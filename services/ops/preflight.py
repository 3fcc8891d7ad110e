"""Pre-flight of a run: load every service's settings exactly as the service will, before anything
starts, so a bad setting or a missing tape or leader file is one clear line on the console (naming
the variable and its value) and an exit status 2, instead of a child that dies in its own log.

``polyband live`` and ``polyband up`` both use it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping

from pydantic_settings import BaseSettings

from libs.common.settings import BadSetting, load_settings
from services.maker_worker.config import WorkerSettings
from services.md_gateway.config import GatewaySettings
from services.scheduler.config import SchedulerSettings
from services.signal_ingest.config import IngestSettings
from services.user_feed.config import UserFeedSettings

SERVICES: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("md_gateway", GatewaySettings), ("user_feed", UserFeedSettings), ("scheduler", SchedulerSettings),
    ("signal_ingest", IngestSettings), ("maker_worker", WorkerSettings))


@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    """Replace ``os.environ`` by ``env`` inside the block (settings classes read the environment)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_class(kind: str) -> type[BaseSettings]:
    """The settings class the service ``kind`` loads (``python -m services.<kind>``).

    Raises:
        KeyError: no such service.
    """
    if kind == "venue_sim":
        from services.venue_sim.config import VenueSettings
        return VenueSettings
    if kind == "alerter":
        from services.alerter.config import AlerterSettings
        return AlerterSettings
    return dict(SERVICES)[kind]


def settings_problems(envs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per distinct bad setting when each service ``kind`` loads its settings from
    ``envs[kind]`` (the environment it will be started with); empty = every service would start."""
    problems: list[str] = []
    for kind, env in envs.items():
        with environ(env):
            try:
                load_settings(settings_class(kind))  # type: ignore[type-var]
            except BadSetting as exc:
                problems.append(f"{kind}: {exc}")
    seen: dict[str, str] = {}  # the services share most settings: report a problem once
    for line in problems:
        seen.setdefault(line.split(": ", 1)[1], line)
    return list(seen.values())
