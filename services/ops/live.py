"""One live run: every service against Polymarket itself (no paper venue), after a pre-flight.

``polyband live`` is the one command of a real-money run. Before anything starts, the pre-flight
loads every service's settings exactly as the services will (``load_settings`` in live mode) and
builds the venue adapter offline from them (key, wallet type and wallet checked, nothing sent), so a
setting the services would refuse is refused here, each problem on one line naming the variable.
What it refuses:

- ``PB_MODE`` other than ``live``, or ``PB_LIVE_CONFIRM`` not true (the explicit flag SPEC S6 asks);
- no ``PB_PRIVATE_KEY`` (live mode never signs with the paper test key);
- a ``PB_WALLET_TYPE`` / ``PB_WALLET`` that does not fit the key, or any other bad setting;
- no leader to follow (``PB_LEADERS`` or ``PB_LEADERS_FILE``).

URLs default to Polymarket's production endpoints as the SDK knows them
(:func:`libs.common.sdk_env.production_urls`); an explicit ``PB_*_URL`` wins (e.g. a proxy).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from libs.common.sdk_env import production_urls
from libs.common.settings import BadSetting, load_settings
from libs.common.venue import VenueClient
from services.maker_worker.config import WorkerSettings
from services.ops.preflight import SERVICES
from services.ops.preflight import environ as _environ
from services.ops.supervisor import Supervisor
from services.signal_ingest.config import IngestSettings


def live_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with Polymarket's production URLs filled in where no ``PB_*_URL`` is set."""
    return {**production_urls(), **environ}


def preflight(env: Mapping[str, str]) -> list[str]:
    """Problems that would stop a live run, one line each (empty = ready); nothing is sent anywhere.

    ``env``: the environment the services will get (see :func:`live_env`)."""
    if env.get("PB_MODE") != "live":
        return [f"bad setting: PB_MODE={env.get('PB_MODE', '')!r}: polyband live needs PB_MODE=live"]
    problems: list[str] = []  # the services share most settings: one line per distinct problem
    with _environ(env):
        for _, cls in SERVICES:
            try:
                settings = load_settings(cls)
            except BadSetting as exc:
                problems.append(str(exc))
                continue
            problems += _service_checks(settings)
    return list(dict.fromkeys(problems))


def _service_checks(settings: object) -> list[str]:
    """What loading alone does not check: the adapter builds from the key and wallet (offline), and
    there is someone to follow."""
    if isinstance(settings, WorkerSettings):
        try:
            VenueClient.from_settings(settings, settings.clob_url, settings.http_timeout_s)
        except ValueError as exc:
            return [f"bad setting: {exc}"]
    if isinstance(settings, IngestSettings) and not (settings.leaders or settings.leaders_file):
        return ["bad setting: PB_LEADERS=[]: no leader wallet to follow (set PB_LEADERS or PB_LEADERS_FILE)"]
    return []


@dataclass
class LiveRun:
    """The five services in live mode on one machine (Redis: ``PB_REDIS_URL`` or a private one)."""

    env: dict[str, str]
    workers: int = 2
    log_dir: Path = Path("var/live")
    sup: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        redis_url = self.env.get("PB_REDIS_URL") or None
        self.sup = Supervisor(self.log_dir, redis_url)

    def start(self) -> None:
        """Start Redis if needed, then md_gateway, user_feed, scheduler, signal_ingest and the workers."""
        self.sup.__enter__()
        for kind, _ in SERVICES[:-1]:
            self.sup.start(kind, self.sup.base_env({**self.env, "PB_INSTANCE_ID": f"{kind}-1"}))
        for i in range(1, self.workers + 1):
            wid = f"maker_worker-{i}"
            self.sup.start("maker_worker", self.sup.base_env({**self.env, "PB_WORKER_ID": wid,
                                                               "PB_INSTANCE_ID": wid}), name=wid)

    def stop(self) -> None:
        """Workers first (each cancels its own orders, fenced), then the rest, then a private Redis."""
        self.sup.stop_all()
